// SPDX-License-Identifier: MIT
// Helpers shared by target constructors: reading and checking table
// arguments with messages that name the target and the argument.
// Control plane: everything here throws ubdm::Error.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "ubdm/error.hpp"
#include "ubdm/io.hpp"
#include "ubdm/target.hpp"

namespace ubdm {

// Strict unsigned decimal: digits only, no sign, no overflow.
bool parse_u64(std::string_view text, std::uint64_t& out);

class ArgReader {
 public:
  ArgReader(std::string_view target, std::span<const std::string> args) : target_(target), args_(args) {}

  std::size_t size() const { return args_.size(); }
  std::size_t remaining() const { return args_.size() - pos_; }
  bool done() const { return pos_ == args_.size(); }

  // Throw unless exactly `n` arguments were given; `usage` names them.
  void expect_count(std::size_t n, std::string_view usage) const;
  // Throw unless the count is one of `counts`.
  void expect_count_in(std::initializer_list<std::size_t> counts, std::string_view usage) const;

  const std::string& next(std::string_view what);
  std::uint64_t next_u64(std::string_view what);
  // An unsigned value in [lo, hi].
  std::uint64_t next_u64_in(std::string_view what, std::uint64_t lo, std::uint64_t hi);
  const std::string& peek() const;

  [[noreturn]] void bad(std::string_view message) const;

  std::string_view target() const { return target_; }

 private:
  std::string_view target_;
  std::span<const std::string> args_;
  std::size_t pos_ = 0;
};

// Open `path` and check that [offset, offset + len) fits on it. The message
// on failure names the target, the path and the reason.
BlockDevicePtr open_device_range(TargetEnv& env, std::string_view target, const std::string& path,
                                 sector_t offset, sector_t len);

}  // namespace ubdm
