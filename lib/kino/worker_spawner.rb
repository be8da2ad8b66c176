# frozen_string_literal: true

module Kino
  # What both kinds of worker spawner share: the arguments every worker
  # gets. A subclass decides what a worker is (a Thread or a Ractor) in
  # #spawn and how the Supervisor learns that one ended (#next_exit, #wake,
  # #close).
  class WorkerSpawner
    # +hooks+ are the configuration's WorkerHooks, by name; each worker gets
    # them as one frozen Hash, so a hook added to WorkerHooks::NAMES reaches
    # the workers with no change here.
    def initialize(server_id, app, threads:, hooks: {})
      @server_id = server_id
      @app = app
      @threads = threads
      @hooks = hooks.compact.freeze
    end

    private

    # Worker.run's arguments for worker +index+ whose first slot is
    # given; all of them shareable, so they can be handed to a Ractor as
    # they are.
    def worker_args(index, first_slot)
      [@server_id, @app, @threads, first_slot, @hooks, index]
    end
  end
end
