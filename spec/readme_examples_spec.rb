# frozen_string_literal: true

require "net/http"
require "openssl"

# README's examples run as written. Every ```ruby block with the line
# `<!-- example: kino.rb -->` or `<!-- example: config.ru -->` just above
# it is written to a fresh directory and served by a real `kino` process,
# from that directory, on a port of our own (`--bind` replaces the
# example's binds, as it does for any config file); the example passes
# when the server boots, answers GET /, and stops cleanly on TERM. The
# directory has what an app's checkout has for Kino to write in: tmp/pids
# and log (Kino, like Puma, makes no folder for a pidfile or a log).
module ReadmeExamples
  README = File.join(ServerHelper::ROOT, "README.md")
  MARKER = /^<!-- example: (kino\.rb|config\.ru) -->\n```ruby\n(.*?)^```$/m

  Example = Struct.new(:kind, :source, :line) do
    def to_s
      "README.md:#{line} (#{kind})"
    end
  end

  # The app a kino.rb example serves.
  HELLO = <<~RUBY
    run ->(_env) { [200, { "content-type" => "text/plain" }, ["hello from the README\\n"]] }
  RUBY

  FOLDERS = %w[tmp/pids log].freeze

  # What examples read from the environment, as an operator would set it.
  ENVIRONMENT = { "WEB_CONCURRENCY" => "2", "KINO_CONTROL_TOKEN" => "readme-token" }.freeze

  def self.all
    text = File.read(README)
    text.to_enum(:scan, MARKER).map do
      match = Regexp.last_match
      Example.new(match[1], match[2], text[0, match.begin(0)].count("\n") + 1)
    end
  end

  # Writes a self-signed certificate and its key at every `*.pem` path the
  # example names (a name with "key" in it gets the key), so a tls example
  # finds real files.
  def self.write_pem_files(source, dir)
    paths = source.scan(%r{"([\w./-]+\.pem)"}).flatten.uniq
    return if paths.empty?

    key = OpenSSL::PKey::RSA.new(2048)
    paths.each do |relative|
      path = File.join(dir, relative)
      FileUtils.mkdir_p(File.dirname(path))
      File.write(path, relative.include?("key") ? key.to_pem : certificate(key).to_pem)
    end
  end

  def self.certificate(key)
    name = OpenSSL::X509::Name.parse("/CN=localhost")
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = 1
    cert.subject = cert.issuer = name
    cert.public_key = key.public_key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 3600
    cert.sign(key, OpenSSL::Digest.new("SHA256"))
    cert
  end
end

RSpec.describe "README examples" do
  include_context "in a fresh directory"

  examples = ReadmeExamples.all

  it "has examples to run" do
    expect(examples.map(&:kind)).to include("kino.rb")
  end

  examples.each do |example|
    it "#{example} boots, answers and stops" do
      port = free_port
      args = ["-b", "tcp://127.0.0.1:#{port}"]
      ReadmeExamples::FOLDERS.each { |folder| FileUtils.mkdir_p(File.join(@dir, folder)) }
      if example.kind == "kino.rb"
        write("kino.rb", example.source)
        write("config.ru", ReadmeExamples::HELLO)
        ReadmeExamples.write_pem_files(example.source, @dir)
        args += ["-C", "kino.rb"]
      else
        write("config.ru", example.source)
      end
      kino = spawn_kino(*args, "config.ru", chdir: @dir, env: ReadmeExamples::ENVIRONMENT)

      https = kino.stdout.include?("https://")
      response = Net::HTTP.start("127.0.0.1", port, use_ssl: https, verify_mode: OpenSSL::SSL::VERIFY_NONE,
                                                    open_timeout: 5, read_timeout: 10) { |h| h.get("/") }
      expect(response.code.to_i).to be < 500, "#{example}: #{response.code}\n#{kino.stderr}"

      kino.signal("TERM")
      expect(kino.wait(timeout: 15)&.exitstatus).to eq(0), "#{example} did not stop cleanly:\n#{kino.stderr}"
    end
  end
end
