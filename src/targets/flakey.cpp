// SPDX-License-Identifier: MIT
// flakey: "<dev> <offset> <up_interval_s> <down_interval_s> [<#features> <feature>...]"
// maps like linear, but for <down> seconds out of every <up> + <down> (counted
// from table load) it misbehaves as its features say, as dm-flakey does:
//   error_reads                      reads fail with EIO
//   drop_writes                      writes succeed without reaching the device
//   error_writes                     writes fail with EIO
//   corrupt_bio_byte <N> <r|w> <V> <F>
//                                    byte N (1-based) of matching reads (after
//                                    the read) or writes (before the write) is
//                                    set to V; only requests whose ReqFlag bits
//                                    include all of mask F match
//   random_read_corrupt <p>          with probability p / 1e9 one random byte of
//   random_write_corrupt <p>         a read / write is changed
// With no features, reads and writes both fail while down.
// FLUSH, DISCARD and WRITE_ZEROES always pass through.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <string_view>

#include "targets/target_args.hpp"
#include "targets/targets.hpp"
#include "ubdm/error.hpp"

namespace ubdm {
namespace {

constexpr std::uint64_t kProbabilityBase = 1000000000;  // random_*_corrupt are parts per 1e9
constexpr std::uint64_t kMaxFeatureArgs = 11;           // every compatible feature with its parameters
constexpr std::uint64_t kU32Max = std::numeric_limits<std::uint32_t>::max();

// Feature names are case-insensitive, as in dm-flakey (strcasecmp).
bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    x = (x >= 'A' && x <= 'Z') ? static_cast<char>(x - 'A' + 'a') : x;
    y = (y >= 'A' && y <= 'Z') ? static_cast<char>(y - 'A' + 'a') : y;
    if (x != y) {
      return false;
    }
  }
  return true;
}

struct FlakeyConfig {
  BlockDevicePtr dev;
  sector_t offset = 0;
  std::uint64_t up_s = 0;
  std::uint64_t down_s = 0;
  bool error_reads = false;
  bool drop_writes = false;
  bool error_writes = false;
  std::uint32_t corrupt_byte = 0;  // 1-based; 0 = feature off
  bool corrupt_write = false;      // direction of corrupt_bio_byte
  std::uint8_t corrupt_value = 0;
  std::uint32_t corrupt_flags = 0;
  std::uint32_t random_read_p = 0;   // 0 = off
  std::uint32_t random_write_p = 0;  // 0 = off
};

// Per-clone memory: set by map() for a read issued while down, so end_io
// knows whether the read may be corrupted (the interval may have ended since).
struct FlakeyIo {
  bool read_while_down;
};

class FlakeyTarget final : public Target {
 public:
  FlakeyTarget(FlakeyConfig config, const Clock& clock, std::uint64_t seed)
      : cfg_(std::move(config)), clock_(clock), start_ms_(clock.now_ms()), rng_(seed) {}

  bool needs_cpu_data() const override {
    return cfg_.corrupt_byte != 0 || cfg_.random_read_p != 0 || cfg_.random_write_p != 0;
  }

  MapResult map(Clone& clone) override {
    const Op op = clone.op();
    if (op_has_data(op) && is_down()) {
      if (op == Op::kRead) {
        if (cfg_.error_reads) {
          return MapResult::kKill;
        }
        clone.per_io<FlakeyIo>().read_while_down = true;
      } else {
        if (cfg_.drop_writes) {
          // Pretend the write happened.
          clone.end(0);
          return MapResult::kSubmitted;
        }
        if (cfg_.error_writes) {
          return MapResult::kKill;
        }
        // dm-flakey corrupts a copy of the data. We corrupt the request's own
        // buffer in place instead, which needs no allocation: it belongs to
        // the core until completion and the submitter does not read a write
        // buffer back. (A requeued piece is corrupted again when remapped.)
        if (cfg_.corrupt_byte != 0 && cfg_.corrupt_write && flags_match(clone)) {
          corrupt_fixed(clone);
        }
        if (cfg_.random_write_p != 0 && chance(cfg_.random_write_p)) {
          corrupt_random(clone);
        }
      }
    }
    if (op == Op::kFlush) {
      clone.remap(*cfg_.dev, 0);
    } else {
      clone.remap(*cfg_.dev, cfg_.offset + clone.target_offset());
    }
    return MapResult::kRemapped;
  }

  EndIoResult end_io(Clone& clone, int error) override {
    if (error == 0 && clone.op() == Op::kRead && clone.per_io<FlakeyIo>().read_while_down) {
      if (cfg_.corrupt_byte != 0 && !cfg_.corrupt_write && flags_match(clone)) {
        corrupt_fixed(clone);
      }
      if (cfg_.random_read_p != 0 && chance(cfg_.random_read_p)) {
        corrupt_random(clone);
      }
    }
    return EndIoResult::kDone;
  }

