// SPDX-License-Identifier: MIT
#include <sys/sysmacros.h>

#include <fmt/format.h>

#include "ubdm/io.hpp"

namespace ubdm {

std::string BlockDevice::display_name() const {
  if (is_block_device()) {
    return fmt::format("{}:{}", major(rdev_), minor(rdev_));
  }
  return path_;
}

}  // namespace ubdm
