// SPDX-License-Identifier: MIT
// libFuzzer target: control-protocol requests through
// ControlServer::handle_request (JSON parsing, the version and op checks,
// the exception-to-reply conversion) into a DeviceManager without a kernel
// (control == nullptr) over the fake disks of fuzz_common.hpp.
//
// An input is a session: up to kMaxRequests requests, one JSON payload per
// line, run in order against one fresh DeviceManager, so that a create can
// be followed by load, suspend, message, remove and the rest.
//
// Properties checked besides "no crash, leak or UB":
// - every reply is an object with "v" 1 and a boolean "ok", and an error
//   reply has a positive errno and a message;
// - no request gets "internal error" (an exception other than ubdm::Error
//   or a JSON type error: a field the daemon forgot to check).
//
// The DeviceManager is small on purpose: construct it, hand it a request,
// get a reply. It is all this harness relies on.
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/protocol.hpp"
#include "control/server.hpp"
#include "daemon/device_manager.hpp"
#include "fuzz_common.hpp"

namespace {

using namespace ubdm;
using json = nlohmann::json;

constexpr std::size_t kMaxRequests = 32;
// Queue slots (queues x depth) a create may ask for. Each slot allocates
// its clones up front: the limits the daemon accepts (64 x 4096) cost about
// 150 MB per device, fine for a daemon, but a fuzzer would spend its time
// (and its memory limit) allocating instead of exploring. Larger creates
// are skipped, and the default depth is small for the same reason.
constexpr std::uint64_t kMaxSlots = 256;
constexpr unsigned kDefaultDepth = 8;

std::string& config_dir() {
  static std::string dir;
  return dir;
}

// The requested value of an unsigned field, `fallback` if absent, or
// nullopt if it is there but not an unsigned number (the daemon refuses it).
std::optional<std::uint64_t> unsigned_field(const json& req, const char* key, std::uint64_t fallback) {
  const auto it = req.find(key);
  if (it == req.end()) {
    return fallback;
  }
  if (!it->is_number_unsigned()) {
    return std::nullopt;
  }
  return it->get<std::uint64_t>();
}

bool too_big(const json& req, const daemon::DaemonConfig& cfg) {
  const auto queues = unsigned_field(req, "queues", cfg.default_queues);
  const auto depth = unsigned_field(req, "depth", cfg.default_depth);
  return queues && depth && *queues <= 1U << 20 && *depth <= 1U << 20 && *queues * *depth > kMaxSlots;
}

std::string dumped(const json& reply) { return reply.dump(-1, ' ', false, json::error_handler_t::replace); }

void check_reply(const json& reply, const std::string& request) {
  if (!reply.is_object() || reply.value("v", json()) != control::kProtocolVersion || !reply.contains("ok") ||
      !reply["ok"].is_boolean()) {
    fuzz::broken("reply is not {v: 1, ok: bool, ...}", request + "\n->\n" + dumped(reply));
  }
  if (reply["ok"].get<bool>()) {
    return;
  }
  const json& err = reply.value("errno", json());
  const json& msg = reply.value("error", json());
  if (!err.is_number_integer() || err.get<int>() <= 0 || !msg.is_string() || msg.get<std::string>().empty()) {
    fuzz::broken("error reply without a positive errno and a message", request + "\n->\n" + dumped(reply));
  }
  if (msg.get<std::string>().rfind("internal error", 0) == 0) {
    fuzz::broken("a request got an internal error", request + "\n->\n" + dumped(reply));
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  fuzz::quiet_logging();
  (void)fuzz::storage();
  std::string tmpl = (std::filesystem::temp_directory_path() / "ubdm-fuzz-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    fuzz::broken("cannot create a temporary directory", tmpl);
  }
  config_dir() = tmpl;
  std::atexit([] { std::filesystem::remove_all(config_dir()); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  daemon::DaemonConfig cfg;
  cfg.config_dir = config_dir();
  cfg.link_dir.clear();
  cfg.names_dir.clear();
  cfg.default_queues = 1;
  cfg.default_depth = kDefaultDepth;
  daemon::DeviceManager manager(cfg, fuzz::storage(), nullptr);

  const control::ControlServer::Caller root{{::getpid(), 0, 0, {}}, -1};
  const control::ControlServer::Handler handler = [&](const json& req,
                                                      const control::ControlServer::Caller&) -> json {
    const std::string& op = req.at("op").get_ref<const std::string&>();
    // `wait` blocks until the device has an event, by design; nothing in
    // this single-threaded session would ever give it one.
    if (op == "wait") {
      return json::object();
    }
    if (op == "create" && too_big(req, cfg)) {
      return control::error_reply(E2BIG, "fuzz: create skipped (too many queue slots)");
    }
    return manager.handle(req);
  };

  std::string_view rest(reinterpret_cast<const char*>(data), size);
  for (std::size_t n = 0; n < kMaxRequests && !rest.empty(); ++n) {
    const std::size_t eol = rest.find('\n');
    const std::string payload(rest.substr(0, eol));
    rest = eol == std::string_view::npos ? std::string_view() : rest.substr(eol + 1);
    const json reply = control::ControlServer::handle_request(payload, root, handler);
    check_reply(reply, payload);
    if (fuzz::verbose()) {
      std::fprintf(stderr, "%s\n-> %s\n", payload.c_str(), dumped(reply).c_str());
    }
  }
  return 0;
}
