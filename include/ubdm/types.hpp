// SPDX-License-Identifier: MIT
// Basic vocabulary shared by every layer: sectors, operations, request flags.
#pragma once

#include <cstdint>
#include <string_view>

namespace ubdm {

using sector_t = std::uint64_t;

inline constexpr unsigned kSectorShift = 9;
inline constexpr std::uint32_t kSectorSize = 1U << kSectorShift;

// The operations a frontend can hand to the core. They are the block layer's
// request operations that ublk forwards (READ, WRITE, FLUSH, DISCARD, WRITE_ZEROES).
enum class Op : std::uint8_t {
  kRead = 0,
  kWrite = 1,
  kFlush = 2,
  kDiscard = 3,
  kWriteZeroes = 4,
};

// Request flags. Only FUA has a meaning for the backends today; the others are
// carried so that a target (multipath) can see what the submitter asked for.
enum ReqFlag : std::uint32_t {
  kReqFua = 1U << 0,
  kReqFailfast = 1U << 1,
};

constexpr std::string_view op_name(Op op) {
  switch (op) {
    case Op::kRead: return "READ";
    case Op::kWrite: return "WRITE";
    case Op::kFlush: return "FLUSH";
    case Op::kDiscard: return "DISCARD";
    case Op::kWriteZeroes: return "WRITE_ZEROES";
  }
  return "?";
}

// True for operations that move data through the request's buffer.
constexpr bool op_has_data(Op op) { return op == Op::kRead || op == Op::kWrite; }

// True for operations that address a sector range (everything but FLUSH).
constexpr bool op_has_range(Op op) { return op != Op::kFlush; }

// True for operations that change the device contents.
constexpr bool op_is_write(Op op) {
  return op == Op::kWrite || op == Op::kDiscard || op == Op::kWriteZeroes;
}

}  // namespace ubdm
