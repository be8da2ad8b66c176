# frozen_string_literal: true

require "kino"

RSpec.describe Kino::WorkerHooks do
  it "takes the hooks that run inside workers from a configuration, and only those" do
    on_error = ->(_error, _env) {}
    boot = -> {}
    configuration = Kino::Configuration.new({ on_error: on_error, after_worker_boot: boot, after_boot: -> {},
                                              on_worker_exit: ->(_index, _error) {} },
                                            search_default_files: false).load
    hooks = described_class.of(configuration)
    expect(hooks).to eq(on_error: on_error, after_worker_boot: boot)
    expect(hooks[:on_error]).to equal(on_error)
  end

  it "names both, unset, for a configuration without them" do
    configuration = Kino::Configuration.new({}, search_default_files: false).load
    expect(described_class.of(configuration)).to eq(on_error: nil, after_worker_boot: nil)
  end
end
