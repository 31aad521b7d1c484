// SPDX-License-Identifier: MIT
#include "metrics/device_stats.hpp"

#include <cmath>
#include <map>
#include <vector>

#include <fmt/format.h>

namespace ubdm::metrics {

using json = nlohmann::json;

json io_totals_json(const IoTotals& t) {
  json ops = json::object();
  for (std::size_t i = 0; i < kStatOps; ++i) {
    const OpIoTotals& o = t.ops[i];
    ops[kStatOpNames[i]] = {{"ios", o.completed},
                            {"bytes", o.bytes},
                            {"errors", o.errors},
                            {"in_flight", o.in_flight()},
                            {"latency", {{"sum_ns", o.latency_ns_sum}, {"counts", o.latency}}}};
  }
  return {{"ops", ops},
          {"requeues", t.requeues},
          {"pushbacks", t.pushbacks},
          {"queued", t.waiting_requeue},
          {"pushed_back", t.pushed_back}};
}

std::uint64_t latency_quantile_us(const json& counts, double q) {
  std::uint64_t total = 0;
  for (const auto& c : counts) {
    total += c.get<std::uint64_t>();
  }
  if (total == 0) {
    return 0;
  }
  // The rank of the quantile, 1-based: the smallest count that reaches q.
  const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    seen += counts[i].get<std::uint64_t>();
    if (seen >= rank && seen > 0) {
      return i < kLatencyBounds ? latency_bound_us(i) : 2 * latency_bound_us(kLatencyBounds - 1);
    }
  }
  return 2 * latency_bound_us(kLatencyBounds - 1);
}

namespace {

// A label value as the text format wants it: backslash, quote and newline escaped.
std::string escape(const std::string& v) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

struct Labels {
  std::vector<std::pair<std::string, std::string>> kv;
  Labels with(std::string k, std::string v) const {
    Labels l = *this;
    l.kv.emplace_back(std::move(k), std::move(v));
    return l;
  }
  std::string text() const {
    if (kv.empty()) {
      return "";
    }
    std::string s = "{";
    for (std::size_t i = 0; i < kv.size(); ++i) {
      s += fmt::format("{}{}=\"{}\"", i == 0 ? "" : ",", kv[i].first, escape(kv[i].second));
    }
    return s + "}";
  }
};

// Families are written whole (HELP, TYPE, then every sample), in the order
// they were first declared, as the text format asks.
class Exposition {
 public:
  void sample(const std::string& family, const char* type, const char* help, const std::string& suffix,
              const Labels& labels, double value) {
    auto [it, fresh] = index_.try_emplace(family, families_.size());
    if (fresh) {
      families_.push_back({family, type, help, {}});
    }
    families_[it->second].lines += fmt::format("{}{}{} {}\n", family, suffix, labels.text(), number(value));
  }
  void counter(const std::string& name, const char* help, const Labels& l, double v) {
    sample(name, "counter", help, "", l, v);
  }
  void gauge(const std::string& name, const char* help, const Labels& l, double v) {
    sample(name, "gauge", help, "", l, v);
  }
  std::string text() const {
    std::string out;
    for (const auto& f : families_) {
      out += fmt::format("# HELP {} {}\n# TYPE {} {}\n{}", f.name, f.help, f.name, f.type, f.lines);
    }
    return out;
  }

