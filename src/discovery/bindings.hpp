// SPDX-License-Identifier: MIT
// The two small state files of multipath naming, in multipathd's formats so
// that files carried over from multipath-tools keep their meaning:
//
//  * the bindings file: one "ALIAS WWID" line per user-friendly name ever
//    given ("mpatha 3600a0b8..."), '#' starting a comment
//    (libmultipath/alias.c);
//  * the wwids file: one "/WWID/" line per WWID that was ever multipathed,
//    the memory that find_multipaths strict and on rely on
//    (libmultipath/wwids.c).
//
// Both are parsed by pure functions; the file functions read them (a
// missing file is an empty one) and replace them atomically (a temporary
// file, fsync, rename, fsync of the directory), so a crash leaves the old
// file or the new one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ubdm::discovery {

struct Binding {
  std::string alias;
  std::string wwid;
  bool operator==(const Binding&) const = default;
};

// Aliases in multipathd's order (alias.c alias_compar()): shorter first,
// then alphabetical, so that for one prefix "mpathz" < "mpathaa" and the
// list reads in allocation order.
bool alias_less(std::string_view a, std::string_view b);

class Bindings {
 public:
  enum class Add : std::uint8_t {
    kAdded,
    kExists,    // the same alias for the same WWID: nothing to do
    kConflict,  // the alias is bound to another WWID: refused
  };
  // An alias is bound to one WWID at most; a WWID may have been given
  // several aliases over time (lookup by WWID finds the first in order).
  Add add(const std::string& alias, const std::string& wwid);
  bool remove_alias(std::string_view alias);

  const Binding* for_alias(std::string_view alias) const;
  const Binding* for_wwid(std::string_view wwid) const;
  const std::vector<Binding>& entries() const { return entries_; }  // in alias order
  bool empty() const { return entries_.empty(); }
  bool operator==(const Bindings&) const = default;

 private:
  std::vector<Binding> entries_;
};

// Parse a bindings file's text. Lines that cannot be used (no WWID, a WWID
// over 127 characters, an alias already bound to another WWID) are left out
// with a note in `notes` naming the line, as multipathd leaves them out;
// words after the WWID are ignored with a note.
Bindings parse_bindings(std::string_view text, std::vector<std::string>* notes = nullptr);
// The file's text: a comment header of our own, then the bindings in order.
std::string format_bindings(const Bindings& b);

Bindings read_bindings_file(const std::string& path, std::vector<std::string>* notes = nullptr);
void write_bindings_file(const std::string& path, const Bindings& b);

// User-friendly names: PREFIX followed by a, b, ..., z, aa, ab, ... (id 1 is
// "a", 26 "z", 27 "aa": alias.c format_devname()).
std::string friendly_name(std::string_view prefix, unsigned id);
// The id of ALIAS if it is PREFIX followed by 1 to 7 lowercase letters
// (alias.c scan_devname()), else nullopt.
std::optional<unsigned> friendly_id(std::string_view alias, std::string_view prefix);

// The wwids file: WWIDs in file order, once each. Lines not of the form
// "/WWID/" (comments, a WWID multipathd struck out with '#') are skipped.
std::vector<std::string> parse_wwids(std::string_view text);
std::string format_wwids(const std::vector<std::string>& wwids);
std::vector<std::string> read_wwids_file(const std::string& path);
void write_wwids_file(const std::string& path, const std::vector<std::string>& wwids);

}  // namespace ubdm::discovery
