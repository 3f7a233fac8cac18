// Access probes (docs/bt.md "Access probes"): the guest tests/guests/access_probes checks every
// round of nine faulting instructions against Intel SDM Vol. 3A §4.7 (CR2, error code, saved
// EIP) and QEMU gives the same output; here the same run must also have delivered most of those
// page faults through the probes, without a host fault, and an observed run (vmbt trace, no
// direct calls) none.
#include <gtest/gtest.h>

#include <string>

#include "cli_run_helper.h"

namespace vmbt {
namespace {

using testing_cli::run_vmbt;
using testing_cli::stat_value;

TEST(BtAccessProbe, RepeatedFaultsGoThroughTheProbes) {
  const auto r = run_vmbt("run --engine bt --stats --kernel " + std::string(VMBT_GUEST_DIR) +
                          "/access_probes.elf");
  EXPECT_EQ(r.status, 1) << r.output;  // isa-debug-exit 0
  EXPECT_NE(r.output.find("access_probes: all checks passed"), std::string::npos) << r.output;
  // Nine instructions fault in 6 rounds each: the first two of each take the host fault (the
  // second makes the probe), the other four the probe's #PF: 36. A probe that finds a kick
  // waiting (the engine's timer, more of them on a loaded host) leaves for the dispatcher, and
  // that round's fault is a host fault: each kick may take one round from the probes.
  const long long probe_faults = stat_value(r.output, "bt.access_probes.page_faults");
  EXPECT_GE(probe_faults + stat_value(r.output, "exits.kicked"), 36) << r.output;
  EXPECT_GE(probe_faults, 18) << r.output;
  // The cleared accessed bit: four rounds filled by the probe, not by a host fault.
  EXPECT_GE(stat_value(r.output, "bt.access_probes.fills"), 4) << r.output;
  EXPECT_GE(stat_value(r.output, "bt.access_probes.instructions"), 9) << r.output;
  // The rounds before the probes (two per instruction) and the guest's first touches of its
  // pages are host faults.
  EXPECT_GE(stat_value(r.output, "bt.host_faults"), 2 * 9) << r.output;
}

TEST(BtAccessProbe, AnObservedGuestTakesTheHostFaults) {
  // vmbt trace turns direct calls off: no probe is translated, every fault is a host fault, and
  // the guest's checks hold all the same (a probe the host-fault path disagreed with would fail
  // one of the two runs).
  const auto r = run_vmbt("trace --kernel " + std::string(VMBT_GUEST_DIR) + "/access_probes.elf");
  EXPECT_NE(r.output.find("access_probes: all checks passed"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("FAIL"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vmbt
