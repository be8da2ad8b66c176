# frozen_string_literal: true

# Kino's settings for this app, read by `bundle exec kino`,
# `bin/rails server -u kino` and `rackup -s kino` alike. Their -p and -b
# flags win over port and bind here.

port ENV.fetch("PORT", 3000)
# A booted Rails app cannot be shared between ractors
# (doc/rails-on-ractors.md), so it runs in threads: :auto would pick this
# too, after checking.
mode :threaded
workers 1
threads ENV.fetch("RAILS_MAX_THREADS", 3)
# Every core, as Puma's `workers ENV.fetch("WEB_CONCURRENCY")` gives it:
# WEB_CONCURRENCY=2 forks two server processes from one parent, which
# loads the app first so they share its memory (preload_app).
processes ENV.fetch("WEB_CONCURRENCY", 1)
# RACK_ENV for `bundle exec kino`; RAILS_ENV or RACK_ENV set by the deploy wins.
environment "production"
