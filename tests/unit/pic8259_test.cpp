// Intel 8259A pair: behaviour from the 8259A datasheet (order 231468) and PIIX4 ELCR.
#include "vmm/devices/pic8259.h"

#include <gtest/gtest.h>

#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

class PicTest : public ::testing::Test {
 protected:
  void SetUp() override { pic.register_ports(bus); }
  // The PC/AT initialization: edge, cascade, ICW4; master base 0x20, slave 0x28.
  void init(uint8_t icw4 = 0x01) {
    bus.write(0x20, 1, 0x11);
    bus.write(0x21, 1, 0x20);
    bus.write(0x21, 1, 0x04);
    bus.write(0x21, 1, icw4);
    bus.write(0xa0, 1, 0x11);
    bus.write(0xa1, 1, 0x28);
    bus.write(0xa1, 1, 0x02);
    bus.write(0xa1, 1, icw4);
  }
  uint8_t read_isr(uint16_t cmd) {
    bus.write(cmd, 1, 0x0b);  // OCW3: read ISR
    return static_cast<uint8_t>(bus.read(cmd, 1));
  }
  uint8_t read_irr(uint16_t cmd) {
    bus.write(cmd, 1, 0x0a);  // OCW3: read IRR
    return static_cast<uint8_t>(bus.read(cmd, 1));
  }
  void pulse(unsigned line) {
    pic.set_irq(line, true);
    pic.set_irq(line, false);
  }
  IoBus bus;
  Pic8259Pair pic;
};

TEST_F(PicTest, Irq0AfterInitGivesBaseVectorAndSetsIsr) {
  init();
  EXPECT_FALSE(pic.interrupt_pending());
  pic.set_irq(0, true);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x20);
  EXPECT_EQ(read_isr(0x20), 0x01);
  EXPECT_EQ(read_irr(0x20), 0x00);  // edge request consumed by INTA
  EXPECT_FALSE(pic.interrupt_pending());
}

TEST_F(PicTest, Icw2UsesOnlyTopFiveBits) {
  bus.write(0x20, 1, 0x11);
  bus.write(0x21, 1, 0x37);
  bus.write(0x21, 1, 0x04);
  bus.write(0x21, 1, 0x01);
  pic.set_irq(1, true);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x31);
}

TEST_F(PicTest, MaskedLineDoesNotAssertIntrButLatchesIrr) {
  init();
  bus.write(0x21, 1, 0x01);
  EXPECT_EQ(bus.read(0x21, 1), 0x01u);  // OCW1 reads back
  pic.set_irq(0, true);
  EXPECT_FALSE(pic.interrupt_pending());
  EXPECT_EQ(read_irr(0x20), 0x01);
  bus.write(0x21, 1, 0x00);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x20);
}

TEST_F(PicTest, Icw1ClearsImr) {
  init();
  bus.write(0x21, 1, 0xff);
  init();
  EXPECT_EQ(bus.read(0x21, 1), 0x00u);
}

TEST_F(PicTest, FixedPriorityIrq1BeforeIrq3) {
  init();
  pulse(3);
  pulse(1);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x21);
  // IRQ3 is lower priority than the in-service IRQ1: held off until EOI.
  EXPECT_FALSE(pic.interrupt_pending());
  bus.write(0x20, 1, 0x20);  // non-specific EOI
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x23);
}

TEST_F(PicTest, HigherPriorityNestsOverInService) {
  init();
  pulse(5);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x25);
  pulse(6);
  EXPECT_FALSE(pic.interrupt_pending());
  pulse(4);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x24);
  EXPECT_EQ(read_isr(0x20), 0x30);
}

TEST_F(PicTest, SpecificEoiClearsTheNamedIsrBit) {
  init();
  pulse(3);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x23);
  pulse(1);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x21);
  EXPECT_EQ(read_isr(0x20), 0x0a);
  bus.write(0x20, 1, 0x63);  // specific EOI, level 3
  EXPECT_EQ(read_isr(0x20), 0x02);
  bus.write(0x20, 1, 0x20);  // non-specific EOI clears the highest: IRQ1
  EXPECT_EQ(read_isr(0x20), 0x00);
}

TEST_F(PicTest, EdgeNeedsANewRisingEdge) {
  init();
  pic.set_irq(4, true);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x24);
  bus.write(0x20, 1, 0x20);
  pic.set_irq(4, true);  // still high: no new edge
  EXPECT_FALSE(pic.interrupt_pending());
  pic.set_irq(4, false);
  pic.set_irq(4, true);
  EXPECT_TRUE(pic.interrupt_pending());
}

TEST_F(PicTest, LevelTriggeredLineRequestsAgainAfterEoi) {
  init();
  bus.write(0x4d0, 1, 0x20);  // IRQ5 level
  pic.set_irq(5, true);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x25);
  EXPECT_FALSE(pic.interrupt_pending());  // in service
  bus.write(0x20, 1, 0x20);
  EXPECT_TRUE(pic.interrupt_pending());  // line still high
  pic.set_irq(5, false);
  EXPECT_FALSE(pic.interrupt_pending());
}

TEST_F(PicTest, ElcrReservedBitsAreEdgeOnly) {
  bus.write(0x4d0, 1, 0xff);
  bus.write(0x4d1, 1, 0xff);
  EXPECT_EQ(bus.read(0x4d0, 1), 0xf8u);  // IRQ0-2
  EXPECT_EQ(bus.read(0x4d1, 1), 0xdeu);  // IRQ8, IRQ13
  EXPECT_EQ(bus.read(0x4d0, 2), 0xdef8u);
}

