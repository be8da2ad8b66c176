# frozen_string_literal: true

# Apps that no worker ractor can ever run, shared by the specs of the
# ractor check (which names what is in the way) and of the preparation
# (which refuses them). Each spec makes its own instance, so a preparation
# that fails part way freezes nothing another spec uses.
module UnshareableApps
  class HoldsMutex
    def initialize
      @lock = Mutex.new
    end

    def call(_env)
      @lock.synchronize { [200, { "content-type" => "text/plain" }, ["locked\n"]] }
    end
  end
end
