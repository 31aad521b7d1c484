// SPDX-License-Identifier: MIT
// Error conventions.
//
// The data path never throws: it passes negative errno values (or Result<T>).
// The control plane (table parsing, target construction, device setup) throws
// ubdm::Error, which carries an errno and a message written for the user; the
// control server converts it to a reply at one point.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace ubdm {

class Error : public std::runtime_error {
 public:
  Error(int err, const std::string& what) : std::runtime_error(what), errno_(err) {}
  explicit Error(const std::string& what) : Error(EINVAL, what) {}

  // Positive errno describing the failure class (EINVAL for bad input, ENOENT, EBUSY, ...).
  int code() const noexcept { return errno_; }

 private:
  int errno_;
};

template <typename... Args>
[[noreturn]] void fail(int err, fmt::format_string<Args...> f, Args&&... args) {
  throw Error(err, fmt::format(f, std::forward<Args>(args)...));
}

template <typename... Args>
[[noreturn]] void fail_invalid(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(EINVAL, fmt::format(f, std::forward<Args>(args)...));
}

// strerror that is thread safe and returns a std::string.
std::string errno_string(int err);

// A value or a negative errno, for code that must not throw.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  static Result error(int neg_errno) { return Result(ErrTag{neg_errno}); }

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  int err() const noexcept { return ok() ? 0 : std::get<1>(v_).e; }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }

 private:
  struct ErrTag {
    int e;
  };
  explicit Result(ErrTag e) : v_(e) {}
  std::variant<T, ErrTag> v_;
};

}  // namespace ubdm
