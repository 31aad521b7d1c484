// SPDX-License-Identifier: MIT
// The figures of the `stats` verb, and what is made of them: the JSON of a
// device's I/O totals, the Prometheus text format of a whole answer, and
// latency quantiles read from a histogram.
//
// One source: the daemon answers `stats` with JSON (docs/protocol.md), and
// both the Prometheus exporter and `ubdmsetup stats` render that answer,
// so the terminal, the scrape and the textfile can never disagree.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ubdm/io_stats.hpp"

namespace ubdm::metrics {

// {"read": {ios, bytes, errors, in_flight, latency: {sum_ns, counts}}, ...,
//  "requeues", "pushbacks", "queued", "pushed_back"} for the ops object and
// the per-device figures of the `stats` answer. counts[i] (i < 25) are the
// I/Os that took at most 2^i us and more than the bucket before; counts[25]
// the slower ones.
nlohmann::json io_totals_json(const IoTotals& t);

// The `stats` answer ({"devices": [...]}) in the Prometheus text exposition
// format (version 0.0.4): ubdm_* families, each with its HELP and TYPE once.
// Throws nlohmann's exceptions on an answer of another shape.
std::string render_prometheus(const nlohmann::json& answer);

// The upper bound, in microseconds, of the bucket holding quantile `q`
// (0 < q <= 1) of a latency histogram's counts; 0 if it is empty, and the
// last finite bound doubled when the quantile falls in the overflow bucket.
std::uint64_t latency_quantile_us(const nlohmann::json& counts, double q);

}  // namespace ubdm::metrics
