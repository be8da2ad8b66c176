# frozen_string_literal: true

module Kino
  # The rule that decides what Kino may freeze on its own to put an app in
  # worker ractors (ADR 0006).
  #
  # Ractor.make_shareable(app) freezes every object reachable from the app.
  # An object the app made and may change (a counter's @n, a memoized @x,
  # a cache Hash) would then raise FrozenError on the first request that
  # changes it: the app would no longer do what it does in threads. So
  # `mode :auto` takes :ractor only when every object that would be frozen
  # is one of:
  # - already frozen (freezing it again changes nothing);
  # - a Proc (a Proc has no state of its own; what it captures must
  #   already be shareable, Ruby checks that);
  # - the finished Rack::Builder that a config.ru lambda has as its self,
  #   when config.ru gave it no state of its own (no instance variable of
  #   its own, no code that sets one): Kino detaches Rack's building state
  #   from it;
  # - an instance of a Rack middleware listed in RACK_MIDDLEWARE, whose
  #   `call` is Rack's own and which holds only the instance variables
  #   listed there: Rack sets them once, in `initialize`, and never again;
  # - plain data (RACK_BUILT_DATA) that such a middleware built itself
  #   from its arguments (URLMap's table, Runtime's header name).
  # Anything else the app made is app state: :auto runs the app in
  # threads instead and names it; `mode :ractor` freezes it, and says so.
  module RactorEligibility
    # Something :ractor mode would have to freeze that the app made and
    # may change. +what+ says what it is ("a Counter"); +sets+ are the
    # instance variables its code assigns (read from the bytecode), +holds+
    # those it has now; +location+ is where it was made, when allocations
    # were traced (kino --check).
    AppState = Struct.new(:path, :what, :sets, :holds, :location) do
      def describe
        text = "#{path} (#{what})"
        if !sets.empty?
          text << ", whose code sets #{sets.join(', ')}"
        elsif !holds.empty?
          text << ", which holds #{holds.join(', ')}"
        end
        text
      end

      def to_s
        location ? "#{describe} (made at #{location})" : describe
      end
    end

    # Rack's middleware known to set their instance variables only in
    # `initialize` and never change them (checked against Rack 3.0 to 3.2).
    # For each, its instance variables: :app holds the next app or a value
    # the config passed (judged by the same rule as any object), :rack one
    # that Rack built itself from plain data.
    RACK_MIDDLEWARE = {
      "Rack::CommonLogger" => { :@app => :app, :@logger => :app },
      "Rack::ConditionalGet" => { :@app => :app },
      "Rack::Config" => { :@app => :app, :@block => :app },
      "Rack::ContentLength" => { :@app => :app },
      "Rack::ContentType" => { :@app => :app, :@content_type => :app },
      "Rack::Deflater" => { :@app => :app, :@condition => :app, :@compressible_types => :app, :@sync => :app },
      "Rack::ETag" => { :@app => :app, :@cache_control => :app, :@no_cache_control => :app },
      "Rack::Head" => { :@app => :app },
      "Rack::Lint" => { :@app => :app },
      "Rack::MethodOverride" => { :@app => :app },
      "Rack::Runtime" => { :@app => :app, :@header_name => :rack },
      "Rack::ShowExceptions" => { :@app => :app },
      "Rack::TempfileReaper" => { :@app => :app },
      "Rack::URLMap" => { :@known_hosts => :rack, :@mapping => :rack }
    }.freeze

    # What Rack's own middleware build their tables from. Only these exact
    # classes count: a subclass may carry code of its own.
    RACK_BUILT_DATA = [Array, Hash, String, Symbol, Regexp, Range, Integer, Float, NilClass, TrueClass,
                       FalseClass].freeze

    # Rack::Builder's building state (Rack 3.0 to 3.2), which Kino removes
    # from a finished builder before sharing it.
    BUILDER_IVARS = %i[@use @map @run @warmup @freeze_app @options].freeze

    # Bounds the bytecode read for one object's class: naming the variables
    # is for the message only.
    MAX_METHODS_SCANNED = 400
    CONSTRUCTORS = %i[initialize initialize_copy initialize_dup initialize_clone].freeze

    module_function

    # The instance variables RACK_MIDDLEWARE lists for +obj+, or nil when it
    # is not one of those middleware exactly as Rack defines it.
    def rack_middleware_ivars(obj)
      klass = obj.class
      declared = RACK_MIDDLEWARE[klass.name]
      return nil unless declared && rack_method?(obj.method(:call), klass)
      return nil unless obj.singleton_methods.empty? && (obj.instance_variables - declared.keys).empty?

      declared
    rescue NameError
      nil
    end

    def rack_built_data?(obj)
      RACK_BUILT_DATA.include?(obj.class) || (defined?(::Set) && obj.instance_of?(::Set))
    end

    def rack_builder?(obj)
      defined?(::Rack::Builder) && obj.instance_of?(::Rack::Builder)
    end

    # The instance variables a finished builder got from config.ru rather
    # than from Rack.
    def builder_own_ivars(builder)
      builder.instance_variables - BUILDER_IVARS
    end

    # The instance variables that +obj+'s own code assigns after it was
    # made: the methods of its singleton class and of its classes up to
    # +stop_at+ (Object by default; Rack::Builder for a builder, whose own
    # methods are Rack's), constructors aside.
    # +cache+ (a Hash the caller keeps for one walk) holds the answer per
    # class: most objects have no singleton methods, so their class's
    # answer holds for all its instances, and no singleton class is made
    # for them.
    def ivars_set_by(obj, stop_at: Object, cache: {}.compare_by_identity)
      return ivars_set_by_module_chain(obj.singleton_class, stop_at) unless obj.singleton_methods.empty?

      (cache[stop_at] ||= {}.compare_by_identity)[obj.class] ||= ivars_set_by_module_chain(obj.class, stop_at)
    end

    # The instance variables a class's or module's own class methods set:
    # worker ractors cannot set those at all.
    def class_ivars_set_by(mod)
      ivars_set_by_module_chain(mod.singleton_class, nil)
    end

    # Walks +start+'s ancestors up to +stop_at+ or to what every object or
    # class has (Object, Kernel; Class and Module for a singleton class).
    def ivars_set_by_module_chain(start, stop_at)
      found = []
      each_method_in_chain(start, stop_at, skip_constructors: true) { |m, _| found.concat(ivars_assigned_in(m)) }
      found.uniq.freeze
    end

    # Yields each UnboundMethod defined along +start+'s ancestors (up to
    # +stop_at+ or what every object or class has) and the module its
    # constants are looked up from first (for a singleton class, the class
    # or module it belongs to).
    def each_method_in_chain(start, stop_at, skip_constructors: false)
      methods = 0
      common = Object.ancestors + Object.singleton_class.ancestors
      start.ancestors.each do |mod|
        break if mod == stop_at || common.include?(mod)

        scope = lexical_scope_of(mod)
        (mod.instance_methods(false) + mod.private_instance_methods(false)).each do |name|
          next if skip_constructors && CONSTRUCTORS.include?(name)
          break if (methods += 1) > MAX_METHODS_SCANNED

          yield mod.instance_method(name), scope
        rescue NameError
          next
        end
      end
    end

    def lexical_scope_of(mod)
      return mod unless mod.singleton_class?
      return mod.attached_object if mod.respond_to?(:attached_object) # Ruby 3.2+

      name = mod.inspect[/\A#<Class:([A-Z][\w:]*)>\z/, 1]
      name && Object.const_get(name)
    rescue NameError, TypeError
      nil
    end

    # What code reads that a worker ractor may refuse: +constants+ holds
    # paths (Arrays of Symbols, a leading :"" for `::X`), +globals+ names.
    CodeReads = Struct.new(:constants, :globals)

    # Globals a worker ractor may read and set: each ractor or thread has
    # its own (measured on Ruby 3.1 and 4.0; $0, $; $, $/ and the load path
    # are the main ractor's only). $1 and $~'s kin are not globals in
    # bytecode (getspecial).
    RACTOR_LOCAL_GLOBALS = %i[$stdout $stderr $stdin $> $~ $_ $! $@ $$ $? $VERBOSE $DEBUG
                              $-w $-v $-d $-i $-a $-l $-p].freeze

    # The constants and globals a method's or a proc's bytecode reads, its
    # blocks included.
    def reads_in(code)
      reads = CodeReads.new([], [])
      return reads unless defined?(RubyVM::InstructionSequence)

      iseq = RubyVM::InstructionSequence.of(code)
      scan_reads(iseq.to_a, reads) if iseq
      reads
    rescue TypeError, ArgumentError
      reads
    end

    # Where bytecode differs between Ruby versions:
    # - 3.2 and later read `A::B` with [:opt_getconstant_path, [:A, :B]]
    #   ([:"", :A] for `::A`);
    # - 3.1 wraps [:getconstant, :A], [:getconstant, :B] (each after a
    #   putobject flag; `putobject Object` first for `::A`) between
    #   opt_getinlinecache and opt_setinlinecache.
    # A getconstant outside such a cache (`expr::X`) has a base known only
    # when it runs: it is not read here.
    def scan_reads(tree, reads)
      path = nil # 3.1: the constant path inside an inline cache
      tree.each do |item|
        next unless item.is_a?(Array)

        case item[0]
        when :opt_getconstant_path then reads.constants << item[1] if item[1].is_a?(Array)
        when :opt_getinlinecache then path = []
        when :getconstant then path << item[1] if path
        when :putobject then path << :"" if path&.empty? && item[1] == Object
        when :opt_setinlinecache
          reads.constants << path if path && !path.empty? && path != [:""]
          path = nil
        when :getglobal, :setglobal then reads.globals << item[1] if item[1].is_a?(Symbol)
        else scan_reads(item, reads)
        end
      end
      reads
    end

    # The value of constant +path+ as code in +scope+ would read it (its
    # lexical scope approximated by +scope+, its namespaces, then Object),
    # as [full name, value]; nil when it does not resolve now.
    def resolve_constant(path, scope)
      first, *rest = path
      if first == :""
        base = Object
        first, *rest = rest
      else
        base = constant_owner(first, scope)
      end
      return nil unless base && first

      value = base.const_get(first)
      name = base == Object || base.name.nil? ? first.to_s : "#{base.name}::#{first}"
      rest.each do |part|
        return nil unless value.is_a?(Module)

        value = value.const_get(part)
        name = "#{name}::#{part}"
      end
      [name, value]
    rescue NameError, LoadError
      nil
    end

    def constant_owner(name, scope)
      candidates = []
      if scope.is_a?(Module)
        candidates << scope
        parts = scope.name.to_s.split("::")
        (parts.size - 1).downto(1) do |n|
          candidates << Object.const_get(parts.first(n).join("::"))
        rescue NameError
          next
        end
      end
      candidates << Object
      direct = candidates.find { |c| c.const_defined?(name, false) }
      direct || candidates.find { |c| c.const_defined?(name) }
    end

    # The instance variables that a method's or a proc's bytecode assigns,
    # its blocks included. Methods written in C have none to read.
    def ivars_assigned_in(code)
      return [] unless defined?(RubyVM::InstructionSequence)

      iseq = RubyVM::InstructionSequence.of(code)
      iseq ? setinstancevariable_operands(iseq.to_a) : []
    rescue TypeError, ArgumentError
      []
    end

    def setinstancevariable_operands(tree, found = [])
      tree.each do |item|
        next unless item.is_a?(Array)

        if item[0] == :setinstancevariable && item[1].is_a?(Symbol)
          found << item[1].to_s
        else
          setinstancevariable_operands(item, found)
        end
      end
      found
    end

    # "file:line" where +obj+ was allocated, when allocations were being
    # traced then (ObjectSpace.trace_object_allocations), else nil.
    def made_at(obj)
      return nil unless ObjectSpace.respond_to?(:allocation_sourcefile)

      file = ObjectSpace.allocation_sourcefile(obj)
      file && "#{file}:#{ObjectSpace.allocation_sourceline(obj)}"
    end

    # Whether +method+ is Rack's own, defined by +klass+ itself (not
    # patched in by a prepended module or a reopened class elsewhere).
    def rack_method?(method, klass)
      return false unless method.owner == klass

      file = method.source_location&.first
      !file.nil? && file.start_with?(rack_lib_dir)
    end

    # Where Rack's own files are: Rack::Builder#to_app is Rack's by
    # definition (Kino builds apps with it).
    def rack_lib_dir
      file = ::Rack::Builder.instance_method(:to_app).source_location.first
      "#{File.dirname(file)}/"
    end
  end
end
