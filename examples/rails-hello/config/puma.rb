# frozen_string_literal: true

# Puma's settings for this app, read by `bundle exec puma` (and by
# bench/rails.rb, which measures a Puma cluster against Kino on it; its
# -w, -t and -b flags win over these).

port ENV.fetch("PORT", 3000)
threads_count = Integer(ENV.fetch("RAILS_MAX_THREADS", 3))
threads threads_count, threads_count
# A cluster of WEB_CONCURRENCY forked workers; 0: one process.
workers Integer(ENV.fetch("WEB_CONCURRENCY", 0))
environment "production"
