// The local APIC against Intel SDM Vol. 3A ch. 11 (register reset values, priority, EOI, the
// timer's three modes, ESR, IA32_APIC_BASE), with a fake clock and a fake 8259.
#include "vmm/devices/local_apic.h"

#include <gtest/gtest.h>

#include "vmm/devices/ioapic.h"

namespace vmbt {
namespace {

/// An 8259 stand-in: INTR as the test sets it, a fixed INTA vector.
class FakePic : public InterruptSource {
 public:
  bool interrupt_pending() const override { return intr; }
  uint8_t acknowledge_interrupt() override {
    intr = false;
    return 0x30;
  }
  bool intr = false;
};

double tsc_2ghz() {
  return 2e9;
}

class LocalApicTest : public ::testing::Test {
 protected:
  LocalApicTest()
      : apic(
            pic, [this] { return now; }, tsc_2ghz) {}
  uint32_t rd(uint32_t reg) { return static_cast<uint32_t>(apic.mmio_read(reg, 4)); }
  void wr(uint32_t reg, uint32_t v) { apic.mmio_write(reg, 4, v); }
  void enable() { wr(LocalApic::kSpiv, 0x1FF); }
  /// Advances the clock to `t` and polls, as the run loop does.
  void at(uint64_t t) {
    now = t;
    apic.poll(now);
  }
  /// Takes every deliverable interrupt (INTA), returning their vectors in order.
  std::vector<int> take_all() {
    std::vector<int> v;
    while (apic.interrupt_pending()) v.push_back(apic.acknowledge_interrupt());
    return v;
  }

