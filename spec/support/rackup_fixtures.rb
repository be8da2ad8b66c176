# frozen_string_literal: true

# The app a rackup file under spec/fixtures builds, as `kino` would load it.
module RackupFixtures
  def fixture_app(name)
    app = Rack::Builder.parse_file(File.join(ServerHelper::FIXTURES, name))
    app.is_a?(Array) ? app.first : app
  end
end
