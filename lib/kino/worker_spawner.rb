# frozen_string_literal: true

module Kino
  # What both kinds of worker spawner share: the arguments every worker
  # gets. A subclass decides what a worker is (a Thread or a Ractor) in
  # #spawn and how the Supervisor learns that one ended (#next_exit, #wake,
  # #close).
  class WorkerSpawner
    def initialize(server_id, app, threads:, on_error: nil, after_worker_boot: nil, after_request_complete: nil)
      @server_id = server_id
      @app = app
      @threads = threads
      @on_error = on_error
      @after_worker_boot = after_worker_boot
      @after_request_complete = after_request_complete
    end

    private

    # Worker.run's arguments for worker +index+ whose first slot is
    # given; all of them shareable, so they can be handed to a Ractor as
    # they are.
    def worker_args(index, first_slot)
      [@server_id, @app, @threads, first_slot, @on_error, @after_worker_boot, @after_request_complete, index]
    end
  end
end
