// SPDX-License-Identifier: MIT
#include "discovery/bindings.hpp"


#include <algorithm>
#include <cerrno>
#include <climits>
#include <fstream>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "io/atomic_file.hpp"
#include "ubdm/error.hpp"

namespace ubdm::discovery {


namespace {

constexpr std::size_t kMaxWwid = 127;  // multipathd's WWID_SIZE less its NUL

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int err = errno;
    if (err == ENOENT) {
      return std::nullopt;
    }
    fail(err, "cannot read {}: {}", path, errno_string(err));
  }
  std::stringstream s;
  s << in.rdbuf();
  if (in.bad()) {
    fail(EIO, "cannot read {}", path);
  }
  return s.str();
}

// Replace `path` with `text` so that a reader sees the old file or the new
// one, whenever this process dies.
void write_atomically(const std::string& path, const std::string& text) {
  replace_file_atomically(path, path + ".tmp", text);
}

std::vector<std::string> split_blanks(std::string_view s) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) {
      ++i;
    }
    const std::size_t b = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') {
      ++i;
    }
    if (i > b) {
      out.emplace_back(s.substr(b, i - b));
    }
  }
  return out;
}

void note(std::vector<std::string>* notes, std::string text) {
  if (notes != nullptr) {
    notes->push_back(std::move(text));
  }
}

}  // namespace

bool alias_less(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return a.size() < b.size();
  }
  return a < b;
}

Bindings::Add Bindings::add(const std::string& alias, const std::string& wwid) {
  auto it = std::lower_bound(entries_.begin(), entries_.end(), alias,
                             [](const Binding& b, const std::string& a) { return alias_less(b.alias, a); });
  if (it != entries_.end() && it->alias == alias) {
    return it->wwid == wwid ? Add::kExists : Add::kConflict;
  }
  entries_.insert(it, Binding{alias, wwid});
  return Add::kAdded;
}

bool Bindings::remove_alias(std::string_view alias) {
  auto it = std::find_if(entries_.begin(), entries_.end(), [&](const Binding& b) { return b.alias == alias; });
  if (it == entries_.end()) {
    return false;
  }
  entries_.erase(it);
  return true;
}

const Binding* Bindings::for_alias(std::string_view alias) const {
  for (const Binding& b : entries_) {
    if (b.alias == alias) {
      return &b;
    }
  }
  return nullptr;
}

const Binding* Bindings::for_wwid(std::string_view wwid) const {
  for (const Binding& b : entries_) {
    if (b.wwid == wwid) {
      return &b;
    }
  }
  return nullptr;
}

Bindings parse_bindings(std::string_view text, std::vector<std::string>* notes) {
  Bindings out;
  std::size_t pos = 0;
  unsigned line_no = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    // alias.c read_binding(): everything from '#' (or a CR) on is ignored.
    line = line.substr(0, line.find_first_of("#\r"));
    const std::vector<std::string> w = split_blanks(line);
    if (w.empty()) {
      continue;
    }
    if (w.size() < 2) {
      note(notes, fmt::format("bindings line {}: alias '{}' has no WWID: ignored", line_no, w[0]));
      continue;
    }
    if (w[1].size() > kMaxWwid) {
      note(notes, fmt::format("bindings line {}: the WWID is longer than {} characters: ignored", line_no, kMaxWwid));
      continue;
    }
    if (w.size() > 2) {
      note(notes, fmt::format("bindings line {}: ignoring '{}' after the WWID", line_no, w[2]));
    }
    switch (out.add(w[0], w[1])) {
      case Bindings::Add::kAdded: break;
      case Bindings::Add::kExists:
        note(notes, fmt::format("bindings line {}: {} {} is given twice", line_no, w[0], w[1]));
        break;
      case Bindings::Add::kConflict:
        note(notes, fmt::format("bindings line {}: alias {} is bound to {} already: its binding to {} is dropped",
                                line_no, w[0], out.for_alias(w[0])->wwid, w[1]));
        break;
    }
  }
  return out;
}

std::string format_bindings(const Bindings& b) {
  std::string out =
      "# User-friendly names of multipath maps, kept by ubdmd.\n"
      "# One binding per line: ALIAS WWID. ubdmd adds lines as it names new maps;\n"
      "# an alias stays with its WWID for good.\n";
  for (const Binding& e : b.entries()) {
    out += e.alias;
    out += ' ';
    out += e.wwid;
    out += '\n';
  }
  return out;
}

Bindings read_bindings_file(const std::string& path, std::vector<std::string>* notes) {
  const auto text = read_text(path);
  return text ? parse_bindings(*text, notes) : Bindings{};
}

void write_bindings_file(const std::string& path, const Bindings& b) { write_atomically(path, format_bindings(b)); }

std::string friendly_name(std::string_view prefix, unsigned id) {
  std::string letters;
  for (unsigned long long n = id; n >= 1; n /= 26) {
    --n;
    letters.insert(letters.begin(), static_cast<char>('a' + n % 26));
  }
  return std::string(prefix) + letters;
}

std::optional<unsigned> friendly_id(std::string_view alias, std::string_view prefix) {
  if (alias.size() <= prefix.size() || alias.substr(0, prefix.size()) != prefix ||
      alias.size() > prefix.size() + 7) {
    return std::nullopt;
  }
  unsigned long long n = 0;
  for (const char c : alias.substr(prefix.size())) {
    if (c < 'a' || c > 'z') {
      return std::nullopt;
    }
    n = n * 26 + static_cast<unsigned>(c - 'a') + 1;
  }
  if (n > static_cast<unsigned long long>(INT_MAX)) {
    return std::nullopt;  // beyond multipathd's int ids
  }
  return static_cast<unsigned>(n);
}

std::vector<std::string> parse_wwids(std::string_view text) {
  std::vector<std::string> out;
  std::set<std::string, std::less<>> seen;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      nl = text.size();
    }
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    // wwids.c lookup_wwid(): a line counts if it starts with '/', and the
    // WWID runs to the next '/'.
    if (line.empty() || line[0] != '/') {
      continue;
    }
    const std::size_t end = line.find('/', 1);
    if (end == std::string_view::npos || end == 1) {
      continue;
    }
    std::string wwid(line.substr(1, end - 1));
    if (seen.insert(wwid).second) {
      out.push_back(std::move(wwid));
    }
  }
  return out;
}

std::string format_wwids(const std::vector<std::string>& wwids) {
  std::string out =
      "# WWIDs of every LUN ubdmd has multipathed, one per line between slashes.\n"
      "# find_multipaths strict and on set up maps for the WWIDs listed here.\n";
  for (const std::string& w : wwids) {
    out += '/';
    out += w;
    out += "/\n";
  }
  return out;
}

std::vector<std::string> read_wwids_file(const std::string& path) {
  const auto text = read_text(path);
  return text ? parse_wwids(*text) : std::vector<std::string>{};
}

void write_wwids_file(const std::string& path, const std::vector<std::string>& wwids) {
  write_atomically(path, format_wwids(wwids));
}

}  // namespace ubdm::discovery
