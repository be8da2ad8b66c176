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

  # What an install needs and nothing else: the extension's sources (the
  # binding and the core, not their GoogleTest suite, fuzzer or CMake
  # build), the Ruby code, the signatures and the docs. Never a build
  # product (tmp/, a compiled kino.so): the install compiles its own.
  # Of the examples only hello ships, two files the README runs; a Rails
  # example is an app with its own Gemfile and lockfile, bundle, log/ and
  # tmp/, which belongs in the repository, not in every installed copy.
  # Globbed from the gemspec's folder, so the list does not depend on the
  # directory `gem build` or Bundler runs in.
  spec.files = Dir.glob(
    ["lib/**/*.rb", "exe/*", "sig/**/*.rbs",
     "ext/kino/extconf.rb", "ext/kino/{binding,core}/**/*.{cpp,hpp}",
     "README.md", "doc/**/*.md", "examples/hello/*.{ru,rb}"],
    base: __dir__
  ).sort
  spec.bindir = "exe"
  spec.executables = ["kino"]
  spec.require_paths = ["lib"]
  spec.extensions = ["ext/kino/extconf.rb"]

  spec.add_dependency "rack", ">= 3.0", "< 4"
  # Kino::Logger is a ::Logger. From Ruby 4.0 on logger is a bundled gem,
  # not a default one: under Bundler, or with a GEM_PATH of its own, an app
  # has it only when a gem it uses asks for it.
  spec.add_dependency "logger", "~> 1.5"
end
