# frozen_string_literal: true

require "kino"

RSpec.describe Kino::WorkerHooks do
  it "takes the hooks that run inside workers from a configuration, and only those" do
    on_error = ->(_error, _env) {}
    boot = -> {}
    completed = ->(_env, _status) {}
    configuration = Kino::Configuration.new({ on_error: on_error, after_worker_boot: boot, after_boot: -> {},
                                              after_request_complete: completed,
                                              on_worker_exit: ->(_index, _error) {} },
                                            search_default_files: false).load
    hooks = described_class.of(configuration)
    expect(hooks).to eq(on_error: on_error, after_worker_boot: boot, after_request_complete: completed)
    expect(hooks[:on_error]).to equal(on_error)
  end

  it "names each, unset, for a configuration without them" do
    configuration = Kino::Configuration.new({}, search_default_files: false).load
    expect(described_class.of(configuration)).to eq(on_error: nil, after_worker_boot: nil, after_request_complete: nil)
  end
end
