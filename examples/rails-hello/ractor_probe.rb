# frozen_string_literal: true

# Can this Rails app run in Kino's :ractor mode? Boots the app (production,
# eager loaded), then tries each way a worker ractor could get at it and
# prints every blocker it meets, going on past each one where it can:
#
#   1. share the booted app: Ractor.make_shareable(Rails.application);
#   2. walk what that would have to freeze, and list each kind of object
#      that can never be shared, and each block that cannot be;
#   3. call the app from a worker ractor: a copy of it, the one behind
#      Rails.application, and a Rails booted inside the ractor.
#
#   cd examples/rails-hello && bundle exec ruby ractor_probe.rb
#
# Steps 1 and 2 freeze objects as they go, so they run in a forked child;
# this process's app stays as it booted for step 3. Exit status 0 when the
# probe ran (whatever it found), 1 when it could not.
# doc/rails-on-ractors.md says what it found on Rails 7.2 and Ruby 3.1.

ENV["RAILS_ENV"] ||= "production"
ENV["SECRET_KEY_BASE"] ||= "ractor-probe-only-not-a-secret"
Warning[:experimental] = false # "Ractor is experimental", once per ractor

require_relative "config/environment"
require "kino/app_graph"
require "rack/mock"

# What one probe run found, and how it prints.
class RactorProbe
  LISTED_PER_KIND = 3 # example paths per class of never-shareable object
  LISTED_PROCS = 10

  def initialize(app, out: $stdout)
    @app = app
    @out = out
    @blockers = 0
  end

  def run
    say "ractor_probe: Rails #{Rails.version}, #{RUBY_DESCRIPTION}"
    say "app: #{@app.class}, Ractor.shareable? #{Ractor.shareable?(@app)}"
    in_child { share_the_app }
    call_from_a_ractor
    say ""
    say "ractor_probe: #{@blockers} blocker(s) found; " \
        "#{@blockers.zero? ? 'the app ran in a worker ractor' : 'the app cannot run in :ractor mode'}"
    0
  end

  private

  def say(line)
    @out.puts(line)
    @out.flush
  end

  def blocker(step, what)
    @blockers += 1
    say "  blocker #{step}: #{what}"
  end

  # -- 1 and 2: sharing --------------------------------------------------

  def share_the_app
    say ""
    say "1. Ractor.make_shareable(Rails.application)"
    begin
      Ractor.make_shareable(@app)
      say "  shared: nothing stood in the way"
    rescue StandardError => e
      blocker(1, "#{e.class}: #{one_line(e.message)}")
    end

    say ""
    say "2. What sharing would have to freeze (ivars, collections and blocks' selves, from the app)"
    never, procs, objects = survey
    say "  #{objects} unshareable objects reachable"
    never.each do |klass, paths|
      blocker(2, "#{paths.size} #{klass} (never shareable), e.g. at #{paths.first(LISTED_PER_KIND).join('; ')}")
    end
    unshareable_procs(procs)
  end

  # Walks the app's graph as make_shareable would, remembering one path
  # to each object: [never-shareable objects by class, procs, count].
  def survey
    never = Hash.new { |h, k| h[k] = [] }
    procs = []
    seen = {}.compare_by_identity
    queue = [[@app, "app"]]
    until queue.empty?
      obj, path = queue.shift
      next if seen[obj] || Ractor.shareable?(obj)

      seen[obj] = true
      kind = Kino::AppGraph::NEVER_SHAREABLE.find { |k| obj.is_a?(k) } || (Monitor if obj.is_a?(Monitor))
      never[kind] << path if kind
      procs << [obj, path] if obj.is_a?(Proc)
      next if obj.is_a?(Module)

      Kino::AppGraph.children(obj).each { |step, child| queue << [child, "#{path}#{describe(step)}"] }
    end
    [never.sort_by { |_, paths| -paths.size }, procs, seen.size]
  end

  # Each block that cannot be made shareable on its own, grouped by where
  # it was written and what Ruby says about it (its self, or a variable it
  # captured).
  def unshareable_procs(procs)
    groups = Hash.new { |h, k| h[k] = [] }
    procs.each do |proc, path|
      Ractor.make_shareable(proc)
    rescue StandardError => e
      where = short(proc.source_location&.join(":") || "(native)")
      groups[[where, reason_of(e)]] << path
    end
    say "  #{procs.size} blocks reachable, #{groups.values.sum(&:size)} cannot be shared"
    groups.sort_by { |_, paths| -paths.size }.first(LISTED_PROCS).each do |(where, reason), paths|
      blocker(2, "#{paths.size} block(s) from #{where}: #{reason}; e.g. at #{paths.first}")
    end
    say "  (#{groups.size - LISTED_PROCS} more places not listed)" if groups.size > LISTED_PROCS
  end

  # The message without the object's inspect, which differs per object.
  def reason_of(error)
    one_line(error.message).sub(/: #<.*\z/, "").sub(/ #<[^>]*>/, "")
  end

  def describe(step)
    case step
    in [:at, i] then "[#{i}]"
    in [:value_of, k] then "[#{k.inspect[0, 40]}]"
    in [:key, _] then ".key"
    in [:member, k] then ".#{k}"
    in [:self] then ".self"
    in [:default_proc] then ".default_proc"
    in [:default] then ".default"
    else ".#{step}"
    end
  end

  # -- 3: calling from a worker ractor -------------------------------------

  def call_from_a_ractor
    say ""
    say "3. Calling the app from a worker ractor"
    control = ractor_value(Ractor.new { [200, "a ractor answers"] })
    say "  control: a plain ractor answers #{control.inspect}"

    attempt("a copy of the app, passed to Ractor.new") do
      Ractor.new(@app) { |app| app.call(Rack::MockRequest.env_for("/")).first }
    end
    attempt("Rails.application inside the ractor") do
      Ractor.new do
        Thread.current.report_on_exception = false
        ::Rails.application.call(::Rack::MockRequest.env_for("/")).first
      end
    end
    attempt("HelloController's action inside the ractor") do
      Ractor.new do
        Thread.current.report_on_exception = false
        ::HelloController.action(:index).call(::Rack::MockRequest.env_for("/")).first
      end
    end
    attempt("booting another copy of the app inside the ractor") do
      Ractor.new(File.expand_path("config/environment", __dir__)) do |path|
        Thread.current.report_on_exception = false
        require path
        ::Rails.application.call(::Rack::MockRequest.env_for("/")).first
      end
    end
  end

  # Runs a ractor; its error comes back through Ractor#take (each ractor
  # turns off its thread's own report of it, which would repeat it on
  # stderr).
  def attempt(what)
    status = ractor_value(yield)
    say "  #{what}: answered #{status}"
    blocker(3, "#{what}: answered #{status}, not 200") unless status == 200
  rescue StandardError => e
    cause = e.respond_to?(:cause) && e.cause ? e.cause : e
    where = (cause.backtrace || []).find { |line| !line.include?("<internal:") }
    blocker(3, "#{what}: #{cause.class}: #{one_line(cause.message)}#{" (#{short(where)})" if where}")
  end

  # Ractor#take until Ruby 3.5, Ractor#value after (Ruby 4.0 has no take).
  def ractor_value(ractor)
    ractor.respond_to?(:value) ? ractor.value : ractor.take
  end

  # -- helpers -------------------------------------------------------------

  def one_line(text)
    text.to_s.lines.first.to_s.strip[0, 300]
  end

  # A path relative to the gem or app it is in.
  def short(location)
    location.to_s.sub(%r{\A.*/gems/}, "").sub("#{__dir__}/", "")
  end

  # Runs the block in a forked child that prints what it finds; the
  # blockers it counted come back on a pipe.
  def in_child
    reader, writer = IO.pipe
    pid = fork do
      reader.close
      yield
      writer.write(@blockers.to_s)
      exit!(0)
    rescue StandardError => e
      say "  the probe failed here: #{e.class}: #{one_line(e.message)}"
      exit!(1)
    end
    writer.close
    count = reader.read
    Process.wait(pid)
    @blockers = Integer(count, exception: false) || @blockers
  ensure
    reader&.close
  end
end

exit RactorProbe.new(Rails.application).run
