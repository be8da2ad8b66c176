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

# config/environments/production.rb logs through Kino::Logger, whose
# writer threads, like every thread, are not copied by a fork: a worker
# would queue its lines for a writer that is not there. Kino's own
# `processes` pauses the writers around each fork and starts them again
# on both sides; a Puma cluster is told to do the same here.
before_worker_fork { Kino::Native.logger_pause_all if defined?(Kino::Native) }
after_worker_fork { Kino::Native.logger_resume_all if defined?(Kino::Native) }
before_worker_boot { Kino::Native.logger_resume_all if defined?(Kino::Native) }
