# frozen_string_literal: true

module Kino
  # The stream a Rack 3 streaming body (one that responds to `call`) writes
  # to, after the response head has been sent.
  class ResponseStream
    def initialize(request, input)
      @request = request
      @input = input
      @closed = false
    end

    def write(chunk)
      raise IOError, "stream closed" if @closed

      chunk = chunk.to_s
      raise IOError, "client disconnected" unless Native.respond_write(@request, chunk)

      chunk.bytesize
    end

    def <<(chunk)
      write(chunk)
      self
    end

    def flush
      self
    end

    # The request body, for full-duplex apps that read while they write.
    def read(length = nil, buffer = nil)
      @input.read(length, buffer)
    end

    def close_write
      close
    end

    def close_read; end

    def close
      return if @closed

      @closed = true
      Native.respond_finish(@request)
    end

    def closed?
      @closed
    end
  end
end
