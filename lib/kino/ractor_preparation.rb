# frozen_string_literal: true

module Kino
  # Gets an app ready to run inside worker ractors, or says precisely why it
  # cannot.
  #
  # Workers run the app in non-main ractors, where Ruby 3.1 refuses a lot
  # that the main ractor allows: requiring files (so autoloads), reading
  # constants or class-level instance variables that hold unshareable
  # objects, touching class variables, and lazily loading encodings. The app
  # object itself must be shareable to be handed to the workers.
  #
  # #prepare! fixes what can be fixed safely, on the main ractor, before
  # any worker starts:
  # - loads Rack's autoloads and those of every namespace the app's objects
  #   come from;
  # - loads the common encodings and transcoders;
  # - makes Rack's constants and its query parser shareable (Rack never
  #   changes them), and, in the app's namespaces, deep-freezes constants
  #   and class-level values that are already frozen at the top (their
  #   author declared them constant);
  # - makes shareable the Rack::Builder that a config.ru lambda has as its
  #   self;
  # - finally Ractor.make_shareable(app) and the hooks that run in workers.
  #
  # #blockers finds what would still stand in the way, without changing
  # anything: it runs the same preparation and a walk of the app's object
  # graph in a forked child process, which reports back and exits.
  class RactorPreparation
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

    # Objects that can never be shared between ractors, whatever is frozen.
    NEVER_SHAREABLE = [
      Thread, Thread::Mutex, Thread::Queue, Thread::ConditionVariable, IO, Method, UnboundMethod,
      Binding, Enumerator, Fiber
    ].freeze

    COMMON_ENCODINGS = %w[UTF-8 US-ASCII ASCII-8BIT ISO-8859-1 Windows-1252 UTF-16LE UTF-16BE
                          UTF-32LE Shift_JIS EUC-JP].freeze

    MAX_DEPTH = 64

    def initialize(app, hooks = {})
      @app = app
      @hooks = hooks.compact
    end

    # The blockers, as Blocker structs. Changes nothing in this process.
    def blockers
      # A child forked while other ractors run (another :ractor server in
      # this process) inherits a VM whose next GC waits for ractors that do
      # not exist in it, and hangs (seen: the parent then waited forever).
      # Then the check runs here: the environment is prepared (as prepare!
      # would do here anyway), the app walked, but nothing of the app is
      # frozen to probe it, since the app may yet run :threaded.
      return in_child { find_blockers } if Process.respond_to?(:fork) && Ractor.count == 1

      find_blockers(probe: false)
    end

    # Makes the app and hooks shareable. Returns [app, hooks].
    def prepare!
      prepare_environment
      [Ractor.make_shareable(@app), @hooks.transform_values { |h| Ractor.make_shareable(h) }]
    rescue Ractor::Error, Ractor::IsolationError, FrozenError => e
      raise UnshareableAppError, "the app cannot be shared between ractors: #{e.message}"
    end

    # A message listing every blocker, for UnshareableAppError and --check.
    def explain(blockers)
      lines = ["the app cannot run in :ractor mode (#{blockers.size} blocker#{'s' unless blockers.size == 1}):"]
      blockers.each { |b| lines << "  - #{b}" }
      lines << "Run it with `mode :threaded`, or fix the above (kino --check re-checks)."
      lines.join("\n")
    end

    private

    # Runs the block in a forked child and returns what it returned (via
    # Marshal), so that freezing and probing never touch this process.
    def in_child
      reader, writer = IO.pipe
      pid = fork do
        reader.close
        result = begin
          yield
        rescue Exception => e # rubocop:disable Lint/RescueException
          [Blocker.new("app", "checking it failed: #{e.class}: #{e.message}", nil, nil)]
        end
        writer.write(Marshal.dump(result))
        writer.close
        exit!(0)
      end
      writer.close
      data = reader.read
      Process.wait(pid)
      Marshal.load(data) # rubocop:disable Security/MarshalLoad -- our own child's output
    ensure
      reader&.close unless reader&.closed?
      writer&.close unless writer&.closed?
    end

    def find_blockers(prepared: true, probe: prepared)
      prepare_environment if prepared
      out = []
      seen = {}.compare_by_identity
      walk(@app, "app", seen, out, 0, probe: probe)
      @hooks.each { |name, hook| walk(hook, name.to_s, seen, out, 0, probe: probe) }
      if probe && out.empty?
        begin
          Ractor.make_shareable(@app)
          @hooks.each_value { |h| Ractor.make_shareable(h) }
        rescue Ractor::Error, Ractor::IsolationError => e
          out << Blocker.new("app", e.message, nil, nil)
        end
      end
      out
    end

    # --- preparation ------------------------------------------------------

    def prepare_environment
      # Reading every constant also reads deprecated ones; their warnings
      # would only confuse whoever reads the boot log.
      deprecated = Warning[:deprecated]
      Warning[:deprecated] = false
      prepare_namespaces
    ensure
      Warning[:deprecated] = deprecated
    end

    def prepare_namespaces
      namespaces = app_namespaces
      load_autoloads([defined?(::Rack) ? ::Rack : nil, *namespaces].compact)
      warm_encodings
      share_rack_state
      namespaces.each { |ns| share_frozen_state(ns) }
      share_builder_selves
    end

    # Modules the app's objects are instances of, and their enclosing
    # namespaces: where its autoloads and constants live.
    def app_namespaces
      mods = {}.compare_by_identity
      each_object(@app) do |obj|
        mod = obj.is_a?(Module) ? obj : obj.class
        next if mod.name.nil? || mod.name.start_with?("Rack::", "Kino::")

        top = Object.const_get(mod.name.split("::").first)
        mods[top] = true if top.is_a?(Module) && top != Object
      rescue NameError
        next
      end
      mods.keys
    end

    def load_autoloads(namespaces, depth = 0)
      return if depth > 4

      namespaces.each do |ns|
        ns.constants(false).each do |name|
          next unless ns.autoload?(name)

          value = begin
            ns.const_get(name)
          rescue LoadError, NameError
            next
          end
          load_autoloads([value], depth + 1) if value.is_a?(Module) && value.name&.start_with?(ns.name.to_s)
        end
      end
    end

    # Workers cannot load an encoding or a transcoder the first time they
    # need one: load the common ones here.
    def warm_encodings
      COMMON_ENCODINGS.each do |name|
        enc = Encoding.find(name)
        "abc".encode(enc).encode(Encoding::UTF_8)
      rescue ArgumentError, EncodingError
        next
      end
    end

    # Rack's constants are never changed by Rack, and its default query
    # parser and forwarded-header priorities are configuration read on every
    # request: workers must be able to read them.
    def share_rack_state
      return unless defined?(::Rack)

      each_module_under(::Rack) do |mod|
        mod.constants(false).each do |name|
          next if mod.autoload?(name)

          value = mod.const_get(name)
          Ractor.make_shareable(value) unless value.is_a?(Module) || Ractor.shareable?(value)
        rescue Ractor::Error, NameError, FrozenError
          next
        end
      end
      if ::Rack::Utils.respond_to?(:default_query_parser)
        Ractor.make_shareable(::Rack::Utils.default_query_parser)
      end
      if defined?(::Rack::Request)
        ::Rack::Request.instance_variables.each do |iv|
          Ractor.make_shareable(::Rack::Request.instance_variable_get(iv))
        end
      end
    rescue Ractor::Error
      nil
    end

    # In the app's own namespaces only what is already frozen at the top is
    # deep-frozen: the author meant it as a constant.
    def share_frozen_state(namespace)
      each_module_under(namespace) do |mod|
        mod.constants(false).each do |name|
          next if mod.autoload?(name)

          value = mod.const_get(name)
          share_if_frozen(value)
        rescue NameError
          next
        end
        mod.instance_variables.each { |iv| share_if_frozen(mod.instance_variable_get(iv)) }
      end
    end

    def share_if_frozen(value)
      return if value.is_a?(Module) || Ractor.shareable?(value) || !value.frozen?

      Ractor.make_shareable(value)
    rescue Ractor::Error, FrozenError
      nil
    end

    # `run ->(env) { ... }` in a config.ru makes a lambda whose self is the
    # Rack::Builder that evaluated the file. That builder is done: its app
    # was built (to_app) before we got it. It still refers to the lambda
    # (@run, @use), and the lambda needs a shareable self, a cycle that
    # Ractor.make_shareable cannot resolve; so the finished builder forgets
    # its building state first, then is shared. Helper methods the file
    # defined (singleton methods on the builder) keep working.
    def share_builder_selves
      return unless defined?(::Rack::Builder)

      builders = []
      each_object(@app) do |obj|
        recv = obj.is_a?(Proc) && proc_receiver(obj)
        builders << recv if recv.is_a?(::Rack::Builder) && !Ractor.shareable?(recv)
      end
      builders.uniq(&:__id__).each do |builder|
        builder.instance_variables.each { |iv| builder.remove_instance_variable(iv) }
        Ractor.make_shareable(builder)
      rescue Ractor::Error, Ractor::IsolationError, FrozenError
        next
      end
    end

    def each_module_under(namespace, &block)
      seen = {}.compare_by_identity
      queue = [namespace]
      until queue.empty?
        mod = queue.shift
        next if seen[mod]

        seen[mod] = true
        block.call(mod)
        mod.constants(false).each do |name|
          next if mod.autoload?(name)

          value = mod.const_get(name)
          queue << value if value.is_a?(Module) && value.name&.start_with?("#{mod.name}::")
        rescue NameError, LoadError
          next
        end
      end
    end

    # Every object reachable from `root` through ivars, collections and
    # proc selves (not through classes).
    def each_object(root)
      seen = {}.compare_by_identity
      stack = [root]
      until stack.empty?
        obj = stack.pop
        next if seen[obj]

        seen[obj] = true
        yield obj
        next if obj.is_a?(Module)

        stack.concat(children(obj).map(&:last))
      end
    end

    def children(obj)
      list = []
      case obj
      when Array then obj.each_with_index { |v, i| list << ["[#{i}]", v] }
      when Hash
        obj.each { |k, v| list << ["[#{k.inspect[0, 40]}]", v] << ["{key #{k.inspect[0, 40]}}", k] }
        list << [".default_proc", obj.default_proc] if obj.default_proc
      when Struct then obj.each_pair { |k, v| list << [".#{k}", v] }
      when Proc
        recv = proc_receiver(obj)
        list << ["(self)", recv] unless recv.nil?
      end
      obj.instance_variables.each { |iv| list << [".#{iv}", obj.instance_variable_get(iv)] }
      list
    end

    def proc_receiver(proc)
      proc.binding.receiver
    rescue ArgumentError
      nil # procs made from methods or C functions have no binding
    end

    # --- the walk ---------------------------------------------------------

    def walk(obj, path, seen, out, depth, probe:)
      return if depth > MAX_DEPTH

      if obj.is_a?(Module)
        check_module(obj, path, seen, out)
        return
      end
      return if Ractor.shareable?(obj) || seen[obj]

      seen[obj] = true
      check_module(obj.class, "#{path} (class #{obj.class})", seen, out) unless obj.class.name&.start_with?("Rack::")
      case obj
      when *NEVER_SHAREABLE
        out << Blocker.new(path, "#{obj.class} can never be shared between ractors",
                           "create it per worker (after_worker_boot, or lazily in the worker) " \
                           "instead of holding it in the app", nil)
        return
      when Proc
        walk_proc(obj, path, seen, out, depth, probe: probe)
        return
      end
      children(obj).each { |suffix, child| walk(child, "#{path}#{suffix}", seen, out, depth + 1, probe: probe) }
    end

    def article(klass)
      name = klass.name || klass.inspect
      "#{name.match?(/\A[AEIOU]/) ? 'an' : 'a'} #{name}"
    end

    def walk_proc(proc, path, seen, out, depth, probe:)
      location = proc.source_location&.join(":")
      kind = proc.lambda? ? "lambda" : "proc"
      recv = proc_receiver(proc)
      unless recv.nil? || Ractor.shareable?(recv)
        hint = if path == "app"
                 "define the app as a class or module with a `call` method, " \
                 "or create the #{kind} where self is shareable"
               else
                 "create the #{kind} where self is shareable (in a module body, say), " \
                 "or pass a method of a shareable module"
               end
        out << Blocker.new(path, "a #{kind} whose self is #{article(recv.class)}, which cannot be shared", hint,
                           location)
        return
      end
      return unless probe

      # Ractor.make_shareable names one unshareable captured variable at a
      # time; we are in the child process, so each is set to nil in turn to
      # let the next one show.
      20.times do
        Ractor.make_shareable(proc)
        return
      rescue Ractor::IsolationError, Ractor::Error, ArgumentError => e
        if (name = e.message[/from variable [`']([^'`]+)'/, 1])
          value = proc.binding.local_variable_get(name.to_sym)
          out << Blocker.new("#{path} (captured variable `#{name}`)",
                             "holds #{article(value.class)}, which is not shareable",
                             "freeze it where it is defined (`#{name} = Ractor.make_shareable(...)`) " \
                             "if it never changes, or keep that state out of the #{kind}", location)
          proc.binding.local_variable_set(name.to_sym, nil)
        else
          out << Blocker.new(path, "this #{kind} cannot be shared: #{e.message}", nil, location)
          return
        end
      end
      _ = seen && depth
    end

    # Class-level state: workers cannot touch class variables at all, nor
    # read a class-level instance variable holding an unshareable value.
    def check_module(mod, path, seen, out)
      return if seen[mod]

      seen[mod] = true
      location = mod.name && Object.const_source_location(mod.name)&.join(":")
      mod.class_variables.each do |cv|
        out << Blocker.new("#{mod}#{cv}", "is a class variable; worker ractors cannot read or write it",
                           "use a constant made shareable, or per-worker state", location)
      end
      mod.instance_variables.each do |iv|
        value = mod.instance_variable_get(iv)
        next if Ractor.shareable?(value)

        out << Blocker.new("#{mod}.#{iv}", "holds #{article(value.class)}; worker ractors cannot read it",
                           "make it shareable (Ractor.make_shareable) if it never changes; " \
                           "mutable class-level state cannot work across ractors", location)
      end
      _ = path
    rescue NameError
      nil
    end
  end
end
