// SPDX-License-Identifier: MIT
#include "core/inproc_frontend.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace ubdm {
namespace {

constexpr std::size_t kBufferAlign = 4096;

}  // namespace

InprocFrontend::InprocFrontend(DispatchQueue& queue, IoBackend& backend, std::uint32_t max_io_bytes)
    : queue_(queue), backend_(backend), max_io_bytes_(max_io_bytes) {
  const unsigned depth = queue_.depth();
  requests_.resize(depth);
  slots_.resize(depth);
  buffers_.resize(depth, nullptr);
  for (unsigned t = 0; t < depth; ++t) {
    void* p = std::aligned_alloc(kBufferAlign, max_io_bytes_);
    if (p == nullptr) {
      throw std::bad_alloc();
    }
    std::memset(p, 0, max_io_bytes_);
    buffers_[t] = static_cast<std::byte*>(p);
    requests_[t].tag = static_cast<std::uint16_t>(t);
    requests_[t].sink = this;
  }
  queue_.bind(backend_, nullptr);
}

InprocFrontend::~InprocFrontend() {
  if (queue_.active_requests() == 0) {
    queue_.unbind();
  }
  for (std::byte* b : buffers_) {
    std::free(b);
  }
}

std::vector<iovec> InprocFrontend::buffer_iovecs() const {
  std::vector<iovec> v;
  v.reserve(buffers_.size());
  for (std::byte* b : buffers_) {
    v.push_back(iovec{b, max_io_bytes_});
  }
  return v;
}

int InprocFrontend::submit(Op op, sector_t sector, std::uint32_t nr_sectors, std::uint32_t flags,
                           const void* data) {
  // Only data needs a tag buffer; DISCARD and WRITE_ZEROES may be as long as
  // a request can say (as ublk's max_discard_sectors allows).
  if (op_has_data(op) && static_cast<std::uint64_t>(nr_sectors) << kSectorShift > max_io_bytes_) {
    return -EINVAL;
  }
  for (std::size_t t = 0; t < slots_.size(); ++t) {
    Slot& s = slots_[t];
    if (s.busy) {
      continue;
    }
    s = Slot{true, false, 0, 0};
    Request& r = requests_[t];
    r.op = op;
    r.flags = flags;
    r.sector = op == Op::kFlush ? 0 : sector;
    r.nr_sectors = op == Op::kFlush ? 0 : nr_sectors;
    r.buf = op_has_data(op) && !zero_copy_ ? buffers_[t] : nullptr;
    r.buf_index = (registered_ || zero_copy_) && op_has_data(op) ? static_cast<int>(t) : -1;
    if (data != nullptr && op == Op::kWrite) {
      std::memcpy(buffers_[t], data, static_cast<std::size_t>(nr_sectors) << kSectorShift);
    }
    ++outstanding_;
    queue_.submit(r);
    return static_cast<int>(t);
  }
  return -EBUSY;
}

void InprocFrontend::release(int tag) {
  Slot& s = slots_[static_cast<std::size_t>(tag)];
  s.busy = false;
  s.done = false;
  s.completions = 0;
}

void InprocFrontend::request_done(Request& req, int result) {
  Slot& s = slots_[req.tag];
  s.done = true;
  s.result = result;
  ++s.completions;
  --outstanding_;
  ++total_completions_;
  if (on_complete) {
    on_complete(req.tag, result);
  }
}

void InprocFrontend::run_once(unsigned wait_usec) {
  queue_.run();
  const bool busy = queue_.has_immediate_work();
  // Never sleep past the queue's next timer.
  const long timer_ms = queue_.next_timer_ms();
  unsigned wait = busy ? 0 : wait_usec;
  if (timer_ms >= 0 && static_cast<unsigned long>(timer_ms) * 1000UL < wait) {
    wait = static_cast<unsigned>(timer_ms) * 1000U;
  }
  (void)backend_.poll(backend_.in_flight() > 0 ? wait : 0);
  queue_.run();
}

bool InprocFrontend::run_until_idle(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (outstanding_ > 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    run_once(1000);
  }
  return true;
}

bool InprocFrontend::run_until_done(int tag, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done(tag)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      return false;
    }
    run_once(1000);
  }
  return true;
}

int InprocFrontend::sync(Op op, sector_t sector, std::uint32_t nr_sectors, std::uint32_t flags,
                         const void* data, void* out) {
  const int tag = submit(op, sector, nr_sectors, flags, data);
  if (tag < 0) {
    return tag;
  }
  if (!run_until_done(tag)) {
    return -ETIMEDOUT;
  }
  const int res = result(tag);
  if (out != nullptr && res == 0) {
    std::memcpy(out, buffer(tag), static_cast<std::size_t>(nr_sectors) << kSectorShift);
  }
  release(tag);
  return res;
}

int InprocFrontend::read(sector_t sector, std::uint32_t nr_sectors, void* out) {
  return sync(Op::kRead, sector, nr_sectors, 0, nullptr, out);
}

int InprocFrontend::write(sector_t sector, std::uint32_t nr_sectors, const void* data, std::uint32_t flags) {
  return sync(Op::kWrite, sector, nr_sectors, flags, data, nullptr);
}

int InprocFrontend::flush() { return sync(Op::kFlush, 0, 0, 0, nullptr, nullptr); }

int InprocFrontend::discard(sector_t sector, std::uint32_t nr_sectors) {
  return sync(Op::kDiscard, sector, nr_sectors, 0, nullptr, nullptr);
}

int InprocFrontend::write_zeroes(sector_t sector, std::uint32_t nr_sectors) {
  return sync(Op::kWriteZeroes, sector, nr_sectors, 0, nullptr, nullptr);
}

}  // namespace ubdm
