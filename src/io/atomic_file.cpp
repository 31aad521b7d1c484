// SPDX-License-Identifier: MIT
#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "ubdm/error.hpp"

namespace ubdm {
namespace {

// Give up on `temp`: the old file stays as it was.
[[noreturn]] void abandon(int fd, const std::string& temp, const char* what) {
  const int err = errno;
  ::close(fd);
  ::unlink(temp.c_str());
  fail(err, "cannot {} {}: {}", what, temp, errno_string(err));
}

}  // namespace

void replace_file_atomically(const std::string& path, const std::string& temp, std::string_view text, mode_t mode) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    fail(ec.value(), "cannot create {}: {}", dir.string(), ec.message());
  }
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    const int err = errno;
    fail(err, "cannot write {}: {}", temp, errno_string(err));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      abandon(fd, temp, "write");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    abandon(fd, temp, "sync");
  }
  ::close(fd);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    fail(err, "cannot replace {}: {}", path, errno_string(err));
  }
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    (void)::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace ubdm
