// Guest RAM bounds, the PC memory map and the I/O / MMIO buses.
#include <gtest/gtest.h>

#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/io_bus.h"
#include "vmm/machine/memory_map.h"

namespace vmbt {
namespace {

TEST(GuestMemory, RefusesSizesOutsideTwoMegabytesToThreeGigabytes) {
  EXPECT_THROW(GuestMemory(1u << 20), Error);
  EXPECT_THROW(GuestMemory((3ull << 30) + 4096), Error);
  EXPECT_THROW(GuestMemory((2u << 20) + 1), Error);  // not a page multiple
  EXPECT_NO_THROW(GuestMemory(2u << 20));
}

TEST(GuestMemory, EveryAccessIsBoundsChecked) {
  GuestMemory ram(2u << 20);
  uint8_t buf[8] = {};
  EXPECT_TRUE(ram.write(ram.size() - 8, buf, 8));
  EXPECT_FALSE(ram.write(ram.size() - 7, buf, 8));
  EXPECT_FALSE(ram.read(UINT64_MAX - 2, buf, 8));  // overflowing gpa + len
  EXPECT_EQ(ram.host_ptr(ram.size(), 1), nullptr);
  EXPECT_EQ(ram.host_ptr(0, ram.size() + 1), nullptr);
  EXPECT_NE(ram.host_ptr(0, ram.size()), nullptr);
  EXPECT_THROW(ram.read32(ram.size() - 2), Error);
  ram.write32(0x1000, 0xdeadbeef);
  EXPECT_EQ(ram.read32(0x1000), 0xdeadbeefu);
}

TEST(GuestMemory, StartsZeroed) {
  GuestMemory ram(2u << 20);
  EXPECT_EQ(ram.read32(0), 0u);
  EXPECT_EQ(ram.read32(ram.size() - 4), 0u);
}

TEST(MemoryMap, PcLayoutHasLowRamTheLegacyHoleAndHighRam) {
  MemoryMap map = MemoryMap::pc_layout(64u << 20);
  ASSERT_EQ(map.regions().size(), 3u);
  EXPECT_EQ(map.find(0)->kind, RegionKind::kRam);
  EXPECT_EQ(map.find(0x9fbff)->kind, RegionKind::kRam);
  EXPECT_EQ(map.find(0x9fc00)->kind, RegionKind::kReserved);
  EXPECT_EQ(map.find(0xb8000)->kind, RegionKind::kReserved);
  EXPECT_EQ(map.find(0x100000)->kind, RegionKind::kRam);
  EXPECT_EQ(map.find((64u << 20) - 1)->kind, RegionKind::kRam);
  EXPECT_EQ(map.find(64u << 20), nullptr);
}

TEST(MemoryMap, RejectsOverlapsAndEmptyRegions) {
  MemoryMap map;
  map.add({0x1000, 0x1000, RegionKind::kRam, "a"});
  EXPECT_THROW(map.add({0x1fff, 0x10, RegionKind::kMmio, "b"}), Error);
  EXPECT_THROW(map.add({0x3000, 0, RegionKind::kMmio, "empty"}), Error);
  EXPECT_THROW(map.add({UINT64_MAX - 4, 16, RegionKind::kMmio, "wrap"}), Error);
  map.add({0x2000, 0x1000, RegionKind::kMmio, "c"});  // adjacent is fine
  EXPECT_EQ(map.find(0x2000)->name, "c");
}

class Recorder : public IoDevice {
 public:
  uint32_t io_read(uint16_t port, unsigned size) override {
    last_port = port;
    last_size = size;
    return 0x12345678;
  }
  void io_write(uint16_t port, unsigned size, uint32_t value) override {
    last_port = port;
    last_size = size;
    last_value = value;
  }
  uint16_t last_port = 0;
  unsigned last_size = 0;
  uint32_t last_value = 0;
};

TEST(IoBus, UnclaimedPortsReadAllOnesAndAreCounted) {
  IoBus bus;
  EXPECT_EQ(bus.read(0x2e0, 1), 0xffu);
  EXPECT_EQ(bus.read(0x2e0, 2), 0xffffu);
  EXPECT_EQ(bus.read(0x2e0, 4), 0xffffffffu);
  bus.write(0x2e0, 1, 0x55);
  EXPECT_EQ(bus.unclaimed_accesses(), 4u);
  EXPECT_EQ(bus.accesses(0x2e0), 4u);
}

TEST(IoBus, DispatchesToTheClaimingDeviceWithAbsolutePortsAndMasksWidth) {
  IoBus bus;
  Recorder dev;
  bus.add(0x3f8, 8, &dev, "uart");
  EXPECT_EQ(bus.read(0x3fd, 1), 0x78u);  // masked to the access width
  EXPECT_EQ(dev.last_port, 0x3fd);
  bus.write(0x3f8, 1, 0x1ff);
  EXPECT_EQ(dev.last_value, 0xffu);
  EXPECT_THROW(bus.add(0x3ff, 2, &dev, "overlap"), Error);
  EXPECT_THROW(bus.add(0xffff, 2, &dev, "past the end"), Error);
}

TEST(IoBus, MovableRangesAnswerWhereMovedAndNeverOverAFixedDevice) {
  // PCI I/O BARs (PCI Local Bus 3.0 §6.2.5.1): hidden until placed; a fixed ISA device keeps its
  // ports when a BAR is moved over them; of two BARs placed over each other the first added wins.
  IoBus bus;
  Recorder uart, bar0, bar1;
  bus.add(0x3f8, 8, &uart, "uart");
  bus.add_movable(0x20, &bar0, "bar0");
  bus.add_movable(0x20, &bar1, "bar1");
  EXPECT_EQ(bus.read(0xc000, 1), 0xffu);  // not placed yet: unclaimed
  bus.relocate(&bar1, 0xc000, true);
  bus.read(0xc004, 1);
  EXPECT_EQ(bar1.last_port, 0xc004);
  bus.relocate(&bar0, 0xc010, true);  // overlaps bar1's upper half: bar0 (added first) answers
  bus.read(0xc014, 1);
  EXPECT_EQ(bar0.last_port, 0xc014);
  bus.read(0xc00f, 1);
  EXPECT_EQ(bar1.last_port, 0xc00f);
  bus.relocate(&bar0, 0x3f0, true);  // over the UART: the UART keeps 0x3f8-0x3ff
  bus.read(0x3f9, 1);
  EXPECT_EQ(uart.last_port, 0x3f9);
  bus.read(0x3f1, 1);
  EXPECT_EQ(bar0.last_port, 0x3f1);
  bus.read(0xc014, 1);  // bar0 left: bar1 answers its own ports again
  EXPECT_EQ(bar1.last_port, 0xc014);
  bus.relocate(&bar1, 0xc000, false);  // hidden (I/O decoding off)
  EXPECT_EQ(bus.read(0xc004, 1), 0xffu);
  EXPECT_EQ(bus.unclaimed_accesses(), 2u);
  bus.relocate(&bar1, 0xfff0, true);  // would pass port 0xffff: stays hidden
  EXPECT_EQ(bus.read(0xfff0, 1), 0xffu);
}

class MmioRecorder : public MmioDevice {
 public:
  uint64_t mmio_read(uint64_t offset, unsigned) override { return offset; }
  void mmio_write(uint64_t offset, unsigned, uint64_t value) override {
    last_offset = offset;
    last_value = value;
  }
  uint64_t last_offset = 0, last_value = 0;
};

TEST(MmioBus, OffsetsAreRelativeToTheWindow) {
  MmioBus bus;
  MmioRecorder dev;
  bus.add(0xfee00000, 0x1000, &dev, "lapic");
  EXPECT_TRUE(bus.claims(0xfee00fff));
  EXPECT_FALSE(bus.claims(0xfee01000));
  EXPECT_EQ(bus.read(0xfee00030, 4), 0x30u);
  bus.write(0xfee000b0, 4, 7);
  EXPECT_EQ(dev.last_offset, 0xb0u);
  EXPECT_EQ(bus.read(0x1000, 4), ~0ull);
  EXPECT_EQ(bus.unclaimed_accesses(), 1u);
}

}  // namespace
}  // namespace vmbt
