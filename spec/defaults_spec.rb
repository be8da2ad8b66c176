# frozen_string_literal: true

require "kino/configuration"

# Kino::Configuration::DEFAULTS is the one place Ruby writes a default.
# The `kino --init` template, the README and the comments of Kino::DSL
# state each one again for readers; these examples read them as text and
# hold every default they state to the table, so none of them drifts.
RSpec.describe "The defaults the documentation states" do
  defaults = Kino::Configuration::DEFAULTS
  root = File.expand_path("..", __dir__)
  size_units = { "KiB" => 1024, "MiB" => 1024**2, "GiB" => 1024**3 }.freeze
  cpus = /\A(the )?available CPUs\b/

  # Defaults the table leaves to the machine (Kino.available_parallelism) or to nil,
  # which the server reads as a value it derives: the documents name what
  # it derives instead of (or after) the literal, so they are checked for
  # that.
  derived = {
    workers: ->(text) { defaults[:workers] == Kino.available_parallelism && text.match?(cpus) },
    io_threads: ->(text) { defaults[:io_threads] == Kino.available_parallelism && text.match?(cpus) },
    threads: lambda do |text|
      stated = text.scan(/(\d+)\W+(?:in\W+)?(ractor|threaded)\b/).to_h { |count, mode| [mode.to_sym, Integer(count)] }
      defaults[:threads].nil? && stated == Kino::Configuration::THREADS_PER_WORKER
    end,
    max_connections: ->(text) { defaults[:max_connections].nil? && text.match?(/open-file limit/) },
    quarantine_max: lambda do |text|
      defaults[:quarantine_max].nil? && text.match?(/\A(nil\W+(meaning )?the number of )?workers\b/)
    end
  }

  # The value a document writes first in +text+ ("5.0", "\"config.ru\"",
  # ":auto", "nil (off)", "50 MiB"), or :unreadable.
  read_value = lambda do |text|
    case text.delete("`").strip
    when /\A"([^"]*)"/ then Regexp.last_match(1)
    when /\A:(\w+)/ then Regexp.last_match(1).to_sym
    when /\A(nil|—)(\W|\z)/ then nil
    when /\A(true|false)\b/ then Regexp.last_match(1) == "true"
    when /\A(\d+) ([KMG]iB)\b/ then Integer(Regexp.last_match(1)) * size_units.fetch(Regexp.last_match(2))
    when /\A(\d[\d_]*\.\d+)\b/ then Float(Regexp.last_match(1).delete("_"))
    when /\A(\d[\d_]*)\b/ then Integer(Regexp.last_match(1).delete("_"))
    else :unreadable
    end
  end

  # Whether +text+ states +name+'s default: its first value is the table's
  # (of the same class: 5 for 5.0 is drift too), and a size given in
  # parentheses after it ("52428800 (50 MiB)") agrees.
  states_default = lambda do |name, text|
    next derived[name].call(text) if derived.key?(name)

    default = defaults.fetch(name)
    gloss = text.match(/\((\d+) ([KMG]iB)\)/)
    read_value.call(text).eql?(default) &&
      (gloss.nil? || Integer(gloss[1]) * size_units.fetch(gloss[2]) == default)
  end

  # The stated defaults that disagree with the table (or that say none).
  drift = lambda do |stated|
    stated.reject { |name, text| text && states_default.call(name, text) }
  end

  # What +comment_lines+ say after +lead+ ("Default:"), up to the end of
  # that sentence; nil when they do not say it.
  first_sentence = lambda do |comment_lines, lead|
    text = comment_lines.map { |line| line.strip.delete_prefix("#").strip }.join(" ").squeeze(" ").strip
    text[/#{Regexp.escape(lead)} (.*?)\.(?=\s|\z)/, 1]
  end

  describe "the --init template (lib/kino/templates/kino.rb)" do
    # One paragraph a directive: its comment says "Default: ...", its last
    # line is the commented-out example.
    stated = File.read(File.join(root, "lib/kino/templates/kino.rb")).split(/\n\s*\n/).filter_map do |paragraph|
      lines = paragraph.lines(chomp: true)
      name = lines.last[/\A# ([a-z][a-z0-9_]*)\b/, 1]&.to_sym
      next unless defaults.key?(name)

      [name, first_sentence.call(lines[0...-1], "Default:")]
    end.to_h

    it "has a paragraph for every directive" do
      expect(stated.keys).to match_array(defaults.keys)
    end

    it "states each one as the table has it" do
      expect(drift.call(stated)).to eq({})
    end
  end

  describe "README.md" do
    readme = File.read(File.join(root, "README.md"))
    section = readme[/^## Configuration file$.*?(?=^## )/m]
    # The directive table's rows, then the paragraphs after it, which give
    # the directives not in effect yet (and tls) with their defaults in
    # parentheses: "`batch` (1)".
    table = section.scan(/^\| `([a-z][a-z0-9_]*)` \| ([^|]*) \|/).to_h { |name, text| [name.to_sym, text.strip] }
    after_table = section.lines.drop_while { |line| !line.start_with?("|") }.drop_while { |line| line.start_with?("|") }
    paragraphs = after_table.join.scan(/`([a-z][a-z0-9_]*)`\s+\(([^)]*)\)/)
                            .to_h { |name, text| [name.to_sym, text.strip] }

    it "states a default for every directive, in the table or in the paragraphs after it" do
      expect(table.keys & paragraphs.keys).to be_empty
      expect(table.keys + paragraphs.keys).to match_array(defaults.keys)
    end

    it "states each one as the table has it" do
      expect(drift.call(table.merge(paragraphs))).to eq({})
    end

    it "gives the command line's defaults as the table has them" do
      flags = readme[/^## Command line$.*?(?=^## )/m].scan(/^\| `-\w`, `--([a-z]+)[^|]*\|[^|]*\| ([^|]*) \|/)
      stated = flags.to_h { |name, text| [name.to_sym, text.strip] }.select { |name, _text| defaults.key?(name) }
      expect(stated.keys).to match_array(%i[bind port workers threads mode environment])
      # Flags take plain words: `127.0.0.1`, `auto`, — for none.
      mismatched = stated.reject do |name, text|
        next derived[name].call(text) if derived.key?(name)

        [defaults[name].to_s, defaults[name].nil? && "—"].include?(text.delete("`"))
      end
      expect(mismatched).to eq({})
    end
  end

  describe "the comments of Kino::DSL (lib/kino/dsl.rb)" do
    source = File.read(File.join(root, "lib/kino/dsl.rb")).lines
    stated = defaults.keys.to_h do |name|
      definition = source.index { |line| line.match?(/\A\s*def #{name}\b/) }
      comment = source[0...definition].reverse.take_while { |line| line.strip.start_with?("#") }.reverse
      [name, first_sentence.call(comment, "The default is")]
    end

    it "states each default as the table has it" do
      expect(drift.call(stated)).to eq({})
    end
  end
end
