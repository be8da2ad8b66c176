# frozen_string_literal: true

module Kino
  # The object graph of an app as Ractor.make_shareable walks it: through
  # instance variables, collections and a proc's self (not through
  # classes). Both RactorPreparation and RactorCheck walk it.
  module AppGraph
    # Objects that can never be shared between ractors, whatever is frozen.
    NEVER_SHAREABLE = [
      Thread, Thread::Mutex, Thread::Queue, Thread::ConditionVariable, IO, Method, UnboundMethod,
      Binding, Enumerator, Fiber
    ].freeze

    module_function

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

    # [step, child] for what Ractor.make_shareable(obj) would look at (and
    # a proc's self); steps as RactorCheck's Node#path reads them.
    def children(obj)
      list = []
      case obj
      when Array then obj.each_with_index { |v, i| list << [[:at, i], v] }
      when Hash
        obj.each { |k, v| list << [[:value_of, k], v] << [[:key, k], k] }
        list << [[:default_proc], obj.default_proc] if obj.default_proc
        list << [[:default], obj.default] unless obj.default_proc || obj.default.nil?
      when Struct then obj.each_pair { |k, v| list << [[:member, k], v] }
      when Proc
        recv = proc_receiver(obj)
        list << [[:self], recv] unless recv.nil?
      end
      obj.instance_variables.each { |iv| list << [iv, obj.instance_variable_get(iv)] }
      list
    end

    def proc_receiver(proc)
      proc.binding.receiver
    rescue ArgumentError
      nil # procs made from methods or C functions have no binding
    end
  end
end
