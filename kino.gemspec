# frozen_string_literal: true

require_relative "lib/kino/version"

Gem::Specification.new do |spec|
  spec.name = "kino"
  spec.version = Kino::VERSION
  spec.summary = "A Rack server with a C++ core that runs Ruby apps in Ractors"
  spec.description = <<~DESC
    Kino parses HTTP/1.1 in native code (Boost.Asio and llhttp), queues
    requests in a lock-free queue and hands them to worker Ractors or
    threads, which build the Rack env inside their own ractor.
  DESC
  spec.authors = ["The Kino developers"]
  spec.license = "MIT"
  spec.homepage = "https://example.invalid/kino"
  spec.required_ruby_version = ">= 3.1"

  spec.files = Dir[
    "lib/**/*.rb", "exe/*", "ext/kino/**/*.{rb,cpp,hpp,txt}",
    "README.md", "doc/**/*.md", "examples/**/*"
  ]
  spec.bindir = "exe"
  spec.executables = ["kino"]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/kino/extconf.rb"]

  spec.add_dependency "rack", ">= 3.0", "< 4"
end
