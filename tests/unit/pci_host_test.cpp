// PCI configuration mechanism #1 (PCI Local Bus Specification 3.0, §3.2.2.3.2) with the i440FX
// host bridge (vmm/devices/pci_host.h).
#include "vmm/devices/pci_host.h"

#include <gtest/gtest.h>

#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

/// CONFIG_ADDRESS for bus/device/function/register with the enable bit.
uint32_t addr(unsigned bus, unsigned dev, unsigned fn, unsigned reg) {
  return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

class PciHostTest : public ::testing::Test {
 protected:
  PciHostTest() { pci_.register_ports(bus_); }
  uint32_t config_read(uint32_t address, unsigned offset, unsigned size) {
    bus_.write(0xcf8, 4, address);
    return bus_.read(static_cast<uint16_t>(0xcfc + offset), size);
  }
  void config_write(uint32_t address, unsigned offset, unsigned size, uint32_t v) {
    bus_.write(0xcf8, 4, address);
    bus_.write(static_cast<uint16_t>(0xcfc + offset), size, v);
  }

  IoBus bus_;
  PciHost pci_;
};

TEST_F(PciHostTest, ConfigAddressReadsBackWithReservedBitsZero) {
  EXPECT_EQ(bus_.read(0xcf8, 4), 0u);
  bus_.write(0xcf8, 4, 0x80000000u);
  EXPECT_EQ(bus_.read(0xcf8, 4), 0x80000000u);  // Linux's pci_check_type1 test
  bus_.write(0xcf8, 4, 0xffffffffu);
  EXPECT_EQ(bus_.read(0xcf8, 4), 0x80fffffcu);  // bits 30-24 and 1-0 are reserved: 0
  // Byte and word accesses to 0xcf8-0xcfb are not CONFIG_ADDRESS.
  bus_.write(0xcfb, 1, 0x01);
  bus_.write(0xcf8, 2, 0x1234);
  EXPECT_EQ(bus_.read(0xcf8, 4), 0x80fffffcu);
  EXPECT_EQ(bus_.read(0xcf8, 1), 0xffu);
  EXPECT_EQ(bus_.read(0xcfa, 2), 0xffffu);
  EXPECT_EQ(bus_.unclaimed_accesses(), 0u);
}

TEST_F(PciHostTest, HostBridgeIdentityAtEveryWidth) {
  uint32_t a = addr(0, 0, 0, 0);
  EXPECT_EQ(config_read(a, 0, 4), 0x12378086u);
  EXPECT_EQ(config_read(a, 0, 2), 0x8086u);
  EXPECT_EQ(config_read(a, 2, 2), 0x1237u);
  EXPECT_EQ(config_read(a, 0, 1), 0x86u);
  EXPECT_EQ(config_read(a, 1, 1), 0x80u);
  EXPECT_EQ(config_read(a, 2, 1), 0x37u);
  EXPECT_EQ(config_read(a, 3, 1), 0x12u);
  // Class code 0x060000 (host bridge), revision 2; header type 0.
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x08), 0, 4), 0x06000002u);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x08), 2, 2), 0x0600u);  // what Linux's sanity check reads
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x0c), 2, 1), 0x00u);
  // No BARs.
  for (unsigned bar = 0x10; bar < 0x28; bar += 4)
    EXPECT_EQ(config_read(addr(0, 0, 0, bar), 0, 4), 0u);
}

TEST_F(PciHostTest, RegisterFieldSelectsTheDword) {
  // The low two address bits are ignored: the byte lane comes from the data port offset.
  EXPECT_EQ(config_read(0x80000002u, 0, 4), 0x12378086u);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x04), 0, 2), 0x0006u);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x04), 2, 2), 0x0280u);
}

TEST_F(PciHostTest, AbsentFunctionsAndDisabledAccessReadAllOnes) {
  EXPECT_EQ(config_read(addr(0, 1, 0, 0), 0, 4), 0xffffffffu);  // device 1
  EXPECT_EQ(config_read(addr(0, 0, 1, 0), 0, 4), 0xffffffffu);  // function 1
  EXPECT_EQ(config_read(addr(1, 0, 0, 0), 0, 4), 0xffffffffu);  // bus 1
  EXPECT_EQ(config_read(addr(0, 31, 7, 0), 0, 2), 0xffffu);
  EXPECT_EQ(config_read(addr(0, 1, 0, 0), 3, 1), 0xffu);
  EXPECT_EQ(config_read(0x00000000u, 0, 4), 0xffffffffu);  // enable bit clear
  config_write(0x00000000u, 0, 4, 0);                      // ignored
  EXPECT_EQ(config_read(addr(0, 0, 0, 0), 0, 4), 0x12378086u);
}

TEST_F(PciHostTest, ReadOnlyFieldsIgnoreWrites) {
  config_write(addr(0, 0, 0, 0), 0, 4, 0);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0), 0, 4), 0x12378086u);
  config_write(addr(0, 0, 0, 0x08), 0, 4, 0xffffffffu);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x08), 0, 4), 0x06000002u);
  config_write(addr(0, 0, 0, 0x10), 0, 4, 0xffffffffu);  // BAR sizing: no BAR
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x10), 0, 4), 0u);
}

TEST_F(PciHostTest, WritableFieldsKeepTheirWritableBits) {
  config_write(addr(0, 0, 0, 0x04), 0, 2, 0xffff);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x04), 0, 2), 0x0147u);
  config_write(addr(0, 0, 0, 0x04), 0, 2, 0x0000);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x04), 0, 2), 0x0000u);
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x04), 2, 2), 0x0280u);  // status unchanged
  config_write(addr(0, 0, 0, 0x0c), 1, 1, 0x40);               // latency timer
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x0c), 1, 1), 0x40u);
  config_write(addr(0, 0, 0, 0x58), 1, 1, 0x33);  // PAM0: bits 3:0 reserved (82441FX §3.2.18)
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x58), 0, 4), 0x3000u);
  config_write(addr(0, 0, 0, 0x70), 0, 1, 0x5a);  // another chipset register is stored
  EXPECT_EQ(config_read(addr(0, 0, 0, 0x70), 0, 1), 0x5au);
}

}  // namespace
}  // namespace vmbt
