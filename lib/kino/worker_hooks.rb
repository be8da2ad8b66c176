# frozen_string_literal: true

module Kino
  # The configuration's hooks that run inside workers, by name: what each
  # worker is handed, and what :ractor mode must make shareable along with
  # the app. The other hooks (after_boot, on_worker_exit) run on the main
  # ractor.
  module WorkerHooks
    NAMES = %i[on_error after_worker_boot after_request_complete].freeze

    # { on_error: ..., after_worker_boot: ..., after_request_complete: ... }
    # from +configuration+.
    def self.of(configuration)
      NAMES.to_h { |name| [name, configuration[name]] }
    end
  end
end
