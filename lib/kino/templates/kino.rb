# frozen_string_literal: true

# Kino configuration, written by `kino --init`.
#
# Kino reads this file when it starts from this directory (or from
# `kino -C path/to/kino.rb`). It is Ruby: each line below calls a directive.
# Every directive is commented out, with its default in the comment above
# it, so as written this file changes nothing; uncomment what you want to
# change. Flags on the command line win over this file. `kino --help` lists
# the flags, and the comments in Kino::DSL (lib/kino/dsl.rb) say more about
# each directive.
#
# Directives marked "not yet implemented" are accepted and checked, so a
# config written for the earlier Kino still loads, but do nothing yet.

# == Where to listen

# Address to listen on. Each bind adds one: HOST (with the port below),
# HOST:PORT, tcp://HOST:PORT, or unix://PATH (relative to this file).
# Default: "127.0.0.1", this machine only.
# bind "0.0.0.0"

# Port for binds that do not name their own. Default: 9292.
# port ENV.fetch("PORT", 9292)

# Length of the kernel's queue of connections not yet accepted. Default: 1024.
# backlog 1024

# == Processes

# Server processes forked from one parent, each with its own workers: what
# Puma calls `workers`. The parent binds once and supervises. Default: 1.
# processes 2

# With processes above 1, load the app in the parent before forking (the
# children share it copy-on-write); false loads it in each child instead.
# Default: true.
# preload_app true

# == The application

# Rackup file; `kino app.ru` on the command line wins. Default: "config.ru".
# rackup "config.ru"

# Sets RACK_ENV before the app loads, unless RACK_ENV is already set.
# Default: nil (RACK_ENV left alone).
# environment "production"

# Where to write the process id; Kino refuses to start while the process it
# names is alive, and replaces a stale one. Default: nil (no pidfile).
# pidfile "tmp/pids/kino.pid"

# == Workers

# How the app runs: :ractor (parallel Ruby, one ractor per worker),
# :threaded (threads in one ractor) or :auto (:ractor when sharing the app
# freezes nothing it made and may change; `kino --check` says). Default: :auto.
# mode :auto

# Workers: ractors in :ractor mode, thread groups in :threaded mode.
# Default: the available CPUs (Kino.available_parallelism: the affinity
# mask, capped by a container's CPU quota).
# workers ENV.fetch("WEB_CONCURRENCY", 4)

# Threads per worker (Puma's `threads min, max` works too: max is used).
# Default: 1 in :ractor mode, 3 in :threaded mode.
# threads 3

# Native threads that accept connections and parse HTTP. The earlier name
# for it, tokio_threads, still works. Default: the available CPUs (as
# for workers).
# io_threads 2

# == Load and limits

# Requests waiting for a worker at most; beyond it, 503. Default: 1024.
#
# queue_depth 1024

# Seconds a request waits for queue space before its 503. Default: 5.0.
#
# queue_timeout 5.0

# Seconds before the client gets 504 while the app runs on. Default: nil (off).
#
# request_timeout 30

# Descriptors for clients at most: open connections plus the spool files
# of their bodies; more clients wait in the kernel backlog.
# Default: nil, derived from the open-file limit.
# max_connections 4096

# Largest request body in bytes, 413 beyond it; nil or 0 for no limit.
# Default: 52428800 (50 MiB).
# max_body_size 50 * 1024 * 1024

# A request reaches the app once its whole body is here: in memory up to
# this many bytes, spooled to an unlinked file in $TMPDIR beyond it.
# Default: 114688 (112 KiB).
# body_buffer_size 112 * 1024

# Hand requests to the app at their head, the body streaming in while the
# app reads it (full-duplex apps); a slow upload then holds a worker.
# Default: false.
# stream_request_bodies true

# One frozen String per common request header value (User-Agent, Accept*,
# Host...; never credentials), shared by every request: fewer allocations,
# but an app that changes one in place gets a FrozenError.
# Default: false.
# intern_header_values true

# Bytes per second a request body must arrive at, averaged over windows
# (the first one is free); slower gets 408. nil or 0 for no minimum.
# Default: 1024.
# min_body_rate 1024

