// SPDX-License-Identifier: MIT
// Host fixtures shared by the integration tests: shell commands, sparse
// temporary files and loop devices, each cleaned up by its destructor.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ubdm/error.hpp"
#include "ubdm/io.hpp"

namespace ubdm::test {

// Run a shell command; returns its exit status and stdout+stderr.
inline int run_command(const std::string& cmd, std::string& out) {
  out.clear();
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) {
    out = "popen failed";
    return -1;
  }
  std::array<char, 256> chunk{};
  while (std::fgets(chunk.data(), static_cast<int>(chunk.size()), p) != nullptr) {
    out += chunk.data();
  }
  const int status = ::pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) {
    out.pop_back();
  }
  return status;
}

// A sparse temporary file of a given size.
class TempFile {
 public:
  explicit TempFile(std::uint64_t bytes, const std::string& dir = "/var/tmp") {
    std::string tmpl = dir + "/ubdm-test-XXXXXX";
    const int fd = ::mkstemp(tmpl.data());
    if (fd < 0) {
      throw std::runtime_error("mkstemp in " + dir + ": " + errno_string(errno));
    }
    path_ = tmpl;
    if (::ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
      ::close(fd);
      throw std::runtime_error("ftruncate: " + errno_string(errno));
    }
    ::close(fd);
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loop device over a backing file, detached in the destructor.
class LoopDevice {
 public:
  // Empty path() and a reason in error() if it could not be set up.
  explicit LoopDevice(const std::string& backing) {
    std::string out;
    const int status = run_command("losetup --direct-io=on -f --show '" + backing + "'", out);
    if (status != 0 || out.rfind("/dev/loop", 0) != 0) {
      error_ = "losetup failed (status " + std::to_string(status) + "): " + out;
      return;
    }
    path_ = out;
  }
  ~LoopDevice() {
    if (!path_.empty()) {
      std::string out;
      run_command("losetup -d " + path_, out);
    }
  }
  LoopDevice(const LoopDevice&) = delete;
  LoopDevice& operator=(const LoopDevice&) = delete;
  const std::string& path() const { return path_; }
  const std::string& error() const { return error_; }
  std::string sysfs_queue() const {
    return "/sys/block/" + std::filesystem::path(path_).filename().string() + "/queue/";
  }

 private:
  std::string path_;
  std::string error_;
};

// One backend request, submitted and polled for until it completes (or
// `timeout` passes). Returns its result; INT_MIN if it never completed.
// One backend request, ready to submit.
inline IoRequest make_io(Op op, const BlockDevice& dev, std::uint64_t offset, std::byte* buf, std::uint64_t len,
                         IoCompletion& c, std::uint32_t flags = 0) {
  IoRequest r;
  r.op = op;
  r.flags = flags;
  r.dev = &dev;
  r.offset = offset;
  r.buf = buf;
  r.len = len;
  r.completion = &c;
  return r;
}

inline int sync_io(IoBackend& backend, const BlockDevice& dev, Op op, std::uint64_t offset, std::byte* buf,
                   std::uint64_t len, std::chrono::seconds timeout = std::chrono::seconds(120)) {
  struct Waiter final : IoCompletion {
    int res = INT_MIN;
    void io_complete(int r) override { res = r; }
  } w;
  IoRequest r = make_io(op, dev, offset, buf, len, w);
  backend.submit(r);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (backend.in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    if (backend.poll(100000) < 0) {
      break;
    }
  }
  return w.res;
}

// One underlying device for a table: a file, or a loop device over a file.
class Backing {
 public:
  Backing(bool loop, std::uint64_t bytes) : file_(bytes) {
    path_ = file_.path();
    if (loop) {
      loop_ = std::make_unique<LoopDevice>(file_.path());
      path_ = loop_->path();
    }
  }
  // Empty if the loop device could not be set up.
  const std::string& path() const { return path_; }
  const std::string& file_path() const { return file_.path(); }
  std::string error() const { return loop_ ? loop_->error() : std::string(); }

  // What is on the device, through a separate O_DIRECT descriptor. Throws
  // if it cannot be read whole.
  std::vector<std::byte> read(std::uint64_t offset, std::size_t len) const {
    void* p = std::aligned_alloc(4096, (len + 4095) / 4096 * 4096);
    std::vector<std::byte> out(len);
    const int fd = ::open(path_.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    ssize_t n = -1;
    if (fd >= 0 && p != nullptr) {
      n = ::pread(fd, p, len, static_cast<off_t>(offset));
      std::memcpy(out.data(), p, len);
    }
    const int err = errno;
    if (fd >= 0) {
      ::close(fd);
    }
    std::free(p);
    if (n != static_cast<ssize_t>(len)) {
      throw std::runtime_error("pread " + path_ + " at " + std::to_string(offset) + ": " + errno_string(err));
    }
    return out;
  }

 private:
  TempFile file_;
  std::unique_ptr<LoopDevice> loop_;
  std::string path_;
};

}  // namespace ubdm::test