  uint64_t now = 1000;
  FakePic pic;
  LocalApic apic;
};

TEST_F(LocalApicTest, ResetStateIsTheSdms) {
  // Table 11-1 and §11.4.7.1: ID 0, version with 6 LVT entries, DFR all ones, SPIV 0xFF
  // (software-disabled), LVT entries masked except LINT0 in virtual-wire (ExtINT) as firmware
  // leaves it; IA32_APIC_BASE = 0xFEE00000 | BSP | EN.
  EXPECT_EQ(rd(LocalApic::kId), 0u);
  EXPECT_EQ(rd(LocalApic::kVersionReg) & 0xFF, 0x14u);
  EXPECT_EQ((rd(LocalApic::kVersionReg) >> 16) & 0xFF, 5u);  // max LVT entry: 6 entries
  EXPECT_EQ(rd(LocalApic::kDfr), 0xFFFFFFFFu);
  EXPECT_EQ(rd(LocalApic::kSpiv), 0xFFu);
  EXPECT_EQ(rd(LocalApic::kTpr), 0u);
  EXPECT_EQ(rd(LocalApic::kLvtTimer), LocalApic::kLvtMasked);
  EXPECT_EQ(rd(LocalApic::kLvtError), LocalApic::kLvtMasked);
  EXPECT_EQ(rd(LocalApic::kLvtLint0), 0x700u);
  EXPECT_EQ(apic.base_msr(), 0xFEE00900u);
}

TEST_F(LocalApicTest, SoftwareDisabledApicKeepsLvtMasked) {
  // §11.4.7.2: while SPIV bit 8 is clear, LVT mask bits cannot be cleared.
  wr(LocalApic::kLvtTimer, 0x40);
  EXPECT_EQ(rd(LocalApic::kLvtTimer), 0x40u | LocalApic::kLvtMasked);
  enable();
  wr(LocalApic::kLvtTimer, 0x40);
  EXPECT_EQ(rd(LocalApic::kLvtTimer), 0x40u);
  wr(LocalApic::kSpiv, 0xFF);  // disabling masks every entry
  EXPECT_EQ(rd(LocalApic::kLvtTimer), 0x40u | LocalApic::kLvtMasked);
  EXPECT_EQ(rd(LocalApic::kLvtLint0) & LocalApic::kLvtMasked, LocalApic::kLvtMasked);
}

TEST_F(LocalApicTest, PicInterruptsPassThroughLint0ExtInt) {
  pic.intr = true;
  EXPECT_TRUE(apic.interrupt_pending());
  EXPECT_EQ(apic.acknowledge_interrupt(), 0x30);
  // Masking LINT0 (with the APIC enabled) cuts the 8259 off.
  enable();
  wr(LocalApic::kLvtLint0, 0x700 | LocalApic::kLvtMasked);
  pic.intr = true;
  EXPECT_FALSE(apic.interrupt_pending());
  // A hardware-disabled APIC passes INTR straight through (§11.4.3).
  ASSERT_TRUE(apic.write_base_msr(0xFEE00000 | LocalApic::kBaseMsrBsp));
  EXPECT_TRUE(apic.interrupt_pending());
}

TEST_F(LocalApicTest, SelfIpiPriorityTprAndEoi) {
  enable();
  // Fixed IPIs to self (shorthand 01): vectors 0x41 and 0x92 pend in IRR.
  wr(LocalApic::kIcrLow, 0x40041);
  wr(LocalApic::kIcrLow, 0x40092);
  EXPECT_EQ(rd(LocalApic::kIcrLow) & (1u << 12), 0u);  // delivery status idle at once
  EXPECT_TRUE(apic.irr(0x41));
  EXPECT_TRUE(apic.irr(0x92));
  // TPR 0x90 blocks class 9 and below (§11.8.3.1: delivered only when class > PPR's class).
  wr(LocalApic::kTpr, 0x90);
  EXPECT_FALSE(apic.interrupt_pending());
  wr(LocalApic::kTpr, 0x80);
  ASSERT_TRUE(apic.interrupt_pending());
  EXPECT_EQ(apic.acknowledge_interrupt(), 0x92);
  EXPECT_TRUE(apic.isr(0x92));
  EXPECT_EQ(rd(LocalApic::kPpr), 0x90u);  // ISRV class 9 > TPR class 8
  wr(LocalApic::kTpr, 0);
  EXPECT_FALSE(apic.interrupt_pending());  // 0x41 is below the in-service 0x92
  wr(LocalApic::kEoi, 0);
  EXPECT_FALSE(apic.isr(0x92));
  EXPECT_EQ(take_all(), std::vector<int>{0x41});
  EXPECT_EQ(rd(LocalApic::kIsr + 0x20), 1u << 1);  // ISR bits 64-95: 0x41
}

TEST_F(LocalApicTest, Lint1DeliversAsItsLvtEntrySays) {
  // §11.5.1: LINT1 resets masked (NMI mode): an edge does nothing; the APIC is software-disabled.
  apic.raise_lint1();
  EXPECT_FALSE(apic.nmi_pending());
  enable();
  apic.raise_lint1();
  EXPECT_FALSE(apic.nmi_pending());  // still masked
  wr(LocalApic::kLvtLint1, 0x400);   // NMI, unmasked (what Linux programs on the BSP)
  apic.raise_lint1();
  EXPECT_TRUE(apic.nmi_pending());
  EXPECT_FALSE(apic.interrupt_pending());
  apic.acknowledge_nmi();
  // Fixed mode: the entry's vector, edge-triggered (TMR clear).
  wr(LocalApic::kLvtLint1, 0x66);
  apic.raise_lint1();
  EXPECT_FALSE(apic.nmi_pending());
  EXPECT_TRUE(apic.irr(0x66));
  EXPECT_FALSE(apic.tmr(0x66));
  EXPECT_EQ(take_all(), std::vector<int>{0x66});
  // SMI, INIT and ExtINT modes: nothing is wired to them here.
  for (uint32_t mode : {2u, 5u, 7u}) {
    wr(LocalApic::kLvtLint1, mode << 8);
    apic.raise_lint1();
    EXPECT_FALSE(apic.nmi_pending()) << mode;
    EXPECT_FALSE(apic.interrupt_pending()) << mode;
  }
  // Software-disabling the APIC masks LINT1 (§11.4.7.2).
  wr(LocalApic::kLvtLint1, 0x400);
  wr(LocalApic::kSpiv, 0xFF);
  apic.raise_lint1();
  EXPECT_FALSE(apic.nmi_pending());
  // Hardware-disabled (IA32_APIC_BASE.EN = 0): LINT1 is the processor's NMI pin (§11.4.3).
  ASSERT_TRUE(apic.write_base_msr(apic.base_msr() & ~uint64_t{LocalApic::kBaseMsrEnable}));
  apic.raise_lint1();
  EXPECT_TRUE(apic.nmi_pending());
}

TEST_F(LocalApicTest, NmiMessagesLatchOneNmi) {
  enable();
  EXPECT_FALSE(apic.nmi_pending());
  // ICR delivery mode NMI (100b) to self: the vector field is ignored, no IRR bit (§11.6.1).
  wr(LocalApic::kIcrLow, 0x40400 | 0x55);
  wr(LocalApic::kIcrLow, 0x40400);
  EXPECT_TRUE(apic.nmi_pending());
  EXPECT_FALSE(apic.irr(0x55));
  apic.acknowledge_nmi();
  EXPECT_FALSE(apic.nmi_pending());  // two messages, one NMI: they do not queue
  // An I/O APIC entry in NMI mode.
  IoApic ioapic(apic);
  ioapic.mmio_write(0, 1, 0x10 + 2 * 5);
  ioapic.mmio_write(0x10, 4, 0x400);
  ioapic.set_pin(5, true);
  EXPECT_TRUE(apic.nmi_pending());
  EXPECT_FALSE(apic.interrupt_pending());
}

TEST_F(LocalApicTest, IllegalVectorsSetEsrAndRaiseTheErrorInterrupt) {
  enable();
  wr(LocalApic::kLvtError, 0xE3);
  wr(LocalApic::kIcrLow, 0x40005);     // vector 5 to self: send illegal vector (ESR bit 5)
  EXPECT_EQ(rd(LocalApic::kEsr), 0u);  // latched only by a write (§11.5.3)
  wr(LocalApic::kEsr, 0);
  EXPECT_EQ(rd(LocalApic::kEsr), 1u << 5);
  EXPECT_EQ(take_all(), std::vector<int>{0xE3});
  wr(LocalApic::kEsr, 0);
  EXPECT_EQ(rd(LocalApic::kEsr), 0u);
  // A reserved register address: ESR bit 7.
  rd(0x10);
  wr(LocalApic::kEsr, 0);
  EXPECT_EQ(rd(LocalApic::kEsr), 1u << 7);
}

TEST_F(LocalApicTest, OneShotTimerCountsDownAndFiresOnce) {
  enable();
  wr(LocalApic::kTimerDivide, 0x3);  // divide by 16
  wr(LocalApic::kLvtTimer, 0xEE);    // one-shot, vector 0xEE
  wr(LocalApic::kTimerInitial, 1000);
  EXPECT_EQ(apic.next_deadline_ns(), now + 16000);
  at(now + 1600);
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 900u);
  EXPECT_FALSE(apic.interrupt_pending());
  at(now + 14400);
  EXPECT_EQ(take_all(), std::vector<int>{0xEE});
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 0u);
  at(now + 100000);
  EXPECT_EQ(take_all(), std::vector<int>{});
  EXPECT_EQ(apic.next_deadline_ns(), UINT64_MAX);
}

