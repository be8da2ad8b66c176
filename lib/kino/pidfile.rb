# frozen_string_literal: true

require_relative "errors"

module Kino
  # A pidfile claimed for this process alone:
  #
  #   pidfile = Kino::Pidfile.claim("tmp/pids/kino.pid") # or raises ClaimError
  #   pidfile.release
  #
  # The file is created with O_EXCL, so of two processes that claim it at
  # once exactly one wins, and with O_NOFOLLOW: a symlink at the path (or
  # planted in place of a stale file) is refused, never written through.
  # A file already there is left alone while the process it names is alive
  # (Process.kill(0); EPERM, a process of another user, counts as alive),
  # and replaced otherwise: a stale pid, an empty or unreadable file, our
  # own pid (in a container, a restarted server gets the pid it had).
  #
  # Only the process that claimed the file releases it, and only while it
  # still holds its pid: a fork child (the ractor check forks) leaves the
  # parent's file alone, and a file something else rewrote is not ours.
  # At exit the claim is released too, for a server never shut down.
  class Pidfile
    # Raised when the file cannot be claimed; the message names the file and
    # why, for the operator as it stands (the CLI prints it as it is).
    class ClaimError < Error; end

    # World-readable: monitoring, logrotate scripts and `kill $(cat ...)`
    # often run as another user.
    MODE = 0o644
    CREATE_FLAGS = File::WRONLY | File::CREAT | File::EXCL | File::NOFOLLOW
    READ_FLAGS = File::RDONLY | File::NOFOLLOW | File::NONBLOCK
    # A pid is a handful of digits; anything longer is not a pidfile.
    READ_LIMIT = 64
    # Past a pid_t; 0 and negative numbers would signal process groups.
    PID_MAX = (2**31) - 1
    # A claimant writes its pid right after creating the file; an empty file
    # is read again for this long before it counts as stale.
    EMPTY_GRACE = 0.2
    EMPTY_RECHECK = 0.01
    # How long another claimant may hold a stale file while it replaces it.
    LOCK_WAIT = 2.0

    attr_reader :path, :pid, :replaced

    def self.claim(path)
      new(path).claim
    end

    def initialize(path)
      @path = path.to_s
      @pid = nil
      @replaced = nil # what a stale file said, once replaced ("pid 123 is not running")
    end

    # Writes our pid to the file, replacing a stale one; returns self.
    # Raises ClaimError while another live process holds it, or when the
    # path is a symlink or not a plain file, or cannot be written.
    def claim
      raise ClaimError, "pidfile #{@path} is already claimed by this process" if @pid

      pid = Process.pid
      replace_stale(pid) unless create(pid)
      @pid = pid
      at_exit { release }
      self
    end

    # Removes the file if this process claimed it and it still holds our
    # pid; otherwise leaves it as it is. Safe to call more than once.
    def release
      return unless @pid == Process.pid

      File.unlink(@path) if read_pid_once == @pid
      @pid = nil
    rescue SystemCallError
      @pid = nil # gone already, or no longer ours to remove
    end

    # A zero-downtime restart: the file now names +pid+, the new `kino`
    # this process started, written whole under a temporary name and
    # renamed into place; this process no longer removes it at exit.
    def hand_over(pid)
      return unless claimed?

      temporary = "#{@path}.#{Process.pid}.tmp"
      File.open(temporary, CREATE_FLAGS, MODE) { |file| file.write("#{pid}\n") }
      File.rename(temporary, @path)
      @pid = nil
    rescue SystemCallError => e
      File.unlink(temporary) if temporary && File.exist?(temporary)
      refuse("cannot hand pidfile #{@path} over to pid #{pid}", e)
    end

    # The new `kino` of a restart takes over the file its predecessor
    # wrote its pid into (#hand_over): it removes it at exit from now on.
    def self.adopt(path)
      new(path).adopt
    end

    def adopt
      @pid = Process.pid
      at_exit { release }
      self
    end

    def claimed?
      !@pid.nil? && @pid == Process.pid
    end

    private

    # True once the file is ours; false if something is at the path.
    def create(pid)
      created = false
      File.open(@path, CREATE_FLAGS, MODE) do |file|
        created = true
        file.chmod(MODE) # whatever the umask
        file.write("#{pid}\n")
      end
      true
    rescue Errno::EEXIST
      false
    rescue SystemCallError, IOError => e
      remove_unwritten if created
      refuse("cannot #{created ? 'write' : 'create'} pidfile #{@path}", e)
    end

    def remove_unwritten
      File.unlink(@path)
    rescue SystemCallError
      nil
    end

    # Something is at the path. Under an exclusive lock on it (so two
    # claimants never both replace it), it is checked to still be at the
    # path, read, and if its process is gone, unlinked and created anew;
    # a claimant that created it meanwhile wins and we refuse. A file that
    # moved while we looked is looked at again, a few times at most.
    def replace_stale(pid, attempts = 3)
      moved = File.open(@path, READ_FLAGS) do |file|
        refuse_not_regular unless file.stat.file?
        lock(file)
        next true unless same_file?(file)

        holder = read_pid(file)
        refuse_live(holder) if alive?(holder)
        File.unlink(@path)
        refuse_winner unless create(pid)
        @replaced = stale_reason(holder)
        false
      end
      claim_again(pid, attempts) if moved
    rescue Errno::ELOOP
      refuse_symlink
    rescue Errno::ENXIO # a socket
      refuse_not_regular
    rescue Errno::ENOENT
      claim_again(pid, attempts)
    rescue SystemCallError => e
      refuse("cannot read pidfile #{@path}", e)
    end

    def stale_reason(holder)
      if holder.nil? then "it held no pid"
      elsif holder == Process.pid then "it held this process's pid, from before it started"
      else "pid #{holder} is not running"
      end
    end

    def claim_again(pid, attempts)
      refuse_winner if attempts.zero?
      replace_stale(pid, attempts - 1) unless create(pid)
    end

    def lock(file)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + LOCK_WAIT
      until file.flock(File::LOCK_EX | File::LOCK_NB)
        if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
          raise ClaimError, "pidfile #{@path} is locked by another process (one replacing it?); try again"
        end

        sleep EMPTY_RECHECK
      end
    end

    def same_file?(file)
      at_path = File.lstat(@path)
      opened = file.stat
      at_path.dev == opened.dev && at_path.ino == opened.ino
    rescue Errno::ENOENT
      false
    end

    # The pid in +file+, or nil for an empty or garbled one. An empty file
    # may be a claimant's, between its create and its write.
    def read_pid(file)
      deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + EMPTY_GRACE
      loop do
        return parse(file.pread(READ_LIMIT, 0)) if file.size.positive?
        return nil if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline

        sleep EMPTY_RECHECK
      end
    rescue EOFError # truncated while we looked
      nil
    end

    def read_pid_once
      File.open(@path, READ_FLAGS) { |file| file.stat.file? ? parse(file.read(READ_LIMIT).to_s) : nil }
    rescue SystemCallError
      nil
    end

    def parse(text)
      pid = Integer(text.strip, 10)
      pid.between?(1, PID_MAX) ? pid : nil
    rescue ArgumentError
      nil
    end

    # Our own pid is not another process's: a file naming it was written
    # by a process that had our pid before (a restarted container).
    def alive?(pid)
      return false if pid.nil? || pid == Process.pid

      Process.kill(0, pid)
      true
    rescue Errno::EPERM
      true
    rescue Errno::ESRCH
      false
    end

    def refuse_live(holder)
      raise ClaimError, "pidfile #{@path} belongs to process #{holder}, which is running: is Kino already " \
                        "running? Stop it first (or, if that process is not Kino, remove #{@path})"
    end

    def refuse_winner
      holder = read_pid_once
      by = holder ? "process #{holder}" : "another process"
      raise ClaimError, "pidfile #{@path} was claimed by #{by} while this one replaced a stale file there"
    end

    def refuse_symlink
      target = begin
        " (to #{File.readlink(@path)})"
      rescue SystemCallError
        ""
      end
      raise ClaimError, "pidfile #{@path} is a symbolic link#{target}; Kino does not write through one: " \
                        "remove it, or name a plain file"
    end

    def refuse_not_regular
      raise ClaimError, "pidfile #{@path} is not a regular file (#{File.lstat(@path).ftype}); " \
                        "remove it, or name a plain file"
    end

    def refuse(what, error)
      raise ClaimError, "#{what}: #{error.message.split(' @ ').first}"
    end
  end
end
