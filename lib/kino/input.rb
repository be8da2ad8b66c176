# frozen_string_literal: true

module Kino
  # rack.input for a request body that is still arriving, or too large to
  # keep in memory (it is spooled to an unlinked file natively). Reads wait,
  # without holding the GVL, for bytes the client has not sent yet, so an
  # app can work on an upload as it comes in. A body that was already here
  # whole and small is a StringIO instead.
  #
  # The whole body stays available until the response is sent, so #rewind
  # works as with Puma's inputs, although Rack 3 does not require it.
  # When the body cannot arrive whole (the client went away, stalled past
  # first_data_timeout, or sent more than max_body_size) a read raises
  # Kino::InputError, an EOFError; the client has already been answered.
  #
  # The Ruby half of the input unit: ext/kino/binding/native_input.cpp creates the
  # class, Input::Empty and Input::EMPTY, and reads the body
  # (Native.input_read); this file adds their methods. One instance
  # belongs to one request in one worker.
  class Input
    CHUNK = 64 * 1024

    def initialize(request)
      @request = request
      @buffer = nil # bytes read from the body and not yet returned
    end

    # IO#read semantics: all that is left (a String, "" at the end) without
    # a length; otherwise up to `length` bytes, nil at the end.
    def read(length = nil, outbuf = nil)
      raise ArgumentError, "negative length #{length} given" if length&.negative?
      return read_into(length, outbuf) if outbuf && length && @buffer.nil?

      data = length.nil? ? read_all : read_up_to(length)
      return data unless outbuf

      data ? outbuf.replace(data) : outbuf.clear
      data && outbuf
    end

    # The next line, with its "\n"; the last may lack it. nil at the end.
    def gets
      scanned = 0
      loop do
        if @buffer && (newline = @buffer.index("\n", scanned))
          return take(newline + 1)
        end

        scanned = buffered
        return take(scanned) unless fill(CHUNK)
      end
    end

    def each
      return enum_for(:each) unless block_given?

      while (line = gets)
        yield line
      end
      self
    end

    def rewind
      Native.input_rewind(@request)
      @buffer = nil
      0
    end

    # Rack 3 lets the server own the input's lifetime: nothing to do.
    def close
      nil
    end

    # rack.input for a request without a body (Kino::Input::EMPTY, made
    # and frozen in native_input.cpp): IO semantics of an empty stream, no
    # state, so one instance serves every request in every ractor.
    class Empty
      def read(length = nil, outbuf = nil)
        raise ArgumentError, "negative length #{length} given" if length&.negative?

        outbuf&.clear
        return nil if length&.positive?

        outbuf || String.new(encoding: Encoding::BINARY)
      end

      def gets
        nil
      end

      def each
        return enum_for(:each) unless block_given?

        self
      end

      def rewind
        0
      end

      def size
        0
      end

      def eof?
        true
      end

      def close
        nil
      end
    end

    private

    def read_all
      @buffer ||= String.new(encoding: Encoding::BINARY)
      while fill(CHUNK); end
      data = @buffer
      @buffer = nil
      data
    end

    def read_up_to(length)
      return String.new(encoding: Encoding::BINARY) if length.zero?

      while buffered < length
        break unless fill(length - buffered)
      end
      take(length)
    end

    # read(length, outbuf) with nothing buffered: the bytes go straight
    # into the caller's String, so a loop reading into one buffer
    # allocates nothing per read.
    def read_into(length, outbuf)
      outbuf.clear.force_encoding(Encoding::BINARY)
      return outbuf if length.zero?

      while outbuf.bytesize < length
        break unless Native.input_read(@request, length - outbuf.bytesize, outbuf)
      end
      outbuf.empty? ? nil : outbuf
    end

    def buffered
      @buffer ? @buffer.bytesize : 0
    end

    # Appends up to `wanted` more bytes of the body to the buffer; false at
    # the end. The buffer grows with what arrives: read(huge) must not
    # allocate huge before the client has sent a byte.
    def fill(wanted)
      @buffer ||= String.new(capacity: [wanted, CHUNK].min, encoding: Encoding::BINARY)
      !Native.input_read(@request, wanted, @buffer).nil?
    end

    def take(count)
      return nil if @buffer.nil? || @buffer.empty?

      if count >= @buffer.bytesize
        data = @buffer
        @buffer = nil
        return data
      end
      @buffer.byteslice(0, count).tap { @buffer = @buffer.byteslice(count, @buffer.bytesize - count) }
    end
  end
end
