# frozen_string_literal: true

require "open3"
require "rbconfig"

# Where the seam takes an Array of Strings, an element may be any object
# with to_str, and to_str is Ruby code that may change the Array itself.
# The native side must use what to_str returned, never read the element
# back from the Array. Each example runs in a child process: reading a
# non-String as a String crashes the VM.
RSpec.describe "Strings converted at the native seam" do
  def run_ruby(script)
    output, status = Open3.capture2e(RbConfig.ruby, "-I", File.join(ServerHelper::ROOT, "lib"), "-e", script)
    [output, status]
  end

  # An address whose to_str, if told to, empties the listen Array and puts
  # a Symbol in its place.
  def listen_script(mutate)
    <<~RUBY
      require "kino"
      listen = []
      address = Object.new
      address.define_singleton_method(:to_str) do
        if #{mutate}
          listen.clear
          listen << :gone
        end
        "tcp://127.0.0.1:0"
      end
      listen << address
      id = Kino::Native.server_create(#{NativeOptions.with.inspect}.merge(listen: listen))
      puts Kino::Native.server_addresses(id).inspect
      Kino::Native.server_release(id)
    RUBY
  end

  { "keeps" => false, "empties" => true }.each do |what, mutate|
    it "binds the address an object's to_str gives as a listen address (to_str #{what} the Array)" do
      output, status = run_ruby(listen_script(mutate))
      expect(status).to be_success, output
      expect(output).to match(%r{\A\["tcp://127\.0\.0\.1:\d+"\]\n\z})
    end
  end

  it "reports a worker's backtrace lines as their to_str gave them, whatever it did to the Array" do
    output, status = run_ruby(<<~RUBY)
      require "kino"
      id = Kino::Native.server_create(#{NativeOptions.with.inspect})
      lines = []
      line = Object.new
      line.define_singleton_method(:to_str) do
        lines.clear
        lines << 42
        "app.rb:1:in `call'"
      end
      lines << line << "app.rb:2"
      Kino::Native.server_worker_exited(id, 7, ["RuntimeError", "boom", lines])
      p Kino::Native.server_next_worker_exit(id)
      Kino::Native.server_release(id)
    RUBY
    expect(status).to be_success, output
    expect(output).to eq(%([7, ["RuntimeError", "boom", ["app.rb:1:in `call'", "app.rb:2"]]]\n))
  end
end
