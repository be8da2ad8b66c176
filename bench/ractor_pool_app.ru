# frozen_string_literal: true

# bench/bench_app.ru's app behind KinoBench::RactorPool: every request is
# answered by the same app logic, in one of KINO_BENCH_RACTORS ractors (the
# number of cores unless set), while the server's thread waits. Served by
# Puma (the puma+ractors target of bench/compare.rb and bench/studies.rb).
require "etc"
require_relative "ractor_pool"

app = Rack::Builder.parse_file(File.expand_path("bench_app.ru", __dir__))
app = app.first if app.is_a?(Array) # Rack 2 returns [app, options]
run KinoBench::RactorPool.new(app, size: Integer(ENV.fetch("KINO_BENCH_RACTORS", Etc.nprocessors.to_s)))
