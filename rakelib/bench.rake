# frozen_string_literal: true

# Benchmarks (bench/compare.rb, bench/modes.rb, bench/allocations.rb,
# bench/rails.rb; see bench/README.md).
#
#   rake bench                                   # Kino vs Puma: 3 rounds x 10 s, every endpoint
#   rake bench:quick                             # 1 round x 3 s, plaintext, cpu, io
#   BENCH_YJIT=1 rake bench                      # both servers with --yjit
#   BENCH_ENDPOINTS=cpu,io BENCH_ROUNDS=5 rake bench
#   BENCH_ARGS="--targets kino-threaded,kino-ractor,puma --ratio kino-ractor:kino-threaded" rake bench
#   rake bench:modes                             # :ractor vs :threaded acceptance check (5 x 8 s)
#   BENCH_ARGS="--all --yjit" rake bench:modes
#   rake bench:allocations                       # objects allocated per request, per mode
#   rake bench:rails                             # examples/rails-hello: Kino processes vs Puma cluster
#   BENCH_STUDY=topology rake bench:studies      # one study of bench/studies.rb (topology, io, logging,
#                                                # ractor_pool); BENCH_* variables and BENCH_ARGS apply
#   BENCH_ARGS="--yjit" rake bench:rails
#
# For `rake bench`, every setting has a BENCH_* variable (listed by `ruby
# bench/compare.rb --help`). For every task, BENCH_ARGS is passed on as
# extra flags (bench:modes, bench:allocations and bench:rails take flags
# only).

# Rake loads rakelib/ by itself; a Rakefile that also imports it must not
# define the tasks (and their actions) twice.
return if Rake::Task.task_defined?("bench")

require "shellwords"

bench_script = File.expand_path("../bench/compare.rb", __dir__)
bench_run = lambda do |defaults|
  extra = Shellwords.split(ENV.fetch("BENCH_ARGS", ""))
  # Flags win over BENCH_* variables in compare.rb, so the task's own
  # defaults are given only for what the caller did not set.
  flags = defaults.reject { |env_name, _| ENV.key?(env_name) }.values.flatten
  ruby bench_script, *flags, *extra
end

desc "Benchmark Kino against Puma (3 rounds x 10 s, every endpoint; BENCH_* variables override)"
task bench: :compile do
  bench_run.call({})
end

namespace :bench do
  desc "Short Kino vs Puma run (1 round x 3 s: plaintext, cpu, io)"
  task quick: :compile do
    bench_run.call(
      "BENCH_ROUNDS" => %w[--rounds 1],
      "BENCH_DURATION" => %w[--duration 3],
      "BENCH_WARMUP" => %w[--warmup 1],
      "BENCH_ENDPOINTS" => %w[--endpoints plaintext,cpu,io]
    )
  end

  extra_args = -> { Shellwords.split(ENV.fetch("BENCH_ARGS", "")) }

  desc "Kino :ractor vs :threaded acceptance check: /cpu >= 1.7x, /plaintext >= 0.9x (BENCH_ARGS adds flags)"
  task modes: :compile do
    ruby File.expand_path("../bench/modes.rb", __dir__), *extra_args.call
  end

  desc "Ruby objects allocated per request by Kino in each mode (BENCH_ARGS adds flags)"
  task allocations: :compile do
    ruby File.expand_path("../bench/allocations.rb", __dir__), *extra_args.call
  end

  desc "examples/rails-hello on a Kino group, one Kino process and a Puma cluster (BENCH_ARGS adds flags)"
  task rails: :compile do
    ruby File.expand_path("../bench/rails.rb", __dir__), *extra_args.call
  end

  desc "One study of bench/studies.rb: BENCH_STUDY=topology|io|logging|ractor_pool (BENCH_ARGS adds flags)"
  task studies: :compile do
    ruby File.expand_path("../bench/studies.rb", __dir__), *extra_args.call
  end

  desc "Check that bench/bench_app.ru is Ractor-shareable and answers from inside a Ractor"
  task :check_app do
    ruby bench_script, "--check-app"
  end
end
