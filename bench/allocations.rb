#!/usr/bin/env ruby
# frozen_string_literal: true

# Ruby objects allocated per request by Kino, in each mode. For each mode a
# child Ruby process loads bench/bench_app.ru, starts
# `Kino::Server.new(app, workers: 2, mode: MODE).start` inside itself, warms
# it up, and reads GC.stat(:total_allocated_objects) before and after a burst
# of load from wrk (a separate process, so the load generator allocates
# nothing in the measured process). Objects per request = allocated objects /
# requests the server says it served (server.stats[:served]) in that window.
#
#   bundle exec ruby bench/allocations.rb                    # both modes, /plaintext and /cpu
#   bundle exec ruby bench/allocations.rb --modes threaded --sites   # + where they are allocated
#   bundle exec rake bench:allocations                       # the same; BENCH_ARGS adds flags
#
# What is counted: every object the whole process allocates in the window,
# in every thread and every ractor: the env Hash and the Strings Kino builds
# for each request, the app's own response (status Array, headers Hash,
# body Array, content-length String, and for /cpu the Integer#to_s result),
# whatever Kino's Ruby code allocates while writing the answer, plus the
# little the process does in the background (the supervisor and log-pump
# threads, this script's own spawn of wrk). The background share is
# measured separately (an idle window of the same length) and shown.
# Integers that fit in a Fixnum, Symbols and frozen literals are not objects
# allocated per call and do not appear. Memory allocated by C++ (request
# buffers, queue nodes) is not a Ruby object and is not counted either.
#
# Each mode runs in its own process: once a process has created a Ractor, the
# VM stays in multi-ractor mode, which would change what :threaded does.
#
# Exit status: 0 when every burst was clean, 1 when wrk saw errors, a
# response was wrong or a child failed.

require_relative "lib/bench"

