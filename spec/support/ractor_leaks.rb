# frozen_string_literal: true

# Each example leaves the process with as many ractors as it found. A
# stopped server's workers end a moment after it returns (each reports its
# end from an ensure, then its ractor finishes), and on a loaded CI machine
# that moment was long enough for the next example to find them running:
# :auto and `mode :ractor` then could not check the app in a forked child,
# and that example failed instead. So the wait is here, once the servers
# are stopped; a ractor still running past it is a leak, and the example
# that made it fails, saying where the ractor was made.
module RactorLeaks
  SETTLE_TIMEOUT = 10

  def settle_ractors(count_before)
    wait_until(timeout: SETTLE_TIMEOUT,
               message: -> { "ractors still running after the example: #{living_ractors.join(', ')}" }) do
      Ractor.count <= count_before
    end
  end

  private

  # Ractor#inspect names where each was made: "#<Ractor:#7 file:12 blocking>".
  def living_ractors
    ObjectSpace.each_object(Ractor).reject { |r| r == Ractor.main }.map(&:inspect)
               .reject { |s| s.end_with?(" terminated>") }
  end
end
