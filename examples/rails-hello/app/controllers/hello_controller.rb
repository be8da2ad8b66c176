# frozen_string_literal: true

# `/` answers text, `/hello.json` JSON; no views, no database. The JSON
# names the process that answered, which tells the processes of a group
# (WEB_CONCURRENCY) apart.
class HelloController < ApplicationController
  def index
    render plain: "Hello from Rails #{Rails.version} on Kino\n"
  end

  def show
    render json: { hello: params.fetch(:name, "world"), rails: Rails.version, server: server_name,
                   pid: Process.pid }
  end

  private

  # Puma says who it is in SERVER_SOFTWARE; Kino does not, but the app's
  # bundle loads it (bench/rails.rb runs Puma on this app too).
  def server_name
    request.get_header("SERVER_SOFTWARE") || (defined?(Kino::VERSION) ? "kino #{Kino::VERSION}" : "unknown")
  end
end
