# frozen_string_literal: true

require "kino"

RSpec.describe Kino::ForkHook do
  include_context "in a fresh directory"

  # As a Puma cluster forks its workers: plain fork, no Kino code around it.
  it "lets a child forked by anyone log through a Kino::Logger made before the fork" do
    logger = Kino::Logger.new(File.join(@dir, "app.log"), formatter: ->(_, _, _, msg) { "#{msg}\n" })
    logger.info("parent, before")
    pid = fork do
      logger.info("child #{Process.pid}")
      exit!(logger.flush(3) ? 0 : 1)
    end
    _, status = Process.wait2(pid)
    logger.info("parent, after")
    expect(logger.flush(3)).to be(true)
    expect(status.exitstatus).to eq(0), "the child's line was never written"
    expect(File.readlines(File.join(@dir, "app.log"), chomp: true))
      .to eq(["parent, before", "child #{pid}", "parent, after"])
  end
end
