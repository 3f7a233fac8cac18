// bt: loads and stores to a device's MMIO window reach the MMIO bus as exits, with the size and
// value the instruction uses (the KVM engine gets the same from KVM_EXIT_MMIO).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "bt/bt_engine.h"
#include "vmm/boot/boot_state.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {
namespace {

/// Reads return 3 * offset + 1; writes are recorded.
class RecordingDevice : public MmioDevice {
 public:
  struct Write {
    uint64_t offset;
    unsigned size;
    uint64_t value;
  };
  uint64_t mmio_read(uint64_t offset, unsigned size) override {
    reads.push_back({offset, size, 0});
    return 3 * offset + 1;
  }
  void mmio_write(uint64_t offset, unsigned size, uint64_t value) override {
    writes.push_back({offset, size, value});
  }
  std::vector<Write> reads, writes;
};

TEST(BtMmio, LoadsStoresAndReadModifyWritesReachTheDevice) {
  constexpr uint64_t kWindow = 0xfec00000;
  GuestMemory ram(4u << 20);
  MmioBus bus;
  RecordingDevice dev;
  bus.add(kWindow, 0x1000, &dev, "test device");
  const uint8_t code[] = {0xa1, 0x10, 0x00, 0xc0, 0xfe,  // mov eax, [0xfec00010]
                          0xc7, 0x05, 0x20, 0x00, 0xc0, 0xfe, 0x78,
                          0x56, 0x34, 0x12,                          // mov [0xfec00020], 0x12345678
                          0x83, 0x05, 0x30, 0x00, 0xc0, 0xfe, 0x05,  // add dword [0xfec00030], 5
                          0x8a, 0x1d, 0x44, 0x00, 0xc0, 0xfe,        // mov bl, [0xfec00044]
                          0xf4};                                     // hlt
  ram.write(0x10000, code, sizeof code);
  NoInterrupts none;
  bt::BtEngine engine(ram, none, [&](uint64_t gpa) { return bus.claims(gpa); });
  VcpuState s = flat_protected_mode_state(0x10000);
  s.gpr[kEsp] = 0x8000;
  engine.set_state(s);
  for (int i = 0; i < 20; ++i) {
    Exit e = engine.run();
    if (e.reason == ExitReason::kHalt) break;
    ASSERT_EQ(e.reason, ExitReason::kMmio) << e.message;
    uint64_t v = 0;
    if (e.mmio.write) {
      std::memcpy(&v, e.mmio.data, e.mmio.size);
      bus.write(e.mmio.gpa, e.mmio.size, v);
    } else {
      v = bus.read(e.mmio.gpa, e.mmio.size);
      std::memcpy(e.mmio.data, &v, e.mmio.size);
    }
  }
  VcpuState out = engine.state();
  EXPECT_EQ(out.gpr[kEax], 3u * 0x10 + 1);
  EXPECT_EQ(out.gpr[kEbx] & 0xff, (3u * 0x44 + 1) & 0xff);
  ASSERT_EQ(dev.reads.size(), 3u);
  EXPECT_EQ(dev.reads[0].offset, 0x10u);
  EXPECT_EQ(dev.reads[0].size, 4u);
  EXPECT_EQ(dev.reads[1].offset, 0x30u);  // the read half of ADD [mem], imm
  EXPECT_EQ(dev.reads[2].size, 1u);
  ASSERT_EQ(dev.writes.size(), 2u);
  EXPECT_EQ(dev.writes[0].offset, 0x20u);
  EXPECT_EQ(dev.writes[0].value, 0x12345678u);
  EXPECT_EQ(dev.writes[1].offset, 0x30u);
  EXPECT_EQ(dev.writes[1].value, 3u * 0x30 + 1 + 5);  // read-modify-write
  // Addresses no device claims still read all ones (nothing decodes them).
  EXPECT_FALSE(bus.claims(kWindow + 0x1000));
}

}  // namespace
}  // namespace vmbt
