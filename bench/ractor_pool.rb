# frozen_string_literal: true

module KinoBench
  # A Rack middleware that runs the app it wraps in a pool of ractors: each
  # request is copied into an idle ractor, the app answers there, and the
  # calling thread waits for the answer. This is what a Rack-level hop to
  # ractors costs on a server that has none of its own (Puma), measured by
  # bench/studies.rb ractor_pool against Kino's :ractor on the same app.
  #
  # Only String entries of env cross (ENV_KEYS): rack.input, rack.errors and
  # the server's own objects are not shareable and cannot be copied, so a
  # real middleware of this kind would have to choose what the app may read,
  # as this one does.
  class RactorPool
    ENV_KEYS = %w[REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING SERVER_NAME SERVER_PORT SERVER_PROTOCOL
                  HTTP_HOST HTTP_ACCEPT REMOTE_ADDR].freeze

    # [status, headers, body as one String]: what the ractor sends back, by
    # copy. An exception becomes a 500, so the ractor keeps serving and the
    # waiting thread is never left without an answer.
    def self.answer(app, env)
      status, headers, body = app.call(env)
      text = +""
      body.each { |part| text << part }
      body.close if body.respond_to?(:close)
      [status, headers, text]
    rescue StandardError => e
      [500, { "content-type" => "text/plain" }, "#{e.class}: #{e.message}"]
    end

    # A process's pool: the ractors, the indexes of the idle ones, and for
    # each one the queue its answer arrives on.
    Pool = Struct.new(:ractors, :idle, :answers)

    def initialize(app, size:)
      @app = Ractor.make_shareable(app)
      @size = size
      @lock = Mutex.new
      @pid = nil
      @pool = nil
    end

    def call(env)
      pool = current_pool
      index = pool.idle.pop
      begin
        pool.ractors[index].send(env.slice(*ENV_KEYS))
        status, headers, text = pool.answers[index].pop
      ensure
        pool.idle.push(index)
      end
      [status, headers, [text]]
    end

    private

    # The pool, made in the process that serves: Puma preloads the app in
    # its master and forks, and a fork keeps only the forking thread, none
    # of the master's ractors.
    def current_pool
      return @pool if @pid == Process.pid

      @lock.synchronize do
        next @pool if @pid == Process.pid

        @pool = quietly { start_pool }
        @pid = Process.pid
        @pool
      end
    end

    # Every ractor sends [its index, the answer] to this ractor, where one
    # thread hands each answer to the request waiting for it. The server's
    # threads never wait on a ractor themselves: before Ruby 3.3 only one
    # thread of a ractor may wait in Ractor.receive, #take or .select at a
    # time, and Ruby 4.0 removed Ractor.yield and #take; a send to the
    # calling ractor and one receiving thread work on both. That thread
    # takes whatever arrives at this ractor, so a process has one pool.
    def start_pool
      caller = Ractor.current
      ractors = Array.new(@size) do |index|
        Ractor.new(@app, index, caller) do |app, own_index, reply_to|
          loop { reply_to.send([own_index, RactorPool.answer(app, Ractor.receive)]) }
        end
      end
      answers = Array.new(@size) { Queue.new }
      Thread.new do
        loop do
          index, answer = Ractor.receive
          answers[index] << answer
        end
      end
      Pool.new(ractors, Queue.new.tap { |idle| @size.times { |i| idle << i } }, answers)
    end

    # Ruby 3.x warns on the first Ractor.new that ractors are experimental;
    # in a server's log that line would read as trouble.
    def quietly
      previous = Warning[:experimental]
      Warning[:experimental] = false
      yield
    ensure
      Warning[:experimental] = previous
    end
  end
end
