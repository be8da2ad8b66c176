# frozen_string_literal: true

module Bench
  # nginx as a yardstick: no Ruby, `return 200 "Hello, World!"` for
  # /plaintext and static files for the body-size endpoints, with
  # worker_processes = --workers (or its @Wx1), access_log off and
  # keep-alive on. Each run gets its own prefix and config under
  # bench/results/nginx/, so the machine's nginx (and its config) is never
  # touched. It answers only those endpoints; the runner skips the others.
  class NginxTarget < Target
    PLAINTEXT = "Hello, World!"
    # Static files, with the sizes bench_app.ru's bodies have.
    FILES = { "10k" => 10_000, "1k" => 1_000, "4k" => 4_096, "64k" => 65_536 }.freeze
    PREFIX_DIR = File.join(RESULTS_DIR, "nginx")

    def self.installed?
      system("nginx", "-v", out: File::NULL, err: File::NULL)
    end

    def self.version
      `nginx -v 2>&1`[%r{nginx/(\S+)}, 1] || "?"
    rescue SystemCallError
      "?"
    end

    def initialize(name, options, shape: nil)
      raise OptionParser::InvalidArgument, "#{name}: nginx workers have no threads, @WxT needs T = 1" if
        shape && shape.last != 1

      super
    end

    def default_threads
      1
    end

    # One event loop a worker process, whatever --threads says.
    def threads
      1
    end

    def serves?(endpoint)
      endpoint == "plaintext" || FILES.key?(endpoint)
    end

    def describe
      "nginx #{NginxTarget.version}, #{workers} worker processes (no Ruby), `return 200` on /plaintext, " \
        "static files for #{FILES.keys.map { |e| "/#{e}" }.join(', ')}, access_log off, keep-alive on"
    end

    # Its own prefix (temp paths, pid file, files) and config, written for
    # this port; `-e stderr` keeps even the errors before the config is read
    # away from /var/log/nginx.
    def command(port)
      prefix = File.join(PREFIX_DIR, @name.tr("+@", "--"))
      FileUtils.mkdir_p(File.join(prefix, "html"))
      FILES.each do |endpoint, size|
        File.write(File.join(prefix, "html", endpoint), ("0123456789" * ((size / 10) + 1))[0, size])
      end
      config = File.join(prefix, "nginx.conf")
      File.write(config, config_text(prefix, port))
      ["nginx", "-e", "stderr", "-p", "#{prefix}/", "-c", config, "-g", "daemon off;"]
    end

    private

    # keepalive_requests is raised from 1,000 so that wrk's connections stay
    # open for the whole window, as they do with Kino and Puma.
    def config_text(prefix, port)
      tls = @options.tls
      listen = tls ? "#{HOST}:#{port} ssl" : "#{HOST}:#{port}"
      certificate = tls ? "\n    ssl_certificate #{tls.cert};\n    ssl_certificate_key #{tls.key};" : ""
      <<~CONF
        worker_processes #{workers};
        pid #{prefix}/nginx.pid;
        error_log stderr warn;
        events { worker_connections 4096; }
        http {
          access_log off;
          keepalive_timeout 75s;
          keepalive_requests 100000000;
          sendfile on;
          tcp_nopush on;
          open_file_cache max=16;
          default_type text/plain;
          server {
            listen #{listen};#{certificate}
            location = /plaintext { return 200 "#{PLAINTEXT}"; }
            location / { root #{prefix}/html; }
          }
        }
      CONF
    end
  end
end
