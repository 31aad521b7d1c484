// SPDX-License-Identifier: MIT
// The in-process test frontend: it plays the part ublk plays in production,
// generating original requests for one DispatchQueue and collecting their
// completions, all on the calling thread. Unit tests drive it with the fake
// backend; integration tests and benchmarks with the io_uring backend.
#pragma once

#include <sys/uio.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "ubdm/dispatch_queue.hpp"
#include "ubdm/io.hpp"
#include "ubdm/request.hpp"

namespace ubdm {

class InprocFrontend final : public CompletionSink {
 public:
  // Binds `queue` to `backend` (on this thread) and allocates one
  // page-aligned buffer of `max_io_bytes` per tag.
  InprocFrontend(DispatchQueue& queue, IoBackend& backend, std::uint32_t max_io_bytes = 1U << 20);
  ~InprocFrontend();
  InprocFrontend(const InprocFrontend&) = delete;
  InprocFrontend& operator=(const InprocFrontend&) = delete;

  // One iovec per tag buffer, for backends that register buffers. After
  // registering, call set_buffers_registered(true) so requests carry indexes.
  std::vector<iovec> buffer_iovecs() const;
  void set_buffers_registered(bool on) { registered_ = on; }
  // Zero copy as ublk's: requests carry no address (buf == nullptr), only
  // their tag as buf_index, and the backend must have each tag's buffer as
  // a kernel buffer at that index (FakeBackend::set_kernel_buffer).
  void set_zero_copy(bool on) { zero_copy_ = on; }

  // --- asynchronous ---
  // Submit a request on a free tag; returns the tag, or -EBUSY if none is free.
  // For WRITE, fill buffer(tag) before calling run*(), or pass `data`.
  int submit(Op op, sector_t sector, std::uint32_t nr_sectors, std::uint32_t flags = 0,
             const void* data = nullptr);
  std::byte* buffer(int tag) { return buffers_[static_cast<std::size_t>(tag)]; }
  bool done(int tag) const { return slots_[static_cast<std::size_t>(tag)].done; }
  int result(int tag) const { return slots_[static_cast<std::size_t>(tag)].result; }
  // How many times the core completed this tag's current request (must be 1).
  unsigned completions(int tag) const { return slots_[static_cast<std::size_t>(tag)].completions; }
  // Make the tag reusable after its completion was inspected.
  void release(int tag);
  unsigned outstanding() const { return outstanding_; }
  std::uint64_t total_completions() const { return total_completions_; }

  // Called for every completion (after it is recorded), if set.
  std::function<void(int tag, int result)> on_complete;

  // --- driving the queue ---
  // queue.run(); backend.poll(wait_usec); queue.run().
  void run_once(unsigned wait_usec = 0);
  // Drive until nothing is outstanding or the timeout passes (wall clock).
  // Returns true when idle.
  bool run_until_idle(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Drive until done(tag) or the timeout passes.
  bool run_until_done(int tag, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // --- synchronous helpers: submit, run until done, release; return the result ---
  int read(sector_t sector, std::uint32_t nr_sectors, void* out);
  int write(sector_t sector, std::uint32_t nr_sectors, const void* data, std::uint32_t flags = 0);
  int flush();
  int discard(sector_t sector, std::uint32_t nr_sectors);
  int write_zeroes(sector_t sector, std::uint32_t nr_sectors);

  DispatchQueue& queue() { return queue_; }
  IoBackend& backend() { return backend_; }

  // CompletionSink
  void request_done(Request& req, int result) override;

 private:
  struct Slot {
    bool busy = false;
    bool done = false;
    int result = 0;
    unsigned completions = 0;
  };
  int sync(Op op, sector_t sector, std::uint32_t nr_sectors, std::uint32_t flags, const void* data, void* out);

  DispatchQueue& queue_;
  IoBackend& backend_;
  std::uint32_t max_io_bytes_;
  std::vector<Request> requests_;
  std::vector<Slot> slots_;
  std::vector<std::byte*> buffers_;
  unsigned outstanding_ = 0;
  std::uint64_t total_completions_ = 0;
  bool registered_ = false;
  bool zero_copy_ = false;
};

}  // namespace ubdm
