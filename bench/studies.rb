#!/usr/bin/env ruby
# frozen_string_literal: true

# Studies on bench/compare.rb's harness, one question each (--study NAME):
# topology (workers x threads), io (worker scaling on /io), logging (what a
# log line a request costs) and ractor_pool (a Rack-level hop to ractors on
# Puma against Kino's :ractor). Each is one session (interleaved rounds, a
# fresh server a run) with the usual tables, then its summary, written to
# bench/results/study-NAME.md (and .json). See bench/README.md.
#
#   bundle exec ruby bench/studies.rb --study topology
#   bundle exec ruby bench/studies.rb --study io --rounds 5 --yjit
#   BENCH_STUDY=logging bundle exec rake bench:studies
#
# Every flag of compare.rb applies, and wins over the study's settings
# (--endpoints cpu narrows the topology study to /cpu). Exit status as
# compare.rb's; 2 when --study is missing or unknown.

require_relative "lib/bench"
require_relative "lib/bench/studies"
require_relative "compare"

# studies.rb's own flag (--study) and its main.
module BenchStudies
  # The study named by --study NAME (or --study=NAME, or BENCH_STUDY),
  # taken out of argv so that compare.rb's parser gets the rest.
  def self.take_study!(argv)
    index = argv.index { |a| a == "--study" || a.start_with?("--study=") }
    name = if index.nil? then ENV.fetch("BENCH_STUDY", nil)
           elsif argv[index] == "--study" then argv.slice!(index, 2)[1]
           else argv.delete_at(index).delete_prefix("--study=")
           end
    if name.nil? || name.empty?
      raise OptionParser::MissingArgument,
            "--study NAME, one of: #{Bench::Studies::ALL.map { |n, s| "#{n} (#{s.question})" }.join('; ')}"
    end

    Bench::Studies.fetch(name)
  end

  def self.main(argv)
    command_line = Bench.command_line(argv)
    args = argv.dup
    study = take_study!(args)
    options = BenchCompare.parse_options(args, study.apply(BenchCompare.defaults),
                                         script: "bench/studies.rb --study NAME [compare.rb's options]")
    puts "App check: #{Bench::AppCheck.run!}" if options.workload.rackup == Bench::APP_FILE
    session = Bench::Session.new(options, command_line, title: "Study #{study.name}",
                                                        logs_dir: File.join(Bench::RESULTS_DIR, "logs", study.name))
    session.measure
    session.report(extra: study.summary(session), extra_json: { study: study.name, question: study.question })
    session.exit_status
  ensure
    Bench::Processes.cleanup!
  end
end

Bench.run_script("studies.rb") { BenchStudies.main(ARGV) } if $PROGRAM_NAME == __FILE__
