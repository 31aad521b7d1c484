// SPDX-License-Identifier: MIT
// In-memory devices and a backend that completes I/O only when the test asks
// (SPDK's fake qpair + poll_threads()). Deterministic: no threads, no clocks.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <span>
#include <vector>

#include "ubdm/io.hpp"

namespace ubdm {

// An injected fault: the next `count` matching I/Os (or all, if count < 0)
// complete with `error` instead of being performed.
struct FaultRule {
  unsigned op_mask = ~0U;  // bit (1 << Op) selects the ops it applies to
  int error = -EIO;
  int count = -1;
};

inline constexpr unsigned op_bit(Op op) { return 1U << static_cast<unsigned>(op); }

struct FakeDiskCounters {
  std::uint64_t reads = 0, writes = 0, fua_writes = 0, flushes = 0, discards = 0, write_zeroes = 0;
  std::uint64_t failed = 0;
  std::uint64_t bytes_read = 0, bytes_written = 0, bytes_discarded = 0, bytes_zeroed = 0;
};

class FakeStorage;

// A RAM disk. Data survives for the life of the FakeStorage. An unbacked disk
// has a size but no memory, for devices larger than a test can hold: its
// DISCARD, WRITE_ZEROES and FLUSH are checked against the size and counted,
// its READ and WRITE fail with -EIO.
class FakeDisk final : public BlockDevice {
 public:
  FakeDisk(FakeStorage& storage, std::uint32_t id, std::string name, sector_t sectors,
           std::uint32_t logical_bs, bool backed = true);
  bool backed() const { return backed_; }
  ~FakeDisk() override;

  std::vector<std::byte>& data() { return data_; }
  const std::vector<std::byte>& data() const { return data_; }
  FakeDiskCounters& counters() { return counters_; }

  // Faults and holds (see FakeStorage).
  std::vector<FaultRule> faults;
  bool held = false;  // I/O stays pending until released

 private:
  std::vector<std::byte> data_;
  FakeDiskCounters counters_;
  bool backed_ = true;
};

// The set of fake disks; opens them by name for table constructors.
class FakeStorage final : public DeviceOpener {
 public:
  FakeStorage();
  ~FakeStorage() override;

  FakeDisk& add_disk(const std::string& name, sector_t sectors, std::uint32_t logical_bs = 512);
  // A disk of any size without memory (see FakeDisk).
  FakeDisk& add_unbacked_disk(const std::string& name, sector_t sectors);
  FakeDisk& disk(const std::string& name);
  // Later opens of `name` fail with ENOENT (a path that went away); devices
  // already open keep their disk.
  void remove_disk(const std::string& name) { disks_.erase(name); }

  // DeviceOpener: names added with add_disk(); anything else is ENOENT.
  BlockDevicePtr open(std::string_view path) override;
  // A disk without memory that is in no list (so opens of `path` still fail).
  BlockDevicePtr open_absent(std::string_view path, sector_t sectors) override;

  // Complete the next matching I/Os on `name` with an error.
  void inject(const std::string& name, FaultRule rule) { disk(name).faults.push_back(rule); }
  void clear_faults(const std::string& name) { disk(name).faults.clear(); }
  // While held, I/O to the disk is accepted but not completed by poll().
  void hold(const std::string& name, bool held) { disk(name).held = held; }

 private:
  std::map<std::string, std::shared_ptr<FakeDisk>> disks_;
  std::uint32_t next_id_ = 0;
};

// A record of one I/O the backend performed (when recording is on).
struct FakeIoRecord {
  Op op;
  std::uint32_t flags;
  std::uint32_t dev_id;
  std::uint64_t offset;
  std::uint64_t len;
  int result;
};

class FakeBackend final : public IoBackend {
 public:
  FakeBackend();
  ~FakeBackend() override;

  int attach(const BlockDevice& dev) override;
  void detach(const BlockDevice& dev) override;
  void submit(IoRequest& req) override;
  int flush() override { return 0; }
  // Completes every pending I/O that was submitted before this call and is
  // not held, in submission order. wait_usec is ignored.
  int poll(unsigned wait_usec) override;
  unsigned in_flight() const override { return static_cast<unsigned>(pending_.size()); }

  // Complete only the oldest completable I/O, optionally forcing its result.
  // Returns false if there was none.
  bool complete_one();
  bool complete_one_with(int result);

  unsigned attached_count() const { return static_cast<unsigned>(attached_.size()); }
  bool is_attached(std::uint32_t dev_id) const;

  // Kernel buffers, as ublk's zero copy registers them: I/O with
  // buf == nullptr and buf_index >= 0 reaches `data` at buf_offset (out of
  // its bounds: -EFAULT, as io_uring answers). An empty span removes it.
  void set_kernel_buffer(unsigned index, std::span<std::byte> data);

  // Recording is off by default, so the steady state allocates nothing.
  void record(bool on) { record_ = on; }
  std::vector<FakeIoRecord>& log() { return log_; }

 private:
  int perform(IoRequest& req, int forced, bool use_forced);
  bool take_completable(std::size_t& index) const;

  std::vector<IoRequest*> pending_;
  std::vector<IoRequest*> batch_;
  std::vector<std::uint32_t> attached_;
  std::vector<FakeIoRecord> log_;
  std::vector<std::span<std::byte>> kernel_buffers_;
  bool record_ = false;
};

}  // namespace ubdm