# allocations.rb: the parent starts one child process per mode (Child) and
# renders what they measured.
module BenchAllocations
  ROOT = Bench::ROOT
  OUTPUT = File.join(Bench::RESULTS_DIR, "allocations.md")
  MODES = %w[threaded ractor].freeze

  Options = Struct.new(:modes, :endpoints, :duration, :warmup, :by_type, :sites, :workers, :threads,
                       :connections, :wrk_threads, :yjit, :intern, :output, :kino_root, :child, :result,
                       keyword_init: true)

  def self.parse_options(argv)
    o = Options.new(modes: MODES.dup, endpoints: %w[plaintext cpu], duration: 5, warmup: 2, by_type: 1,
                    sites: false, workers: 2, threads: nil, connections: 64, wrk_threads: 2, yjit: false,
                    intern: false, output: OUTPUT, kino_root: ROOT, child: nil, result: nil)
    OptionParser.new do |opts|
      opts.banner = "Usage: bundle exec ruby bench/allocations.rb [options]\n\n"
      opts.on("--modes LIST", Array, "Kino modes, comma-separated (default #{o.modes.join(',')})") { |v| o.modes = v }
      opts.on("-e", "--endpoints LIST", Array,
              "From #{Bench::ENDPOINTS.keys.join(',')} (default #{o.endpoints.join(',')})") { |v| o.endpoints = v }
      opts.on("-d", "--duration SECONDS", Integer,
              "Measured wrk burst, GC on (default #{o.duration})") { |v| o.duration = v }
      opts.on("--warmup SECONDS", Integer, "Warm-up burst per endpoint (default #{o.warmup})") { |v| o.warmup = v }
      opts.on("--by-type SECONDS", Integer,
              "Burst with GC off, counted by object type; 0 skips it (default #{o.by_type})") { |v| o.by_type = v }
      opts.on("--sites", "Also trace where objects are allocated (:threaded only; the allocation tracer",
              "and Ractors crash together on 3.1)") { o.sites = true }
      opts.on("-w", "--workers N", Integer, "Workers (default #{o.workers})") { |v| o.workers = v }
      opts.on("-t", "--threads N", Integer,
              "Threads per worker (default: the mode's own, 1 in :ractor, 3 in :threaded)") { |v| o.threads = v }
      opts.on("-c", "--connections N", Integer, "wrk connections (default #{o.connections})") { |v| o.connections = v }
      opts.on("--wrk-threads N", Integer, "wrk threads (default #{o.wrk_threads})") { |v| o.wrk_threads = v }
      opts.on("--[no-]yjit", "Run the measured processes with ruby --yjit (default off)") { |v| o.yjit = v }
      opts.on("--intern", "Serve with intern_header_values true (default off, as Kino's default)") { o.intern = true }
      opts.on("-o", "--output FILE",
              "Markdown report (default bench/results/allocations.md, and .json)") do |v|
        o.output = File.expand_path(v)
      end
      opts.on("--kino-root DIR", "Kino checkout to load, with its compiled extension (default: this one)") do |v|
        o.kino_root = File.expand_path(v)
      end
      opts.on("--child MODE", "(internal) measure MODE in this process") { |v| o.child = v }
      opts.on("--result FILE", "(internal) where the child writes its JSON") { |v| o.result = v }
      opts.on("-h", "--help") do
        puts opts
        exit 0
      end
    end.parse!(argv)
    unknown = o.endpoints - Bench::ENDPOINTS.keys
    raise OptionParser::InvalidArgument, "unknown endpoint(s): #{unknown.join(', ')}" unless unknown.empty?

    unknown_modes = o.modes - MODES
    raise OptionParser::InvalidArgument, "unknown mode(s): #{unknown_modes.join(', ')}" unless unknown_modes.empty?

    raise OptionParser::InvalidArgument, "duration and workers must be positive" unless
      o.duration.positive? && o.workers.positive?
    raise OptionParser::InvalidArgument, "--kino-root #{o.kino_root} has no Gemfile and lib/kino.rb" unless
      File.file?(File.join(o.kino_root, "Gemfile")) && File.file?(File.join(o.kino_root, "lib", "kino.rb"))

    o
  end

  # ------------------------------------------------------------ the child

  # Runs inside the measured process. Everything it needs is loaded before
  # the first window; inside a window the main thread only waits for wrk.
  class Child
    def initialize(options)
      @o = options
      @mode = options.child.to_sym
      @problems = []
    end

    def run
      require "kino"
      Warning[:experimental] = false # "Ractor is experimental": known, and not this report's business
      app = Rack::Builder.parse_file(Bench::APP_FILE)
      app = app.first if app.is_a?(Array)
      settings = { workers: @o.workers, mode: @mode }
      settings[:threads] = @o.threads if @o.threads
      settings[:intern_header_values] = true if @o.intern
      @server = Kino::Server.new(app, **settings).start
      stats = @server.stats
      loaded = $LOADED_FEATURES.grep(%r{/kino/server\.rb\z}).first
      say "kino :#{stats[:mode]}, #{stats[:workers]} workers x #{stats[:threads]} threads, port #{@server.port}, " \
          "pid #{Process.pid}, YJIT #{yjit? ? 'on' : 'off'}, loaded from #{loaded}"
      expected = File.join(@o.kino_root, "lib", "kino", "server.rb")
      @problems << "loaded Kino from #{loaded}, not #{expected}" unless
        $LOADED_FEATURES.include?(expected)
      @problems << "asked for mode #{@mode}, server runs #{stats[:mode]}" unless stats[:mode] == @mode

      @o.endpoints.each { |e| verify(e) }
      # One warm-up over every endpoint first, then the idle window: the
      # background allocation rate of a warm, unloaded server.
      @o.endpoints.each { |e| wrk(e, @o.warmup) if @o.warmup.positive? }
      idle = idle_window(@o.duration)
      say format("idle: %d objects in %.1fs (%.1f/s) with no requests",
                 idle[:objects], idle[:seconds], idle[:per_second])
      endpoints = @o.endpoints.to_h { |e| [e, measure_endpoint(e, idle[:per_second])] }
      result = { mode: stats[:mode].to_s, workers: stats[:workers], threads: stats[:threads], yjit: yjit?,
                 ruby: RUBY_DESCRIPTION, idle: idle, endpoints: endpoints, problems: @problems }
      File.write(@o.result, JSON.generate(result)) if @o.result
      result
    ensure
      cut = @server&.shutdown(5)
      @problems << "#{cut} request(s) cut off at shutdown" if cut&.positive?
    end

    private

    def say(line)
      $stdout.puts("[#{@mode}] #{line}")
      $stdout.flush
    end

    def yjit?
      RubyVM.const_defined?(:YJIT) && RubyVM::YJIT.respond_to?(:enabled?) && RubyVM::YJIT.enabled?
    end

    def url(endpoint)
      "http://#{Bench::HOST}:#{@server.port}#{Bench::ENDPOINTS.fetch(endpoint)[:path]}"
    end

    def verify(endpoint)
      spec = Bench::ENDPOINTS.fetch(endpoint)
      response = Net::HTTP.get_response(URI(url(endpoint)))
      return if response.code == "200" && spec[:body].call(response.body.to_s)

      @problems << "GET #{spec[:path]} answered #{response.code} #{response.body.to_s[0, 40].inspect}"
    end

    # wrk as a child process; the main thread just waits for it (no
    # polling, so this process allocates next to nothing meanwhile).
    def wrk(endpoint, seconds)
      out = Tempfile.create("kino-alloc-wrk")
      pid = Process.spawn("wrk", "-t#{@o.wrk_threads}", "-c#{@o.connections}", "-d#{seconds}s", url(endpoint),
                          out: out.path, err: %i[child out])
      @wrk_pid = pid
      Process.wait(pid)
      @wrk_pid = nil
      status = $?
      parsed = Bench::Wrk.parse(File.read(out.path))
      @problems << "wrk on #{endpoint} failed: #{status.inspect}" unless status.success? && parsed[:rps]
      @problems << "wrk on #{endpoint}: #{Bench::Figures.errors_text(parsed)}" if Bench::Wrk.errors?(parsed)
      parsed
    ensure
      if out
        out.close
        File.unlink(out.path)
      end
    end

    def served
      @server.stats[:served]
    end

    def idle_window(seconds)
      a0 = GC.stat(:total_allocated_objects)
      t0 = Bench.now
      sleep seconds
      elapsed = Bench.now - t0
      objects = GC.stat(:total_allocated_objects) - a0
      { objects: objects, seconds: elapsed.round(2), per_second: (objects / elapsed).round(1) }
    end

    def measure_endpoint(endpoint, idle_rate)
      path = Bench::ENDPOINTS.fetch(endpoint)[:path]
      wrk(endpoint, @o.warmup) if @o.warmup.positive?

      # The number: GC on, as in production.
      s0 = served
      gc0 = GC.count
      a0 = GC.stat(:total_allocated_objects)
      t0 = Bench.now
      parsed = wrk(endpoint, @o.duration)
      elapsed = Bench.now - t0
      a1 = GC.stat(:total_allocated_objects)
      gc1 = GC.count
      s1 = served
      requests = s1 - s0
      objects = a1 - a0
      per_request = requests.positive? ? objects.fdiv(requests) : nil
      background = requests.positive? ? (idle_rate * elapsed).fdiv(requests) : nil
      say format("%-10s %8d requests (%s req/s), %10d objects, %.2f objects/request " \
                 "(background %.3f/request), %d GC runs",
                 path, requests, Bench::Figures.number(parsed[:rps] || 0), objects, per_request || 0,
                 background || 0, gc1 - gc0)
      result = { path: path, requests: requests, objects: objects, per_request: per_request&.round(3),
                 background_per_request: background&.round(4), rps: parsed[:rps], gc_runs: gc1 - gc0,
                 seconds: elapsed.round(2) }
      result[:by_type] = by_type(endpoint) if @o.by_type.positive?
      result[:sites] = sites(endpoint) if @o.sites
      result
    end

    # GC off for a short burst: nothing is freed, so the change in used
    # slots of each type is what was allocated. Also a check on the
    # GC.stat counter, which worker ractors update concurrently.
    def by_type(endpoint)
      GC.start
      GC.disable
      s0 = served
      c0 = ObjectSpace.count_objects
      a0 = GC.stat(:total_allocated_objects)
      wrk(endpoint, @o.by_type)
      a1 = GC.stat(:total_allocated_objects)
      c1 = ObjectSpace.count_objects
      s1 = served
      GC.enable
      GC.start
      requests = s1 - s0
      types = (c1.keys - %i[TOTAL FREE]).to_h { |k| [k, c1[k] - c0.fetch(k, 0)] }.reject { |_, v| v.zero? }
      slots = (c1[:TOTAL] - c1[:FREE]) - (c0[:TOTAL] - c0[:FREE])
      per = types.transform_values { |v| requests.positive? ? v.fdiv(requests).round(3) : nil }
                 .sort_by { |_, v| -(v || 0) }.to_h
      say format("  by type (GC off, %d requests): %s; used slots +%.2f/request, GC.stat counter +%.2f/request",
                 requests, per.map { |k, v| "#{k} #{v}" }.join(", "),
                 slots.fdiv([requests, 1].max), (a1 - a0).fdiv([requests, 1].max))
      { requests: requests, per_request: per, slots_per_request: slots.fdiv([requests, 1].max).round(3),
        counter_per_request: (a1 - a0).fdiv([requests, 1].max).round(3) }
    ensure
      GC.enable
    end

    # Where the objects come from (:threaded only). Objects are grouped by
    # class and the Ruby line (or C method) that allocated them. Internal
    # objects (T_IMEMO, hidden Strings and Arrays) are invisible to
    # ObjectSpace.each_object, so this covers most but not all of them.
    def sites(endpoint)
      if @mode == :ractor
        say "  sites: skipped in :ractor mode (allocation tracing with Ractors crashes Ruby 3.1)"
        return nil
      end
      require "objspace"
      GC.start
      GC.disable
      ObjectSpace.trace_object_allocations_start
      s0 = served
      wrk(endpoint, 1)
      s1 = served
      ObjectSpace.trace_object_allocations_stop
      counts = Hash.new(0)
      ObjectSpace.each_object do |obj|
        file = ObjectSpace.allocation_sourcefile(obj)
        next unless file

        line = ObjectSpace.allocation_sourceline(obj)
        meth = ObjectSpace.allocation_method_id(obj)
        owner = ObjectSpace.allocation_class_path(obj)
        klass = begin
          Kernel.instance_method(:class).bind_call(obj)
        rescue StandardError
          "?"
        end
        where = "#{file.delete_prefix("#{@o.kino_root}/").delete_prefix("#{ROOT}/")}:#{line} (#{owner}##{meth})"
        counts[[klass.to_s, where]] += 1
      end
      ObjectSpace.trace_object_allocations_clear
      requests = [s1 - s0, 1].max
      # Sites seen at least once per 100 requests: per-request work, not
      # this script's or the supervisor's occasional allocations.
      ranked = counts.sort_by { |_, v| -v }.first(20).map do |(klass, where), n|
        { class: klass, site: where, per_request: n.fdiv(requests).round(3) }
      end
      top = ranked.select { |t| t[:per_request] >= 0.01 }
      say "  sites (#{requests} requests, traced, GC off):"
      top.each { |t| say format("    %7.3f  %-12s %s", t[:per_request], t[:class], t[:site]) }
      { requests: requests, top: top }
    ensure
      GC.enable
    end
  end

  # ----------------------------------------------------------- the parent

  def self.child_command(options, mode, result_file)
    flags = ["--child", mode, "--result", result_file, "--endpoints", options.endpoints.join(","),
             "--duration", options.duration.to_s, "--warmup", options.warmup.to_s,
             "--by-type", options.by_type.to_s, "--workers", options.workers.to_s,
             "--connections", options.connections.to_s, "--wrk-threads", options.wrk_threads.to_s,
             "--kino-root", options.kino_root]
    flags += ["--threads", options.threads.to_s] if options.threads
    flags << "--intern" if options.intern
    flags << "--sites" if options.sites
    [*Bench::MeasuredRuby.command(yjit: options.yjit), __FILE__, *flags]
  end

  # The child loads Kino through the Gemfile of --kino-root (its gemspec puts
  # that checkout's lib, and compiled extension, on the load path).
  def self.child_env(options)
    Bench::MeasuredRuby.env(File.join(options.kino_root, "Gemfile"))
  end

  def self.render(options, command_line, machine, versions, results, failures)
    number = ->(v) { v ? format("%.2f", v) : "-" }
    headers = ["mode", "workers x threads", "endpoint", "requests", "objects", "objects/request",
               "of which background", "GC runs"]
    rows = results.flat_map do |mode, r|
      r["endpoints"].map do |_, e|
        [mode, "#{r['workers']} x #{r['threads']}", e["path"], e["requests"].to_s, e["objects"].to_s,
         number.call(e["per_request"]), number.call(e["background_per_request"]), e["gc_runs"].to_s]
      end
    end
    numeric = [3, 4, 5, 6, 7]
    # Types seen at 0.005 or more per request somewhere (the rest is noise).
    types = results.flat_map do |_, r|
      r["endpoints"].values.flat_map do |e|
        (e.dig("by_type", "per_request") || {}).select { |_, v| v.to_f >= 0.005 }.keys
      end
    end.uniq
    type_headers = ["mode", "endpoint", "requests", *types, "all slots", "GC.stat counter"]
    type_rows = results.flat_map do |mode, r|
      r["endpoints"].values.filter_map do |e|
        t = e["by_type"] or next
        [mode, e["path"], t["requests"].to_s, *types.map { |k| number.call(t["per_request"][k]) },
         number.call(t["slots_per_request"]), number.call(t["counter_per_request"])]
      end
    end
    type_numeric = (2...type_headers.size).to_a
    yjit = options.yjit ? "ON" : "off"
    header = [
      Bench::Provenance.machine_line(machine),
      "Ruby: #{machine[:ruby]}; YJIT: #{yjit}",
      "Versions: #{versions}",
      "Command: #{command_line}",
      "Each mode in its own process: Kino::Server.new(app, workers: #{options.workers}, mode: MODE" \
      "#{', intern_header_values: true' if options.intern}).start; " \
      "load: wrk -t#{options.wrk_threads} -c#{options.connections} -d#{options.duration}s " \
      "after a #{options.warmup}s warm-up, as a separate process"
    ]
    tables = Bench::Tables
    text = ["", "=" * 100, *header, "=" * 100, "", "Objects allocated per request (GC on; whole process)",
            tables.text(headers, rows, numeric)]
    md = ["# Kino allocations per request: #{Time.now.utc.iso8601}", "", *header.map { |l| "- #{l}" }, "",
          "## Objects allocated per request (GC on; whole process)", "", tables.markdown(headers, rows, numeric)]
    unless type_rows.empty?
      title = "By type, per request (#{options.by_type}s burst with GC off: used-slot growth by type)"
      text << "" << title << tables.text(type_headers, type_rows, type_numeric)
      md << "" << "## #{title}" << "" << tables.markdown(type_headers, type_rows, type_numeric)
    end
    results.each do |mode, r|
      r["endpoints"].each_value do |e|
        next unless e["sites"]

        title = "Allocation sites, #{mode} #{e['path']} (objects per request, by class and allocating line; " \
                "each_object does not see internal objects)"
        lines = e["sites"]["top"].map { |t| format("%7.3f  %-12s %s", t["per_request"], t["class"], t["site"]) }
        text << "" << title << lines
        md << "" << "## #{title}" << "" << "```" << lines << "```"
      end
    end
    note = "objects/request: GC.stat(:total_allocated_objects) growth over the burst divided by the requests " \
           "the server served in it (server.stats[:served]); it counts every Ruby object the process " \
           "allocated, in all threads and ractors. of which background: what the same process allocated " \
           "in an idle window of the same length, per request of the burst. all slots / GC.stat counter: " \
           "two counts of the same GC-off burst (heap slots in use vs the allocation counter); they should agree."
    text << "" << tables.wrap(note)
    md << "" << note
    problems = failures + results.flat_map { |mode, r| r["problems"].map { |p| "#{mode}: #{p}" } }
    if problems.empty?
      text << "" << "No wrk errors, wrong answers or failed children."
      md << "" << "No wrk errors, wrong answers or failed children."
    else
      text << "" << "!!! PROBLEMS:" << problems.map { |p| "!!! #{p}" }
      md << "" << "## PROBLEMS" << "" << problems.map { |p| "- **#{p}**" }
    end
    [text.flatten.join("\n"), "#{md.flatten.join("\n")}\n", problems]
  end

  def self.main(argv)
    options = parse_options(argv.dup)
    if options.child
      Child.new(options).run
      return 0
    end

    command_line = Bench.command_line(argv)
    abort "allocations.rb: wrk is not installed" unless Bench::Wrk.installed?
    machine = Bench::Provenance.machine
    versions = Bench::Provenance.versions(options.kino_root)
    fingerprint = Bench::Provenance.kino_fingerprint(options.kino_root)
    results = {}
    failures = []
    options.modes.each do |mode|
      Tempfile.create("kino-alloc-result") do |file|
        pid = Bench::Processes.spawn(child_env(options), *child_command(options, mode, file.path), chdir: ROOT)
        Process.wait(pid)
        Bench::Processes.forget(pid)
        status = $?
        data = File.size?(file.path) ? JSON.parse(File.read(file.path)) : nil
        if status.success? && data
          results[mode] = data
        else
          failures << "#{mode}: child #{status.inspect} #{'(no result)' unless data}"
        end
      end
    end
    after = Bench::Provenance.kino_fingerprint(options.kino_root)
    unless after == fingerprint
      failures << "Kino's code in #{options.kino_root} changed during the run (digest #{fingerprint} -> #{after}); " \
                  "measure an exported commit with --kino-root"
    end
    text, markdown, problems = render(options, command_line, machine, versions, results, failures)
    puts text
    Bench::Report.write(options.output, markdown,
                        { options: options.to_h, machine: machine, command: command_line, results: results,
                          problems: problems })
    puts "", "Written: #{options.output.delete_prefix("#{ROOT}/")} (and .json)"
    problems.empty? ? 0 : 1
  rescue Interrupt
    130
  ensure
    Bench::Processes.cleanup! unless options&.child
  end
end

Bench.run_script("allocations.rb") { BenchAllocations.main(ARGV) } if $PROGRAM_NAME == __FILE__
