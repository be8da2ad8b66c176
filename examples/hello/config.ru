# frozen_string_literal: true

# The smallest Kino app: `bundle exec kino examples/hello/config.ru`, then
# `curl http://127.0.0.1:9292/`.
run lambda { |env|
  name = env["QUERY_STRING"][/\Aname=([^&]+)/, 1] || "world"
  [200, { "content-type" => "text/plain" }, ["Hello, #{name}!\n"]]
}
