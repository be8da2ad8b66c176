#include "control/exposition.hpp"

#include <charconv>
#include <cstdio>
#include <string_view>

namespace kino {

namespace {

// The shortest fixed-point text that reads back as the same double:
// 0.0005, 2.5, 10.
std::string number(double value) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value, std::chars_format::fixed);
  return ec == std::errc() ? std::string(buf, end) : std::string("0");
}

template <class Int>
std::string number(Int value) {
  return std::to_string(value);
}

// The only strings are the mode and fixed names; escaped all the same.
void json_string(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned char>(c));
      out += esc;
    } else {
      out += c;
    }
  }
  out += '"';
}

class JsonObject {
 public:
  explicit JsonObject(std::string& out) : out_(out) { out_ += '{'; }
  ~JsonObject() { out_ += '}'; }
  JsonObject(const JsonObject&) = delete;
  JsonObject& operator=(const JsonObject&) = delete;

  // The key written, for a value the caller appends itself.
  std::string& key(std::string_view name) {
    if (!first_) out_ += ',';
    first_ = false;
    json_string(out_, name);
    out_ += ':';
    return out_;
  }
  template <class Number>
  void field(std::string_view name, Number value) {
    key(name) += number(value);
  }
  void text(std::string_view name, std::string_view value) { json_string(key(name), value); }
  void flag(std::string_view name, bool value) { key(name) += value ? "true" : "false"; }

 private:
  std::string& out_;
  bool first_ = true;
};

// One metric family: HELP and TYPE once, then its samples.
class Family {
 public:
  Family(std::string& out, std::string_view name, std::string_view type, std::string_view help)
      : out_(out), name_(name) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  template <class Number>
  Family& sample(Number value, std::string_view labels = {}, std::string_view suffix = {}) {
    out_ += name_;
    out_ += suffix;
    if (!labels.empty()) {
      out_ += '{';
      out_ += labels;
      out_ += '}';
    }
    out_ += ' ';
    out_ += number(value);
    out_ += '\n';
    return *this;
  }

 private:
  std::string& out_;
  std::string_view name_;
};

std::string slot_labels(const SlotStats& s) {
  return "slot=\"" + std::to_string(s.slot) + "\",worker=\"" + std::to_string(s.worker) + "\"";
}

}  // namespace

std::string stats_json(const ServerStats& s) {
  std::string out;
  out.reserve(1024 + s.slots.size() * 80);
  {
    JsonObject o(out);
    o.text("state", s.state);
    o.text("mode", s.mode);
    o.field("workers", s.workers);
    o.field("threads", s.threads);
    o.field("workers_up", s.workers_up);
    o.field("respawns", s.respawns);
    o.field("quarantined", s.quarantined);
    o.field("queued", s.queued);
    o.field("in_flight", s.in_flight);
    o.field("served", s.served);
    o.field("rejected", s.rejected);
    o.field("timeouts", s.timeouts);
    o.field("parse_errors", s.parse_errors);
    o.field("requests_received", s.requests_received);
    o.field("connections_accepted", s.connections_accepted);
    o.field("connections_open", s.connections_open);
    o.field("log_dropped", s.log_dropped);
    o.field("logger_dropped", s.logger_dropped);
    o.field("spooled_bytes", s.spooled_bytes);
    o.field("spool_files", s.spool_files);
    std::string& slots = o.key("slots");
    slots += '[';
    for (size_t i = 0; i < s.slots.size(); ++i) {
      if (i) slots += ',';
      JsonObject row(slots);
      row.field("slot", s.slots[i].slot);
      row.field("worker", s.slots[i].worker);
      row.field("served", s.slots[i].served);
      row.flag("in_flight", s.slots[i].in_flight);
      row.field("busy_ms", s.slots[i].busy_ms);
    }
    slots += ']';
    std::string& wait = o.key("queue_wait");
    JsonObject histogram(wait);
    std::string& buckets = histogram.key("buckets");
    buckets += '[';
    const auto& bounds = QueueWaitHistogram::kBoundsSeconds;
    for (size_t i = 0; i < QueueWaitHistogram::kBuckets; ++i) {
      if (i) buckets += ',';
      JsonObject bucket(buckets);
      if (i < bounds.size())
        bucket.field("le", bounds[i]);
      else
        bucket.text("le", "+Inf");
      bucket.field("count", s.queue_wait.cumulative[i]);
    }
    buckets += ']';
    histogram.field("count", s.queue_wait.count);
    histogram.field("sum", s.queue_wait.sum_seconds);
  }
  return out;
}

