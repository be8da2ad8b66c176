# frozen_string_literal: true

module Bench
  # What a report says about where its numbers come from: the machine, the
  # versions measured, and a digest of the Kino code loaded.
  module Provenance
    module_function

    def machine
      model = File.foreach("/proc/cpuinfo").find { |l| l.start_with?("model name") }
      cpu = model && model.split(":", 2).last.strip
      {
        nproc: Etc.nprocessors,
        cpu: cpu || "unknown",
        kernel: File.read("/proc/sys/kernel/osrelease").strip,
        ruby: RUBY_DESCRIPTION,
        loadavg: File.read("/proc/loadavg").split.first(3).join(" ")
      }
    end

    def machine_line(machine)
      "Machine: #{machine[:nproc]} cores (nproc), CPU #{machine[:cpu]}, Linux #{machine[:kernel]}, " \
        "load average at start #{machine[:loadavg]}"
    end

    # A digest of the Kino code a run loads: lib/ (with the compiled
    # extension) and ext/ sources of the checkout. Compared before and after
    # a session, it shows when someone rebuilt or edited Kino mid-run, which
    # would make the rounds measure different code.
    def kino_fingerprint(root)
      files = Dir.glob(File.join(root, "{lib,ext}", "**", "*")).select { |f| File.file?(f) }
                 .reject { |f| f.end_with?(".o") || f.include?("/ext/kino/test/") }.sort
      digest = Digest::SHA256.new
      files.each do |f|
        digest << f.delete_prefix(root) << "\0" << File.binread(f)
      rescue SystemCallError
        digest << f << "\0(unreadable)"
      end
      digest.hexdigest[0, 12]
    end

    def versions(root)
      wrk = `wrk --version 2>&1`[/wrk \S+/] || "wrk ?"
      kino = File.read(File.join(root, "lib", "kino", "version.rb"))[/VERSION\s*=\s*"([^"]+)"/, 1]
      commit = `git -C #{root.shellescape} rev-parse --short HEAD 2>/dev/null`.strip
      where = if commit.empty?
                "from #{root} (not a git checkout)"
              else
                clean = `git -C #{root.shellescape} status --porcelain 2>/dev/null`.strip.empty?
                dirty = clean ? "" : ", uncommitted changes"
                "@ #{commit}#{dirty}#{" in #{root}" unless root == ROOT}"
              end
      "kino #{kino} #{where} (code digest #{kino_fingerprint(root)}), " \
        "puma #{Gem.loaded_specs['puma']&.version || '?'}, #{wrk}"
    end
  end
end
