// SPDX-License-Identifier: MIT
// One ublk hardware queue: a thread that owns one io_uring carrying both the
// ublk commands (FETCH_REQ, COMMIT_AND_FETCH_REQ) and the backend I/O of the
// core's DispatchQueue. A request goes from the kernel's descriptor to a core
// Request and back as a COMMIT_AND_FETCH on the same ring, with no handoff
// between threads.
#pragma once

#include <sched.h>
#include <sys/types.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "io/uring_backend.hpp"
#include "ubdm/dispatch_queue.hpp"
#include "ubdm/request.hpp"
#include "ublk/abi.hpp"
#include "ublk/poll_window.hpp"

namespace ubdm::ublk {

struct QueueConfig {
  int char_fd = -1;            // /dev/ublkcN, opened once per device
  std::uint16_t q_id = 0;
  unsigned depth = 128;
  std::uint32_t max_io_bytes = 512 * 1024;
  // CPUs that submit to this queue. With `pin`, the thread runs only there,
  // so task work and wake-ups stay on the submitting CPU. Off by default:
  // measured in the 2-CPU test VM, pinning serialises the queue thread with
  // the submitter and costs far more than the cross-CPU wake-ups it saves.
  std::optional<cpu_set_t> affinity;
  bool pin = false;
  // Adaptive polling (PollWindow): before sleeping in the kernel the thread
  // may spin on its ring for at most this many microseconds, where the
  // waits it has measured say the next event comes within that; otherwise
  // it sleeps at once, so an idle or slow device costs next to no CPU (one
  // wait in 16 that would sleep spins, to measure again). 0 turns it off.
  unsigned poll_usec = 0;
  // Zero copy (the device has kFeatAutoBufReg): the kernel registers each
  // request's pages in this ring's buffer table at the tag's index, and the
  // backend reads and writes them there; there are no tag buffers. With
  // kFeatSupportZeroCopy too, a request whose automatic registration failed
  // (kIoFlagNeedRegBuf) is registered by hand instead.
  bool zero_copy = false;
  bool manual_registration = false;
  // Tests only: name an index beyond the table in every FETCH/COMMIT, so
  // that automatic registration always fails and the fallback runs.
  bool force_registration_fallback = false;
};

// Calls `fn` with CAP_SYS_ADMIN dropped from the calling thread's effective
// capabilities and restores them after: FETCH_REQs sent so keep the kernel
// from scanning the disk for partitions (see the definition). Returns fn's
// result.
int without_sys_admin(const std::function<int()>& fn);
// Whether the calling thread has CAP_SYS_ADMIN in its effective set (the
// ublk driver's zero copy needs it).
bool have_sys_admin();

class Queue final : public CompletionSink {
 public:
  Queue(QueueConfig config, DispatchQueue& core);
  ~Queue();
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;

  // Start the thread. Returns once every tag's FETCH_REQ has been handed to
  // the kernel (START_DEV may then be sent), or throws the thread's setup error.
  void start();
  // Ask the thread to end without STOP_DEV (the device was never started):
  // it leaves once the core holds no request. Any thread.
  void request_stop();
  // Wait for the thread to end. After STOP_DEV every tag is aborted by the
  // kernel and the thread leaves once the core has finished its requests.
  void join();

  // CompletionSink: the core finished a request (queue thread).
  void request_done(Request& req, int result) override;

 private:
  // The device's name for log lines (a rename changes it while we run).
  std::string name() const { return core_.device().device_name(); }

  // CQE handler for one tag's FETCH/COMMIT_AND_FETCH command.
  struct TagHandler final : RingHandler {
    Queue* queue = nullptr;
    std::uint16_t tag = 0;
    void on_cqe(int res, std::uint32_t cqe_flags) override;
  };
  // CQE handler for the eventfd that wakes the thread for device changes.
  struct WakeHandler final : RingHandler {
    Queue* queue = nullptr;
    void on_cqe(int res, std::uint32_t cqe_flags) override;
  };
  // CQE handler for a hand registration (REGISTER_IO_BUF) of one tag.
  struct RegisterHandler final : RingHandler {
    Queue* queue = nullptr;
    std::uint16_t tag = 0;
    void on_cqe(int res, std::uint32_t cqe_flags) override;
  };
  // CQE handler for commands whose completion needs no action.
  struct IgnoreHandler final : RingHandler {
    void on_cqe(int /*res*/, std::uint32_t /*cqe_flags*/) override {}
  };
  enum class TagState : std::uint8_t { kFetching, kRegistering, kInCore, kDead };
  struct PendingCommit {
    std::uint16_t tag;
    int result;
  };

  void thread_main(std::promise<void>* ready);
  void setup();
  void loop();
  void teardown();
  void on_tag_cqe(std::uint16_t tag, int res);
  void on_register_cqe(std::uint16_t tag, int res);
  void submit_to_core(std::uint16_t tag);
  void start_registration(std::uint16_t tag);
  void send(std::uint16_t tag, unsigned cmd_op, int result);
  bool try_send(std::uint16_t tag, unsigned cmd_op, int result);
  io_uring_sqe* prep_cmd(std::uint16_t tag, unsigned cmd_op, int result, RingHandler* handler);
  void arm_wake();
  bool spin_for_events(std::uint64_t deadline_ns);

  QueueConfig cfg_;
  DispatchQueue& core_;
  std::thread thread_;
  std::atomic<bool> stop_requested_{false};

  // Owned by the queue thread.
  std::unique_ptr<UringBackend> backend_;
  const IoDesc* descs_ = nullptr;
  std::size_t descs_len_ = 0;
  std::vector<std::byte*> buffers_;
  std::vector<Request> requests_;
  std::vector<TagHandler> tag_handlers_;
  std::vector<RegisterHandler> register_handlers_;
  std::vector<bool> registered_by_hand_;  // zero copy: this tag's request came by REGISTER_IO_BUF
  IgnoreHandler ignore_handler_;
  std::vector<TagState> tag_state_;
  std::vector<PendingCommit> pending_;
  std::vector<PendingCommit> pending_retry_;
  std::vector<std::uint16_t> pending_registrations_;  // REGISTER_IO_BUFs that found no SQE
  std::vector<std::uint16_t> retry_registrations_;
  WakeHandler wake_handler_;
  int wake_fd_ = -1;
  int char_slot_ = -1;  // /dev/ublkcN's fixed-file slot in the ring
  unsigned dead_tags_ = 0;
  bool registered_ = false;
  PollWindow poll_;
};

}  // namespace ubdm::ublk
