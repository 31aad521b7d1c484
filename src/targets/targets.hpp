// SPDX-License-Identifier: MIT
// Constructors of the built-in targets, collected by registry.cpp.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "ubdm/target.hpp"

namespace ubdm {

std::unique_ptr<Target> create_linear_target(TargetEnv& env, std::span<const std::string> args);
std::unique_ptr<Target> create_striped_target(TargetEnv& env, std::span<const std::string> args);
std::unique_ptr<Target> create_error_target(TargetEnv& env, std::span<const std::string> args);
std::unique_ptr<Target> create_zero_target(TargetEnv& env, std::span<const std::string> args);
std::unique_ptr<Target> create_delay_target(TargetEnv& env, std::span<const std::string> args);
std::unique_ptr<Target> create_flakey_target(TargetEnv& env, std::span<const std::string> args);

}  // namespace ubdm