# Seconds each such window lasts. Default: 5.
# min_body_rate_window 5

# Bytes of request bodies on disk at once; an upload past it gets 503.
# nil or 0 for no limit. Default: 1073741824 (1 GiB).
# max_spool_size 1024 * 1024 * 1024

# Largest request head (request line and headers) in bytes, 431 beyond it.
# Default: 65536.
# max_header_size 65_536

# Longest request target in bytes, 414 beyond it. Default: 8192.
# max_uri_size 8192

# Most header fields in a request, 431 beyond it. Default: 100.
# max_headers 100

# Seconds from accept (or from the end of the previous response) until the
# request head is complete, however slowly its bytes dribble in; also the
# longest a request body or a response may stall. Then 408 and close.
# Default: 30.
# first_data_timeout 30

# Seconds an idle keep-alive connection stays open. Default: 20.
# persistent_timeout 20

# Seconds a graceful shutdown waits for requests in flight. Default: 30.
# shutdown_timeout 30

# == Experimental

# Requests a worker thread takes per queue visit, 1 to 64; each waits
# behind those before it. Default: 1.
# batch 1

# A lane of 4 requests per worker thread in front of the shared queue:
# requests go to awake workers, idle ones steal. Default: false.
# lanes false

# I/O shards: each I/O thread keeps the connections it was given.
# Default: false. Not yet implemented.
# io_shards true

# HTTP/2 besides HTTP/1.1. Default: false. Not yet implemented.
# http2 true

# Grow the pool past workers while requests wait, up to this many.
# Default: nil (a fixed pool). Not yet implemented.
# max_workers 16

# Seconds an extra worker sits idle before it retires. Default: 30.
# Not yet implemented.
# scale_down_after 30

# Native access log to stdout, a line per request. Default: false.
# log_requests true

# The access log's format, :text or :json. Default: :text.
# log_format :json

# HTTPS with this certificate and key (paths or PEM text); SIGHUP reloads
# them. Default: nil.
# tls cert: "config/tls/cert.pem", key: "config/tls/key.pem"

# Control endpoint with /stats, /metrics, /ready and /live, answered on a
# thread of its own. Default: nil.
# control_bind "127.0.0.1:9293"

# Bearer token required on /stats and /metrics. Default: nil.
# control_token ENV.fetch("KINO_CONTROL_TOKEN", "change-me")

# Seconds after which a worker stuck on one request is set aside (never
# killed) and a fresh worker started in its place. Default: nil (off).
#
# quarantine_timeout 60

# Most such replacements over the process's life. Default: nil, meaning the
# number of workers.
#
# quarantine_max 8

# == Hooks (a block, or any object that responds to #call)

# Called with (exception, env) when the app raises or its answer breaks the
# Rack contract, after the client has its 500. Default: nil (logged to
# stderr).
# on_error { |exception, _env| warn "#{exception.class}: #{exception.message}" }

# Runs on the main thread once the workers are up. Default: nil.
# after_boot { puts "kino is up" }

# Runs in each worker before it serves, with the worker's index; in
# :ractor mode it must only use shareable values. If it raises, the error
# is logged and the worker serves anyway. Default: nil.
# after_worker_boot { |index| warn "worker #{index} ready" }

# Runs in the worker once each response is queued for the client, with
# (env, status); status is 500 when the app failed. If it raises, it is
# logged and the response is unaffected. Default: nil.
# after_request_complete { |env, status| warn env["PATH_INFO"] if status >= 500 }

# Runs on the main ractor (a supervisor thread) when a worker ends, with
# (index, error or nil).
# Default: nil.
# on_worker_exit { |index, error| warn "worker #{index} exited: #{error.inspect}" if error }

# Runs in the parent before each child process is forked. Default: nil.
# before_fork { ActiveRecord::Base.connection_pool.disconnect! }

# Runs in each child process before its server starts, with its index;
# reconnect databases here. Default: nil.
# after_fork { |index| ActiveRecord::Base.establish_connection }