TEST_F(LocalApicTest, PeriodicTimerReloadsAndKeepsItsPhase) {
  enable();
  wr(LocalApic::kTimerDivide, 0xB);  // divide by 1: 1 ns a count
  wr(LocalApic::kLvtTimer, 0xEF | (1u << 17));
  const uint64_t start = now;
  wr(LocalApic::kTimerInitial, 500'000);  // 500 us
  at(start + 500'000);
  EXPECT_EQ(take_all(), std::vector<int>{0xEF});
  wr(LocalApic::kEoi, 0);
  at(start + 1'250'000);  // mid third period
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 250'000u);
  EXPECT_EQ(take_all(), std::vector<int>{0xEF});  // the second expiry
  wr(LocalApic::kEoi, 0);
  EXPECT_EQ(apic.next_deadline_ns(), start + 1'500'000);
  // Expiries missed while nobody polled coalesce into one interrupt (IRR holds one bit).
  at(start + 10'100'000);
  EXPECT_EQ(take_all(), std::vector<int>{0xEF});
  EXPECT_EQ(apic.next_deadline_ns(), start + 10'500'000);
  // Masked: the count goes on, no interrupt, nothing to wake up for.
  wr(LocalApic::kEoi, 0);
  wr(LocalApic::kLvtTimer, 0xEF | (1u << 17) | LocalApic::kLvtMasked);
  EXPECT_EQ(apic.next_deadline_ns(), UINT64_MAX);
  at(start + 12'000'000);
  EXPECT_EQ(take_all(), std::vector<int>{});
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 500'000u);
  // Unmasked mid-period: the next interrupt ends this period, none for the masked ones.
  at(start + 12'100'000);
  wr(LocalApic::kLvtTimer, 0xEF | (1u << 17));
  EXPECT_EQ(apic.next_deadline_ns(), start + 12'500'000);
}

TEST_F(LocalApicTest, TinyPeriodsRunAtTheMinimumAndDividerLeavesTscDeadlineAlone) {
  enable();
  wr(LocalApic::kTimerDivide, 0xB);
  wr(LocalApic::kLvtTimer, 0xEF | (1u << 17));
  wr(LocalApic::kTimerInitial, 1);  // 1 ns asked: kMinPeriodNs given
  EXPECT_EQ(apic.next_deadline_ns(), now + LocalApic::kMinPeriodNs);
  // TSC-deadline: a divide write does not move the deadline (§11.5.4.1).
  wr(LocalApic::kLvtTimer, 0xE0 | (2u << 17));
  apic.write_tsc_deadline(1'002'000, 1'000'000);  // 1 us at 2 GHz
  const uint64_t deadline = apic.next_deadline_ns();
  wr(LocalApic::kTimerDivide, 0x3);
  EXPECT_EQ(apic.next_deadline_ns(), deadline);
  EXPECT_EQ(apic.tsc_deadline(), 1'002'000u);
}

TEST_F(LocalApicTest, SoftwareDisabledApicTakesNoFixedInterrupts) {
  // SPIV bit 8 clear (§11.4.7.2): a self-IPI is dropped, an NMI is taken.
  wr(LocalApic::kIcrLow, 0x40050);
  EXPECT_FALSE(apic.irr(0x50));
  wr(LocalApic::kIcrLow, 0x40400);
  EXPECT_TRUE(apic.nmi_pending());
}

TEST_F(LocalApicTest, SwitchingPeriodicToOneShotEndsTheCurrentPeriod) {
  enable();
  wr(LocalApic::kTimerDivide, 0xB);
  wr(LocalApic::kLvtTimer, 0xEF | (1u << 17));
  const uint64_t start = now;
  wr(LocalApic::kTimerInitial, 1'000'000);
  at(start + 2'300'000);
  EXPECT_EQ(take_all(), std::vector<int>{0xEF});
  wr(LocalApic::kEoi, 0);
  wr(LocalApic::kLvtTimer, 0xEF);  // one-shot: counts down what is left of this period
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 700'000u);
  at(start + 3'000'000);
  EXPECT_EQ(take_all(), std::vector<int>{0xEF});
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 0u);
  wr(LocalApic::kLvtTimer, 0xEF | (1u << 17));  // back to periodic: an expired timer stays so
  at(start + 5'000'000);
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 0u);
  EXPECT_EQ(take_all(), std::vector<int>{});
}

