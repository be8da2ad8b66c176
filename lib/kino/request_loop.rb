# frozen_string_literal: true

require_relative "errors"
require_relative "backtrace_formatter"
require_relative "server_log"
require_relative "invalid_response"
require_relative "response_stream"
require_relative "error_stream"

module Kino
  # The loop one thread of a worker runs, a consumer of the server's
  # request queue: takes a request (its env is built natively, in this
  # thread's ractor), calls the app, and hands the answer to the native
  # responder. The same code runs in :threaded mode threads and inside
  # worker ractors, so it keeps no state but what it was given and reads no
  # mutable constants.
  class RequestLoop
    REQUEST_KEY = "kino.request"
    RACK_ERRORS = "rack.errors"
    ERROR_BODY = "Internal Server Error\n"
    # What serve (and Taker#respond_and_take) returns when the caller is
    # to take the next request; what respond_and_take returns when it left
    # the answer to its caller.
    TAKE = :take
    UNANSWERED = :unanswered

    # `slot` names this thread's place in the server's slots, so the
    # supervisor can answer the request it holds if its worker dies.
    # `speaker` is what its log lines say it is (ServerLog.speaker);
    # `errors` the worker's rack.errors (an ErrorStream), or nil for the
    # one build_env gives ($stderr).
    def initialize(server_id, app, slot: nil, on_error: nil, after_request_complete: nil, speaker: "worker",
                   errors: nil)
      @server_id = server_id
      @speaker = speaker
      @errors = errors
      @app = app
      @slot = slot
      @on_error = on_error
      @after_request_complete = after_request_complete
    end

    # Serves until the server's queue is closed and empty, through one
    # Native::Taker: this thread's hold on the server, so that no take
    # looks the server up.
    def run
      # Kino.sleep in the app learns from this which server to listen to.
      Thread.current[:kino_server_id] = @server_id
      taker = Native.taker(@server_id, @slot)
      env = taker.take
      while env
        env = serve(env, taker)
        env = taker.take if env.equal?(TAKE)
      end
    ensure
      taker&.close
    end

    # Answers one request. Any failure of the app, or an answer that breaks
    # the Rack contract, becomes a 500 (or a cut-off body when the head is
    # already out) and is reported; the loop goes on serving. An exception
    # that is not a StandardError (the app raised Exception, NoMemoryError,
    # SystemExit) is answered the same way and then ends the worker: the
    # supervisor replaces it.
    #
    # The 500 goes out before on_error runs: an error reporter's network
    # call must not keep the client waiting.
    #
    # after_request_complete runs last, once the body is closed, with the
    # status of the answer: the app's, or 500 for a failure (also when the
    # head was already out and the body was cut off). Unset, it costs this
    # one nil check.
    #
    #
    # With a +taker+ and no after_request_complete hook, the answer goes to
    # Taker#respond_and_take, which sends a plain one (an Array body with
    # nothing to close, a valid status, a Hash of headers) and takes the
    # next request in the same native call: there is no body to close and
    # no hook to run between the two, so nothing but the number of calls
    # changes. It returns the next env (nil once the queue is closed), or
    # TAKE when the caller is to take it (also when that take failed: the
    # caller's take raises the failure), or UNANSWERED for any other
    # answer, which goes out here as it always did.
    def serve(env, taker = nil)
      request = env[REQUEST_KEY]
      env[RACK_ERRORS] = @errors if @errors
      body = nil
      status, headers, body = @app.call(env)
      # No `return` out of this begin/ensure: Ruby makes that a throw, an
      # object allocated per request.
      taken = taker && !@after_request_complete ? taker.respond_and_take(request, status, headers, body) : UNANSWERED
      if taken.equal?(UNANSWERED)
        write_response(request, status, headers, body, env)
        TAKE
      else
        taken
      end
    rescue Exception => e # rubocop:disable Lint/RescueException
      status = 500
      begin
        Native.respond_error(request, 500, ERROR_BODY) if request
      ensure
        report(e, env, "500")
      end
      raise unless e.is_a?(StandardError) || e.is_a?(ScriptError)

      TAKE
    ensure
      close_body(body, env)
      complete(env, status) if @after_request_complete
    end

    private

    def write_response(request, status, headers, body, env)
      unless status.is_a?(Integer) && status >= 100 && status <= 999
        raise InvalidResponse, "status must be an Integer from 100 to 999, got #{status.inspect}"
      end
      raise InvalidResponse, "headers must be a Hash, got #{headers.class}" unless headers.is_a?(Hash)

      if body.respond_to?(:to_ary)
        Native.respond(request, status, headers, body.to_ary)
      elsif body.respond_to?(:each)
        return unless Native.respond_start(request, status, headers)

        # Each chunk goes out as it is produced; respond_write waits while
        # the client is slower than the app, and says false once it is gone.
        body.each { |chunk| break unless Native.respond_write(request, chunk) }
        Native.respond_finish(request)
      elsif body.respond_to?(:call)
        return unless Native.respond_start(request, status, headers)

        stream = ResponseStream.new(request, env["rack.input"])
        body.call(stream)
        stream.close
      else
        raise InvalidResponse, "body must respond to each, to_ary or call, got #{body.class}"
      end
    end

    def close_body(body, env)
      body.close if body.respond_to?(:close)
    rescue StandardError => e
      report(e, env, "body.close failed:")
    end

    # Errors go to the server's log (ServerLog): one line saying what
    # failed, "500 GET /path · Class: message (file:line)", and the
    # backtrace under it, the app's own frames first (BacktraceFormatter);
    # on_error gets the request's own env.
    #
    # A body cut off by its client (gone, stalled, too large) is the
    # client's doing and already answered natively: one line, no backtrace,
    # and not an app error, so on_error does not hear of it. That holds too
    # when the app wrapped the read's error in one of its own.
    def report(error, env, what)
      cut_off = input_error_of(error)
      if cut_off
        return log("request body of #{env['REQUEST_METHOD']} #{env['PATH_INFO']} cut off: #{cut_off.message}\n")
      end

      log(BacktraceFormatter.format(
            BacktraceFormatter.request_headline(what, env["REQUEST_METHOD"], env["PATH_INFO"], error), error
          ))
      @on_error&.call(error, env)
    rescue StandardError => e
      log("on_error hook failed: #{e.class}: #{e.message}\n")
    end

    # A failing hook is logged as a failing on_error is, in one line; the
    # response is already out and the loop goes on.
    def complete(env, status)
      @after_request_complete.call(env, status)
    rescue StandardError => e
      log("after_request_complete hook failed: #{e.class}: #{e.message}\n")
    end

    # The InputError that +error+ is, or was caused by (a few levels deep).
    def input_error_of(error)
      5.times do
        return error if error.is_a?(InputError)

        error = error.cause
        return nil if error.nil?
      end
      nil
    end

    def log(text)
      ServerLog.write(@server_id, ServerLog.line(@speaker, text))
    end
  end
end
