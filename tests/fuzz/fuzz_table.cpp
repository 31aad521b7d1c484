// SPDX-License-Identifier: MIT
// libFuzzer target: dm table text through parse_table_text and Table::build,
// i.e. every target type's constructor (multipath's feature, selector and
// group parsing above all) over the fake disks of fuzz_common.hpp.
//
// Properties checked besides "no crash, leak or UB":
// - parsing and building throw nothing but ubdm::Error (the daemon's
//   contract for bad tables: an error reply, never "internal error");
// - a table that builds prints a table line per target that builds again,
//   into a table that prints the same (dmsetup table | dmsetup load works).
//
// A multipath table with path_check_interval > 0 registers with the
// process-wide path checker thread. The fake disks have no file descriptor,
// so the checker never probes them; it only ticks the target (with the
// manual clock below) until the table is destroyed at the end of the run.
// Its thread is joined by a static destructor at exit.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "ubdm/clock.hpp"
#include "ubdm/error.hpp"
#include "ubdm/table.hpp"

namespace {

using namespace ubdm;

// The owner of the table: two queues, so per-queue selector state is built.
class FuzzDevice final : public DeviceContext {
 public:
  std::string device_name() const override { return name_; }
  bool noflush_suspending() const override { return false; }
  bool suspending() const override { return true; }
  bool suspended() const override { return true; }
  void trigger_event() override {}
  unsigned queue_count() const override { return 2; }

 private:
  std::string name_ = "fuzz";
};

// The table, or nullptr and the error's message in `why`.
std::unique_ptr<Table> build(std::string_view text, std::string& why) {
  static FuzzDevice device;
  static ManualClock clock;
  try {
    return Table::build(parse_table_text(text), fuzz::storage(), device, clock);
  } catch (const Error& e) {
    why = e.what();
    return nullptr;
  }
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) {
    out += l;
    out += '\n';
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  fuzz::quiet_logging();
  (void)fuzz::storage();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string why;
  const std::unique_ptr<Table> table = build(text, why);
  if (!table) {
    if (fuzz::verbose()) {
      std::fprintf(stderr, "refused: %s\n", why.c_str());
    }
    return 0;
  }
  // What the daemon reads of a table it accepted.
  (void)table->io_limits();
  (void)table->devices();
  (void)table->find(table->size() - 1);
  (void)table->status_lines(StatusType::kInfo);
  const std::string printed = joined(table->status_lines(StatusType::kTable));

  const std::unique_ptr<Table> again = build(printed, why);
  if (!again) {
    fuzz::broken("the table a built table prints does not build", printed + "---\n" + why);
  }
  const std::string reprinted = joined(again->status_lines(StatusType::kTable));
  if (reprinted != printed) {
    fuzz::broken("a table printed, rebuilt and printed again reads differently", printed + "---\n" + reprinted);
  }
  if (fuzz::verbose()) {
    std::fprintf(stderr, "built:\n%s", printed.c_str());
  }
  return 0;
}
