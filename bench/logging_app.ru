# frozen_string_literal: true

# bench/logger.rb's app: one line logged per request, through a
# Kino::Logger (/kino) or through one ::Logger shared by every thread
# (/shared), into files under KINO_BENCH_LOG_DIR; /none logs nothing
# (bench/studies.rb logging). Served :threaded, the
# only mode a shared ::Logger (it holds a Monitor) can run in.
require "kino"
require "logger"

dir = ENV.fetch("KINO_BENCH_LOG_DIR")
KINO_LOG = Kino::Logger.new(File.join(dir, "kino.log"))
SHARED_LOG = Logger.new(File.join(dir, "shared.log"))

run lambda { |env|
  case env["PATH_INFO"]
  when "/none" then nil
  when "/kino" then KINO_LOG.info("GET /kino from #{env['REMOTE_ADDR']}")
  when "/shared" then SHARED_LOG.info("GET /shared from #{env['REMOTE_ADDR']}")
  else return [404, { "content-type" => "text/plain" }, ["Not Found"]]
  end
  [200, { "content-type" => "text/plain", "content-length" => "6" }, ["logged"]]
}
