// The HPET against the IA-PC HPET specification 1.0a: capabilities, the main counter at 100 MHz,
// one-shot and periodic comparators (with Linux's VAL_SET sequence), legacy replacement routes and
// level-triggered status, with a fake clock.
#include "vmm/devices/hpet.h"

#include <gtest/gtest.h>

#include <vector>

#include "vmm/devices/ioapic.h"
#include "vmm/devices/local_apic.h"

namespace vmbt {
namespace {

/// Records every ISA line change.
struct IsaLines : IrqSink {
  void set_irq(unsigned line, bool level) override { changes.push_back({line, level}); }
  std::vector<std::pair<unsigned, bool>> changes;
  int rising(unsigned line) const {
    int n = 0;
    for (auto& c : changes) n += c.first == line && c.second;
    return n;
  }
};

class HpetTest : public ::testing::Test {
 protected:
  HpetTest()
      : apic(
            no_pic, [this] { return now; }, [] { return 1e9; }),
        ioapic(apic),
        hpet(isa, ioapic, [this] { return now; }) {}
  uint32_t rd(uint64_t off) { return static_cast<uint32_t>(hpet.mmio_read(off, 4)); }
  void wr(uint64_t off, uint32_t v) { hpet.mmio_write(off, 4, v); }
  void at(uint64_t t) {
    now = t;
    hpet.poll(now);
  }
  uint64_t now = 5000;
  NoInterrupts no_pic;
  LocalApic apic;
  IoApic ioapic;
  IsaLines isa;
  Hpet hpet;
};

TEST_F(HpetTest, CapabilitiesAndCounter) {
  EXPECT_EQ(rd(0x000), 0x8086A201u);          // vendor 8086, LEG_RT_CAP, 64-bit, 3 timers, rev 1
  EXPECT_EQ(rd(0x004), 10'000'000u);          // 10 ns a tick, in femtoseconds
  EXPECT_EQ(rd(0x100) & (1u << 4), 1u << 4);  // timer 0 periodic capable
  EXPECT_EQ(rd(0x120) & (1u << 4), 0u);
  EXPECT_EQ(rd(0x104), Hpet::kRouteCap);
  // Halted: the counter holds, and may be written.
  at(now + 1000);
  EXPECT_EQ(rd(0x0F0), 0u);
  wr(0x0F0, 100);
  wr(0x010, 1);  // ENABLE_CNF
  at(now + 1000);
  EXPECT_EQ(rd(0x0F0), 200u);  // 1000 ns = 100 ticks
  wr(0x010, 0);
  at(now + 5000);
  EXPECT_EQ(rd(0x0F0), 200u);
}

TEST_F(HpetTest, LinuxPeriodicLegacySequence) {
  // Linux's hpet_clkevt_set_state_periodic: legacy replacement, counter reset, then
  // ENABLE|PERIODIC|SETVAL|32BIT, comparator = now + delta, comparator = delta (the period).
  wr(0x010, 2);  // LEG_RT_CNF
  wr(0x0F0, 0);
  wr(0x0F4, 0);
  wr(0x010, 3);
  const uint64_t start = now;
  const uint32_t delta = 400000;  // 4 ms
  wr(0x100, (1u << 2) | (1u << 3) | (1u << 6) | (1u << 8));
  wr(0x108, delta);
  wr(0x108, delta);
  EXPECT_EQ(hpet.next_deadline_ns(), start + 4'000'000);
  at(start + 3'999'999);
  EXPECT_EQ(isa.rising(0), 0);
  at(start + 4'000'000);
  EXPECT_EQ(isa.rising(0), 1);
  EXPECT_EQ(rd(0x108), 2 * delta);
  at(start + 8'000'000);
  EXPECT_EQ(isa.rising(0), 2);
  // Missed periods coalesce; the phase is kept.
  at(start + 21'000'000);
  EXPECT_EQ(isa.rising(0), 3);
  EXPECT_EQ(hpet.next_deadline_ns(), start + 24'000'000);
}

TEST_F(HpetTest, OneShotFiresOnceThroughTheIoApic) {
  apic.mmio_write(LocalApic::kSpiv, 4, 0x1FF);
  // I/O APIC pin 20 -> vector 0x70, edge.
  ioapic.mmio_write(0, 1, 0x10 + 2 * 20);
  ioapic.mmio_write(0x10, 4, 0x70);
  wr(0x010, 1);
  wr(0x140, (1u << 2) | (20u << 9));  // timer 2: interrupts on, route pin 20
  EXPECT_EQ((rd(0x140) >> 9) & 0x1F, 20u);
  wr(0x148, 1000);
  wr(0x14C, 0);
  at(now + 10'000);
  EXPECT_TRUE(apic.irr(0x70));
  EXPECT_EQ(hpet.next_deadline_ns(), UINT64_MAX);
  // An unsupported route reads back as it was.
  wr(0x140, (1u << 2) | (3u << 9));
  EXPECT_EQ((rd(0x140) >> 9) & 0x1F, 20u);
}

TEST_F(HpetTest, AComparatorFiresOnlyWhenTheCounterReachesIt) {
  // Linux's one-shot set-up: INT_ENB | 32-bit with the comparator still at its reset value and a
  // small counter: no interrupt until the counter gets there (§2.3.9.2.1).
  wr(0x010, 3);  // enabled, legacy route: timer 0 on ISA IRQ0
  at(now + 1000);
  wr(0x100, (1u << 2) | (1u << 8));
  at(now + 5'000'000);
  EXPECT_EQ(hpet.next_deadline_ns() > now + 40'000'000'000ull, true);  // ~42.9 s: the 32-bit wrap
  EXPECT_EQ(isa.rising(0), 0);
  // A 64-bit comparator far ahead: no overflow into a deadline in the past.
  wr(0x100, 1u << 2);
  wr(0x108, 0xFFFFFFFF);
  wr(0x10C, 0xFFFFFFFF);
  EXPECT_EQ(hpet.next_deadline_ns(), UINT64_MAX);
  // A comparator set behind the counter waits for the wrap; one passed between polls fires.
  wr(0x108, 10);
  wr(0x10C, 0);
  at(now + 1'000'000);
  EXPECT_EQ(isa.rising(0), 0);
  const uint32_t c = rd(0x0F0);
  wr(0x108, c + 1000);
  at(now + 1'000'000);  // 100,000 ticks later: passed between polls
  EXPECT_EQ(isa.rising(0), 1);
}

TEST_F(HpetTest, LevelTriggeredStatusHoldsTheLineUntilCleared) {
  wr(0x010, 3);
  wr(0x120, (1u << 1) | (1u << 2));  // timer 1: level, enabled (legacy: ISA IRQ8)
  wr(0x128, 50);
  wr(0x12C, 0);
  at(now + 500);
  EXPECT_EQ(rd(0x020), 2u);
  ASSERT_FALSE(isa.changes.empty());
  EXPECT_EQ(isa.changes.back(), std::make_pair(8u, true));
  wr(0x020, 2);
  EXPECT_EQ(rd(0x020), 0u);
  EXPECT_EQ(isa.changes.back(), std::make_pair(8u, false));
}

}  // namespace
}  // namespace vmbt
