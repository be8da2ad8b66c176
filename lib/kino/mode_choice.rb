# frozen_string_literal: true

require_relative "errors"
require_relative "ractor_preparation"
require_relative "ractor_check"
require_relative "worker_hooks"

module Kino
  # Which mode an app runs in, and the app and worker hooks as that mode
  # needs them (made shareable for :ractor). A Server makes this choice as
  # it starts; a process group makes it once in the parent, after
  # preloading, so every child serves the same frozen app copy-on-write
  # and the log says why :auto fell back once, not once a child.
  #
  # :threaded runs anything. :ractor needs the app (and the hooks that run
  # inside workers) to be shareable; RactorPreparation makes them so,
  # freezing what they hold, and RactorCheck says beforehand exactly what
  # stands in the way. :auto takes :ractor only when that freezes nothing
  # the app made and may change (ADR 0006), and otherwise says why in one
  # line and runs :threaded. No other mode gets here: reading the
  # configuration refused it (DSL::MODES).
  #
  # Choosing creates no Ractor and starts no native thread (the check
  # probes in a forked child), so a parent may still fork afterwards.
  class ModeChoice
    # The outcome: :threaded or :ractor, and the app and hooks to run.
    Chosen = Struct.new(:mode, :app, :hooks)

    def initialize(app, configuration, log:)
      @app = app
      @configuration = configuration
      @log = log
    end

    # Returns a Chosen; raises UnshareableAppError for `mode :ractor` with
    # an app that cannot be shared.
    def choose
      hooks = WorkerHooks.of(@configuration)
      requested = @configuration[:mode]
      return Chosen.new(:threaded, @app, hooks) if requested == :threaded

      preparation = RactorPreparation.new(@app, hooks)
      check = RactorCheck.new(preparation)
      return choose_ractor(preparation, check) if requested == :ractor

      diagnosis = check.diagnose(first_only: true, in_process: false)
      if diagnosis.clean?
        begin
          return Chosen.new(:ractor, *preparation.prepare!)
        rescue UnshareableAppError => e
          reason = e.message # only when the check could not probe (see RactorCheck#diagnose)
        end
      else
        reason = check.fallback_reason(diagnosis)
      end
      @log.write("kino: running in :threaded mode: #{reason}\n")
      Chosen.new(:threaded, @app, hooks)
    end

    private

    # `mode :ractor`: the user asked for ractors, so what the app made is
    # frozen, and the log says what.
    def choose_ractor(preparation, check)
      diagnosis = check.diagnose
      raise UnshareableAppError, check.explain(diagnosis.blockers) unless diagnosis.blockers.empty?

      app, hooks = preparation.prepare!
      @log.write("kino: #{check.explain_frozen(diagnosis)}\n") unless diagnosis.app_state.empty?
      @log.write("kino: #{check.explain_isolation(diagnosis)}\n") unless diagnosis.isolation.empty?
      Chosen.new(:ractor, app, hooks)
    end
  end
end
