// SPDX-License-Identifier: MIT
// io_uring implementation of IoBackend: one ring per queue thread, fixed
// files indexed by BlockDevice::id(), registered buffers, batched submission.
// The ring is exposed so that the ublk queue loop can put its own commands on
// the same ring (one io_uring_enter per batch for both).
//
// How each operation is carried out:
//   READ / WRITE   IORING_OP_READ(_FIXED) / WRITE(_FIXED); FUA adds RWF_DSYNC.
//                  Short transfers are continued until the whole length is done.
//   FLUSH          IORING_OP_FSYNC with IORING_FSYNC_DATASYNC.
//   DISCARD        block device: the block layer's uring_cmd
//                  BLOCK_URING_CMD_DISCARD (Linux 6.12+), else fallocate
//                  PUNCH_HOLE|KEEP_SIZE; regular file: fallocate PUNCH_HOLE.
//   WRITE_ZEROES   fallocate ZERO_RANGE|KEEP_SIZE, else writes from a static
//                  zero buffer.
// What the running kernel does not support is learned on the first failure
// and remembered per device, so the probe costs one failed I/O per device.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <vector>

#include "io/fd_limit.hpp"
#include "ubdm/io.hpp"

namespace ubdm {

// Other users of the same ring (the ublk queue loop) put a RingHandler* in
// their SQEs' user_data. Backend I/O is told apart by bit 0 of user_data,
// which is set for the backend's own IoRequest pointers. A CQE whose
// user_data is 0 is ignored.
//
// on_cqe() runs inside UringBackend::poll(), after the CQE has been consumed
// from the CQ, so it may freely get and fill new SQEs (get_sqe()).
class RingHandler {
 public:
  virtual void on_cqe(int res, std::uint32_t cqe_flags) = 0;

 protected:
  ~RingHandler() = default;
};

class UringBackend final : public IoBackend {
 public:
  struct Options {
    unsigned entries = 256;  // SQ size; CQ is twice that
    // Sparse fixed-file table size. Device ids must be below it: the default
    // is what the device opener hands out ids from (fd_limit.hpp).
    unsigned max_files = fixed_file_slots();
  };

  // Creates the ring on the calling thread (which becomes its only issuer:
  // every other method, including register_buffers/attach, must be called on
  // this thread). Throws ubdm::Error with a clear message if io_uring is
  // unavailable. Destroy it only with in_flight() == 0: completions still
  // outstanding at destruction are never delivered.
  explicit UringBackend(Options opts);
  UringBackend() : UringBackend(Options{}) {}
  ~UringBackend() override;
  UringBackend(const UringBackend&) = delete;
  UringBackend& operator=(const UringBackend&) = delete;

  // Register the frontend's data buffers (IoRequest::buf_index refers to
  // them), replacing any previously registered set. Call with no I/O in
  // flight. Returns 0 or -errno.
  int register_buffers(std::span<const iovec> bufs);
  // Register an empty buffer table of `n` slots instead, for buffers the
  // kernel installs itself (ublk zero copy: each request's pages at its
  // tag's index). Call with no I/O in flight. Returns 0 or -errno.
  int register_sparse_buffers(unsigned n);
  // True when `n` SQEs can be had from get_sqe() in a row (submitting what
  // is queued to make room if needed), so that they can be linked.
  bool reserve_sqes(unsigned n);

  // Installs dev.fd() in fixed-file slot dev.id(). Attachments are counted:
  // a device named by two tables (old and new) is attached twice and stays
  // installed until detached twice. Returns 0 or -errno (-EINVAL if the id is
  // not below Options::max_files).
  int attach(const BlockDevice& dev) override;
  void detach(const BlockDevice& dev) override;
  // Install the frontend's own file (ublk: /dev/ublkcN) in the ring's last
  // fixed-file slot, returned for IOSQE_FIXED_FILE use. The ring then holds
  // the file until the ring itself is freed, which the kernel does only
  // after every request on it has completed: so the file's last release
  // comes after this ring's last backend I/O, even when the process dies.
  // Returns the slot or -errno.
  int install_own_file(int fd);
  // Never fails synchronously: a request for a device that is not attached
  // (or otherwise invalid) completes from the next poll() with -EBADF/-EINVAL.
  void submit(IoRequest& req) override;
  // Transient submission failures (-EAGAIN/-EBUSY) are not reported: the SQEs
  // stay queued and go with the next flush() or poll().
  int flush() override;
  // flush(), and in the same system call run the completion work the kernel
  // has queued for this ring, so that I/O which completed while it was
  // submitted is in the CQ at return (events_ready()), for the next poll()
  // to reap without entering the kernel again. For a thread about to spin.
  int flush_and_collect();
  // Timeouts, signals and transient resource shortages are not failures:
  // a negative result is a real error of the ring.
  int poll(unsigned wait_usec) override;
  unsigned in_flight() const override { return in_flight_; }

  io_uring* ring() { return &ring_; }
  // Get an SQE, submitting queued ones first if the SQ is full. Returns
  // nullptr only if the kernel accepts none of the queued SQEs (the caller
  // must then retry later, e.g. after poll()).
  io_uring_sqe* get_sqe();

  // Whether a poll(0) would find something: a CQE, or completion work the
  // kernel has queued for this ring (which runs when we next enter it).
  // Reads shared memory only, no syscall: for spinning before a sleep.
  bool events_ready() const;

  // The setup flags the ring was created with (for logs and tests).
  unsigned setup_flags() const { return setup_flags_; }
  // Slots of the fixed-file table (Options::max_files).
  unsigned max_files() const { return opts_.max_files; }

 private:
  void drop_buffers();  // unregister the current buffer table, if any
  // Per fixed-file slot (= device id): what is installed there and what the
  // kernel was found to support for that device. Indexed, never searched.
  struct Slot {
    const BlockDevice* dev = nullptr;
    int fd = -1;
    unsigned refs = 0;
    bool is_bdev = false;
    std::uint8_t discard_phase = 0;  // first Phase to try for DISCARD
    bool zero_range_ok = true;       // fallocate ZERO_RANGE works here
  };

  // A request that could not be handed to the ring yet (no SQE), or that
  // failed before reaching the kernel and completes from poll().
  struct Deferred {
    IoRequest* req;
    int res;        // completion result when `complete`
    bool complete;  // true: deliver res; false: retry preparing the SQE
  };

  int validate(const IoRequest& req) const;
  void start_phase(IoRequest& req);
  // Fill an SQE for the request's current phase and progress. False if no
  // SQE was available.
  bool prep(IoRequest& req);
  // Put the request (back) on the ring, or on the deferred list.
  void issue(IoRequest& req);
  void on_cqe(IoRequest& req, int res);
  void finish(IoRequest& req, int res);
  void defer(IoRequest& req, int res, bool complete);
  // Retry deferred preparations; with `deliver`, also deliver deferred errors.
  void run_deferred(bool deliver);
  // Consume and dispatch ready CQEs; returns how many went to RingHandlers.
  unsigned reap();

  io_uring ring_{};
  Options opts_;
  unsigned setup_flags_ = 0;
  unsigned in_flight_ = 0;
  unsigned delivered_ = 0;  // backend completions delivered, ever (wraps)
  bool continued_ = false;  // a completion queued a continuation SQE
  bool buffers_registered_ = false;
  bool in_run_deferred_ = false;
  std::vector<Slot> slots_;
  std::vector<Deferred> deferred_;
  std::vector<Deferred> deferred_scratch_;
};

}  // namespace ubdm
