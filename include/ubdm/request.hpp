// SPDX-License-Identifier: MIT
// The frontend seam: what a frontend (ublk, or the in-process test frontend)
// hands to the core, and how the core hands it back.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ubdm/types.hpp"

namespace ubdm {

struct Request;

// Implemented by a frontend. The core calls request_done() exactly once per
// submitted request, on the queue thread that the request was submitted on,
// with 0 or a negative errno. The request (and its buffer) belongs to the core
// from DispatchQueue::submit() until that call.
class CompletionSink {
 public:
  virtual void request_done(Request& req, int result) = 0;

 protected:
  ~CompletionSink() = default;
};

// An original request, as blk-mq (through ublk) delivers it: already merged
// and sorted. The frontend owns the storage, one Request per queue tag, so
// nothing is allocated per I/O.
struct Request {
  Op op = Op::kRead;
  std::uint32_t flags = 0;        // ReqFlag bits
  sector_t sector = 0;            // first sector (unused for FLUSH)
  std::uint32_t nr_sectors = 0;   // length in sectors (0 for FLUSH)
  // Data for READ/WRITE, nr_sectors * 512 bytes: at `buf`, which may lie in
  // registered buffer `buf_index` (else -1). A zero-copy frontend passes
  // buf == nullptr with buf_index >= 0: the data are the kernel request's
  // own pages, registered at that index, reachable only by the backend at
  // byte offsets from 0, never by the CPU.
  std::byte* buf = nullptr;
  int buf_index = -1;
  std::uint16_t tag = 0;          // queue tag, < queue depth
  CompletionSink* sink = nullptr; // where the completion goes
  void* frontend_data = nullptr;  // the frontend's own cookie; the core never reads it
};

}  // namespace ubdm