  std::string status(StatusType type) const override {
    if (type == StatusType::kInfo) {
      return {};
    }
    // The canonical form, as dm-flakey prints it: features in a fixed order,
    // the count being the number of words printed after it.
    const unsigned words = static_cast<unsigned>(cfg_.error_reads) + static_cast<unsigned>(cfg_.drop_writes) +
                           static_cast<unsigned>(cfg_.error_writes) + (cfg_.corrupt_byte != 0 ? 5U : 0U) +
                           (cfg_.random_read_p != 0 ? 2U : 0U) + (cfg_.random_write_p != 0 ? 2U : 0U);
    fmt::memory_buffer out;
    fmt::format_to(std::back_inserter(out), "{} {} {} {} {}", cfg_.dev->display_name(), cfg_.offset,
                   cfg_.up_s, cfg_.down_s, words);
    if (cfg_.error_reads) {
      out.append(std::string_view(" error_reads"));
    }
    if (cfg_.drop_writes) {
      out.append(std::string_view(" drop_writes"));
    } else if (cfg_.error_writes) {
      out.append(std::string_view(" error_writes"));
    }
    if (cfg_.corrupt_byte != 0) {
      fmt::format_to(std::back_inserter(out), " corrupt_bio_byte {} {} {} {}", cfg_.corrupt_byte,
                     cfg_.corrupt_write ? 'w' : 'r', cfg_.corrupt_value, cfg_.corrupt_flags);
    }
    if (cfg_.random_read_p != 0) {
      fmt::format_to(std::back_inserter(out), " random_read_corrupt {}", cfg_.random_read_p);
    }
    if (cfg_.random_write_p != 0) {
      fmt::format_to(std::back_inserter(out), " random_write_corrupt {}", cfg_.random_write_p);
    }
    return fmt::to_string(out);
  }

  void iterate_devices(const DeviceVisitor& visit) const override { visit(*cfg_.dev, cfg_.offset, len()); }

 private:
  // Whole seconds since table load, as dm-flakey counts jiffies / HZ.
  bool is_down() const {
    const std::uint64_t now = clock_.now_ms();
    const std::uint64_t elapsed_s = (now > start_ms_ ? now - start_ms_ : 0) / 1000;
    return elapsed_s % (cfg_.up_s + cfg_.down_s) >= cfg_.up_s;
  }

  bool flags_match(const Clone& clone) const {
    return (clone.flags() & cfg_.corrupt_flags) == cfg_.corrupt_flags;
  }

  void corrupt_fixed(Clone& clone) const {
    // A piece shorter than N bytes has no byte N to corrupt.
    if (clone.buf() != nullptr && cfg_.corrupt_byte <= clone.bytes()) {
      clone.buf()[cfg_.corrupt_byte - 1] = std::byte{cfg_.corrupt_value};
    }
  }

  void corrupt_random(Clone& clone) {
    if (clone.buf() == nullptr || clone.bytes() == 0) {
      return;
    }
    const std::uint64_t r = next_random();
    const std::uint64_t index = (r >> 8) % clone.bytes();
    // XOR with a non-zero value: the byte always changes, so an injected
    // corruption is never a silent no-op.
    const auto flip = static_cast<unsigned>(1 + (r & 0xff) % 255);
    clone.buf()[index] ^= std::byte{static_cast<std::uint8_t>(flip)};
  }

  // True with probability p / 1e9.
  bool chance(std::uint32_t p) { return next_random() % kProbabilityBase < p; }

  // splitmix64 over an atomic Weyl sequence: lock-free, allocation-free and
  // safe when several queue threads draw at once (each draw gets its own step).
  std::uint64_t next_random() {
    std::uint64_t z =
        rng_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed) + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  const FlakeyConfig cfg_;
  const Clock& clock_;
  const std::uint64_t start_ms_;
  std::atomic<std::uint64_t> rng_;
};

