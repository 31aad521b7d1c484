// SPDX-License-Identifier: MIT
#include "targets/target_args.hpp"

#include <charconv>

namespace ubdm {

bool parse_u64(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > 20) {
    return false;
  }
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
  }
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

void ArgReader::expect_count(std::size_t n, std::string_view usage) const {
  if (args_.size() != n) {
    fail_invalid("{}: expected {} argument{} ({}), got {}", target_, n, n == 1 ? "" : "s", usage,
                 args_.size());
  }
}

void ArgReader::expect_count_in(std::initializer_list<std::size_t> counts, std::string_view usage) const {
  for (std::size_t c : counts) {
    if (args_.size() == c) {
      return;
    }
  }
  fail_invalid("{}: wrong number of arguments ({}): expected {}", target_, args_.size(), usage);
}

const std::string& ArgReader::peek() const {
  if (done()) {
    bad("missing argument");
  }
  return args_[pos_];
}

const std::string& ArgReader::next(std::string_view what) {
  if (done()) {
    fail_invalid("{}: missing {}", target_, what);
  }
  return args_[pos_++];
}

std::uint64_t ArgReader::next_u64(std::string_view what) {
  const std::string& s = next(what);
  std::uint64_t v = 0;
  if (!parse_u64(s, v)) {
    fail_invalid("{}: invalid {} '{}': expected an unsigned decimal number", target_, what, s);
  }
  return v;
}

std::uint64_t ArgReader::next_u64_in(std::string_view what, std::uint64_t lo, std::uint64_t hi) {
  const std::string& s = args_.size() > pos_ ? args_[pos_] : std::string();
  const std::uint64_t v = next_u64(what);
  if (v < lo || v > hi) {
    fail_invalid("{}: {} '{}' out of range: must be between {} and {}", target_, what, s, lo, hi);
  }
  return v;
}

void ArgReader::bad(std::string_view message) const { fail_invalid("{}: {}", target_, message); }

BlockDevicePtr open_device_range(TargetEnv& env, std::string_view target, const std::string& path,
                                 sector_t offset, sector_t len) {
  BlockDevicePtr dev;
  try {
    dev = env.opener.open(path);
  } catch (const Error& e) {
    throw Error(e.code(), fmt::format("{}: {}", target, e.what()));
  }
  const sector_t size = dev->size_sectors();
  if (offset > size || len > size - offset) {
    fail_invalid("{}: device {} too small: the target needs sectors {}..{} but it has {} sectors", target,
                 path, offset, offset + len, size);
  }
  const sector_t lbs_sectors = dev->logical_block_size() >> kSectorShift;
  if (lbs_sectors > 1 && (offset % lbs_sectors != 0 || len % lbs_sectors != 0)) {
    fail_invalid("{}: offset {} and length {} must be multiples of {}'s logical block size ({} bytes)",
                 target, offset, len, path, dev->logical_block_size());
  }
  return dev;
}

}  // namespace ubdm
