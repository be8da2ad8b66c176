# frozen_string_literal: true

require_relative "errors"
require_relative "app_graph"
require_relative "ractor_eligibility"

module Kino
  # Gets an app ready to run inside worker ractors. RactorCheck says
  # beforehand what stands in the way.
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
  # - detaches the finished Rack::Builder that a config.ru lambda has as
  #   its self from Rack's building state, and shares it;
  # - finally Ractor.make_shareable(app) and the hooks that run in workers,
  #   which freezes whatever they hold.
  class RactorPreparation
    COMMON_ENCODINGS = %w[UTF-8 US-ASCII ASCII-8BIT ISO-8859-1 Windows-1252 UTF-16LE UTF-16BE
                          UTF-32LE Shift_JIS EUC-JP].freeze

    # A constant or global the code of the app's objects reads: +value+ is
    # the constant's (nil for a global); +reader+ names the code.
    CodeRead = Struct.new(:kind, :name, :value, :reader) do
      # Whether #prepare! deep-freezes it: a constant, unless its value can
      # never be shared (STDOUT, a Mutex); only the main ractor can read
      # that one, as it is.
      def freezable?
        kind == :constant && AppGraph::NEVER_SHAREABLE.none? { |klass| value.is_a?(klass) }
      end
    end

    # +hooks+ are those that run inside workers, by name (WorkerHooks).
    def initialize(app, hooks = {})
      @app = app
      @hooks = hooks.compact
    end

    attr_reader :app, :hooks

    # Makes the app and hooks shareable, freezing whatever they hold.
    # Returns [app, hooks].
    def prepare!
      prepare_environment
      detach_builders
      code_reads.each { |read| Ractor.make_shareable(read.value) if read.freezable? }
      [Ractor.make_shareable(@app), @hooks.transform_values { |h| Ractor.make_shareable(h) }]
    rescue Ractor::Error, FrozenError => e
      raise UnshareableAppError, "the app cannot be shared between ractors: #{e.message}"
    end

    # The first step of #prepare!, which freezes only Rack's state and what
    # is frozen at the top already. RactorCheck runs it and
    # #detach_builders in its forked child before it looks at the app.
    def prepare_environment
      # Reading every constant also reads deprecated ones; their warnings
      # would only confuse whoever reads the boot log.
      deprecated = Warning[:deprecated]
      Warning[:deprecated] = false
      prepare_namespaces
    ensure
      Warning[:deprecated] = deprecated
    end

    # `run ->(env) { ... }` in a config.ru makes a lambda whose self is the
    # Rack::Builder that evaluated the file. That builder is done: its app
    # was built (to_app) before we got it. It still refers to the lambda
    # (@run, @use), and the lambda needs a shareable self, a cycle that
    # Ractor.make_shareable cannot resolve; so the finished builder forgets
    # Rack's building state first, then is shared. What config.ru gave it
    # (helper methods, instance variables of its own) stays; the diagnosis
    # counts the latter as app state.
    def detach_builders
      builders = {}.compare_by_identity
      AppGraph.each_object(@app) do |obj|
        recv = obj.is_a?(Proc) && AppGraph.proc_receiver(obj)
        builders[recv] = true if RactorEligibility.rack_builder?(recv) && !Ractor.shareable?(recv)
      end
      builders.each_key do |builder|
        RactorEligibility::BUILDER_IVARS.each do |iv|
          builder.remove_instance_variable(iv) if builder.instance_variable_defined?(iv)
        end
        Ractor.make_shareable(builder)
      rescue Ractor::Error, FrozenError
        next
      end
    end

    # What the code of every object the app reaches reads (see
    # RactorEligibility.reads_in): a module's class methods, the methods of
    # an object's class (Rack's own and core data aside) and its singleton
    # methods, a proc's body. Calls further away are not followed. #prepare!
    # deep-freezes the constants among them; RactorCheck reports them all.
    def code_reads
      found = {}
      scanned = {}.compare_by_identity
      [@app, *@hooks.values].each do |root|
        AppGraph.each_object(root) do |obj|
          each_code_of(obj, scanned) do |code, scope, reader|
            record_reads(RactorEligibility.reads_in(code), scope, reader, found)
          end
        end
      end
      found.values
    end

    private

    def record_reads(reads, scope, reader, found)
      reads.globals.each do |gv|
        next if RactorEligibility::RACTOR_LOCAL_GLOBALS.include?(gv)

        found[[:global, gv]] ||= CodeRead.new(:global, gv.to_s, nil, reader)
      end
      reads.constants.each do |path|
        name, value = RactorEligibility.resolve_constant(path, scope)
        next if name.nil? || value.is_a?(Module)

        found[[:constant, name]] ||= CodeRead.new(:constant, name, value, reader)
      end
    end

    # Yields [code, scope its constants are read from, what to call it].
    def each_code_of(obj, scanned, &)
      if obj.is_a?(Module)
        return if obj.name&.start_with?("Rack::", "Kino::") || obj.name == "Rack"

        each_method_code(obj.singleton_class, nil, scanned, &)
      elsif obj.is_a?(Proc)
        recv = AppGraph.proc_receiver(obj)
        scope = recv.is_a?(Module) ? recv : (recv.class unless recv.nil? || RactorEligibility.rack_builder?(recv))
        kind = obj.lambda? ? "lambda" : "proc"
        yield obj, scope, "the #{kind} at #{obj.source_location&.join(':')}"
      else
        unless RactorEligibility.rack_built_data?(obj) || obj.class.name&.start_with?("Rack::", "Kino::")
          each_method_code(obj.class, Object, scanned, &)
        end
        each_method_code(obj.singleton_class, obj.class, scanned, &) unless obj.singleton_methods.empty?
      end
    end

    def each_method_code(start, stop_at, scanned)
      return if scanned[start]

      scanned[start] = true
      RactorEligibility.each_method_in_chain(start, stop_at) do |method, scope|
        yield method, scope, method_label(method, scope)
      end
    end

    def method_label(method, scope)
      return "#{method.owner.name || method.owner.inspect}##{method.name}" unless method.owner.singleton_class?
      return "#{scope.name || scope.inspect}.#{method.name}" if scope.is_a?(Module)

      "the singleton method #{method.name}"
    end

    def prepare_namespaces
      namespaces = app_namespaces
      load_autoloads([defined?(::Rack) ? ::Rack : nil, *namespaces].compact)
      warm_encodings
      share_rack_state
      namespaces.each { |ns| share_frozen_state(ns) }
    end

    # Modules the app's objects are instances of, and their enclosing
    # namespaces: where its autoloads and constants live.
    def app_namespaces
      mods = {}.compare_by_identity
      AppGraph.each_object(@app) do |obj|
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

          # Gems register autoloads for files that only load elsewhere
          # (I18n::Tests needs its test framework): such a file raises
          # whatever it raises, and a worker would meet the same error, so
          # it is passed over rather than failing the whole preparation.
          value = begin
            ns.const_get(name)
          rescue StandardError, ScriptError
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
      Ractor.make_shareable(::Rack::Utils.default_query_parser) if ::Rack::Utils.respond_to?(:default_query_parser)
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
  end
end
