// SPDX-License-Identifier: MIT
#include "discovery/scsi_io.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

extern "C" {
#include <scsi/sg_cmds_basic.h>
#include <scsi/sg_cmds_extra.h>
#include <scsi/sg_lib.h>
}

namespace ubdm::discovery {

std::vector<std::uint8_t> read_file_bytes(const std::string& path) {
  std::vector<std::uint8_t> out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return out;
  }
  std::uint8_t buf[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      if (n < 0) {
        out.clear();
      }
      break;
    }
    out.insert(out.end(), buf, buf + n);
  }
  ::close(fd);
  return out;
}

namespace {

constexpr int kRetries = 3;        // alua_rtpg.c: retry_count = 3
constexpr int kBufLen = 4096;      // alua_spc3.h VPD_BUFLEN
constexpr int kMaxRtpgLen = 65536;  // beyond any target's list of groups

// The file descriptor of an opened path, closed on scope exit.
class SgFd {
 public:
  explicit SgFd(const std::string& node) : fd_(sg_cmds_open_device(node.c_str(), true, 0)) {}
  ~SgFd() {
    if (fd_ >= 0) {
      sg_cmds_close_device(fd_);
    }
  }
  SgFd(const SgFd&) = delete;
  SgFd& operator=(const SgFd&) = delete;
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_;
};

std::string category_text(int cat) {
  char buf[160] = {};
  sg_get_category_sense_str(cat, sizeof(buf), buf, 0);
  return buf;
}

// Runs `send(buffer, length)` (an sg_ll_* call: 0, a sense category, or
// -1) with multipathd's retries.
template <typename Send>
std::string with_retries(const char* what, Send send, std::vector<std::uint8_t>& buf) {
  int rc = 0;
  for (int attempt = 0; attempt <= kRetries; ++attempt) {
    std::fill(buf.begin(), buf.end(), 0);
    rc = send(buf.data(), static_cast<int>(buf.size()));
    if (rc == 0 || rc == SG_LIB_CAT_RECOVERED) {
      return "";
    }
    if (rc != SG_LIB_CAT_UNIT_ATTENTION && rc != SG_LIB_CAT_NOT_READY) {
      break;
    }
  }
  return rc < 0 ? fmt::format("{} failed (SG_IO or transport error)", what)
                : fmt::format("{} failed: {}", what, category_text(rc));
}

bool read_sysfs(const std::string& path, std::vector<std::uint8_t>& out) {
  out = read_file_bytes(path);
  return !out.empty();
}

ScsiResponse inquiry(const std::string& node, bool evpd, int page) {
  ScsiResponse r;
  const SgFd fd(node);
  if (fd.fd() < 0) {
    r.error = fmt::format("cannot open {}: {}", node, std::strerror(-fd.fd()));
    return r;
  }
  r.data.resize(kBufLen);
  const char* what = evpd ? "INQUIRY VPD 0x83" : "INQUIRY";
  r.error = with_retries(
      what, [&](void* b, int len) { return sg_ll_inquiry(fd.fd(), false, evpd, page, b, len, false, 0); }, r.data);
  if (!r.error.empty()) {
    r.data.clear();
    return r;
  }
  if (evpd && r.data.size() >= 4) {
    r.data.resize(std::min<std::size_t>(r.data.size(), static_cast<std::size_t>((r.data[2] << 8U) | r.data[3]) + 4));
  }
  return r;
}

}  // namespace

ScsiResponse scsi_standard_inquiry(const std::string& dev_node, const std::string& device_dir) {
  ScsiResponse r;
  if (!device_dir.empty() && read_sysfs(device_dir + "/inquiry", r.data) && r.data.size() >= 6) {
    return r;
  }
  return inquiry(dev_node, false, 0);
}

ScsiResponse scsi_vpd83(const std::string& dev_node, const std::string& device_dir) {
  ScsiResponse r;
  if (!device_dir.empty() && read_sysfs(device_dir + "/vpd_pg83", r.data) && r.data.size() >= 4) {
    return r;
  }
  return inquiry(dev_node, true, 0x83);
}

ScsiResponse scsi_report_target_port_groups(const std::string& dev_node) {
  ScsiResponse r;
  const SgFd fd(dev_node);
  if (fd.fd() < 0) {
    r.error = fmt::format("cannot open {}: {}", dev_node, std::strerror(-fd.fd()));
    return r;
  }
  auto send = [&](void* b, int len) { return sg_ll_report_tgt_prt_grp2(fd.fd(), b, len, false, false, 0); };
  r.data.resize(kBufLen);
  r.error = with_retries("REPORT TARGET PORT GROUPS", send, r.data);
  if (!r.error.empty()) {
    r.data.clear();
    return r;
  }
  // alua_rtpg.c get_asymmetric_access_state(): again with room for the
  // whole list when the header says it is longer.
  const std::size_t want = ((std::size_t{r.data[0]} << 24) | (std::size_t{r.data[1]} << 16) |
                            (std::size_t{r.data[2]} << 8) | r.data[3]) + 4;
  if (want > r.data.size()) {
    r.data.resize(std::min<std::size_t>(want, kMaxRtpgLen));
    r.error = with_retries("REPORT TARGET PORT GROUPS", send, r.data);
    if (!r.error.empty()) {
      r.data.clear();
      return r;
    }
  }
  r.data.resize(std::min(r.data.size(), want));
  return r;
}

AluaInfo read_alua_info(const std::string& dev_node, const std::string& device_dir, bool exclusive_pref_bit) {
  AluaInfo out;
  const ScsiResponse vpd = scsi_vpd83(dev_node, device_dir);
  if (!vpd.error.empty()) {
    out.error = vpd.error;
    return out;
  }
  const ScsiResponse rtpg = scsi_report_target_port_groups(dev_node);
  if (!rtpg.error.empty()) {
    out.error = rtpg.error;
    return out;
  }
  return alua_info(vpd.data, rtpg.data, exclusive_pref_bit);
}

}  // namespace ubdm::discovery
