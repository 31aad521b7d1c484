// SPDX-License-Identifier: MIT
#include "daemon/openers.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <fmt/format.h>

namespace ubdm::daemon {

unsigned count_openers(dev_t devt) {
  if (devt == 0) {
    return 0;
  }
  namespace fs = std::filesystem;
  unsigned count = 0;
  std::error_code ec;
  for (const fs::directory_entry& proc : fs::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename().string();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::error_code fd_ec;
    for (const fs::directory_entry& fd : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
      struct stat st {};
      // stat() follows the magic link to the open file itself.
      if (::stat(fd.path().c_str(), &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == devt) {
        ++count;
      }
    }
  }
  const std::string number = fmt::format("{}:{}", major(devt), minor(devt));
  std::ifstream mounts("/proc/self/mountinfo");
  for (std::string line; std::getline(mounts, line);) {
    std::istringstream in(line);
    std::string id;
    std::string parent;
    std::string majmin;
    in >> id >> parent >> majmin;
    if (majmin == number) {
      ++count;
    }
  }
  for ([[maybe_unused]] const fs::directory_entry& h :
       fs::directory_iterator("/sys/dev/block/" + number + "/holders", ec)) {
    ++count;
  }
  return count;
}

}  // namespace ubdm::daemon
