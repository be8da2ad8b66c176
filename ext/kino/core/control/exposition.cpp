#include "control/exposition.hpp"

#include <charconv>
#include <cstdio>
#include <string_view>
#include <utility>
#include <vector>

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
  Family(std::string& out, std::string name, std::string_view type, std::string_view help)
      : out_(out), name_(std::move(name)) {
    out_ += "# HELP ";
    out_ += name_;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name_;
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
  std::string name_;
};

// Labels joined: `a="1",b="2"`, either side may be empty.
std::string join_labels(std::string_view a, std::string_view b) {
  if (a.empty()) return std::string(b);
  if (b.empty()) return std::string(a);
  return std::string(a) + "," + std::string(b);
}

std::string slot_labels(std::string_view row_labels, const SlotStats& s) {
  return join_labels(row_labels,
                     "slot=\"" + std::to_string(s.slot) + "\",worker=\"" + std::to_string(s.worker) + "\"");
}

void stats_fields(JsonObject& o, const ServerStats& s) {
  o.text("state", s.state);
  o.text("mode", s.mode);
  o.field("workers", s.workers);
  o.field("threads", s.threads);
  o.field("batch", s.batch);
  o.field("workers_up", s.workers_up);
  o.field("respawns", s.respawns);
  o.field("quarantined", s.quarantined);
  o.field("queued", s.queued);
  o.flag("lanes", s.lanes);
  if (s.lanes) o.field("lane_dispatched", s.lane_dispatched);
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
    if (s.lanes) row.field("lane_depth", s.slots[i].lane_depth);
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

// The families of one or more ServerStats, each family written once with
// a sample per row: `prefix` starts every name ("kino_", or "kino_group_"
// for a group's totals), `labels` tell the rows apart.
struct LabelledStats {
  std::string labels;
  const ServerStats* stats;
};

void stats_families(std::string& out, std::string_view prefix, const std::vector<LabelledStats>& rows) {
  auto name = [&](std::string_view suffix) { return std::string(prefix) + std::string(suffix); };
  {
    Family info(out, name("info"), "gauge", "The worker mode this server runs in (always 1).");
    for (const auto& r : rows) info.sample(1, join_labels(r.labels, "mode=\"" + r.stats->mode + "\""));
  }
  {
    Family ready(out, name("ready"), "gauge",
                 "1 while the server takes requests, 0 while booting or draining.");
    for (const auto& r : rows) ready.sample(r.stats->ready() ? 1 : 0, r.labels);
  }
  // The families with one sample a row, as a table.
  struct Scalar {
    const char* name;
    const char* type;
    const char* help;
    int64_t (*value)(const ServerStats&);
  };
  static const Scalar scalars[] = {
      {"workers", "gauge", "Workers configured.", [](const ServerStats& s) { return s.workers; }},
      {"workers_up", "gauge", "Workers running, as the supervisor last reported.",
       [](const ServerStats& s) { return s.workers_up; }},
      {"threads_per_worker", "gauge", "Request threads in each worker.",
       [](const ServerStats& s) { return s.threads; }},
      {"worker_respawns_total", "counter", "Workers restarted after a crash.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.respawns); }},
      {"quarantined_workers_total", "counter", "Stuck workers set aside and replaced.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.quarantined); }},
      {"queue_depth", "gauge", "Requests waiting for a worker.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.queued); }},
      {"requests_in_flight", "gauge", "Requests queued or with a worker, not yet answered.",
       [](const ServerStats& s) { return s.in_flight; }},
      {"requests_received_total", "counter", "Requests handed to the workers' queue.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.requests_received); }},
      {"requests_served_total", "counter", "Responses completed for requests the workers took.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.served); }},
      {"requests_rejected_total", "counter",
       "Requests answered by the server itself: bad requests, overload, shutdown.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.rejected); }},
      {"request_timeouts_total", "counter", "Requests and connections cut off by a deadline.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.timeouts); }},
      {"parse_errors_total", "counter", "Requests that could not be parsed.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.parse_errors); }},
      {"connections_accepted_total", "counter", "Client connections accepted.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.connections_accepted); }},
      {"connections_open", "gauge", "Client connections open now.",
       [](const ServerStats& s) { return s.connections_open; }},
      {"log_lines_dropped_total", "counter", "Log lines dropped because the log buffer was full.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.log_dropped); }},
      {"logger_lines_dropped_total", "counter",
       "Kino::Logger lines dropped because a logger's buffer was full or its file not writable.",
       [](const ServerStats& s) { return static_cast<int64_t>(s.logger_dropped); }},
  };
  for (const Scalar& m : scalars) {
    Family family(out, name(m.name), m.type, m.help);
    for (const auto& r : rows) family.sample(m.value(*r.stats), r.labels);
  }

  {
    Family wait(out, name("request_queue_seconds"), "histogram",
                "Time requests waited in the queue for a worker.");
    const auto& bounds = QueueWaitHistogram::kBoundsSeconds;
    for (const auto& r : rows) {
      const auto& h = r.stats->queue_wait;
      for (size_t i = 0; i < QueueWaitHistogram::kBuckets; ++i) {
        std::string le = i < bounds.size() ? number(bounds[i]) : std::string("+Inf");
        wait.sample(h.cumulative[i], join_labels(r.labels, "le=\"" + le + "\""), "_bucket");
      }
      wait.sample(h.sum_seconds, r.labels, "_sum");
      wait.sample(h.count, r.labels, "_count");
    }
  }

  bool any_slots = false;
  for (const auto& r : rows) any_slots = any_slots || !r.stats->slots.empty();
  if (!any_slots) return;
  {
    Family served(out, name("slot_requests_served_total"), "counter",
                  "Requests a worker thread slot answered.");
    for (const auto& r : rows)
      for (const auto& slot : r.stats->slots) served.sample(slot.served, slot_labels(r.labels, slot));
  }
  {
    Family busy(out, name("slot_busy"), "gauge", "1 while a worker thread slot holds an unanswered request.");
    for (const auto& r : rows)
      for (const auto& slot : r.stats->slots)
        busy.sample(slot.in_flight ? 1 : 0, slot_labels(r.labels, slot));
  }
  {
    Family age(out, name("slot_request_age_seconds"), "gauge",
               "How long a worker thread slot's current request has run (0 when idle).");
    for (const auto& r : rows)
      for (const auto& slot : r.stats->slots)
        age.sample(static_cast<double>(slot.busy_ms) / 1000.0, slot_labels(r.labels, slot));
  }
  bool any_lanes = false;
  for (const auto& r : rows) any_lanes = any_lanes || r.stats->lanes;
  if (!any_lanes) return;
  {
    Family dispatched(out, name("lane_dispatched_total"), "counter",
                      "Requests handed to a worker's lane (lanes true) instead of the queue.");
    for (const auto& r : rows) dispatched.sample(r.stats->lane_dispatched, r.labels);
  }
  {
    Family depth(out, name("slot_lane_depth"), "gauge", "Requests waiting in a worker thread slot's lane.");
    for (const auto& r : rows)
      for (const auto& slot : r.stats->slots) depth.sample(slot.lane_depth, slot_labels(r.labels, slot));
  }
}

// Rows that say something: a process claimed them and is not lost.
bool reported(const ProcessRow& row) { return row.pid != 0 && !row.stale; }

}  // namespace

std::string stats_json(const ServerStats& s) {
  std::string out;
  out.reserve(1024 + s.slots.size() * 80);
  {
    JsonObject o(out);
    stats_fields(o, s);
  }
  return out;
}

std::string metrics_text(const ServerStats& s) {
  std::string out;
  out.reserve(4096 + s.slots.size() * 300);
  stats_families(out, "kino_", {LabelledStats{{}, &s}});
  return out;
}

std::string group_stats_json(const GroupStats& g) {
  std::string out;
  size_t slots = 0;
  for (const auto& row : g.processes) slots += row.stats.slots.size();
  out.reserve(1024 * (1 + g.processes.size()) + slots * 80);
  {
    JsonObject o(out);
    stats_fields(o, g.totals);
    o.text("group", group_state_name(g.group));
    std::string& processes = o.key("processes");
    processes += '[';
    for (size_t i = 0; i < g.processes.size(); ++i) {
      const ProcessRow& row = g.processes[i];
      if (i) processes += ',';
      JsonObject p(processes);
      p.field("index", row.index);
      if (row.pid != 0)
        p.field("pid", row.pid);
      else
        p.key("pid") += "null";
      p.field("generation", row.generation);
      p.field("started_at", static_cast<double>(row.started_unix_ms) / 1000.0);
      stats_fields(p, row.stats);
    }
    processes += ']';
  }
  return out;
}

std::string group_metrics_text(const GroupStats& g) {
  std::string out;
  out.reserve(8192 * (1 + g.processes.size()));
  std::vector<LabelledStats> rows;
  int64_t running = 0;
  for (const auto& row : g.processes) {
    if (!reported(row)) continue;
    rows.push_back(LabelledStats{"process=\"" + std::to_string(row.index) + "\"", &row.stats});
    if (row.state != ProcessState::Stopped) ++running;
  }
  Family(out, "kino_group_processes", "gauge", "Server processes the group runs, as configured.")
      .sample(static_cast<int64_t>(g.processes.size()));
  Family(out, "kino_group_processes_running", "gauge",
         "Server processes booting, ready or draining now, as their rows on the board say.")
      .sample(running);
  Family(out, "kino_group_draining", "gauge", "1 once the group drains (every /ready answers 503).")
      .sample(g.group == GroupState::Draining ? 1 : 0);
  // The group's totals, then each process's own series.
  stats_families(out, "kino_group_", {LabelledStats{{}, &g.totals}});
  stats_families(out, "kino_", rows);
  return out;
}

}  // namespace kino
