// bt/debug_registers.h: DR7 decoding and breakpoint matching (Intel SDM Vol. 3B §17.2).
#include "bt/debug_registers.h"

#include <gtest/gtest.h>

namespace vmbt::bt::dr {
namespace {

constexpr uint32_t enable(unsigned n, unsigned rw, unsigned len) {
  return (1u << (2 * n)) | (rw << (16 + 4 * n)) | (len << (18 + 4 * n));
}

TEST(DebugRegisters, DecodesLengthKindAndAlignment) {
  std::array<uint32_t, 8> r{};
  r[0] = 0x1003;
  r[1] = 0x2003;
  r[2] = 0x3007;
  r[3] = 0x400f;
  r[7] = enable(0, 1, 0) | enable(1, 3, 1) | enable(2, 1, 3) | (2u << (18 + 12));  // 3: LEN 10
  EXPECT_EQ(breakpoint(r, 0).length, 1u);
  EXPECT_EQ(breakpoint(r, 0).linear, 0x1003u);
  EXPECT_EQ(breakpoint(r, 1).length, 2u);
  EXPECT_EQ(breakpoint(r, 1).linear, 0x2002u);  // low bits masked (§17.2.5)
  EXPECT_EQ(breakpoint(r, 1).kind, Kind::kReadWrite);
  EXPECT_EQ(breakpoint(r, 2).length, 4u);
  EXPECT_EQ(breakpoint(r, 2).linear, 0x3004u);
  EXPECT_EQ(breakpoint(r, 3).length, 8u);
  EXPECT_FALSE(breakpoint(r, 3).enabled);
  EXPECT_TRUE(breakpoint(r, 2).enabled);
}

TEST(DebugRegisters, DataHitsOverlapAndKind) {
  std::array<uint32_t, 8> r{};
  r[0] = 0x1000;  // write, 4 bytes
  r[1] = 0x1002;  // read/write, 2 bytes
  r[7] = enable(0, 1, 3) | enable(1, 3, 1);
  EXPECT_EQ(data_hits(r, 0x0ffc, 4, true), 0u);
  EXPECT_EQ(data_hits(r, 0x0ffd, 4, true), 1u);
  EXPECT_EQ(data_hits(r, 0x1003, 1, true), 3u);
  EXPECT_EQ(data_hits(r, 0x1003, 1, false), 2u);  // a read: the write breakpoint ignores it
  EXPECT_EQ(data_hits(r, 0x1004, 4, true), 0u);
  EXPECT_TRUE(fires(r[7], 2));
  EXPECT_FALSE(fires(enable(0, 1, 3), 2));  // B1 matched, but only breakpoint 0 is enabled
}

TEST(DebugRegisters, ExecuteHitsIncludeDisabledOnes) {
  std::array<uint32_t, 8> r{};
  r[0] = 0x5000;
  r[2] = 0x5000;
  r[3] = 0x5000;
  r[7] = enable(0, 0, 0) | (1u << (16 + 12));  // 0 enabled; 2 disabled, execute; 3 write
  EXPECT_EQ(execute_hits(r, 0x5000), 5u);
  EXPECT_EQ(execute_hits(r, 0x5001), 0u);
  EXPECT_TRUE(any_enabled(r, false));
  EXPECT_FALSE(any_enabled(r, true));
  EXPECT_EQ(dr6_with_hits(0xffff4ff3u, 4), 0xffff4ff4u);
}

}  // namespace
}  // namespace vmbt::bt::dr
