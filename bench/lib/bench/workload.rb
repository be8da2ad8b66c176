# frozen_string_literal: true

module Bench
  # The app a session measures: its rackup file, the directory its servers
  # start in, the bundle they load (nil: each target's own, as for
  # bench/bench_app.ru), the endpoints it answers and what each must
  # answer, and the environment it needs. bench/compare.rb and
  # bench/modes.rb measure bench_app; bench/rails.rb measures rails_hello.
  Workload = Struct.new(:name, :rackup, :dir, :gemfile, :endpoints, :env, keyword_init: true) do
    # bench/bench_app.ru, from a temporary directory so that no server
    # picks up a kino.rb or config/puma.rb by accident.
    def self.bench_app
      new(name: "bench/bench_app.ru", rackup: APP_FILE, dir: Dir.tmpdir, gemfile: nil, endpoints: ENDPOINTS, env: {})
    end

    # bench/logging_app.ru, its log files in `log_dir` (bench/studies.rb
    # logging). :threaded only: its shared ::Logger is not shareable.
    def self.logging_app(log_dir)
      new(name: "bench/logging_app.ru", rackup: File.join(ROOT, "bench", "logging_app.ru"), dir: Dir.tmpdir,
          gemfile: nil, endpoints: LOGGING_ENDPOINTS, env: { "KINO_BENCH_LOG_DIR" => log_dir })
    end

    # examples/rails-hello of the Kino checkout measured (--kino-root):
    # its Gemfile names that checkout's Kino (path "../.."), and has Puma
    # in its :bench group, so both servers run the same app from the same
    # bundle. Production mode, as config/kino.rb says; WEB_CONCURRENCY is
    # removed so that config/kino.rb never forks by itself (the targets say
    # how many processes).
    def self.rails_hello(kino_root)
      dir = File.join(kino_root, "examples", "rails-hello")
      new(name: "examples/rails-hello", rackup: File.join(dir, "config.ru"), dir: dir,
          gemfile: File.join(dir, "Gemfile"), endpoints: RAILS_ENDPOINTS,
          env: { "RAILS_ENV" => "production", "SECRET_KEY_BASE" => "kino-bench-not-a-secret",
                 "WEB_CONCURRENCY" => nil, "RAILS_MAX_THREADS" => nil, "PORT" => nil })
    end

    # The executable of Puma in this workload's bundle (or the harness's
    # own), so the Puma measured is the one its Gemfile.lock pins.
    def puma_bin
      return Gem.bin_path("puma", "puma") unless gemfile

      @puma_bin ||= begin
        script = 'print Gem.bin_path("puma", "puma")'
        out = IO.popen({ "BUNDLE_GEMFILE" => gemfile }, [RbConfig.ruby, "-rbundler/setup", "-e", script],
                       chdir: dir, err: File::NULL, &:read)
        raise "bench: no puma in #{gemfile}'s bundle (run bin/setup)" if out.to_s.empty?

        out
      end
    end

    # A report's JSON names the workload.
    def to_json(*args)
      name.to_json(*args)
    end

    # The Puma version that #puma_bin runs.
    def puma_version
      puma_bin[%r{/puma-([\d.]+)/}, 1] || "?"
    end
  end

  # bench/logging_app.ru's paths: nothing logged, one line through
  # ::Logger, one line through Kino::Logger.
  LOGGING_ENDPOINTS = {
    "none" => { path: "/none", body: ->(b) { b == "logged" } },
    "shared" => { path: "/shared", body: ->(b) { b == "logged" } },
    "kino" => { path: "/kino", body: ->(b) { b == "logged" } }
  }.freeze

  # examples/rails-hello's two actions (HelloController).
  RAILS_ENDPOINTS = {
    "text" => { path: "/", body: ->(b) { b.start_with?("Hello from Rails 7.2.") } },
    "json" => { path: "/hello.json", body: ->(b) { b.start_with?('{"hello":"world","rails":"7.2.') } }
  }.freeze
end