TEST_F(LocalApicTest, TscDeadlineFiresAtTheGuestTscDeadline) {
  enable();
  wr(LocalApic::kLvtTimer, 0xE0 | (2u << 17));
  wr(LocalApic::kTimerInitial, 1000);  // ignored in TSC-deadline mode
  EXPECT_EQ(rd(LocalApic::kTimerCurrent), 0u);
  // Guest TSC 1,000,000 now; deadline 2,000 cycles later at 2 GHz: 1 us.
  apic.write_tsc_deadline(1'002'000, 1'000'000);
  EXPECT_EQ(apic.tsc_deadline(), 1'002'000u);
  EXPECT_EQ(apic.next_deadline_ns(), now + 1000);
  at(now + 999);
  EXPECT_EQ(take_all(), std::vector<int>{});
  at(now + 1);
  EXPECT_EQ(take_all(), std::vector<int>{0xE0});
  EXPECT_EQ(apic.tsc_deadline(), 0u);  // reads 0 once fired
  // A deadline in the past fires at once; 0 disarms.
  apic.write_tsc_deadline(5, 1'000'000);
  at(now);
  wr(LocalApic::kEoi, 0);
  EXPECT_EQ(take_all(), std::vector<int>{0xE0});
  apic.write_tsc_deadline(9'000'000, 1'000'000);
  apic.write_tsc_deadline(0, 1'000'000);
  EXPECT_EQ(apic.next_deadline_ns(), UINT64_MAX);
  // Leaving TSC-deadline mode disarms it (§11.5.4.1).
  apic.write_tsc_deadline(9'000'000, 1'000'000);
  wr(LocalApic::kLvtTimer, 0xE0);
  EXPECT_EQ(apic.next_deadline_ns(), UINT64_MAX);
  EXPECT_EQ(apic.tsc_deadline(), 0u);
}

