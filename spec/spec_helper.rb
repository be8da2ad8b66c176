# frozen_string_literal: true

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))

Dir[File.join(__dir__, "support", "**", "*.rb")].sort.each { |f| require f }

RSpec.configure do |config|
  config.disable_monkey_patching!
  config.expect_with(:rspec) { |c| c.syntax = :expect }
  config.order = :random
  Kernel.srand config.seed

  config.include WaitHelper
  config.include ClientHelper
  config.include ServerHelper
  config.include KinoProcessHelper
  config.include RactorLeaks
  config.before { @ractors_before = Ractor.count }
  # Clients first, so that no server waits on a connection an example
  # still holds open; signal files last, as a server may still read them.
  config.after do
    close_clients
    stop_servers
    stop_kino_processes
    remove_signal_files
    settle_ractors(@ractors_before)
  end
end
