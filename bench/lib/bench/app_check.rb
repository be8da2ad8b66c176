# frozen_string_literal: true

module Bench
  # The spec-like check run before measuring: the app loads,
  # Ractor.make_shareable accepts it, and every endpoint answers correctly
  # when called from inside a Ractor.
  module AppCheck
    # Returns a one-line summary; raises when the app fails the check.
    def self.run!
      app = Rack::Builder.parse_file(APP_FILE)
      app = app.first if app.is_a?(Array)
      failures = []
      failures << "app is not shareable as loaded" unless Ractor.shareable?(app)
      begin
        shared = Ractor.make_shareable(app)
        failures << "Ractor.make_shareable returned a different object" unless shared.equal?(app)
      rescue StandardError => e
        failures << "Ractor.make_shareable(app) raised #{e.class}: #{e.message}"
      end

      answers = call_in_ractor(app, ENDPOINTS.values.map { |e| e[:path] } + ["/no-such-path"])
      answers.each do |path, status, type, text|
        endpoint = ENDPOINTS.values.find { |e| e[:path] == path }
        if endpoint.nil?
          failures << "#{path}: expected 404 from inside a Ractor, got #{status}" unless status == 404
        elsif status != 200 || type != "text/plain" || !endpoint[:body].call(text)
          failures << "#{path}: from inside a Ractor got #{status} #{type.inspect} #{text[0, 40].inspect}"
        end
      end
      raise "bench app check failed:\n  #{failures.join("\n  ")}" unless failures.empty?

      "Ractor.make_shareable(app) ok (#{app.class}, frozen); " \
        "#{answers.size} paths answered correctly from inside a Ractor"
    rescue Ractor::RemoteError => e
      raise "bench app check failed inside the Ractor: #{e.cause.class}: #{e.cause.message}"
    end

    # [path, status, content-type, body] for each path, called in a Ractor.
    def self.call_in_ractor(app, paths)
      previous = Warning[:experimental]
      Warning[:experimental] = false
      ractor = Ractor.new(app, paths) do |shared_app, request_paths|
        Thread.current.report_on_exception = false # the failure is reported by the caller
        request_paths.map do |path|
          status, headers, body = shared_app.call({ "REQUEST_METHOD" => "GET", "PATH_INFO" => path })
          text = +""
          body.each { |chunk| text << chunk }
          [path, status, headers["content-type"], text]
        end
      end
      # Ruby 4.0 replaced Ractor#take with Ractor#value.
      ractor.respond_to?(:value) ? ractor.value : ractor.take
    ensure
      Warning[:experimental] = previous
    end
  end
end
