# frozen_string_literal: true

module Kino
  # The checks Kino::DSL's directives share: each takes the directive's
  # name and the value it was given, and returns the value to store (an
  # Integer or number of seconds read from a String, a frozen copy of a
  # path) or refuses it with "<directive> must be ... (got <value>)".
  #
  # The includer defines #invalid!(message), which raises with the file and
  # line of the config file that called the directive.
  module DirectiveChecks
    private

    def to_integer(value)
      case value
      when Integer then value
      when String then Integer(value, 10, exception: false)
      end
    end

    def to_seconds(value)
      seconds = case value
                when Integer, Float then value
                when String then Float(value, exception: false)
                end
      seconds if seconds.nil? || seconds.finite?
    end

    def positive_integer(directive, value)
      accepted(directive, value, to_integer(value), "a positive Integer", &:positive?)
    end

    def non_negative_integer(directive, value)
      accepted(directive, value, to_integer(value), "an Integer, 0 or more") { |integer| integer >= 0 }
    end

    def positive_seconds(directive, value)
      accepted(directive, value, to_seconds(value), "a positive number of seconds", &:positive?)
    end

    def non_negative_seconds(directive, value)
      accepted(directive, value, to_seconds(value), "a number of seconds, 0 or more") { |seconds| seconds >= 0 }
    end

    def optional_positive_seconds(directive, value)
      return nil if value.nil?

      accepted(directive, value, to_seconds(value), "a positive number of seconds, or nil for none", &:positive?)
    end

    # One of +choices+ (Symbols), given as a Symbol or a String.
    def one_of(directive, value, choices)
      symbol = value.to_sym if value.is_a?(Symbol) || value.is_a?(String)
      expected = "one of #{choices.map(&:inspect).join(', ')}"
      accepted(directive, value, symbol, expected) { |given| choices.include?(given) }
    end

    def boolean(directive, value)
      accepted(directive, value, value, "true or false") { |given| [true, false].include?(given) }
    end

    # A String or anything that says it is a path (Pathname). +part+ names
    # which argument of the directive it is (tls's "cert" or "key").
    def path_string(directive, value, part = nil)
      path = value.respond_to?(:to_path) ? value.to_path : value
      accepted([directive, part].compact.join(" "), path, path, "a non-empty String") do |given|
        given.is_a?(String) && !given.empty?
      end.dup.freeze
    end

    def hook(directive, handler, block)
      invalid!("#{directive} takes a block or a callable, not both") if handler && block
      callable = handler || block
      return callable if callable.respond_to?(:call)

      invalid!("#{directive} needs a block or an object that responds to #call (got #{handler.inspect})")
    end

    # +converted+ (+value+ read as the directive wants it, nil when it could
    # not be) when the block accepts it; otherwise refuses +value+ as not
    # +expected+.
    def accepted(directive, value, converted, expected)
      return converted if !converted.nil? && yield(converted)

      invalid!("#{directive} must be #{expected} (got #{value.inspect})")
    end
  end
end
