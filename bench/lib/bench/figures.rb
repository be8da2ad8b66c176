# frozen_string_literal: true

module Bench
  # How figures are written in reports and progress lines.
  module Figures
    module_function

    # 12345.6 -> "12,346"
    def number(value)
      whole = value.round.to_s
      whole.reverse.scan(/\d{1,3}/).join(",").reverse
    end

    def ms(value)
      return "-" unless value
      return format("%.0fus", value * 1000) if value < 1

      value < 100 ? format("%.2fms", value) : format("%.0fms", value)
    end

    # { socket_errors:, non_2xx: } -> "none", or what went wrong.
    def errors_text(result)
      s = result[:socket_errors]
      parts = []
      if s.values.sum.positive?
        parts << "socket errors connect #{s[:connect]}, read #{s[:read]}, write #{s[:write]}, timeout #{s[:timeout]}"
      end
      parts << "#{result[:non_2xx]} non-2xx/3xx" if result[:non_2xx].positive?
      parts.empty? ? "none" : parts.join("; ")
    end

    # { server:, wrk:, other: } cores -> "1.23/0.45/0.06"
    def cpu_text(cpu)
      cpu ? format("%.2f/%.2f/%.2f", cpu[:server], cpu[:wrk], cpu[:other]) : "-"
    end
  end
end