 private:
  static std::string number(double v) {
    if (std::isinf(v)) {
      return v > 0 ? "+Inf" : "-Inf";
    }
    // Integers print whole (counters of bytes exceed a float's exact
    // digits only past 2^53, which no counter here reaches in practice).
    if (v == std::floor(v) && std::fabs(v) < 1e15) {
      return fmt::format("{:.0f}", v);
    }
    return fmt::format("{}", v);
  }
  struct Family {
    std::string name;
    const char* type;
    const char* help;
    std::string lines;
  };
  std::vector<Family> families_;
  std::map<std::string, std::size_t> index_;
};

double num(const json& v) { return v.is_null() ? 0.0 : v.get<double>(); }

void render_device(Exposition& e, const json& d) {
  const Labels dev = Labels{}.with("device", d.at("name").get<std::string>());
  e.gauge("ubdm_device_info", "Each device, with its UUID and block device, as labels.",
          dev.with("uuid", d.value("uuid", "")).with("blockdev", d.value("blockdev", "")), 1);
  e.gauge("ubdm_device_suspended", "1 while the device is suspended or suspending (I/O held).", dev,
          d.at("suspended").get<bool>() ? 1 : 0);
  e.counter("ubdm_device_events_total", "Device events (dm's event_nr).", dev, num(d.at("event_nr")));
  e.gauge("ubdm_device_size_bytes", "Size of the device.", dev, num(d.at("size_bytes")));

  const json& io = d.at("io");
  for (const char* op : kStatOpNames) {  // Op's order, not JSON's alphabetical one
    const json& o = io.at("ops").at(op);
    const Labels l = dev.with("op", op);
    e.counter("ubdm_io_total", "I/Os completed, by operation.", l, num(o.at("ios")));
    e.counter("ubdm_io_bytes_total", "Bytes of the I/Os completed, by operation.", l, num(o.at("bytes")));
    e.counter("ubdm_io_errors_total", "I/Os completed with an error, by operation.", l, num(o.at("errors")));
    e.gauge("ubdm_io_in_flight", "I/Os started and not completed, by operation.", l, num(o.at("in_flight")));
    const json& lat = o.at("latency");
    const json& counts = lat.at("counts");
    const char* help = "Time from the kernel's request to its completion, by operation.";
    double cumulative = 0;
    for (std::size_t i = 0; i < counts.size(); ++i) {
      cumulative += num(counts[i]);
      const std::string le =
          i < kLatencyBounds ? fmt::format("{:g}", static_cast<double>(latency_bound_us(i)) / 1e6) : "+Inf";
      e.sample("ubdm_io_latency_seconds", "histogram", help, "_bucket", l.with("le", le), cumulative);
    }
    e.sample("ubdm_io_latency_seconds", "histogram", help, "_sum", l, num(lat.at("sum_ns")) / 1e9);
    e.sample("ubdm_io_latency_seconds", "histogram", help, "_count", l, cumulative);
  }
  e.counter("ubdm_io_requeues_total", "I/O pieces a target asked to map again.", dev, num(io.at("requeues")));
  e.gauge("ubdm_io_queued", "I/O pieces waiting out a requeue delay (multipath: queued while no path is usable).",
          dev, num(io.at("queued")));
  e.gauge("ubdm_io_pushed_back", "I/O pieces held by a noflush suspend until the resume.", dev,
          num(io.at("pushed_back")));

  for (const json& p : d.value("paths", json::array())) {
    const Labels l = dev.with("path", p.at("path").get<std::string>())
                         .with("dev_t", p.at("device").get<std::string>())
                         .with("group", std::to_string(p.at("group").get<unsigned>()));
    e.gauge("ubdm_path_up", "1 if the path is in use, 0 while it is failed.", l,
            p.at("state").get<std::string>() == "active" ? 1 : 0);
    e.counter("ubdm_path_failures_total", "Times the path was failed (I/O error, checker or message).", l,
              num(p.at("fail_count")));
    e.counter("ubdm_path_reinstates_total", "Times the path was reinstated.", l, num(p.at("reinstate_count")));
    e.counter("ubdm_path_io_total", "I/Os sent on the path.", l, num(p.at("ios")));
    e.gauge("ubdm_path_in_flight", "I/Os on the path now.", l, num(p.at("in_flight")));
    e.gauge("ubdm_path_checker", "The path checker's last verdict, as a label (always 1).",
            l.with("state", p.at("checker").get<std::string>()), 1);
  }
}

}  // namespace

std::string render_prometheus(const json& answer) {
  Exposition e;
  const json& devices = answer.at("devices");
  e.gauge("ubdm_devices", "Devices ubdmd serves.", {}, static_cast<double>(devices.size()));
  for (const json& d : devices) {
    render_device(e, d);
  }
  return e.text();
}

}  // namespace ubdm::metrics
