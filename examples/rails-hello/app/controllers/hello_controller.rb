# frozen_string_literal: true

# `/` answers text, `/hello.json` JSON; no views, no database.
class HelloController < ApplicationController
  def index
    render plain: "Hello from Rails #{Rails.version} on Kino\n"
  end

  def show
    render json: { hello: params.fetch(:name, "world"), rails: Rails.version, server: server_name }
  end

  private

  def server_name
    defined?(Kino::VERSION) ? "kino #{Kino::VERSION}" : "unknown"
  end
end