TEST_F(LocalApicTest, ApicBaseMsrRejectsReservedBitsAndX2Apic) {
  EXPECT_FALSE(apic.write_base_msr(0xFEE00900 | 1));                        // bit 0 reserved
  EXPECT_FALSE(apic.write_base_msr(0xFEE00900 | LocalApic::kBaseMsrExtd));  // no x2APIC
  EXPECT_FALSE(apic.write_base_msr(0xFEE00900 | (1ull << 32)));             // above MAXPHYADDR (32)
  EXPECT_EQ(apic.base_msr(), 0xFEE00900u);
  int moves = 0;
  apic.set_on_base_change([&] { ++moves; });
  ASSERT_TRUE(apic.write_base_msr(0xFED40000 | LocalApic::kBaseMsrEnable));
  EXPECT_EQ(apic.base(), 0xFED40000u);
  EXPECT_EQ(apic.base_msr(), 0xFED40900u);  // BSP is the processor's, not the write's
  EXPECT_EQ(moves, 1);
}

TEST_F(LocalApicTest, GlobalDisableReturnsToTheResetState) {
  enable();
  wr(LocalApic::kTpr, 0x20);
  wr(LocalApic::kIcrLow, 0x40050);
  ASSERT_TRUE(apic.write_base_msr(0xFEE00000 | LocalApic::kBaseMsrBsp));
  EXPECT_FALSE(apic.hardware_enabled());
  ASSERT_TRUE(apic.write_base_msr(0xFEE00900));
  EXPECT_EQ(rd(LocalApic::kTpr), 0u);
  EXPECT_EQ(rd(LocalApic::kSpiv), 0xFFu);
  EXPECT_FALSE(apic.irr(0x50));
}

