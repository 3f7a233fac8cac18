// The PIIX3 PCI-to-ISA bridge's identity and PIRQ steering (Intel 82371FB/SB datasheet §2.2,
// §2.2.10 PIRQRC[A:D]).
#include "vmm/devices/piix3.h"

#include <gtest/gtest.h>

#include "fake_irq_sink.h"

namespace vmbt {
namespace {

class Piix3Test : public ::testing::Test {
 protected:
  testing::FakeIrqSink isa;
  Piix3IsaBridge bridge{isa};
};

TEST_F(Piix3Test, Identity) {
  EXPECT_EQ(bridge.config_read(0x00, 4), 0x70008086u);
  EXPECT_EQ(bridge.config_read(0x0a, 2), 0x0601u);  // bridge, PCI-to-ISA
  EXPECT_EQ(bridge.config_read(0x0e, 1), 0x80u);    // multi-function
}

TEST_F(Piix3Test, PirqRoutesResetDisabled) {
  EXPECT_EQ(bridge.config_read(0x60, 4), 0x80808080u);
  bridge.set_irq(0, true);
  EXPECT_TRUE(isa.events.empty());  // IRQROUTEEN = 1: routed nowhere
  EXPECT_EQ(bridge.routed_irq(0), -1);
}

TEST_F(Piix3Test, RoutedPirqDrivesItsIsaIrq) {
  // SeaBIOS's routing: PIRQA/B -> 10, PIRQC/D -> 11.
  bridge.config_write(0x60, 4, 0x0b0b0a0a);
  EXPECT_EQ(bridge.routed_irq(2), 11);
  bridge.set_irq(2, true);
  EXPECT_TRUE(isa.levels[11]);
  bridge.set_irq(2, false);
  EXPECT_FALSE(isa.levels[11]);
}

TEST_F(Piix3Test, SharedIrqIsTheOrOfItsPirqs) {
  bridge.config_write(0x60, 4, 0x0b0b0a0a);
  bridge.set_irq(2, true);
  bridge.set_irq(3, true);
  EXPECT_EQ(isa.rises[11], 1u);
  bridge.set_irq(2, false);
  EXPECT_TRUE(isa.levels[11]);  // PIRQD# still asserted
  bridge.set_irq(3, false);
  EXPECT_FALSE(isa.levels[11]);
}

TEST_F(Piix3Test, ReroutingMovesAnAssertedLine) {
  bridge.config_write(0x60, 1, 0x05);
  bridge.set_irq(0, true);
  EXPECT_TRUE(isa.levels[5]);
  bridge.config_write(0x60, 1, 0x09);
  EXPECT_FALSE(isa.levels[5]);
  EXPECT_TRUE(isa.levels[9]);
  bridge.config_write(0x60, 1, 0x89);  // disabled again
  EXPECT_FALSE(isa.levels[9]);
}

TEST_F(Piix3Test, ReservedIrqValuesRouteNowhereAndReservedBitsReadZero) {
  for (uint8_t v : {0x00, 0x01, 0x02, 0x08, 0x0d}) {
    bridge.config_write(0x61, 1, v);
    EXPECT_EQ(bridge.routed_irq(1), -1) << int(v);
  }
  bridge.config_write(0x61, 1, 0x7e);  // bits 6:4 reserved
  EXPECT_EQ(bridge.config_read(0x61, 1), 0x0eu);
  EXPECT_EQ(bridge.routed_irq(1), 14);
  bridge.set_irq(7, true);  // no PIRQE#: ignored
  EXPECT_TRUE(isa.events.empty());
}

TEST(Piix3SwizzleTest, SlotRotation) {
  // Device d's INTA# is PIRQ[(d - 1) mod 4] (SeaBIOS piix_pci_slot_get_irq).
  EXPECT_EQ(Piix3IsaBridge::pirq_of(1, 0), 0u);
  EXPECT_EQ(Piix3IsaBridge::pirq_of(3, 0), 2u);
  EXPECT_EQ(Piix3IsaBridge::pirq_of(4, 0), 3u);
  EXPECT_EQ(Piix3IsaBridge::pirq_of(5, 0), 0u);
  EXPECT_EQ(Piix3IsaBridge::pirq_of(3, 1), 3u);  // INTB#
}

}  // namespace
}  // namespace vmbt
