// isa-debug-exit (QEMU semantics: exit status (V << 1) | 1) and the POST port.
#include "vmm/devices/debug_exit.h"

#include <gtest/gtest.h>

#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

TEST(DebugExitTest, WriteRequestsExitStatus) {
  IoBus bus;
  DebugExit dev;
  dev.register_ports(bus);
  EXPECT_FALSE(dev.exit_status().has_value());
  EXPECT_EQ(bus.read(0xf4, 1), 0u);
  int seen = -1;
  dev.set_on_exit([&](int s) { seen = s; });
  bus.write(0xf4, 1, 0x10);
  ASSERT_TRUE(dev.exit_status().has_value());
  EXPECT_EQ(*dev.exit_status(), 0x21);
  EXPECT_EQ(seen, 0x21);
  bus.write(0xf4, 1, 0x00);  // the first request stands
  EXPECT_EQ(*dev.exit_status(), 0x21);
  EXPECT_EQ(bus.unclaimed_accesses(), 0u);
}

TEST(DebugExitTest, ZeroGivesOneAndWidthsAreAccepted) {
  DebugExit dev;
  dev.io_write(0xf4, 1, 0);
  EXPECT_EQ(*dev.exit_status(), 1);
  dev.reset();
  dev.io_write(0xf4, 2, 0x1234);
  EXPECT_EQ(*dev.exit_status(), 0x2469);
  dev.reset();
  dev.io_write(0xf4, 4, 0x00010000);
  EXPECT_EQ(*dev.exit_status(), 0x20001);
}

TEST(PostPortTest, ClaimedReadsAllOnes) {
  IoBus bus;
  PostPort post;
  post.register_ports(bus);
  bus.write(0x80, 1, 0x42);
  EXPECT_EQ(post.last_code(), 0x42);
  EXPECT_EQ(bus.read(0x80, 1), 0xffu);
  EXPECT_EQ(bus.unclaimed_accesses(), 0u);
}

}  // namespace
}  // namespace vmbt
