# frozen_string_literal: true

require "kino"

# Kino::Native.server_create keeps no defaults: Ruby's table
# (Kino::Configuration::DEFAULTS) is the one source of them, and
# Kino::Server#native_options passes every key.
RSpec.describe "Kino::Native.server_create options" do
  let(:options) { NativeOptions.with }

  it "builds a server from the Hash Kino::Server passes" do
    id = Kino::Native.server_create(options)
    expect(Kino::Native.server_addresses(id)).to match([%r{\Atcp://127\.0\.0\.1:\d+\z}])
  ensure
    Kino::Native.server_release(id) if id
  end

  it "raises ArgumentError naming each option left out" do
    options.each_key do |key|
      expect { Kino::Native.server_create(options.except(key)) }
        .to raise_error(ArgumentError, "missing server option: #{key}")
    end
  end

  it "raises ArgumentError naming a number given as nil" do
    nil_allowed = %i[spool_dir request_timeout]
    numbers = options.select { |key, value| value.is_a?(Numeric) && !nil_allowed.include?(key) }
    expect(numbers.keys).to include(:io_threads, :first_data_timeout, :write_high_water)
    numbers.each_key do |key|
      expect { Kino::Native.server_create(options.merge(key => nil)) }
        .to raise_error(ArgumentError, "server option #{key} is nil: give a number")
    end
  end
end
