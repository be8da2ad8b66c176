# frozen_string_literal: true

require "kino"

RSpec.describe Kino::BacktraceFormatter do
  let(:root) { Dir.pwd }

  # An ArgumentError raised +depth+ calls down, so its backtrace is at
  # least that long.
  def raised(depth)
    depth.zero? ? raise(ArgumentError, "bad") : raised(depth - 1)
  rescue ArgumentError => e
    e
  end

  def with_backtrace(frames, error = RuntimeError.new("broke"))
    error.set_backtrace(frames)
    error
  end

  # Frames as Ruby 3.1 writes them, and as 3.4 and later do.
  let(:frames31) do
    ["#{root}/app/models/order.rb:12:in `total'",
     "/usr/lib/ruby/gems/3.1.0/gems/rack-3.0.0/lib/rack/lint.rb:60:in `call'",
     "#{root}/app/controllers/orders.rb:5:in `block in show'",
     "#{Kino::BacktraceFormatter::KINO_LIB}/kino/request_loop.rb:60:in `serve'",
     "<internal:kernel>:90:in `tap'"]
  end
  let(:frames34) do
    ["#{root}/app/models/order.rb:12:in 'Order#total'",
     "/usr/lib/ruby/gems/3.4.0/gems/rack-3.0.0/lib/rack/lint.rb:60:in 'Rack::Lint#call'",
     "#{root}/app/controllers/orders.rb:5:in 'block in OrdersController#show'",
     "#{Kino::BacktraceFormatter::KINO_LIB}/kino/request_loop.rb:60:in 'Kino::RequestLoop#serve'",
     "<internal:kernel>:90:in 'Kernel#tap'"]
  end

  { "3.1" => :frames31, "3.4" => :frames34 }.each do |ruby, frames|
    context "with Ruby #{ruby}'s backtrace format" do
      it "shows the app's own frames first, relative to the working directory, and folds the rest" do
        backtrace = send(frames)
        text = described_class.format("headline", with_backtrace(backtrace))
        expect(text.lines).to eq(["headline\n",
                                  "    #{backtrace[0].delete_prefix("#{root}/")}\n",
                                  "    #{backtrace[2].delete_prefix("#{root}/")}\n",
                                  "    … 3 more\n"])
      end

      it "says a failed request in one line, with the app's frame nearest the raise" do
        error = with_backtrace(send(frames), KeyError.new("no price\nsecond line"))
        expect(described_class.request_headline("500", "GET", "/orders/7", error))
          .to eq("500 GET /orders/7 · KeyError: no price (app/models/order.rb:12)")
      end
    end
  end

  it "names the first frame when none is the app's" do
    error = with_backtrace(["/usr/lib/ruby/gems/3.1.0/gems/x-1/lib/x.rb:3:in `y'"])
    expect(described_class.request_headline("500", "POST", "/", error))
      .to eq("500 POST / · RuntimeError: broke (/usr/lib/ruby/gems/3.1.0/gems/x-1/lib/x.rb:3)")
  end

  it "keeps the first 30 frames, folding the rest, when none is the app's" do
    gem_frames = Array.new(40) { |i| "/gems/x/lib/x.rb:#{i}:in `m'" }
    lines = described_class.format("deep", with_backtrace(gem_frames)).lines
    expect(lines.size).to eq(1 + 30 + 1)
    expect(lines[30]).to eq("    /gems/x/lib/x.rb:29:in `m'\n")
    expect(lines.last).to eq("    … 10 more\n")
  end

  it "shows a real backtrace's frames from this file, relative" do
    error = raised(3)
    lines = described_class.format("real", error).lines
    here = __FILE__.delete_prefix("#{root}/")
    raise_line = method(:raised).source_location[1] + 1
    expect(lines[1]).to start_with("    #{here}:#{raise_line}:in ")
    expect(lines.drop(1).reject { |l| l.include?("more") }).to all(start_with("    spec/"))
  end

  it "is the headline alone for an exception never raised" do
    expect(described_class.format("made, not raised", RuntimeError.new("x"))).to eq("made, not raised\n")
    expect(described_class.request_headline("500", "GET", "/",
                                            RuntimeError.new("x"))).to eq("500 GET / · RuntimeError: x")
  end
end
