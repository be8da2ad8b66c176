# frozen_string_literal: true

Rails.application.configure do
  config.enable_reloading = false
  config.consider_all_requests_local = false
  config.log_level = :info
  # Kino::Logger writes from a native thread, so a request never waits on
  # the terminal or the disk; TaggedLogging wraps it as it wraps any Logger.
  config.logger = ActiveSupport::TaggedLogging.new(Kino::Logger.new($stdout))
  config.log_tags = [:request_id]
  config.active_support.report_deprecations = false
end
