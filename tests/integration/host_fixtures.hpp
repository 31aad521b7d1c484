// SPDX-License-Identifier: MIT
// Host fixtures shared by the integration tests: shell commands, sparse
// temporary files and loop devices, each cleaned up by its destructor.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "ubdm/error.hpp"

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

}  // namespace ubdm::test
