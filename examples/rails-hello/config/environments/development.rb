# frozen_string_literal: true

Rails.application.configure do
  config.enable_reloading = false # eager loaded, as in production (config/application.rb)
  config.consider_all_requests_local = true
end