std::string metrics_text(const ServerStats& s) {
  std::string out;
  out.reserve(4096 + s.slots.size() * 300);
  Family(out, "kino_info", "gauge", "The worker mode this server runs in (always 1).")
      .sample(1, "mode=\"" + s.mode + "\"");
  Family(out, "kino_ready", "gauge", "1 while the server takes requests, 0 while booting or draining.")
      .sample(s.ready() ? 1 : 0);
  // The families with one sample and no labels, as a table.
  struct Scalar {
    const char* name;
    const char* type;
    const char* help;
    int64_t value;
  };
  auto count = [](uint64_t v) { return static_cast<int64_t>(v); };
  const Scalar scalars[] = {
      {"kino_workers", "gauge", "Workers configured.", s.workers},
      {"kino_workers_up", "gauge", "Workers running, as the supervisor last reported.", s.workers_up},
      {"kino_threads_per_worker", "gauge", "Request threads in each worker.", s.threads},
      {"kino_worker_respawns_total", "counter", "Workers restarted after a crash.", count(s.respawns)},
      {"kino_quarantined_workers_total", "counter", "Stuck workers set aside and replaced.",
       count(s.quarantined)},
      {"kino_queue_depth", "gauge", "Requests waiting for a worker.", count(s.queued)},
      {"kino_requests_in_flight", "gauge", "Requests queued or with a worker, not yet answered.",
       s.in_flight},
      {"kino_requests_received_total", "counter", "Requests handed to the workers' queue.",
       count(s.requests_received)},
      {"kino_requests_served_total", "counter", "Responses completed for requests the workers took.",
       count(s.served)},
      {"kino_requests_rejected_total", "counter",
       "Requests answered by the server itself: bad requests, overload, shutdown.", count(s.rejected)},
      {"kino_request_timeouts_total", "counter", "Requests and connections cut off by a deadline.",
       count(s.timeouts)},
      {"kino_parse_errors_total", "counter", "Requests that could not be parsed.", count(s.parse_errors)},
      {"kino_connections_accepted_total", "counter", "Client connections accepted.",
       count(s.connections_accepted)},
      {"kino_connections_open", "gauge", "Client connections open now.", s.connections_open},
      {"kino_log_lines_dropped_total", "counter", "Log lines dropped because the log buffer was full.",
       count(s.log_dropped)},
      {"kino_logger_lines_dropped_total", "counter",
       "Kino::Logger lines dropped because a logger's buffer was full or its file not writable.",
       count(s.logger_dropped)},
  };
  for (const Scalar& m : scalars) Family(out, m.name, m.type, m.help).sample(m.value);

  Family wait(out, "kino_request_queue_seconds", "histogram",
              "Time requests waited in the queue for a worker.");
  const auto& bounds = QueueWaitHistogram::kBoundsSeconds;
  for (size_t i = 0; i < QueueWaitHistogram::kBuckets; ++i) {
    std::string le = i < bounds.size() ? number(bounds[i]) : std::string("+Inf");
    wait.sample(s.queue_wait.cumulative[i], "le=\"" + le + "\"", "_bucket");
  }
  wait.sample(s.queue_wait.sum_seconds, {}, "_sum");
  wait.sample(s.queue_wait.count, {}, "_count");

  if (!s.slots.empty()) {
    Family served(out, "kino_slot_requests_served_total", "counter",
                  "Requests a worker thread slot answered.");
    for (const auto& slot : s.slots) served.sample(slot.served, slot_labels(slot));
    Family busy(out, "kino_slot_busy", "gauge", "1 while a worker thread slot holds an unanswered request.");
    for (const auto& slot : s.slots) busy.sample(slot.in_flight ? 1 : 0, slot_labels(slot));
    Family age(out, "kino_slot_request_age_seconds", "gauge",
               "How long a worker thread slot's current request has run (0 when idle).");
    for (const auto& slot : s.slots)
      age.sample(static_cast<double>(slot.busy_ms) / 1000.0, slot_labels(slot));
  }
  return out;
}

}  // namespace kino
