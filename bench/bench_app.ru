# frozen_string_literal: true

# The app every server in bench/compare.rb serves, unchanged from one server
# to the next. It is built to be Ractor-shareable (so Kino's :ractor mode can
# run it as is): the app object is a frozen instance of a class with no
# instance variables, every constant it reads is frozen, and nothing it
# touches per request is shared and mutable. `Ractor.make_shareable(app)`
# succeeds on it; bench/compare.rb checks that (and calls every endpoint from
# inside a Ractor) before it measures anything.
#
#   GET /plaintext  -> 200 "Hello, World!" (text/plain)
#   GET /cpu        -> 200 fib(20) = "6765", computed recursively on each request
#   GET /io         -> 200 after sleep(0.005)
#   GET /io_native  -> 200 after Kino.sleep(0.005) when the server is Kino,
#                      else sleep(0.005); the body says which one ran
#   GET /10k        -> 200 with a 10,000-byte body
#   GET /1k, /4k, /64k -> 200 with a body of 1,000, 4,096 or 65,536 bytes
#   anything else   -> 404
#
# Serve it with `bundle exec kino bench/bench_app.ru` or
# `bundle exec puma bench/bench_app.ru`.

# `kino` (the command) loads the extension without lib/kino.rb, where the
# public Kino.sleep lives; an app that wants it requires "kino", as a real
# app would. Only done when this file is loaded by Kino, so Puma never loads
# Kino's native code.
require "kino" if defined?(::Kino::Native) && !::Kino.respond_to?(:sleep)

module ::KinoBench
  # The CPU-bound work: a plain method on a module (not a lambda: a
  # self-referential lambda shared across ractors is slow under YJIT).
  module Fib
    def self.fib(num)
      num < 2 ? num : fib(num - 1) + fib(num - 2)
    end
  end

  # The Rack app: one frozen instance, shareable, answering every endpoint.
  class App
    FIB_N = 20
    IO_WAIT = 0.005
    PLAINTEXT = "Hello, World!"
    BODY_10K = ("0123456789" * 1000).freeze
    BODY_1K = ("0123456789" * 100).freeze
    BODY_4K = ("0123456789abcdef" * 256).freeze
    BODY_64K = ("0123456789abcdef" * 4096).freeze
    NOT_FOUND = "Not Found"
    TEXT = "text/plain"

    def call(env)
      case env["PATH_INFO"]
      when "/plaintext"
        text(PLAINTEXT)
      when "/cpu"
        text(Fib.fib(FIB_N).to_s)
      when "/io"
        sleep IO_WAIT
        text("slept")
      when "/io_native"
        if defined?(::Kino) && ::Kino.respond_to?(:sleep)
          ::Kino.sleep(IO_WAIT)
          text("slept (Kino.sleep)")
        else
          sleep IO_WAIT
          text("slept (Kernel#sleep)")
        end
      when "/10k"
        text(BODY_10K)
      when "/1k"
        text(BODY_1K)
      when "/4k"
        text(BODY_4K)
      when "/64k"
        text(BODY_64K)
      else
        [404, { "content-type" => TEXT, "content-length" => NOT_FOUND.bytesize.to_s }, [NOT_FOUND]]
      end
    end

    private

    # A new headers Hash and body Array per response: servers and middleware
    # may modify them, and nothing mutable outlives the request.
    def text(body)
      [200, { "content-type" => TEXT, "content-length" => body.bytesize.to_s }, [body]]
    end
  end
end

run Ractor.make_shareable(::KinoBench::App.new)
