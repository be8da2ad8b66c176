# frozen_string_literal: true

# Settings for examples/hello. `kino` reads ./kino.rb (or config/kino.rb)
# by itself; name another file with `kino -C path/to/kino.rb`.

port 9292
workers 2
threads 3
mode :threaded
