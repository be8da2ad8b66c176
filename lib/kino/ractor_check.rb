# frozen_string_literal: true

require_relative "app_graph"
require_relative "ractor_eligibility"
require_relative "ractor_preparation"

module Kino
  # Says, before a RactorPreparation runs, what would stand in the way of
  # running the app in worker ractors (blockers) and what the app made that
  # its last step would freeze (app state, see RactorEligibility), without
  # changing anything: it runs the same preparation, a walk of the app's
  # object graph and a trial Ractor.make_shareable in a forked child
  # process, which reports back and exits. `kino --check` prints the
  # result; the boot log of :auto and `mode :ractor` quotes it.
  class RactorCheck
    # One reason the app cannot run in a ractor.
    Blocker = Struct.new(:path, :problem, :hint, :location) do
      def summary
        "#{path}: #{problem}"
      end

      def to_s
        line = summary.dup
        line << " (#{location})" if location
        line << "\n    hint: #{hint}" if hint
        line
      end
    end

    # What stands between the app and worker ractors: +blockers+ make
    # ractors impossible; +app_state+ (RactorEligibility::AppState) lists
    # what the app made that :ractor mode would have to freeze.
    # +unlisted+ counts app state past the first APP_STATE_LISTED.
    # +isolation+ (Blockers too) is code that reads or sets what a worker
    # ractor may not (globals): ractors start, but that code raises
    # Ractor::IsolationError there.
    Diagnosis = Struct.new(:blockers, :app_state, :unlisted, :isolation) do
      # Whether :auto runs the app in ractors.
      def clean?
        blockers.empty? && app_state.empty? && isolation.empty?
      end

      def self.check_failed(why)
        new([Blocker.new("app", "checking it failed: #{why}", nil, nil)], [], 0, [])
      end
    end

    # Captured variables Ractor.make_shareable names one at a time; past
    # this many in one proc the rest are not worth a separate line.
    MAX_CAPTURES_NAMED = 20

    # A big app (a Rails application object holds thousands) would fill
    # screens; the first ones say what to fix.
    APP_STATE_LISTED = 50

    # A Rails app's graph takes seconds to walk; a forked check still busy
    # after this long is stuck, and the server must boot regardless.
    CHILD_TIMEOUT = 120

    # +preparation+ is what would get the app ready: the check runs its
    # first steps, then looks at its app and hooks.
    def initialize(preparation, child_timeout: CHILD_TIMEOUT)
      @child_timeout = child_timeout
      @preparation = preparation
      @app = preparation.app
      @hooks = preparation.hooks
    end

    # A Diagnosis. Changes nothing in this process. With +first_only+ it
    # stops at the first finding (enough for :auto to decide, and quick for
    # an app that holds many objects).
    #
    # A child forked while other ractors run (another :ractor server in
    # this process) inherits a VM whose next GC waits for ractors that do
    # not exist in it, and hangs (seen: the parent then waited forever).
    # Then the check can only run here, where preparing the environment
    # deep-freezes constants and captured variables go unprobed: with
    # +in_process: false+ (what :auto asks) it does not run at all and the
    # diagnosis says so; otherwise (`mode :ractor`, which prepares anyway)
    # it runs here without the probe.
    def diagnose(first_only: false, in_process: true)
      return in_child { survey(first_only: first_only, probe: true) } if Process.respond_to?(:fork) && Ractor.count == 1
      unless in_process
        return Diagnosis.check_failed("other ractors already run in this process, so it cannot be checked " \
                                      "in a forked child, and checking it here would freeze its constants")
      end

      survey(first_only: first_only, probe: false)
    end

    # A message listing every blocker, for UnshareableAppError and --check.
    def explain(blockers)
      lines = ["the app cannot run in :ractor mode (#{count(blockers.size, 'blocker')}):"]
      blockers.each { |b| lines << "  - #{b}" }
      lines << "Run it with `mode :threaded`, or fix the above (kino --check re-checks)."
      lines.join("\n")
    end

    # The :auto fallback's reason, in one line, from a diagnosis that is
    # not clean.
    def fallback_reason(diagnosis)
      if (blocker = (diagnosis.blockers + diagnosis.isolation).first)
        return "#{blocker.summary} (`kino --check` lists every blocker)"
      end

      ":ractor mode would freeze #{diagnosis.app_state.first.describe}; `mode :ractor` freezes what the app " \
        "made and runs it in ractors (`kino --check` lists each object and where it was made)"
    end

    # What `mode :ractor` froze of the app's own making, for the boot log.
    def explain_frozen(diagnosis)
      total = diagnosis.app_state.size + diagnosis.unlisted
      lines = ["mode :ractor froze #{count(total, 'object')} that the app made " \
               "(code that changes them now raises FrozenError):"]
      lines.concat(app_state_lines(diagnosis))
      lines.join("\n")
    end

    # What will raise Ractor::IsolationError in the workers, for the boot
    # log of `mode :ractor`.
    def explain_isolation(diagnosis)
      lines = ["mode :ractor runs code that worker ractors refuse (it raises Ractor::IsolationError there):"]
      diagnosis.isolation.each { |b| lines << "  - #{b}" }
      lines.join("\n")
    end

    # One line per listed AppState, and one for those not listed.
    def app_state_lines(diagnosis)
      lines = diagnosis.app_state.map { |s| "  - #{s}" }
      lines << "  - and #{diagnosis.unlisted} more" if diagnosis.unlisted.positive?
      lines
    end

    private

    def count(number, noun)
      "#{number} #{noun}#{'s' unless number == 1}"
    end

    # Runs the block in a forked child and returns what it returned (via
    # Marshal), so that freezing and probing never touch this process.
    # A child that dies before it reports (killed, crashed), or that has not
    # reported within the child timeout, leaves a diagnosis that says the check
    # failed, and why.
    #
    # The child leaves with exit!, whatever happened: at_exit handlers and
    # finalizers it inherited are the app's, written for the parent (seen:
    # one of concurrent-ruby's waited forever on a lock whose holder did
    # not exist in the child). The pipe is binary: an app may have set
    # Encoding.default_internal, and Marshal's bytes are no text.
    def in_child(&survey)
      reader, writer = IO.pipe
      reader.binmode
      writer.binmode
      pid = fork { report_from_child(reader, writer, &survey) }
      writer.close
      data = read_report(reader, pid)
      _, status = Process.wait2(pid)
      return Diagnosis.check_failed("the forked check #{child_failure(status)}") unless status.success?

      begin
        Marshal.load(data) # rubocop:disable Security/MarshalLoad -- our own child's output
      rescue ArgumentError, TypeError => e
        Diagnosis.check_failed("the forked check sent back no result (#{e.message})")
      end
    ensure
      reader&.close unless reader&.closed?
      writer&.close unless writer&.closed?
    end

    def report_from_child(reader, writer)
      reader.close
      result = begin
        yield
      rescue Exception => e # rubocop:disable Lint/RescueException
        Diagnosis.check_failed("#{e.class}: #{e.message}")
      end
      writer.write(Marshal.dump(result))
      writer.close
      exit!(0)
    ensure
      exit!(1)
    end

    # The child's bytes up to its end of the pipe; kills a child that
    # outlives the child timeout (its exit status then says so).
    def read_report(reader, pid)
      data = +""
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + @child_timeout
      loop do
        left = deadline - Process.clock_gettime(Process::CLOCK_MONOTONIC)
        unless left.positive? && reader.wait_readable(left)
          Process.kill(:KILL, pid)
          return data
        end
        chunk = reader.read_nonblock(65_536, exception: false)
        return data if chunk.nil?

        data << chunk unless chunk == :wait_readable
      end
    end

    def child_failure(status)
      if status.signaled?
        "was killed by SIG#{Signal.signame(status.termsig)}"
      else
        "exited with status #{status.exitstatus}"
      end
    end

    # What a walk of the app's graph finds, and the procs to probe after.
    class Findings
      attr_reader :blockers, :app_state, :unlisted, :isolation, :procs, :builders, :ivars_cache

      def initialize(first_only)
        @first_only = first_only
        @blockers = []
        @app_state = []
        @unlisted = 0
        @isolation = []
        @procs = [] # [proc, path, location]: their captured variables are probed
        @builders = {}.compare_by_identity # builder => its AppState
        @ivars_cache = {}.compare_by_identity # for RactorEligibility.ivars_set_by
      end

      def done?
        @first_only && !(@blockers.empty? && @app_state.empty? && @isolation.empty?)
      end

      # Adds the AppState the block builds, or only counts it past the
      # listing limit.
      def add_app_state
        if @app_state.size < APP_STATE_LISTED
          @app_state << yield
        else
          @unlisted += 1
        end
      end
    end

    # One object on the walk; its path is built only when reported. A
    # step is a String (a root's name), an instance variable's name, or
    # [kind, key] from AppGraph.children.
    Node = Struct.new(:object, :parent, :step, :context) do
      def path
        steps = []
        node = self
        while node
          steps << Node.step_text(node.step)
          node = node.parent
        end
        steps.reverse.join
      end

      def self.step_text(step)
        return step if step.is_a?(String)
        return ".#{step}" if step.is_a?(Symbol)

        kind, key = step
        case kind
        when :at then "[#{key}]"
        when :value_of then "[#{key.inspect[0, 40]}]"
        when :key then "{key #{key.inspect[0, 40]}}"
        when :member then ".#{key}"
        when :self then "(self)"
        else ".#{kind}"
        end
      end
    end
    private_constant :Findings, :Node

    def survey(first_only:, probe:)
      @preparation.prepare_environment
      findings = Findings.new(first_only)
      seen = {}.compare_by_identity
      roots = [[@app, "app"], *@hooks.map { |name, hook| [hook, name.to_s] }]
      roots.each do |root, name|
        walk(Node.new(root, nil, name, :app), seen, findings)
      end
      check_code_reads(findings, probe) unless findings.done?
      probe(findings) if probe && !findings.done?
      Diagnosis.new(findings.blockers, findings.app_state, findings.unlisted, findings.isolation)
    end

    # Constants and globals the app's code reads. A worker ractor may read a
    # constant only when its value is shareable: one frozen at the top is
    # deep-frozen by #prepare! (its author declared it constant); one not
    # frozen is app state (`mode :ractor` freezes it). Globals other than
    # the ractor-local ones cannot be made to work at all.
    def check_code_reads(findings, probe)
      @preparation.code_reads.each do |read|
        break if findings.done?

        if read.kind == :global
          findings.isolation << Blocker.new(read.reader, "uses the global #{read.name}; worker ractors cannot " \
                                                         "read or set it",
                                            "keep that state in a constant made shareable when the file loads, " \
                                            "or per request", nil)
        elsif Ractor.shareable?(read.value)
          next
        elsif !read.freezable?
          findings.isolation << Blocker.new(read.reader, "reads #{read.name}, #{article(read.value.class)}; worker " \
                                                         "ractors cannot read it",
                                            "create it per worker (after_worker_boot), or use $stdout and $stderr, " \
                                            "which each ractor has its own of", constant_location(read.name))
        elsif !read.value.frozen?
          findings.add_app_state do
            RactorEligibility::AppState.new(read.name, "#{article(read.value.class)} that is not frozen, read by " \
                                                       "#{read.reader}", [], [], constant_location(read.name))
          end
        elsif probe
          probe_constant(read, findings)
        end
      end
    end

    # In the child only: what #prepare! will do to a frozen constant.
    def probe_constant(read, findings)
      Ractor.make_shareable(read.value)
    rescue Ractor::Error, FrozenError => e
      findings.blockers << Blocker.new(read.name,
                                       "is frozen but cannot be shared (#{e.message}); #{read.reader} reads it",
                                       "hold only shareable values in it", constant_location(read.name))
    end

    def constant_location(name)
      file, line = Object.const_source_location(name)
      file && "#{file}:#{line}" # nothing for a constant Ruby itself defines
    rescue NameError
      nil
    end

    # Visits, depth first without recursion (an app's graph can be deep),
    # what Ractor.make_shareable(root) would freeze or refuse.
    def walk(root, seen, findings)
      stack = [root]
      until stack.empty? || findings.done?
        node = stack.pop
        children = visit(node, seen, findings)
        stack.concat(children.reverse) if children
      end
    end

    # Looks at one object; returns the nodes to visit next. An object seen
    # first inside a Rack-built table is looked at again if the app holds
    # it too.
    def visit(node, seen, findings)
      obj = node.object
      if obj.is_a?(Module)
        check_module(obj, findings, seen)
        return nil
      end
      return nil if Ractor.shareable?(obj) || seen[obj] == :app || seen[obj] == node.context

      seen[obj] = node.context
      check_module(obj.class, findings, seen) unless obj.class.name&.start_with?("Rack::")
      case obj
      when *AppGraph::NEVER_SHAREABLE
        findings.blockers << Blocker.new(node.path, "#{obj.class} can never be shared between ractors",
                                         "create it per worker (after_worker_boot, or lazily in the worker) " \
                                         "instead of holding it in the app", nil)
        return nil
      when Proc
        return visit_proc(node, findings)
      end

      rack_ivars = RactorEligibility.rack_middleware_ivars(obj)
      rack_data = node.context == :rack && RactorEligibility.rack_built_data?(obj)
      unless obj.frozen? || rack_ivars || rack_data
        findings.add_app_state { app_state_of(obj, node.path, article(obj.class), findings.ivars_cache) }
      end
      AppGraph.children(obj).map do |step, child|
        context = if rack_ivars then rack_ivars.fetch(step, :app)
                  elsif rack_data then :rack
                  else :app
                  end
        Node.new(child, node, step, context)
      end
    end

    def app_state_of(obj, path, what, cache)
      RactorEligibility::AppState.new(path, what, RactorEligibility.ivars_set_by(obj, cache: cache),
                                      obj.instance_variables.map(&:to_s), RactorEligibility.made_at(obj))
    end

    def visit_proc(node, findings)
      proc = node.object
      location = proc.source_location&.join(":")
      recv = AppGraph.proc_receiver(proc)
      next_nodes = []
      if RactorEligibility.rack_builder?(recv) && !Ractor.shareable?(recv)
        next_nodes = visit_builder(recv, node, findings)
      elsif !recv.nil? && !Ractor.shareable?(recv)
        kind = proc.lambda? ? "lambda" : "proc"
        hint = if node.path == "app"
                 "define the app as a class or module with a `call` method, " \
                   "or create the #{kind} where self is shareable"
               else
                 "create the #{kind} where self is shareable (in a module body, say), " \
                   "or pass a method of a shareable module"
               end
        findings.blockers << Blocker.new(node.path, "a #{kind} whose self is #{article(recv.class)}, " \
                                                    "which cannot be shared", hint, location)
        return nil
      end
      findings.procs << [proc, node.path, location]
      next_nodes + proc.instance_variables.map { |iv| Node.new(proc.instance_variable_get(iv), node, iv, :app) }
    end

    # The builder that is a config.ru lambda's self. Kino may detach and
    # share it unless config.ru gave it state: instance variables of its
    # own, or code (its lambdas, the methods the file defined) that sets
    # one. Each lambda with this self adds what its code sets.
    def visit_builder(builder, proc_node, findings)
      state = findings.builders[builder]
      first = state.nil?
      if first
        file = proc_node.object.source_location&.first || "the rackup file"
        state = RactorEligibility::AppState.new(
          "self of #{proc_node.path}", "the Rack::Builder that ran #{file}",
          RactorEligibility.ivars_set_by(builder, stop_at: ::Rack::Builder),
          RactorEligibility.builder_own_ivars(builder).map(&:to_s), nil
        )
        findings.builders[builder] = state
      end
      state.sets |= RactorEligibility.ivars_assigned_in(proc_node.object)
      has_state = !state.sets.empty? || !state.holds.empty?
      findings.app_state << state if has_state && findings.app_state.none? { |s| s.equal?(state) }
      return [] unless first

      self_node = Node.new(builder, nil, state.path, :app)
      RactorEligibility.builder_own_ivars(builder).map do |iv|
        Node.new(builder.instance_variable_get(iv), self_node, iv, :app)
      end
    end

    # In the child only: share what Kino may share, then let
    # Ractor.make_shareable say what it still refuses. It names one
    # unshareable captured variable at a time; each is set to nil in turn
    # to let the next one show.
    def probe(findings)
      @preparation.detach_builders
      findings.procs.each do |proc, path, location|
        probe_captures(proc, path, location, findings)
        break if findings.done?
      end
      return if findings.done? || !findings.blockers.empty?

      begin
        Ractor.make_shareable(@app)
        @hooks.each_value { |h| Ractor.make_shareable(h) }
      rescue Ractor::Error => e
        findings.blockers << Blocker.new("app", e.message, nil, nil)
      end
    end

    def probe_captures(proc, path, location, findings)
      kind = proc.lambda? ? "lambda" : "proc"
      MAX_CAPTURES_NAMED.times do
        Ractor.make_shareable(proc)
        return
      rescue Ractor::Error, ArgumentError => e
        name = e.message[/from variable [`']([^'`]+)'/, 1]
        if (reassigned = e.message[/outer variable [`']([^'`]+)' may be reassigned/, 1])
          # Ruby 4.0 refuses a proc over a variable assigned twice, whatever
          # it holds now; unsetting it would not help, so name it and stop.
          findings.blockers << Blocker.new("#{path} (captured variable `#{reassigned}`)",
                                           "is assigned more than once, so Ruby will not share the #{kind}",
                                           "assign the value the #{kind} uses once, to a variable of its own", location)
          return
        end
        unless name
          findings.blockers << Blocker.new(path, "this #{kind} cannot be shared: #{e.message}", nil, location)
          return
        end
        value = proc.binding.local_variable_get(name.to_sym)
        findings.blockers << Blocker.new("#{path} (captured variable `#{name}`)",
                                         "holds #{article(value.class)}, which is not shareable",
                                         "freeze it where it is defined (`#{name} = Ractor.make_shareable(...)`) " \
                                         "if it never changes, or keep that state out of the #{kind}", location)
        proc.binding.local_variable_set(name.to_sym, nil)
      end
    end

    def article(klass)
      name = klass.name || klass.inspect
      "#{name.match?(/\A[AEIOU]/) ? 'an' : 'a'} #{name}"
    end

    # Class-level state: workers cannot touch class variables at all, nor
    # read a class-level instance variable holding an unshareable value.
    def check_module(mod, findings, seen)
      return if seen[mod]

      seen[mod] = true
      location = mod.name && Object.const_source_location(mod.name)&.join(":")
      mod.class_variables.each do |cv|
        findings.blockers << Blocker.new("#{mod}#{cv}", "is a class variable; worker ractors cannot read or write it",
                                         "use a constant made shareable, or per-worker state", location)
      end
      mod.instance_variables.each do |iv|
        value = mod.instance_variable_get(iv)
        next if Ractor.shareable?(value)

        findings.blockers << Blocker.new("#{mod}.#{iv}", "holds #{article(value.class)}; worker ractors cannot read it",
                                         "make it shareable (Ractor.make_shareable) if it never changes; " \
                                         "mutable class-level state cannot work across ractors", location)
      end
      check_class_level_assignments(mod, findings, location)
    rescue NameError
      nil
    end

    # `def self.call(env) = (@hits ||= 0) ...` works in threads, but a worker
    # ractor raises Ractor::IsolationError there: it may not set a class's
    # or module's instance variables.
    def check_class_level_assignments(mod, findings, location)
      return if mod.name&.start_with?("Rack::")

      sets = RactorEligibility.class_ivars_set_by(mod)
      return if sets.empty?

      findings.blockers << Blocker.new(mod.name || mod.inspect,
                                       "its class-level code sets #{sets.join(', ')}; worker ractors cannot " \
                                       "set a class's or module's instance variables",
                                       "keep that state in a constant made shareable when the file loads, " \
                                       "or per request", location)
    end
  end
end
