# frozen_string_literal: true

require "kino"
require "socket"
require "tmpdir"

# The canary: every function of the native seam, called from a non-main
# ractor. If the extension stopped declaring itself ractor-safe, or a
# function were defined outside Init_kino, these calls would raise
# Ractor::UnsafeError.
RSpec.describe "Kino::Native from a non-main ractor" do
  let(:exercised) do
    %i[
      server_create server_addresses server_start server_stats server_log server_drain_log
      server_slot_busy_ms server_requeue_held server_fail_slots server_close_queue server_stop server_release
      take_one respond respond_start respond_write respond_finish respond_error lent_bodies sleep
      input_read input_rewind server_worker_exited server_next_worker_exit server_wake_worker_exits
      server_report_pool server_control_address server_reload_tls
      logger_open logger_write logger_dropped logger_tty? logger_reopen logger_flush logger_flush_all
      logger_reopen_all logger_pause_all logger_resume_all listen_socket
      board_create board_stats board_set_state board_reset board_release taker
    ]
  end

  it "covers every function of Kino::Native" do
    expect(Kino::Native.singleton_methods.sort).to eq(exercised.sort)
  end

  it "can call each of them inside a Ractor" do
    Warning[:experimental] = false
    # Streaming bodies, so input_read has a body still arriving to wait for.
    options = NativeOptions.with(io_threads: 1, worker_slots: 4, stream_request_bodies: true)
    log_path = File.join(Dir.mktmpdir("kino-native-ractor"), "app.log")
    ractor = Ractor.new(options, log_path) do |server_options, path|
      native = Kino::Native
      # Reads until the response's last bytes (`ending`) have arrived.
      read_response = lambda do |socket, ending|
        data = +""
        # Wait first, so each read finds bytes: on Ruby 4.0 a read inside a
        # ractor that blocked and retried could raise IO::TimeoutError with
        # the bytes there (an errno kept from the wait, as it seems).
        until data.end_with?(ending)
          socket.wait_readable(10)
          data << socket.readpartial(4096)
        end
        data
      end
      results = {}
      id = native.server_create(server_options)
      port = Integer(native.server_addresses(id).first[/\d+\z/])
      native.server_start(id)
      socket = TCPSocket.new("127.0.0.1", port)

      socket.write("GET /one HTTP/1.1\r\nHost: x\r\n\r\n")
      env = native.take_one(id, 0)
      results[:path] = env["PATH_INFO"]
      results[:busy] = native.server_slot_busy_ms(id, 0, 1).first
      request = env["kino.request"]
      results[:respond] = native.respond(request, 200, { "content-type" => "text/plain" }, ["one"])
      results[:claimed] = request.claimed?
      results[:lent] = native.lent_bodies
      results[:first] = read_response.call(socket, "one")

      # A body behind Expect: 100-continue reaches the app before it is
      # sent, through Kino::Input.
      socket.write("POST /two HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
      env = native.take_one(id)
      request = env["kino.request"]
      socket.write("abc")
      results[:input_class] = env["rack.input"].class
      body = +""
      nil while native.input_read(request, 2, body)
      native.input_rewind(request)
      again = +""
      nil while native.input_read(request, 64, again)
      results[:body] = [body, again]
      native.respond_start(request, 200, { "content-type" => "text/plain" })
      native.respond_write(request, "two")
      native.respond_finish(request)
      results[:second] = read_response.call(socket, "0\r\n\r\n")

      socket.write("GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
      request = native.take_one(id, 1)["kino.request"]
      results[:error] = native.respond_error(request, 503, "busy\n")
      results[:third] = read_response.call(socket, "busy\n")

      # A taker, made inside the ractor: two pipelined requests, the first
      # answered with the take of the second.
      taker = native.taker(id, 2)
      socket.write("GET /four HTTP/1.1\r\nHost: x\r\n\r\nGET /five HTTP/1.1\r\nHost: x\r\n\r\n")
      env = taker.take
      results[:taker_paths] = [env["PATH_INFO"]]
      env = taker.respond_and_take(env["kino.request"], 200, { "content-type" => "text/plain" }, ["four"])
      results[:taker_paths] << env["PATH_INFO"]
      native.respond(env["kino.request"], 200, { "content-type" => "text/plain" }, ["five"])
      results[:pipelined] = read_response.call(socket, "five")
      results[:taker_closed] = taker.close

      native.server_worker_exited(id, 7, ["RuntimeError", "boom", ["app.rb:1"]])
      native.server_worker_exited(id, 8, nil)
      native.server_wake_worker_exits(id)
      results[:exits] = Array.new(3) { native.server_next_worker_exit(id) }

      results[:requeued] = native.server_requeue_held(id, 0, 2)
      results[:failed] = native.server_fail_slots(id, 0, 2)
      native.sleep(0.01)
      native.sleep(0.01, id)
      native.server_report_pool(id, 2, 1, 0)
      results[:stats] = native.server_stats(id).values_at(:served, :workers_up, :respawns)
      results[:control] = native.server_control_address(id)
      native.server_log(id, "from a ractor")
      results[:log] = native.server_drain_log(id)
      logger = native.logger_open(path, 16)
      results[:logger] = [native.logger_write(logger, "logged from a ractor\n"), native.logger_flush(logger, 5.0),
                          native.logger_flush_all(5.0), native.logger_dropped(logger), native.logger_tty?(logger),
                          native.logger_reopen(logger)]
      # A plaintext server: the call itself works, and says why it cannot.
      results[:reload_tls] = begin
        native.server_reload_tls(id)
      rescue Kino::Error => e
        e.message
      end
      # Every writer of the process: one an earlier example opened in a
      # directory since removed cannot be reopened, and says so.
      results[:reopen_all] = begin
        native.logger_reopen_all
      rescue Kino::Error => e
        e.message
      end
      # Around a fork (none here): writers stop, then start again.
      results[:paused] = [native.logger_pause_all, native.logger_resume_all]
      address, fd = native.listen_socket("tcp://127.0.0.1:0", 4)
      results[:listen_socket] = address
      IO.for_fd(fd).close
      board = native.board_create(2)
      native.board_set_state(board, :draining)
      native.board_reset(board, 1)
      results[:board] = native.board_stats(board)[:processes].size
      results[:board_released] = native.board_release(board)
      native.server_close_queue(id)
      results[:after_close] = native.take_one(id)
      results[:stragglers] = native.server_stop(id, 1.0)
      results[:released] = native.server_release(id)
      socket.close
      results
    end
    results = ractor_value(ractor)

    expect(results[:paused].first).to be_positive
    expect(results[:paused].last).to eq(results[:paused].first)
    expect(results[:board]).to eq(2)
    expect(results[:board_released]).to be(true)
    expect(results[:listen_socket]).to match(%r{\Atcp://127\.0\.0\.1:[1-9]\d*\z})
    expect(results[:path]).to eq("/one")
    expect(results[:busy]).to be >= 0
    expect(results[:respond]).to be(true)
    expect(results[:claimed]).to be(true)
    expect(results[:lent]).to eq(0)
    expect(results[:first]).to start_with("HTTP/1.1 200 OK").and end_with("one")
    expect(results[:input_class]).to eq(Kino::Input)
    expect(results[:body]).to eq(%w[abc abc])
    expect(results[:second]).to include("transfer-encoding: chunked").and include("two")
    expect(results[:error]).to be(true)
    expect(results[:third]).to start_with("HTTP/1.1 503")
    expect(results[:taker_paths]).to eq(%w[/four /five])
    expect(results[:pipelined].scan("HTTP/1.1 200 OK").size).to eq(2)
    expect(results[:pipelined]).to match(/four.*five\z/m)
    expect(results[:taker_closed]).to be_nil
    expect(results[:exits]).to eq([[7, ["RuntimeError", "boom", ["app.rb:1"]]], [8, nil], :wake])
    expect(results[:requeued]).to eq(0) # no batch: nothing held beyond the current ones
    expect(results[:failed]).to eq(0) # both slots' requests had been answered
    expect(results[:stats]).to eq([5, 2, 1])
    expect(results[:control]).to be_nil # no control_bind
    expect(results[:reload_tls]).to eq("this server does not serve TLS")
    expect(results[:log]).to include(a_string_ending_with("main: from a ractor\n"))
    expect(results[:logger]).to eq([true, true, true, 0, false, true])
    expect(results[:reopen_all]).to be_a(Integer).and(be >= 1).or(match(/\Acannot open log file /))
    expect(File.read(log_path)).to eq("logged from a ractor\n")
    expect(results[:after_close]).to be_nil
    expect(results[:stragglers]).to eq(0)
    expect(results[:released]).to be(true)
  end
end
