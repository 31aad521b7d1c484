// SPDX-License-Identifier: MIT
#include "io/fake_backend.hpp"

#include <algorithm>
#include <cstring>

#include "ubdm/error.hpp"

namespace ubdm {

FakeDisk::FakeDisk(FakeStorage& /*storage*/, std::uint32_t id, std::string name, sector_t sectors,
                   std::uint32_t logical_bs, bool backed)
    : data_(backed ? sectors << kSectorShift : 0), backed_(backed) {
  id_ = id;
  path_ = std::move(name);
  size_sectors_ = sectors;
  logical_bs_ = logical_bs;
  physical_bs_ = logical_bs;
}

FakeDisk::~FakeDisk() = default;

FakeStorage::FakeStorage() = default;
FakeStorage::~FakeStorage() = default;

FakeDisk& FakeStorage::add_disk(const std::string& name, sector_t sectors, std::uint32_t logical_bs) {
  auto disk = std::make_shared<FakeDisk>(*this, next_id_++, name, sectors, logical_bs);
  FakeDisk& ref = *disk;
  disks_[name] = std::move(disk);
  return ref;
}

FakeDisk& FakeStorage::add_unbacked_disk(const std::string& name, sector_t sectors) {
  auto disk = std::make_shared<FakeDisk>(*this, next_id_++, name, sectors, 512, false);
  FakeDisk& ref = *disk;
  disks_[name] = std::move(disk);
  return ref;
}

BlockDevicePtr FakeStorage::open_absent(std::string_view path, sector_t sectors) {
  return std::make_shared<FakeDisk>(*this, next_id_++, std::string(path), sectors, 512, false);
}

FakeDisk& FakeStorage::disk(const std::string& name) {
  auto it = disks_.find(name);
  if (it == disks_.end()) {
    fail(ENOENT, "no fake disk named {}", name);
  }
  return *it->second;
}

BlockDevicePtr FakeStorage::open(std::string_view path) {
  auto it = disks_.find(std::string(path));
  if (it == disks_.end()) {
    fail(ENOENT, "cannot open {}: No such file or directory", path);
  }
  return it->second;
}

FakeBackend::FakeBackend() {
  // Reserve so that the steady state never grows these vectors.
  pending_.reserve(4096);
  batch_.reserve(4096);
}

FakeBackend::~FakeBackend() = default;

int FakeBackend::attach(const BlockDevice& dev) {
  if (!is_attached(dev.id())) {
    attached_.push_back(dev.id());
  }
  return 0;
}

void FakeBackend::detach(const BlockDevice& dev) {
  attached_.erase(std::remove(attached_.begin(), attached_.end(), dev.id()), attached_.end());
}

bool FakeBackend::is_attached(std::uint32_t dev_id) const {
  return std::find(attached_.begin(), attached_.end(), dev_id) != attached_.end();
}

void FakeBackend::submit(IoRequest& req) { pending_.push_back(&req); }

bool FakeBackend::take_completable(std::size_t& index) const {
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    const auto* disk = static_cast<const FakeDisk*>(pending_[i]->dev);
    if (!disk->held) {
      index = i;
      return true;
    }
  }
  return false;
}

void FakeBackend::set_kernel_buffer(unsigned index, std::span<std::byte> data) {
  if (index >= kernel_buffers_.size()) {
    kernel_buffers_.resize(index + 1);
  }
  kernel_buffers_[index] = data;
}

