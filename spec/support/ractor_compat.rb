# frozen_string_literal: true

# The one place the suite meets a Ractor API that differs between Rubies.
# Ruby 4.0 removed Ractor#take and Ractor.yield (Ractor#value and
# Ractor::Port replace them); up to 3.4 there is no Ractor#value.
module RactorCompat
  # What +ractor+'s block returned, once it has ended.
  def ractor_value(ractor)
    ractor.respond_to?(:value) ? ractor.value : ractor.take
  end
end

RSpec.configure do |config|
  config.include RactorCompat
end
