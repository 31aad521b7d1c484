// SPDX-License-Identifier: MIT
// Files that are replaced whole: a reader sees the old content or the new,
// never a mix, whenever the writer dies (the recovery records, the
// multipath bindings and wwids files).
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

namespace ubdm {

// Writes `text` to `temp` (mode `mode`; in the same directory as `path`,
// which is created if missing), syncs it, renames it over `path`, then
// syncs the directory, so that the rename is durable. On failure `path` is
// as it was, `temp` is removed, and ubdm::Error says what failed. One
// writer per `temp` at a time.
void replace_file_atomically(const std::string& path, const std::string& temp, std::string_view text,
                             mode_t mode = 0600);

}  // namespace ubdm
