# frozen_string_literal: true

require "kino"

# Response header values that are not Strings, as apps written for Puma
# send them: Integers, Symbols, true are written as their to_s, and a
# String with "\n" in it (Rack 2's way of repeating a field) becomes one
# field per line, as Puma's Request#str_headers does. Rack::Lint refuses
# such values, so these apps run without it.
module HeaderValueApps
  module Loose
    def self.call(env)
      headers = { "content-type" => "text/plain", "x-n" => 5, "x-s" => :sym, "x-t" => true,
                  "set-cookie" => "a=1\nb=2", "x-list" => ["one", 2] }
      body = env["PATH_INFO"] == "/each" ? %w[lo ose].each : ["loose"]
      [200, headers, body]
    end
  end

  # A header value whose to_s is app code: it runs before the body's
  # Strings are checked, so changing the body from there is caught.
  module BodyChangingValue
    def self.call(_env)
      body = ["fine"]
      value = Object.new
      value.define_singleton_method(:to_s) do
        body[0] = :not_a_string
        "late"
      end
      [200, { "x-late" => value }, body]
    end
  end

  module RaisingValue
    def self.call(env)
      return [200, { "content-type" => "text/plain" }, ["still serving"]] if env["PATH_INFO"] == "/next"

      value = Object.new
      def value.to_s
        raise ArgumentError, "no text for this header"
      end
      [200, { "x-bad" => value }, ["never sent"]]
    end
  end
end

RSpec.describe "Response header values that are not Strings" do
  in_each_mode do
    { "an Array body" => "/", "an each body" => "/each" }.each do |kind, path|
      it "writes Integer, Symbol and true values with to_s and splits \\n-joined values, for #{kind}" do
        serve(HeaderValueApps::Loose, lint: false)
        response = read_response(raw_get(path))
        expect(response.status).to eq(200)
        expect(response.all("x-n")).to eq(["5"])
        expect(response.all("x-s")).to eq(["sym"])
        expect(response.all("x-t")).to eq(["true"])
        expect(response.all("set-cookie")).to eq(["a=1", "b=2"])
        expect(response.all("x-list")).to eq(%w[one 2])
        expect(response.body).to eq("loose")
        cookies = http_get(path).get_fields("set-cookie")
        expect(cookies).to eq(["a=1", "b=2"])
      end
    end

    it "answers 500 when a value's to_s breaks the body it came with" do
      serve(HeaderValueApps::BodyChangingValue, lint: false)
      response = read_response(raw_get("/"))
      expect(response.status).to eq(500)
      expect(wait_for_log(/response body must yield Strings/)).to include("TypeError")
    end

    it "answers 500 for a value whose to_s raises, and goes on serving" do
      serve(HeaderValueApps::RaisingValue, lint: false, workers: 1, threads: 1)
      expect(read_response(raw_get("/")).status).to eq(500)
      expect(wait_for_log(/no text for this header/)).to include("ArgumentError")
      response = read_response(raw_get("/next"))
      expect([response.status, response.body]).to eq([200, "still serving"])
    end
  end
end
