// SPDX-License-Identifier: MIT
// Default Target behaviour and the Clone methods targets call.
#include <limits>

#include "ubdm/dispatch_queue.hpp"
#include "ubdm/error.hpp"
#include "ubdm/target.hpp"

namespace ubdm {

EndIoResult Target::end_io(Clone& /*clone*/, int /*error*/) { return EndIoResult::kDone; }

void Target::timer_fired(Clone& clone) { clone.issue(); }

sector_t Target::max_io_len(sector_t target_offset) const { return len_ - target_offset; }

std::string Target::message(std::span<const std::string> /*args*/) {
  fail_invalid("target '{}' does not accept messages", type_name_);
}

void Target::iterate_devices(const DeviceVisitor& /*visit*/) const {}

sector_t Clone::target_offset() const { return sector_ - target_->start(); }

unsigned Clone::queue_id() const { return queue_->id(); }

void Clone::remap(const BlockDevice& dev, sector_t dev_sector) {
  io_.op = req_->op;
  io_.flags = req_->flags;
  io_.dev = &dev;
  io_.offset = dev_sector << kSectorShift;
  io_.buf = buf_;
  io_.len = bytes();
  io_.buf_index = op_has_data(req_->op) ? req_->buf_index : -1;
  io_.buf_offset = buf_offset_;
  io_.completion = this;
  io_.done = 0;
  io_.attempt = 0;
}

void Clone::issue() { queue_->clone_issue(*this); }

void Clone::end(int err) { queue_->clone_end(*this, err); }

void Clone::start_timer(unsigned ms) { queue_->clone_start_timer(*this, ms); }

void Clone::io_complete(int res) { queue_->clone_io_done(*this, res); }

}  // namespace ubdm
