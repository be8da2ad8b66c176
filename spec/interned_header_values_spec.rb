# frozen_string_literal: true

require "kino"

# With intern_header_values, low-cardinality request header values (user
# agents, accept lists, the host) are one frozen String each, shared by
# every request and ractor; credentials and long values are never kept.
# Without it (the default) every value is a String of the request's own.
RSpec.describe "Interned request header values" do
  include_context "in a fresh directory"

  in_each_mode do |mode|
    it "are off by default: each request gets Strings it may change, as on Puma" do
      port = free_port
      spawn_kino("-m", mode.to_s, "-w", "1", "-t", "1", "spec/fixtures/header_values.ru", port: port)
      reports = Array.new(2) { env_of(http_get("/", { "User-Agent" => "plain-spec" }, port: port)) }
      expect(reports.map { |r| r.dig("HTTP_USER_AGENT", "frozen") }).to eq([false, false])
      expect(reports.map { |r| r.dig("HTTP_HOST", "frozen") }).to eq([false, false])
      expect(reports[0].dig("HTTP_USER_AGENT", "id")).not_to eq(reports[1].dig("HTTP_USER_AGENT", "id"))
    end

    # In a process of its own: the cache is bounded and shared by the whole
    # process, which other examples may have filled.
    it "with intern_header_values, shares a user agent's value between requests, never a cookie's or a long one's" do
      port = free_port
      config = write("kino.rb", "intern_header_values true\n")
      spawn_kino("-C", config, "-m", mode.to_s, "-w", "1", "-t", "1", "spec/fixtures/header_values.ru", port: port)
      headers = {
        "User-Agent" => "interned-spec/#{mode}", "Accept-Encoding" => "gzip, #{mode}",
        "Cookie" => "session=#{mode}", "Authorization" => "Bearer #{mode}",
        "Accept-Language" => "x" * 300
      }
      report = -> { env_of(http_get("/", headers, port: port)) }
      first = report.call
      # A worker ractor allocates its own String for a value the cache does
      # not have yet; only the main ractor creates the shared one.
      expect(first.dig("HTTP_USER_AGENT", "frozen")).to be(mode == :threaded)
      later = wait_until(message: "the user agent was never shared") do
        seen = report.call
        seen if seen.dig("HTTP_USER_AGENT", "shareable") && seen.dig("HTTP_ACCEPT_ENCODING", "shareable")
      end
      again = report.call
      expect(again.dig("HTTP_USER_AGENT", "id")).to eq(later.dig("HTTP_USER_AGENT", "id"))
      expect(again.dig("HTTP_ACCEPT_ENCODING", "id")).to eq(later.dig("HTTP_ACCEPT_ENCODING", "id"))
      expect(again.dig("HTTP_HOST", "shareable")).to be(true)
      %w[HTTP_COOKIE HTTP_AUTHORIZATION HTTP_ACCEPT_LANGUAGE].each do |key|
        expect(again.dig(key, "frozen")).to be(false), "#{key} was interned"
        expect(again.dig(key, "id")).not_to eq(later.dig(key, "id"))
      end
    end
  end
end