void parse_features(ArgReader& in, FlakeyConfig& cfg) {
  if (in.done()) {
    return;
  }
  std::uint64_t left = in.next_u64_in("number of feature arguments", 0, kMaxFeatureArgs);
  if (left != in.remaining()) {
    in.bad(fmt::format("feature argument count is {} but {} feature argument{} follow{}", left,
                       in.remaining(), in.remaining() == 1 ? "" : "s", in.remaining() == 1 ? "s" : ""));
  }
  bool seen_rrc = false;
  bool seen_rwc = false;
  while (left > 0) {
    const std::string& name = in.next("feature");
    --left;
    if (iequals(name, "error_reads")) {
      if (cfg.error_reads) {
        in.bad("feature error_reads duplicated");
      }
      cfg.error_reads = true;
    } else if (iequals(name, "drop_writes")) {
      if (cfg.drop_writes) {
        in.bad("feature drop_writes duplicated");
      }
      if (cfg.error_writes) {
        in.bad("features drop_writes and error_writes are mutually exclusive");
      }
      cfg.drop_writes = true;
    } else if (iequals(name, "error_writes")) {
      if (cfg.error_writes) {
        in.bad("feature error_writes duplicated");
      }
      if (cfg.drop_writes) {
        in.bad("features drop_writes and error_writes are mutually exclusive");
      }
      cfg.error_writes = true;
    } else if (iequals(name, "corrupt_bio_byte")) {
      if (cfg.corrupt_byte != 0) {
        in.bad("feature corrupt_bio_byte duplicated");
      }
      if (left < 4) {
        in.bad("feature corrupt_bio_byte requires 4 parameters: <Nth_byte> <r|w> <value> <flags>");
      }
      cfg.corrupt_byte =
          static_cast<std::uint32_t>(in.next_u64_in("corrupt_bio_byte byte number", 1, kU32Max));
      const std::string& dir = in.next("corrupt_bio_byte direction");
      if (iequals(dir, "w")) {
        cfg.corrupt_write = true;
      } else if (iequals(dir, "r")) {
        cfg.corrupt_write = false;
      } else {
        in.bad(fmt::format("invalid corrupt_bio_byte direction '{}': expected r or w", dir));
      }
      cfg.corrupt_value = static_cast<std::uint8_t>(in.next_u64_in("corrupt_bio_byte value", 0, 255));
      cfg.corrupt_flags =
          static_cast<std::uint32_t>(in.next_u64_in("corrupt_bio_byte flags mask", 0, kU32Max));
      left -= 4;
    } else if (iequals(name, "random_read_corrupt") || iequals(name, "random_write_corrupt")) {
      const bool write = iequals(name, "random_write_corrupt");
      const std::string_view canonical = write ? "random_write_corrupt" : "random_read_corrupt";
      bool& seen = write ? seen_rwc : seen_rrc;
      if (seen) {
        in.bad(fmt::format("feature {} duplicated", canonical));
      }
      if (left < 1) {
        in.bad(
            fmt::format("feature {} requires a parameter: <probability 0..{}>", canonical, kProbabilityBase));
      }
      seen = true;
      const auto p = static_cast<std::uint32_t>(
          in.next_u64_in(fmt::format("{} probability", canonical), 0, kProbabilityBase));
      (write ? cfg.random_write_p : cfg.random_read_p) = p;
      --left;
    } else {
      in.bad(
          fmt::format("unknown feature '{}' (expected error_reads, drop_writes, error_writes, "
                      "corrupt_bio_byte, random_read_corrupt or random_write_corrupt)",
                      name));
    }
  }

  const bool corrupts_writes = (cfg.corrupt_byte != 0 && cfg.corrupt_write) || cfg.random_write_p != 0;
  const bool corrupts_reads = (cfg.corrupt_byte != 0 && !cfg.corrupt_write) || cfg.random_read_p != 0;
  // A write that is dropped or failed cannot also be corrupted, nor a failed read.
  if (cfg.drop_writes && corrupts_writes) {
    in.bad("drop_writes is incompatible with random_write_corrupt or corrupt_bio_byte with direction w");
  }
  if (cfg.error_writes && corrupts_writes) {
    in.bad("error_writes is incompatible with random_write_corrupt or corrupt_bio_byte with direction w");
  }
  if (cfg.error_reads && corrupts_reads) {
    in.bad("error_reads is incompatible with random_read_corrupt or corrupt_bio_byte with direction r");
  }
}

}  // namespace

std::unique_ptr<Target> create_flakey_target(TargetEnv& env, std::span<const std::string> args) {
  ArgReader in("flakey", args);
  if (args.size() < 4) {
    in.bad(
        fmt::format("expected at least 4 arguments (<dev> <offset> <up_interval> <down_interval> "
                    "[<#features> <feature>...]), got {}",
                    args.size()));
  }
  FlakeyConfig cfg;
  const std::string& path = in.next("device");
  cfg.offset = in.next_u64("offset");
  cfg.up_s = in.next_u64_in("up interval", 0, kU32Max);
  cfg.down_s = in.next_u64_in("down interval", 0, kU32Max);
  if (cfg.up_s + cfg.down_s == 0) {
    in.bad("up interval + down interval is zero: at least one of them must be positive");
  }
  if (cfg.up_s + cfg.down_s > kU32Max) {
    in.bad(fmt::format("interval overflow: up interval + down interval must not exceed {}", kU32Max));
  }
  parse_features(in, cfg);
  // No feature that says what to do while down: fail all reads and writes.
  // Recording that as error_reads + error_writes is also how it prints back.
  if (!cfg.error_reads && !cfg.drop_writes && !cfg.error_writes && cfg.corrupt_byte == 0 &&
      cfg.random_read_p == 0 && cfg.random_write_p == 0) {
    cfg.error_reads = true;
    cfg.error_writes = true;
  }
  cfg.dev = open_device_range(env, "flakey", path, cfg.offset, env.len);
  // The corruption pattern need not be reproducible, only differ between runs.
  std::random_device entropy;
  const std::uint64_t seed = (static_cast<std::uint64_t>(entropy()) << 32) ^ entropy();
  return std::make_unique<FlakeyTarget>(std::move(cfg), env.clock, seed);
}

}  // namespace ubdm
