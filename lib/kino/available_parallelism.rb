# frozen_string_literal: true

require "etc"

# Kino.available_parallelism, and the reading of the machine behind it.
module Kino
  # How many CPUs this process may really use: the CPUs its affinity mask
  # allows (Etc.nprocessors counts them on Linux: sched_getaffinity), capped
  # by the CPU quota of its cgroup, as a container's `--cpus` or a
  # Kubernetes CPU limit sets it. A quota of 1.5 CPUs counts as 2: the
  # process may run on two CPUs at once, for three quarters of the time.
  #
  #   Kino::AvailableParallelism.new.count   # => 2 (in a container with --cpus=1.5)
  #
  # The cgroup is read from files only: /proc/self/cgroup names it,
  # /proc/self/mountinfo says where its hierarchy is mounted. cgroup v2's
  # `cpu.max` is read first, then cgroup v1's `cpu.cfs_quota_us` and
  # `cpu.cfs_period_us`, in the process's cgroup and each one above it up to
  # the mount (a parent's quota binds its children too); the smallest
  # quota wins. Whatever is missing or unreadable counts as no quota: this
  # never raises.
  class AvailableParallelism
    # What Ruby 3.3 and later, with M:N threads, take when RUBY_MAX_CPU is
    # unset or not a positive number (thread_pthread.c,
    # ruby_mn_threads_params, through Ruby 4.0).
    RUBY_MAX_CPU_DEFAULT = 8

    # The most ractors whose Ruby code this Ruby runs at the same time, or
    # nil when it has no such cap. Ruby 3.3 brought the M:N thread scheduler
    # (on every platform with epoll or kqueue, so not on Windows): non-main
    # ractors share at most RUBY_MAX_CPU native threads, read once at boot
    # with atoi; Ruby 3.1 and 3.2 give each ractor thread its own native
    # thread.
    def self.ruby_max_cpu(env: ENV, ruby_version: RUBY_VERSION, platform: RUBY_PLATFORM)
      return nil if Gem::Version.new(ruby_version) < Gem::Version.new("3.3") || platform.match?(/mswin|mingw/)

      # atoi: leading blanks and a sign, then digits; anything else is 0.
      given = env["RUBY_MAX_CPU"].to_s[/\A[ \t\n\v\f\r]*[-+]?\d+/].to_i
      given.positive? ? given : RUBY_MAX_CPU_DEFAULT
    end

    # +proc+ is where /proc is; the mount points that its mountinfo names
    # are looked up under +root+ (specs point both into a directory of
    # their own). +affinity+ is the CPU count before any quota.
    def initialize(proc: "/proc", root: "/", affinity: nil)
      @proc = proc
      @root = root
      @affinity = affinity
    end

    # The CPUs the process may use, at least 1.
    def count
      cpus = affinity
      quota = cpu_quota
      cpus = [cpus, quota.ceil].min if quota
      [cpus, 1].max
    end

    # The cgroup CPU quota as a number of CPUs (Rational), or nil for none.
    def cpu_quota
      cgroup_v2_quota || cgroup_v1_quota
    end

    private

    def affinity
      @affinity || Etc.nprocessors
    rescue NotImplementedError, SystemCallError
      1
    end

    # cpu.max holds "QUOTA PERIOD" in microseconds, or "max PERIOD".
    def cgroup_v2_quota
      path = cgroups["0"]&.dig(:path)
      mount = mounts.find { |m| m[:type] == "cgroup2" }
      return nil unless path && mount

      cgroup_directories(mount, path).filter_map do |directory|
        quota, period = read(File.join(directory, "cpu.max"))&.split
        ratio(quota, period) unless quota == "max"
      end.min
    end

    # cpu.cfs_quota_us is -1 when there is no quota.
    def cgroup_v1_quota
      entry = cgroups.values.find { |cgroup| cgroup[:controllers].include?("cpu") }
      mount = mounts.find { |m| m[:type] == "cgroup" && m[:options].include?("cpu") }
      return nil unless entry && mount

      cgroup_directories(mount, entry[:path]).filter_map do |directory|
        ratio(read(File.join(directory, "cpu.cfs_quota_us")), read(File.join(directory, "cpu.cfs_period_us")))
      end.min
    end

    # QUOTA / PERIOD, both positive integers, or nil.
    def ratio(quota, period)
      quota = Integer(quota, 10, exception: false) if quota
      period = Integer(period, 10, exception: false) if period
      return nil unless quota&.positive? && period&.positive?

      Rational(quota, period)
    end

    # The process's cgroup directory under +mount+, then each one above it
    # up to the mount point. The hierarchy's root as the mount shows it
    # (mountinfo's root field: "/" outside a container, or the container's
    # own cgroup in a private cgroup namespace) is taken off the path first;
    # a path outside that root leaves only the mount point.
    def cgroup_directories(mount, path)
      relative = if mount[:root] == "/"
                   path
                 elsif path == mount[:root] || path.start_with?("#{mount[:root]}/")
                   path.delete_prefix(mount[:root])
                 else
                   ""
                 end
      parts = relative.split("/").reject(&:empty?)
      return [] if parts.include?("..")

      base = File.join(@root, mount[:point])
      (0..parts.size).map { |depth| File.join(base, *parts.first(parts.size - depth)) }
    end

    # /proc/self/cgroup, one line a hierarchy: "ID:CONTROLLERS:PATH"
    # ("0::/PATH" is cgroup v2's). Keyed by ID.
    def cgroups
      @cgroups ||= (read(File.join(@proc, "self/cgroup")) || "").each_line.filter_map do |line|
        id, controllers, path = line.chomp.split(":", 3)
        next unless path&.start_with?("/")

        [id, { controllers: controllers.split(","), path: path }]
      end.to_h
    end

    # /proc/self/mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...]
    # - TYPE SOURCE SUPER_OPTIONS", paths with octal escapes ("\040").
    def mounts
      @mounts ||= (read(File.join(@proc, "self/mountinfo")) || "").each_line.filter_map do |line|
        fields, separator, filesystem = line.chomp.partition(" - ")
        next if separator.empty?

        _id, _parent, _device, root, point = fields.split
        type, _source, options = filesystem.split
        next unless point && options

        { root: unescape(root), point: unescape(point), type: type, options: options.split(",") }
      end
    end

    def unescape(path)
      path.gsub(/\\([0-7]{3})/) { Regexp.last_match(1).to_i(8).chr }
    end

    def read(path)
      File.read(path).strip
    rescue SystemCallError, IOError
      nil
    end
  end

  # The CPUs this process may really use (see AvailableParallelism): the
  # default for `workers` and `io_threads`.
  def self.available_parallelism
    AvailableParallelism.new.count
  end
end
