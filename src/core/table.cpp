// SPDX-License-Identifier: MIT
// Table text parsing and table construction/validation.
#include "ubdm/table.hpp"

#include <algorithm>
#include <limits>
#include <set>

#include "targets/target_args.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

// isspace() in the "C" locale, as the kernel's.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

// The largest device we accept: sector numbers must fit the kernel's u64 and
// byte offsets must not overflow either.
constexpr sector_t kMaxSectors = std::numeric_limits<std::uint64_t>::max() >> kSectorShift;

}  // namespace

std::vector<std::string> split_args(std::string_view text) {
  std::vector<std::string> words;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_space(text[i])) {
      ++i;
    }
    if (i == text.size()) {
      break;
    }
    std::string word;
    while (i < text.size() && !is_space(text[i])) {
      if (text[i] == '\\' && i + 1 < text.size()) {
        ++i;  // the escaped character is taken as it is, even a space
      }
      word += text[i++];
    }
    words.push_back(std::move(word));
  }
  return words;
}

std::vector<TableLine> parse_table_text(std::string_view text) {
  std::vector<TableLine> lines;
  unsigned line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    const std::string_view raw = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (raw.find('\0') != std::string_view::npos) {
      fail_invalid("table line {}: contains a NUL byte", line_no);
    }
    std::vector<std::string> words = split_args(raw);
    if (words.empty() || words[0][0] == '#') {
      continue;
    }
    if (words.size() < 3) {
      fail_invalid("table line {}: expected \"<start> <length> <target> [args...]\", got \"{}\"", line_no,
                   raw);
    }
    TableLine line;
    line.line_no = line_no;
    if (!parse_u64(words[0], line.start)) {
      fail_invalid("table line {}: invalid start sector '{}'", line_no, words[0]);
    }
    if (!parse_u64(words[1], line.len)) {
      fail_invalid("table line {}: invalid length '{}'", line_no, words[1]);
    }
    if (line.len == 0) {
      fail_invalid("table line {}: zero-length target", line_no);
    }
    if (line.start > kMaxSectors || line.len > kMaxSectors - line.start) {
      fail_invalid("table line {}: target {}+{} runs past the largest supported sector", line_no, line.start,
                   line.len);
    }
    line.type = std::move(words[2]);
    line.args.assign(std::make_move_iterator(words.begin() + 3), std::make_move_iterator(words.end()));
    lines.push_back(std::move(line));
  }
  if (lines.empty()) {
    fail_invalid("empty table: at least one target line is required");
  }
  return lines;
}

std::unique_ptr<Table> Table::build(const std::vector<TableLine>& input, DeviceOpener& opener,
                                    DeviceContext& device, const Clock& clock) {
  if (input.empty()) {
    fail_invalid("empty table: at least one target line is required");
  }
  std::vector<const TableLine*> lines;
  lines.reserve(input.size());
  for (const TableLine& l : input) {
    lines.push_back(&l);
  }
  std::stable_sort(lines.begin(), lines.end(),
                   [](const TableLine* a, const TableLine* b) { return a->start < b->start; });

  // Layout checks first, so a bad table fails before any device is opened.
  sector_t expect = 0;
  for (const TableLine* l : lines) {
    if (l->start > expect) {
      fail_invalid("table line {}: gap in table: sectors {}..{} are not mapped", l->line_no, expect,
                   l->start - 1);
    }
    if (l->start < expect) {
      fail_invalid("table line {}: target at sector {} overlaps the previous target, which ends at {}",
                   l->line_no, l->start, expect - 1);
    }
    const TargetType* type = find_target_type(l->type);
    if (type == nullptr) {
      fail_invalid("table line {}: unknown target type '{}'", l->line_no, l->type);
    }
    if (type->singleton && lines.size() > 1) {
      fail_invalid("table line {}: target type '{}' must be the only target in the table", l->line_no,
                   l->type);
    }
    expect = l->start + l->len;
  }

  std::unique_ptr<Table> table(new Table());
  for (const TableLine* l : lines) {
    const TargetType* type = find_target_type(l->type);
    TargetEnv env{opener, device, clock, l->start, l->len, device.queue_count()};
    std::unique_ptr<Target> t;
    try {
      t = type->create(env, l->args);
    } catch (const Error& e) {
      throw Error(e.code(), fmt::format("table line {}: {}", l->line_no, e.what()));
    }
    t->type_name_ = type->name;
    t->start_ = l->start;
    t->len_ = l->len;
    const auto index = static_cast<std::uint32_t>(table->targets_.size());
    for (unsigned i = 0; i < t->num_flush_clones(); ++i) {
      table->flush_units_.push_back(FlushUnit{index, i});
    }
    table->starts_.push_back(l->start);
    table->targets_.push_back(std::move(t));
  }
  table->size_ = expect;
  return table;
}

std::size_t Table::find_index(sector_t sector) const {
  if (sector >= size_) {
    return targets_.size();
  }
  const auto it = std::upper_bound(starts_.begin(), starts_.end(), sector);
  return static_cast<std::size_t>(it - starts_.begin()) - 1;
}

Target* Table::find(sector_t sector) const {
  const std::size_t i = find_index(sector);
  return i < targets_.size() ? targets_[i].get() : nullptr;
}

std::vector<std::string> Table::status_lines(StatusType type) const {
  std::vector<std::string> out;
  out.reserve(targets_.size());
  for (const auto& t : targets_) {
    // dmsetup prints "%llu %llu %s " and then the parameters, so an empty
    // parameter string still leaves the trailing space.
    out.push_back(fmt::format("{} {} {} {}", t->start(), t->len(), t->type_name(), t->status(type)));
  }
  return out;
}

std::vector<const BlockDevice*> Table::devices() const {
  std::vector<const BlockDevice*> out;
  std::set<std::uint32_t> seen;
  for (const auto& t : targets_) {
    t->iterate_devices([&](const BlockDevice& dev, sector_t, sector_t) {
      if (seen.insert(dev.id()).second) {
        out.push_back(&dev);
      }
    });
  }
  return out;
}

IoLimits Table::io_limits() const {
  IoLimits l;
  for (const auto& t : targets_) {
    t->iterate_devices([&](const BlockDevice& dev, sector_t, sector_t) {
      l.logical_block_size = std::max(l.logical_block_size, dev.logical_block_size());
      l.physical_block_size = std::max(l.physical_block_size, dev.physical_block_size());
      l.io_min = std::max(l.io_min, dev.io_min());
      l.io_opt = std::max(l.io_opt, dev.io_opt());
      l.volatile_cache = l.volatile_cache || dev.volatile_write_cache();
      l.rotational = l.rotational || dev.rotational();
      l.discard = l.discard && dev.discard_max_bytes() > 0;
      l.discard_granularity = std::max(l.discard_granularity, dev.discard_granularity());
    });
  }
  for (const auto& t : targets_) {
    t->io_hints(l);
  }
  l.physical_block_size = std::max(l.physical_block_size, l.logical_block_size);
  return l;
}

const Target* Table::needing_cpu_data() const {
  for (const auto& t : targets_) {
    if (t->needs_cpu_data()) {
      return t.get();
    }
  }
  return nullptr;
}

bool Table::has_target_type(std::string_view name) const {
  return std::any_of(targets_.begin(), targets_.end(),
                     [&](const auto& t) { return t->type_name() == name; });
}

}  // namespace ubdm
