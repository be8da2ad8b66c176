# frozen_string_literal: true

module Bench
  # Tables for the terminal and for Markdown, from [headers, rows, indexes
  # of right-aligned (numeric) columns]; and the terminal's paragraphs.
  module Tables
    module_function

    def text(headers, rows, numeric)
      widths = headers.each_index.map { |i| ([headers[i]] + rows.map { |r| r[i] }).map(&:length).max }
      fmt = lambda do |cells|
        padded = cells.each_with_index.map { |c, i| numeric.include?(i) ? c.rjust(widths[i]) : c.ljust(widths[i]) }
        padded.join("  ").rstrip
      end
      [fmt.call(headers), widths.map { |w| "-" * w }.join("  "), *rows.map { |r| fmt.call(r) }].join("\n")
    end

    def markdown(headers, rows, numeric)
      align = headers.each_index.map { |i| numeric.include?(i) ? "---:" : "---" }
      ["| #{headers.join(' | ')} |", "| #{align.join(' | ')} |",
       *rows.map { |r| "| #{r.map { |c| c.gsub('|', '\\|') }.join(' | ')} |" }].join("\n")
    end

    # A note wrapped at 100 columns for the terminal.
    def wrap(paragraph)
      paragraph.scan(/.{1,100}(?:\s|\z)/).map(&:strip).join("\n")
    end
  end
end