TEST_F(PicTest, SlaveIrqGoesThroughCascade) {
  init();
  pic.set_irq(8, true);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x28);  // slave base + 0
  EXPECT_EQ(read_isr(0x20), 0x04);               // master: IR2 in service
  EXPECT_EQ(read_isr(0xa0), 0x01);
  pic.set_irq(12, true);
  EXPECT_FALSE(pic.interrupt_pending());  // IRQ12 < IRQ8 on the slave
  bus.write(0xa0, 1, 0x20);
  EXPECT_FALSE(pic.interrupt_pending());  // master IR2 still in service
  bus.write(0x20, 1, 0x20);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x2c);
}

TEST_F(PicTest, SlaveOutranksMasterLowerLines) {
  init();
  pulse(3);
  pulse(9);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x29);  // IRQ8-15 sit at master priority 2
  bus.write(0xa0, 1, 0x20);
  bus.write(0x20, 1, 0x20);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x23);
}

TEST_F(PicTest, Irq2PinIsRedirectedToIrq9) {
  init();
  pic.set_irq(2, true);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x29);
}

TEST_F(PicTest, SpuriousIrq7WhenLevelRequestWithdrawn) {
  init();
  bus.write(0x4d0, 1, 0x08);  // IRQ3 level
  pic.set_irq(3, true);
  EXPECT_TRUE(pic.interrupt_pending());
  pic.set_irq(3, false);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x27);
  EXPECT_EQ(read_isr(0x20), 0x00);  // spurious: no ISR bit
}

TEST_F(PicTest, SpuriousIrq7WhenMaskedBeforeInta) {
  init();
  pulse(3);
  bus.write(0x21, 1, 0x08);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x27);
  EXPECT_EQ(read_isr(0x20), 0x00);
}

TEST_F(PicTest, SpuriousIrq15WhenSlaveRequestWithdrawn) {
  init();
  bus.write(0x4d1, 1, 0x04);  // IRQ10 level
  pic.set_irq(10, true);
  pic.set_irq(10, false);  // the master latched IR2's edge already
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x2f);
  EXPECT_EQ(read_isr(0xa0), 0x00);
  EXPECT_EQ(read_isr(0x20), 0x04);  // the master did grant IR2
}

TEST_F(PicTest, AutoEoiLeavesIsrClear) {
  init(0x03);
  pulse(1);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x21);
  EXPECT_EQ(read_isr(0x20), 0x00);
  pulse(6);
  EXPECT_TRUE(pic.interrupt_pending());  // nothing in service blocks it
}

TEST_F(PicTest, AutoEoiSlaveDeliversBackToBackRequests) {
  init(0x03);
  pulse(8);
  pulse(9);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x28);
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x29);
}

TEST_F(PicTest, PollCommandReturnsHighestRequest) {
  init();
  pulse(6);
  pulse(4);
  bus.write(0x20, 1, 0x0c);  // OCW3: poll
  EXPECT_EQ(bus.read(0x20, 1), 0x84u);
  EXPECT_EQ(read_isr(0x20), 0x10);  // the poll acknowledged IRQ4
  bus.write(0x20, 1, 0x0c);
  EXPECT_EQ(bus.read(0x20, 1), 0x00u);  // IRQ6 blocked by IRQ4 in service
}

TEST_F(PicTest, SetPriorityRotatesFixedOrder) {
  init();
  bus.write(0x20, 1, 0xc3);  // OCW2 set priority: IRQ3 lowest, IRQ4 highest
  pulse(1);
  pulse(5);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x25);
}

TEST_F(PicTest, RotateOnNonSpecificEoiMakesServedLineLowest) {
  init();
  pulse(1);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x21);
  bus.write(0x20, 1, 0xa0);  // rotate on non-specific EOI
  pulse(1);
  pulse(3);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x23);  // IRQ1 is now the lowest
}

TEST_F(PicTest, SpecialMaskModeLetsLowerLevelsThrough) {
  init();
  pulse(1);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x21);
  pulse(5);
  EXPECT_FALSE(pic.interrupt_pending());
  bus.write(0x21, 1, 0x02);  // mask the in-service level
  bus.write(0x20, 1, 0x68);  // OCW3: set special mask mode
  EXPECT_TRUE(pic.interrupt_pending());
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x25);
}

TEST_F(PicTest, SingleModeSkipsIcw3) {
  bus.write(0x20, 1, 0x13);  // ICW1: single, IC4
  bus.write(0x21, 1, 0x40);  // ICW2
  bus.write(0x21, 1, 0x01);  // ICW4
  bus.write(0x21, 1, 0xfe);  // now OCW1
  EXPECT_EQ(bus.read(0x21, 1), 0xfeu);
  pulse(0);
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x40);
}

TEST_F(PicTest, NoIcw4WhenIc4Clear) {
  bus.write(0x20, 1, 0x10);  // ICW1: cascade, no ICW4
  bus.write(0x21, 1, 0x50);  // ICW2
  bus.write(0x21, 1, 0x04);  // ICW3
  bus.write(0x21, 1, 0x55);  // OCW1
  EXPECT_EQ(bus.read(0x21, 1), 0x55u);
}

TEST_F(PicTest, NothingPendingGivesSpuriousVector) {
  init();
  EXPECT_EQ(pic.acknowledge_interrupt(), 0x27);
}

}  // namespace
}  // namespace vmbt
