# frozen_string_literal: true

# The C++ core's GoogleTest suite, built with CMake outside the Ruby
# extension (ext/kino/core/CMakeLists.txt), once plainly and once under
# AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   rake test:native            # tmp/native/release
#   rake test:native:sanitize   # tmp/native/sanitize, -DKINO_SANITIZE=ON

require "open3"

# Building and running the test binary, for the tasks below.
module KinoNative
  extend Rake::DSL

  ROOT = File.expand_path("..", __dir__)
  SOURCE = File.join(ROOT, "ext", "kino", "core")
  TEST_BINARY = "kino_core_test"
  JOBS = ENV.fetch("KINO_NATIVE_JOBS", "2")

  def self.build_dir(flavour)
    File.join(ROOT, "tmp", "native", flavour)
  end

  # Configures and builds; `env` also applies to the build, because CMake's
  # gtest_discover_tests runs the test binary right after linking it.
  def self.build(flavour, cmake_flags, env = {})
    dir = build_dir(flavour)
    sh(env, "cmake", "-S", SOURCE, "-B", dir, "-DCMAKE_BUILD_TYPE=RelWithDebInfo", *cmake_flags)
    sh(env, "cmake", "--build", dir, "-j#{JOBS}")
    File.join(dir, TEST_BINARY)
  end

  # Runs the binary directly so its output is printed as it comes; `sh`
  # fails the task when a test fails.
  def self.run(binary, env = {})
    sh(env, binary, *ENV.fetch("KINO_GTEST_ARGS", "").split)
  end

  # LeakSanitizer stops the process through ptrace; where that is not
  # allowed (some containers) it cannot run at all. Probe it with the test
  # binary itself on no tests: a working LSan exits 0 here.
  def self.leak_detection_works?(binary)
    out, status = Open3.capture2e(
      { "ASAN_OPTIONS" => "detect_leaks=1", "UBSAN_OPTIONS" => "halt_on_error=1" },
      binary, "--gtest_filter=-*"
    )
    return true if status.success?

    # Any other failure than LSan's own: let the real run show it.
    !out.include?("LeakSanitizer has encountered a fatal error") && !out.include?("does not work under ptrace")
  end
end

namespace :test do
  desc "Build and run the native core's GoogleTest suite (tmp/native/release)"
  task :native do
    binary = KinoNative.build("release", ["-DKINO_SANITIZE=OFF"])
    KinoNative.run(binary)
  end

  namespace :native do
    desc "The native GoogleTest suite under ASan + UBSan (tmp/native/sanitize)"
    task :sanitize do
      ubsan = "print_stacktrace=1:halt_on_error=1"
      # Building runs the binary (test discovery): keep leak checks off
      # until the probe below has shown they work here.
      build_env = { "ASAN_OPTIONS" => "detect_leaks=0", "UBSAN_OPTIONS" => ubsan }
      binary = KinoNative.build("sanitize", ["-DKINO_SANITIZE=ON"], build_env)
      leaks = KinoNative.leak_detection_works?(binary)
      unless leaks
        puts "note: LeakSanitizer cannot run here (ptrace is restricted); " \
             "running with detect_leaks=0, AddressSanitizer and UBSan still on"
      end
      env = {
        "ASAN_OPTIONS" => "detect_leaks=#{leaks ? 1 : 0}:abort_on_error=1",
        "UBSAN_OPTIONS" => ubsan
      }
      KinoNative.run(binary, env)
    end
  end
end

desc "Fuzz the request parser with libFuzzer (FUZZ_SECONDS, default 30; needs clang-14)"
task :fuzz do
  build = File.expand_path("tmp/native/fuzz", "#{__dir__}/..")
  seconds = Integer(ENV.fetch("FUZZ_SECONDS", "30"))
  compiler = %w[clang++-14 clang++].find { |c| system("command -v #{c} > /dev/null 2>&1") }
  abort "rake fuzz: clang++ not found (bin/setup installs clang-14 and libclang-rt-14-dev)" unless compiler
  sh "cmake", "-S", "ext/kino/core", "-B", build, "-DKINO_FUZZ=ON", "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
     "-DCMAKE_CXX_COMPILER=#{compiler}"
  sh "cmake", "--build", build, "-j2", "--target", "kino_fuzz_request_parser"
  corpus = File.join(build, "corpus")
  mkdir_p corpus
  cp Dir["ext/kino/fuzz/corpus/*"], corpus
  sh({ "ASAN_OPTIONS" => "detect_leaks=1", "UBSAN_OPTIONS" => "print_stacktrace=1:halt_on_error=1" },
     File.join(build, "kino_fuzz_request_parser"), corpus, "-max_total_time=#{seconds}",
     "-rss_limit_mb=2048", "-timeout=10", "-print_final_stats=1")
end

namespace :fuzz do
  desc "A short fuzzing run, as the default task does (15 s)"
  task :short do
    ENV["FUZZ_SECONDS"] ||= "15"
    Rake::Task[:fuzz].invoke
  end
end