int FakeBackend::perform(IoRequest& req, int forced, bool use_forced) {
  // The fake only ever hands out FakeDisks, so the cast is safe; const is
  // dropped because a fake write changes the disk's memory.
  auto& disk = const_cast<FakeDisk&>(static_cast<const FakeDisk&>(*req.dev));
  FakeDiskCounters& cnt = disk.counters();
  int res = 0;
  if (!is_attached(disk.id())) {
    res = -EBADF;  // like a fixed-file slot that was never registered
  } else if (use_forced) {
    res = forced;
  } else {
    for (FaultRule& rule : disk.faults) {
      if ((rule.op_mask & op_bit(req.op)) != 0 && rule.count != 0) {
        if (rule.count > 0) {
          --rule.count;
        }
        res = rule.error;
        break;
      }
    }
  }
  if (res == 0 && !disk.backed()) {
    const std::uint64_t end = req.offset + req.len;
    if (end > (disk.size_sectors() << kSectorShift)) {
      res = -EINVAL;
    } else if (op_has_data(req.op)) {
      res = -EIO;
    } else {
      cnt.discards += req.op == Op::kDiscard ? 1 : 0;
      cnt.write_zeroes += req.op == Op::kWriteZeroes ? 1 : 0;
      cnt.flushes += req.op == Op::kFlush ? 1 : 0;
      (req.op == Op::kDiscard ? cnt.bytes_discarded : cnt.bytes_zeroed) += req.op == Op::kFlush ? 0 : req.len;
      res = 0;
    }
  } else if (res == 0) {
    const std::uint64_t end = req.offset + req.len;
    std::byte* data = req.buf;
    if (op_has_data(req.op) && data == nullptr) {
      // A kernel buffer (zero copy): only the registered pages are there.
      const auto index = static_cast<std::size_t>(req.buf_index);
      if (req.buf_index >= 0 && index < kernel_buffers_.size() &&
          req.buf_offset + req.len <= kernel_buffers_[index].size()) {
        data = kernel_buffers_[index].data() + req.buf_offset;
      }
    }
    if (end > disk.data().size()) {
      res = -EINVAL;
    } else if (op_has_data(req.op) && data == nullptr) {
      res = -EFAULT;
    } else {
      std::byte* at = disk.data().data() + req.offset;
      switch (req.op) {
        case Op::kRead:
          std::memcpy(data, at, req.len);
          ++cnt.reads;
          cnt.bytes_read += req.len;
          break;
        case Op::kWrite:
          std::memcpy(at, data, req.len);
          ++cnt.writes;
          cnt.bytes_written += req.len;
          if ((req.flags & kReqFua) != 0) {
            ++cnt.fua_writes;
          }
          break;
        case Op::kFlush:
          ++cnt.flushes;
          break;
        case Op::kDiscard:
          std::memset(at, 0, req.len);
          ++cnt.discards;
          cnt.bytes_discarded += req.len;
          break;
        case Op::kWriteZeroes:
          std::memset(at, 0, req.len);
          ++cnt.write_zeroes;
          cnt.bytes_zeroed += req.len;
          break;
      }
    }
  }
  if (res < 0) {
    ++cnt.failed;
  }
  if (record_) {
    log_.push_back(FakeIoRecord{req.op, req.flags, disk.id(), req.offset, req.len, res});
  }
  return res;
}

int FakeBackend::poll(unsigned /*wait_usec*/) {
  // Complete what was pending when poll started; completions may submit more,
  // which wait for the next poll (like a real ring). Both vectors keep their
  // capacity across swaps, so this allocates nothing in steady state.
  batch_.clear();
  batch_.swap(pending_);
  for (IoRequest* r : batch_) {
    if (static_cast<const FakeDisk*>(r->dev)->held) {
      pending_.push_back(r);
    }
  }
  int n = 0;
  for (IoRequest* r : batch_) {
    if (static_cast<const FakeDisk*>(r->dev)->held) {
      continue;
    }
    r->completion->io_complete(perform(*r, 0, false));
    ++n;
  }
  batch_.clear();
  return n;
}

bool FakeBackend::complete_one() {
  std::size_t i = 0;
  if (!take_completable(i)) {
    return false;
  }
  IoRequest* r = pending_[i];
  pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
  r->completion->io_complete(perform(*r, 0, false));
  return true;
}

bool FakeBackend::complete_one_with(int result) {
  std::size_t i = 0;
  if (!take_completable(i)) {
    return false;
  }
  IoRequest* r = pending_[i];
  pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(i));
  r->completion->io_complete(perform(*r, result, true));
  return true;
}

}  // namespace ubdm
