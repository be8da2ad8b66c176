# frozen_string_literal: true

module Kino
  # Every fork of this process, whoever makes it (Kino's own `processes`,
  # a Puma cluster, Spring, a job runner), goes through Process._fork
  # (Ruby 3.1+). A fork copies no thread: a Kino::Logger's native writer
  # would be missing in the child, whose lines then waited for nobody, and
  # a writer caught mid-write would leave the child its half-held lock. So
  # the writers write out what they hold and stop just before the fork,
  # and start again on both sides of it.
  module ForkHook
    def _fork
      Native.logger_pause_all
      begin
        pid = super
      ensure
        # The child (pid 0) and the parent alike; also when fork failed.
        Native.logger_resume_all
      end
      pid
    end
  end
end

Process.singleton_class.prepend(Kino::ForkHook) if Process.respond_to?(:_fork)
