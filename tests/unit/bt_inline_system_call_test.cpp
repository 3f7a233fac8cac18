// SYSENTER and SYSEXIT inline in translated code (docs/bt.md "System calls inline"): the guest
// tests/guests/sysenter_loop checks every round trip against Intel SDM Vol. 2B (CS, SS, ESP, EIP,
// IF, and the privilege of the accesses right after), while its kernel changes the MSRs and FS
// between them; here the same run must also have taken the inline path, not the monitor's.
#include <gtest/gtest.h>

#include <regex>
#include <string>

#include "cli_run_helper.h"

namespace vmbt {
namespace {

using testing_cli::run_vmbt;
using testing_cli::stat_value;

TEST(BtInlineSystemCall, RoundTripsMatchTheSdmAndStayInTranslatedCode) {
  const auto r = run_vmbt("run --engine bt --stats --kernel " + std::string(VMBT_GUEST_DIR) +
                          "/sysenter_loop.elf");
  EXPECT_EQ(r.status, 1) << r.output;  // isa-debug-exit 0
  EXPECT_NE(r.output.find("sysenter_loop: all checks passed"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("FAIL"), std::string::npos) << r.output;
  // 600 round trips: every SYSENTER and SYSEXIT inline but the first SYSEXIT, which finds no
  // table for CPL 3 yet and goes through the monitor (which makes it).
  EXPECT_EQ(stat_value(r.output, "bt.inline_system_calls"), 1199) << r.output;
  EXPECT_EQ(stat_value(r.output, "bt.callouts.sysexit"), 1) << r.output;
  EXPECT_EQ(stat_value(r.output, "bt.callouts.sysenter"), -1) << r.output;
}

TEST(BtInlineSystemCall, AnObservedGuestTakesTheMonitorsWay) {
  // vmbt trace observes every sensitive instruction: none may run inline, and the guest's
  // checks hold all the same.
  const auto r = run_vmbt("trace --kernel " + std::string(VMBT_GUEST_DIR) + "/sysenter_loop.elf");
  EXPECT_NE(r.output.find("sysenter_loop: all checks passed"), std::string::npos) << r.output;
  const std::regex sysenter(R"(\nsysenter +virtualized[^\n]* 600 +0 +600\n)");
  const std::regex sysexit(R"(\nsysexit +privileged +600 +600 +0\n)");
  EXPECT_TRUE(std::regex_search(r.output, sysenter)) << r.output;
  EXPECT_TRUE(std::regex_search(r.output, sysexit)) << r.output;
}

}  // namespace
}  // namespace vmbt
