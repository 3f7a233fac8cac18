// The 8042 keyboard controller with nothing attached (vmm/devices/i8042.h), System Control Port A
// (vmm/devices/port92.h) and the machine's reset handling.
#include "vmm/devices/i8042.h"

#include <gtest/gtest.h>

#include <vector>

#include "tests/unit/fake_irq_sink.h"
#include "vmm/devices/buffer_console.h"
#include "vmm/devices/port92.h"
#include "vmm/machine/io_bus.h"
#include "vmm/machine/machine.h"

namespace vmbt {
namespace {

class I8042Test : public ::testing::Test {
 protected:
  I8042Test() : kbc_(irq_) { kbc_.register_ports(bus_); }

  uint8_t status() { return static_cast<uint8_t>(bus_.read(0x64, 1)); }
  uint8_t data() { return static_cast<uint8_t>(bus_.read(0x60, 1)); }
  void command(uint8_t c) { bus_.write(0x64, 1, c); }
  void write_data(uint8_t v) { bus_.write(0x60, 1, v); }
  /// Issues a command that answers one byte; checks OBF and returns the byte.
  uint8_t query(uint8_t c) {
    command(c);
    EXPECT_TRUE(status() & I8042::kStatusObf) << std::hex << int{c};
    return data();
  }

  testing::FakeIrqSink irq_;
  IoBus bus_;
  I8042 kbc_;
};

TEST_F(I8042Test, IdleStatus) {
  uint8_t s = status();
  EXPECT_EQ(s & I8042::kStatusObf, 0);
  EXPECT_EQ(s & I8042::kStatusIbf, 0);  // commands complete at once
  EXPECT_TRUE(s & I8042::kStatusSys);   // the command byte's system flag, as POST leaves it
  EXPECT_TRUE(s & I8042::kStatusUnlocked);
  EXPECT_EQ(bus_.unclaimed_accesses(), 0u);
}

TEST_F(I8042Test, SelfTestAndInterfaceTests) {
  EXPECT_EQ(query(0xaa), 0x55);
  EXPECT_EQ(status() & I8042::kStatusObf, 0);  // reading the data port empties the buffer
  EXPECT_TRUE(status() & I8042::kStatusSys);
  EXPECT_EQ(query(0xab), 0x00);
  EXPECT_EQ(query(0xa9), 0x00);
}

TEST_F(I8042Test, CommandByteRoundTrip) {
  EXPECT_EQ(query(0x20), I8042::kInitialCtr);
  command(0x60);
  EXPECT_TRUE(status() & I8042::kStatusCommand);
  write_data(0x74);
  EXPECT_FALSE(status() & I8042::kStatusCommand);
  EXPECT_EQ(status() & I8042::kStatusObf, 0);  // a write answers nothing
  EXPECT_EQ(kbc_.command_byte(), 0x74);
  EXPECT_EQ(query(0x20), 0x74);
  // Other controller RAM bytes: 0x61 writes byte 1, 0x21 reads it back.
  command(0x61);
  write_data(0x3c);
  EXPECT_EQ(query(0x21), 0x3c);
  EXPECT_EQ(query(0x20), 0x74);
}

TEST_F(I8042Test, DisableAndEnablePortsInTheCommandByte) {
  command(0xad);
  EXPECT_EQ(query(0x20) & I8042::kCtrKbdDisabled, I8042::kCtrKbdDisabled);
  command(0xae);
  EXPECT_EQ(query(0x20) & I8042::kCtrKbdDisabled, 0);
  command(0xa7);
  EXPECT_EQ(query(0x20) & I8042::kCtrAuxDisabled, I8042::kCtrAuxDisabled);
  command(0xa8);
  EXPECT_EQ(query(0x20) & I8042::kCtrAuxDisabled, 0);
}

TEST_F(I8042Test, OutputPortReadWrite) {
  uint8_t out = query(0xd0);
  EXPECT_TRUE(out & 0x01);  // reset line high: running
  EXPECT_TRUE(out & 0x02);  // A20 on
  command(0xd1);
  write_data(0xdd);  // A20 off, reset line still high
  EXPECT_EQ(kbc_.output_port(), 0xdd);
  EXPECT_FALSE(kbc_.reset_requested());
  EXPECT_EQ(query(0xd0) & 0x03, 0x01);
}

TEST_F(I8042Test, A20ChangesAreReportedFromTheOutputPortAndItsCommands) {
  // The output port's bit 1 is the A20 gate; 0xDD/0xDF disable/enable it (as QEMU's i8042).
  std::vector<bool> seen;
  kbc_.set_on_a20([&](bool on) { seen.push_back(on); });
  command(0xd1);
  write_data(0xdd);  // A20 off
  command(0xd1);
  write_data(0xdd);  // unchanged: not reported again
  command(0xdf);     // on
  command(0xdd);     // off
  EXPECT_EQ(seen, (std::vector<bool>{false, true, false}));
  EXPECT_FALSE(kbc_.output_port() & 0x02);
  EXPECT_FALSE(kbc_.reset_requested());
}

TEST_F(I8042Test, PulseResetLineRequestsReset) {
  EXPECT_FALSE(kbc_.reset_requested());
  command(0xff);  // pulses nothing
  EXPECT_FALSE(kbc_.reset_requested());
  command(0xfe);  // pulse bit 0: CPU reset (Linux's reboot path)
  ASSERT_TRUE(kbc_.reset_requested());
  EXPECT_EQ(*kbc_.reset_requested(), 0);
}

TEST_F(I8042Test, OutputPortBit0LowResets) {
  command(0xd1);
  write_data(0xce);
  ASSERT_TRUE(kbc_.reset_requested());
  EXPECT_EQ(*kbc_.reset_requested(), 0);
}

TEST_F(I8042Test, KeyboardBytesTimeOutWithNak) {
  // No keyboard: a byte for it ends with the timeout bit and 0xfe, on IRQ1 when enabled.
  write_data(0xf2);  // GET ID
  uint8_t s = status();
  EXPECT_TRUE(s & I8042::kStatusObf);
  EXPECT_TRUE(s & I8042::kStatusTimeout);
  EXPECT_FALSE(s & I8042::kStatusAuxObf);
  EXPECT_TRUE(irq_.levels[1]);
  EXPECT_EQ(data(), 0xfe);
  EXPECT_FALSE(irq_.levels[1]);
  EXPECT_FALSE(status() & I8042::kStatusTimeout);
  EXPECT_EQ(data(), 0xfe);  // an empty buffer reads the last byte again
}

TEST_F(I8042Test, AuxBytesTimeOutOnIrq12) {
  command(0x60);
  write_data(I8042::kCtrAuxInt | I8042::kCtrSys);
  command(0xd4);
  write_data(0xff);  // mouse reset
  uint8_t s = status();
  EXPECT_TRUE(s & I8042::kStatusAuxObf);
  EXPECT_TRUE(s & I8042::kStatusTimeout);
  EXPECT_TRUE(irq_.levels[12]);
  EXPECT_FALSE(irq_.levels[1]);
  EXPECT_EQ(data(), 0xfe);
  EXPECT_FALSE(irq_.levels[12]);
}

TEST_F(I8042Test, LoopbackCommands) {
  command(0xd2);
  write_data(0x5a);
  EXPECT_EQ(status() & (I8042::kStatusObf | I8042::kStatusAuxObf), I8042::kStatusObf);
  EXPECT_EQ(data(), 0x5a);
  command(0xd3);
  write_data(0xa5);
  EXPECT_EQ(status() & (I8042::kStatusObf | I8042::kStatusAuxObf),
            I8042::kStatusObf | I8042::kStatusAuxObf);
  EXPECT_EQ(data(), 0xa5);
}

TEST_F(I8042Test, InterruptsFollowTheCommandByte) {
  command(0x60);
  write_data(I8042::kCtrSys);  // interrupts off
  EXPECT_EQ(query(0xaa), 0x55);
  EXPECT_EQ(irq_.rises[1], 0u);
  command(0x60);
  write_data(I8042::kCtrSys | I8042::kCtrKbdInt);
  command(0x20);
  EXPECT_TRUE(irq_.levels[1]);
  data();
  EXPECT_FALSE(irq_.levels[1]);
  // Two answers in a row are two edges.
  command(0xaa);
  command(0xaa);
  EXPECT_EQ(irq_.rises[1], 3u);
}

TEST(Port92Test, FastResetAndA20) {
  IoBus bus;
  Port92 p;
  p.register_ports(bus);
  EXPECT_EQ(bus.read(0x92, 1), 0x02u);  // A20 on
  EXPECT_TRUE(p.a20());
  std::vector<bool> seen;
  p.set_on_a20([&](bool on) { seen.push_back(on); });
  bus.write(0x92, 1, 0x00);
  EXPECT_FALSE(p.a20());
  EXPECT_EQ(seen, std::vector<bool>{false});  // reported once, as it changed
  EXPECT_FALSE(p.reset_requested());
  bus.write(0x92, 1, 0x03);
  ASSERT_TRUE(p.reset_requested());
  EXPECT_EQ(*p.reset_requested(), 0);
  EXPECT_EQ(bus.read(0x92, 1), 0x02u);  // bit 0 reads 0
  EXPECT_EQ(seen, (std::vector<bool>{false, true}));
}

TEST(MachineResetTest, ResetsEndTheRunWithStatusZero) {
  BufferConsole console;
  GuestConfig cfg;
  cfg.ram_bytes = 4 << 20;
  cfg.kernel = "unused.elf";  // a machine for a kernel (not loaded here), not for firmware
  {
    Machine m(cfg, console);
    EXPECT_FALSE(m.exit_requested());
    EXPECT_EQ(m.io().read(0x64, 1) & 0x02, 0u);  // Linux's kb_wait: input buffer empty
    m.io().write(0x64, 1, 0xfe);
    ASSERT_TRUE(m.exit_requested());
    EXPECT_EQ(*m.exit_requested(), 0);
    EXPECT_EQ(m.exit_request_reason(), "guest reset (i8042 pulse)");
  }
  {
    Machine m(cfg, console);
    m.io().write(0x92, 1, 0x01);
    ASSERT_TRUE(m.exit_requested());
    EXPECT_EQ(*m.exit_requested(), 0);
    EXPECT_NE(m.exit_request_reason().find("0x92"), std::string::npos);
  }
  {
    Machine m(cfg, console);
    m.io().write(0xf4, 1, 3);
    EXPECT_EQ(*m.exit_requested(), 7);
    EXPECT_NE(m.exit_request_reason().find("isa-debug-exit"), std::string::npos);
    EXPECT_EQ(m.io().read(0xcfc, 4), 0xffffffffu);  // the PCI host is on the bus
    m.io().write(0xcf8, 4, 0x80000000u);
    EXPECT_EQ(m.io().read(0xcfc, 4), 0x12378086u);
  }
}

}  // namespace
}  // namespace vmbt
