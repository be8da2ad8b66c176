# frozen_string_literal: true

require_relative "worker_spawner"

module Kino
  # :ractor mode: each worker is a Ractor running a Worker, so workers run
  # Ruby in parallel. Only shareable values go in: the server id, slot
  # numbers and the worker's token (Integers), the app and hooks (made
  # shareable before the first worker starts). Requests never cross: each
  # worker takes them from the native queue itself and builds their env in
  # its own ractor.
  #
  # Ruby 3.1 keeps one wait state per ractor, so two threads of the main
  # ractor blocked in Ractor.select or Ractor#take at once can lose a
  # wake-up and wait forever (measured: two servers' supervisors in one
  # process never woke). So nothing here waits on a ractor. A worker
  # reports its own end to the server's native exit board, from an ensure
  # inside its ractor, with its exception as text; the supervisor waits on
  # that board with the GVL released. The exception is rebuilt on this side
  # (same class where it can be, with its message and backtrace).
  class RactorSpawner < WorkerSpawner
    def initialize(...)
      super
      @live = {} # token => Ractor, for the workers that have not reported their end
      @tokens = 0
      @closed = false
      @lock = Mutex.new
    end

    # Returns the worker's handle: its token. The lock is held until the
    # worker is registered: one that ends at once (its after_worker_boot
    # raised) is already reporting, and #next_exit must find its token.
    def spawn(index, first_slot)
      @lock.synchronize do
        token = @tokens += 1
        @live[token] = start_ractor(index, first_slot, token)
        token
      end
    end

    # Blocks until a worker ends: [token, error or nil]; :wake when #wake
    # was called; nil once closed with no worker left to wait for.
    def next_exit
      loop do
        return nil if @lock.synchronize { @closed && @live.empty? }

        event = Native.server_next_worker_exit(@server_id)
        return :wake if event == :wake

        token, report = event
        next unless @lock.synchronize { @live.delete(token) }

        return [token, report && self.class.rebuild(report)]
      end
    end

    def wake
      Native.server_wake_worker_exits(@server_id)
    rescue Kino::Error
      nil # released: the monitor's next wait raises and ends it
    end

    def close
      @lock.synchronize { @closed = true }
      wake
    end

    # An exception as plain strings, which can leave a ractor. Whatever the
    # exception's own methods do (raise, even), a report comes out.
    def self.report(error)
      [safely { error.class.name || error.class.inspect } || "(an exception)",
       safely { error.message.to_s } || "(message unavailable)",
       safely { Array(error.backtrace).map(&:to_s) } || []]
    end

    # The exception a report describes, without running any of the app's
    # code here (a user class's initialize or message could block, raise or
    # touch app state on the supervisor's thread): an instance of its class
    # made with Exception's own initialize when that class is a plain
    # exception (its message is Exception's), otherwise a WorkerCrash
    # naming the class.
    def self.rebuild(report)
      class_name, message, backtrace = report
      error = safely do
        klass = Object.const_get(class_name)
        if klass.is_a?(Class) && klass <= Exception && klass.instance_method(:message).owner == Exception &&
           klass.instance_method(:to_s).owner == Exception
          obj = klass.allocate
          Exception.instance_method(:initialize).bind_call(obj, message)
          obj if Exception.instance_method(:message).bind_call(obj) == message
        end
      end
      error ||= WorkerCrash.new(class_name, message)
      error.set_backtrace(backtrace)
      error
    end

    def self.safely
      yield
    rescue Exception # rubocop:disable Lint/RescueException
      nil
    end
    private_class_method :safely

    private

    def start_ractor(index, first_slot, token)
      Ractor.new(*worker_args(index, first_slot), token,
                 name: "kino-worker-#{index}") do |server_id, *args, me|
        # The supervisor logs a worker's death with its backtrace; Ruby's
        # own report would print it a second time.
        Thread.current.report_on_exception = false
        report = nil
        begin
          Kino::Worker.run(server_id, *args)
        rescue Exception => e # rubocop:disable Lint/RescueException
          report = Kino::RactorSpawner.report(e)
        ensure
          begin
            Kino::Native.server_worker_exited(server_id, me, report)
          rescue Kino::Error
            nil # the server is gone: nobody is waiting for the news
          end
        end
      end
    end
  end
end
