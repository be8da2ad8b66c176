# frozen_string_literal: true

require "etc"
require "rbconfig"
require "kino/available_parallelism"

# Each example writes a /proc and a cgroup tree of its own, as the kernel
# lays them out, into a fresh directory, and reads it with the real parser;
# the last ones read this machine's.
RSpec.describe Kino::AvailableParallelism do
  include_context "in a fresh directory"

  # The mountinfo lines of the layouts Kino meets. Fields: id, parent,
  # device, root, mount point, options, optional tags, "-", type, source,
  # super options.
  let(:v2_mount) do
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 " \
      "rw,nsdelegate,memory_recursiveprot\n"
  end
  let(:v1_mount) do
    "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup " \
      "rw,cpu,cpuacct\n"
  end
  # cgroup v1 and v2 side by side (systemd's hybrid layout): v2 mounted at
  # unified/ without the cpu controller.
  let(:hybrid_mounts) do
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" \
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n#{v1_mount}"
  end

  # The reader of a machine whose /proc/self/cgroup is +cgroup+ and whose
  # mountinfo is +mountinfo+, with +files+ (paths as the machine has them,
  # contents) under its root, and 8 CPUs in its affinity mask.
  def machine(cgroup:, mountinfo:, files: {}, affinity: 8)
    write("proc/self/cgroup", cgroup)
    write("proc/self/mountinfo", mountinfo)
    files.each { |path, content| write(path, "#{content}\n") }
    described_class.new(proc: File.join(@dir, "proc"), root: @dir, affinity: affinity)
  end

  def v2_machine(path, quotas, **options)
    files = quotas.to_h { |directory, quota| [File.join("sys/fs/cgroup", directory, "cpu.max"), quota] }
    machine(cgroup: "0::#{path}\n", mountinfo: v2_mount, files: files, **options)
  end

  def v1_machine(quota, period = 100_000, cgroup: "4:cpu,cpuacct:/\n", mountinfo: nil)
    machine(cgroup: "12:pids:/\n#{cgroup}1:name=systemd:/\n", mountinfo: mountinfo || v1_mount,
            files: { "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us" => quota,
                     "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us" => period })
  end

  describe "under cgroup v2 (cpu.max)" do
    pod = "/kubepods.slice/pod1/cri-abc"

    it "rounds a fractional quota up: 1.5 CPUs may run on 2 at once" do
      expect(v2_machine(pod, { pod => "150000 100000" }).count).to eq(2)
    end

    it "takes the affinity mask's count when the quota is max" do
      expect(v2_machine(pod, { pod => "max 100000" }).count).to eq(8)
    end

    it "gives at least 1 for a quota under one CPU" do
      expect(v2_machine(pod, { pod => "20000 100000" }).count).to eq(1)
    end

    it "takes the smallest quota of the process's cgroup and those above it" do
      reader = v2_machine(pod, { pod => "400000 100000", "/kubepods.slice/pod1" => "300000 100000",
                                 "/kubepods.slice" => "max 100000" })
      expect(reader.count).to eq(3)
      expect(reader.cpu_quota).to eq(3)
    end

    it "reads a container's own cgroup namespace, where the process's cgroup is the mount's root" do
      expect(v2_machine("/", { "/" => "250000 100000" }).count).to eq(3)
    end

    it "never counts more than the affinity mask allows" do
      expect(v2_machine(pod, { pod => "400000 100000" }, affinity: 1).count).to eq(1)
    end

    it "finds a mount point written with octal escapes" do
      reader = machine(cgroup: "0::/app\n", mountinfo: "30 23 0:26 / /cgroup\\040root rw - cgroup2 cgroup2 rw\n",
                       files: { "cgroup root/app/cpu.max" => "100000 100000" })
      expect(reader.count).to eq(1)
    end
  end

  describe "under cgroup v1 (cpu.cfs_quota_us, cpu.cfs_period_us)" do
    it "divides the quota by the period, rounding up" do
      expect(v1_machine(250_000).count).to eq(3)
      expect(v1_machine(50_000, 25_000).count).to eq(2)
    end

    it "takes the affinity mask's count when the quota is -1" do
      expect(v1_machine(-1).count).to eq(8)
    end

    it "maps the process's cgroup onto a mount whose root is that cgroup (Docker without a cgroup namespace)" do
      docker = "/docker/0123abcd"
      mount = "32 31 0:29 #{docker} /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct\n"
      expect(v1_machine(200_000, cgroup: "4:cpu,cpuacct:#{docker}\n", mountinfo: mount).count).to eq(2)
    end

    it "is read when cgroup v2 is mounted beside it without the cpu controller (the hybrid layout)" do
      expect(v1_machine(100_000, cgroup: "4:cpu,cpuacct:/\n0::/\n", mountinfo: hybrid_mounts).count).to eq(1)
    end
  end

  describe "where something is missing or unreadable" do
    it "takes the affinity mask's count, and raises nothing" do
      readers = {
        "no /proc at all" => described_class.new(proc: File.join(@dir, "none"), root: @dir, affinity: 8),
        "no cgroup mount" => machine(cgroup: "0::/app\n", mountinfo: "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"),
        "no cpu.max" => v2_machine("/app", {}),
        "a cpu.max that says nothing Kino reads" => v2_machine("/app", { "/app" => "lots 100000" }),
        "a zero period" => v1_machine(100_000, 0),
        "a path that climbs out of the mount" => v2_machine("/../outside", { "/" => "100000 100000" }),
        "a line without the separator" => machine(cgroup: "0::/\n", mountinfo: "30 23 0:26 / /sys/fs/cgroup rw\n")
      }
      expect(readers.transform_values(&:count)).to eq(readers.transform_values { 8 })
    end

    it "takes the affinity mask's count where cpu.max cannot be read (a directory stands in its place)" do
      reader = v2_machine("/app", {})
      FileUtils.mkdir_p(File.join(@dir, "sys/fs/cgroup/app/cpu.max"))
      expect(reader.count).to eq(8)
    end
  end

  describe "on this machine" do
    # What `Kino.available_parallelism` prints in a child process that
    # +command+ (taskset, say) starts.
    def count_in_child(*command)
      reader, writer = IO.pipe
      lib = File.expand_path("../lib", __dir__)
      pid = Process.spawn(*command, RbConfig.ruby, "-I", lib, "-rkino/available_parallelism",
                          "-e", "print Kino.available_parallelism", out: writer, err: writer)
      writer.close
      output = reader.read
      Process.wait(pid)
      output
    ensure
      reader&.close
    end

    it "counts at least 1 and no more than the affinity mask allows" do
      expect(Kino.available_parallelism).to be_between(1, Etc.nprocessors)
      expect(described_class.new.count).to eq(Kino.available_parallelism)
    end

    it "counts 1 in a process that taskset binds to CPU 0" do
      skip "taskset (util-linux) is not installed" unless system("taskset", "-V", out: File::NULL, err: File::NULL)

      expect(count_in_child("taskset", "-c", "0")).to eq("1")
      expect(count_in_child).to eq(Kino.available_parallelism.to_s)
    end
  end

  describe ".ruby_max_cpu" do
    # Ruby 3.3's ruby_mn_threads_params: atoi(RUBY_MAX_CPU) when positive, else 8.
    it "reads RUBY_MAX_CPU as Ruby 3.3 and later do" do
      read = ->(value) { described_class.ruby_max_cpu(env: { "RUBY_MAX_CPU" => value }, ruby_version: "3.3.8") }
      expected = { nil => 8, "4" => 4, " 12cpus" => 12, "0" => 8, "-2" => 8, "many" => 8 }
      expect(expected.keys.to_h { |value| [value, read.call(value)] }).to eq(expected)
      expect(described_class.ruby_max_cpu(env: {}, ruby_version: "4.0.5")).to eq(8)
    end

    it "is nil where Ruby has no such cap: before 3.3, and on Windows" do
      expect(described_class.ruby_max_cpu(env: { "RUBY_MAX_CPU" => "2" }, ruby_version: "3.1.2")).to be_nil
      expect(described_class.ruby_max_cpu(env: { "RUBY_MAX_CPU" => "2" }, ruby_version: "3.2.9")).to be_nil
      expect(described_class.ruby_max_cpu(env: {}, ruby_version: "3.3.8", platform: "x64-mingw-ucrt")).to be_nil
    end
  end
end
