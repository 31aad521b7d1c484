// SPDX-License-Identifier: MIT
// A mapping table: targets sorted by start sector, contiguous from sector 0.
// Immutable once built; shared between the control thread and the queue
// threads through shared_ptr<const Table>.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ubdm/target.hpp"

namespace ubdm {

// One line of dm table text: "<start> <len> <type> [args...]".
struct TableLine {
  sector_t start = 0;
  sector_t len = 0;
  std::string type;
  std::vector<std::string> args;
  unsigned line_no = 0;  // 1-based, for error messages
};

// Split `text` into words as the kernel's dm_split_args() splits a target's
// parameters and a message: any run of whitespace separates words, and a
// backslash makes the character after it part of the word, whatever it is
// (a backslash at the very end stays a backslash). Tables and messages both
// go through it, so what dmsetup would send means the same to ubdm.
std::vector<std::string> split_args(std::string_view text);

// Parse dm table text (one target per line; blank lines and lines starting
// with '#' are skipped). Throws ubdm::Error naming the line and the problem.
std::vector<TableLine> parse_table_text(std::string_view text);

// A FLUSH is fanned out as "flush units": (target, index) pairs.
struct FlushUnit {
  std::uint32_t target;  // index into the table's targets
  std::uint32_t index;   // 0 .. num_flush_clones()-1
};

class Table {
 public:
  // Validate and construct every target. Checks, with a precise message:
  // at least one target, no gaps, no overlaps, known types, singleton rules,
  // and whatever each target's constructor checks (arguments, devices).
  // Nothing is kept if any step fails (constructed targets are destroyed).
  static std::unique_ptr<Table> build(const std::vector<TableLine>& lines, DeviceOpener& opener,
                                      DeviceContext& device, const Clock& clock);

  // Sectors covered; the device size when this table is live.
  sector_t size() const { return size_; }
  std::size_t target_count() const { return targets_.size(); }
  Target& target(std::size_t i) const { return *targets_[i]; }

  // The target holding `sector`, or nullptr beyond the end. O(log n).
  Target* find(sector_t sector) const;
  std::size_t find_index(sector_t sector) const;  // targets_.size() when beyond

  const std::vector<FlushUnit>& flush_units() const { return flush_units_; }

  // "start len type params" per target, as dmsetup table/status print them.
  std::vector<std::string> status_lines(StatusType type) const;

  // Underlying devices of all targets, each once.
  std::vector<const BlockDevice*> devices() const;

  // Limits stacked over every underlying device, then each target's io_hints.
  IoLimits io_limits() const;

  // True if any target's type is `name`.
  bool has_target_type(std::string_view name) const;

  // The first target that needs_cpu_data(), or nullptr.
  const Target* needing_cpu_data() const;

 private:
  Table() = default;
  std::vector<std::unique_ptr<Target>> targets_;
  std::vector<sector_t> starts_;  // parallel to targets_, for binary search
  std::vector<FlushUnit> flush_units_;
  sector_t size_ = 0;
};

using TablePtr = std::shared_ptr<const Table>;

}  // namespace ubdm