TEST_F(LocalApicTest, DestinationsPhysicalFlatAndCluster) {
  EXPECT_TRUE(apic.matches_destination(0, false));
  EXPECT_TRUE(apic.matches_destination(0xFF, false));
  EXPECT_FALSE(apic.matches_destination(1, false));
  wr(LocalApic::kLdr, 0x01000000);  // flat: logical ID bit 0
  EXPECT_TRUE(apic.matches_destination(0x03, true));
  EXPECT_FALSE(apic.matches_destination(0x02, true));
  wr(LocalApic::kDfr, 0x0FFFFFFF);  // cluster model
  wr(LocalApic::kLdr, 0x21000000);  // cluster 2, member bit 0
  EXPECT_TRUE(apic.matches_destination(0x21, true));
  EXPECT_TRUE(apic.matches_destination(0xF1, true));  // broadcast to all clusters
  EXPECT_FALSE(apic.matches_destination(0x31, true));
}

TEST_F(LocalApicTest, IoApicRoutesEdgeAndLevelPinsWithEoiBroadcast) {
  IoApic ioapic(apic);
  apic.set_eoi_listener([&](uint8_t v) { ioapic.eoi(v); });
  enable();
  auto set_entry = [&](unsigned pin, uint64_t e) {
    ioapic.mmio_write(0, 1, 0x10 + 2 * pin);
    ioapic.mmio_write(0x10, 4, static_cast<uint32_t>(e));
    ioapic.mmio_write(0, 1, 0x11 + 2 * pin);
    ioapic.mmio_write(0x10, 4, static_cast<uint32_t>(e >> 32));
  };
  // Version register (82093AA §3.2.2): 0x11, 24 entries; entries masked at reset.
  ioapic.mmio_write(0, 1, 1);
  EXPECT_EQ(ioapic.mmio_read(0x10, 4), 0x00170011u);
  EXPECT_TRUE(ioapic.entry(5) & IoApic::kMasked);
  ioapic.set_pin(2, true);
  EXPECT_FALSE(apic.interrupt_pending());  // masked: nothing

  // Edge pin 2 -> vector 0x30, physical destination 0.
  set_entry(2, 0x30);
  ioapic.set_pin(2, false);
  ioapic.set_pin(2, true);
  EXPECT_EQ(take_all(), std::vector<int>{0x30});
  EXPECT_FALSE(apic.tmr(0x30));
  wr(LocalApic::kEoi, 0);

  // Level pin 9 -> vector 0x59: remote IRR until the EOI; still asserted then: delivered again.
  set_entry(9, 0x59 | IoApic::kLevel);
  ioapic.set_pin(9, true);
  EXPECT_EQ(take_all(), std::vector<int>{0x59});
  EXPECT_TRUE(apic.tmr(0x59));
  EXPECT_TRUE(ioapic.entry(9) & IoApic::kRemoteIrr);
  wr(LocalApic::kEoi, 0);
  EXPECT_EQ(take_all(), std::vector<int>{0x59});
  ioapic.set_pin(9, false);
  wr(LocalApic::kEoi, 0);
  EXPECT_FALSE(ioapic.entry(9) & IoApic::kRemoteIrr);
  EXPECT_EQ(take_all(), std::vector<int>{});

  // A destination that is not this APIC: nothing arrives.
  set_entry(4, 0x44 | (uint64_t{3} << 56));
  ioapic.set_pin(4, true);
  EXPECT_EQ(take_all(), std::vector<int>{});
  // The ISA router puts IRQ0 on pin 2 and drives the 8259 too.
  struct Sink : IrqSink {
    void set_irq(unsigned line, bool level) override { last = {line, level}; }
    std::pair<unsigned, bool> last{99, false};
  } pic_sink;
  IsaIrqRouter router(pic_sink, ioapic);
  ioapic.set_pin(2, false);
  router.set_irq(0, true);
  EXPECT_EQ(pic_sink.last, std::make_pair(0u, true));
  EXPECT_EQ(take_all(), std::vector<int>{0x30});
}

}  // namespace
}  // namespace vmbt
