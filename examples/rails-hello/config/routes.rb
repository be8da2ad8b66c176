# frozen_string_literal: true

Rails.application.routes.draw do
  root "hello#index"
  get "/hello.json", to: "hello#show", defaults: { format: :json }
end
