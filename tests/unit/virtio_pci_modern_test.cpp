// The modern virtio-pci interface (virtio 1.2 §4.1.4) of vmbt's transitional devices, driven by a
// driver written here from the spec, through the machine's own buses: configuration mechanism #1
// (the capability list, BAR sizing and placement), the MMIO bus (common configuration, ISR,
// device configuration, notifications), and a hostile driver's values and accesses.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "tests/unit/fake_irq_sink.h"
#include "tests/unit/virtio_driver_ring.h"
#include "tests/unit/virtio_test_support.h"
#include "vmm/devices/buffer_console.h"
#include "vmm/devices/net_backend.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/virtio/virtio_blk.h"
#include "vmm/devices/virtio/virtio_net.h"
#include "vmm/devices/virtio/virtio_pci.h"
#include "vmm/machine/disk_image.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/io_bus.h"
#include "vmm/machine/machine.h"
#include "vmm/stats.h"

namespace vmbt {
namespace {

constexpr uint16_t kNext = testing::kDescNext, kWrite = testing::kDescWrite;
constexpr unsigned kSlot = 3, kIrq = 11;
constexpr uint32_t kBarBase = 0xe0000000;  // where this driver places the modern BAR
// Capability types (§4.1.4) and common configuration offsets (§4.1.4.3).
constexpr uint8_t kCapCommon = 1, kCapNotify = 2, kCapIsr = 3, kCapDevice = 4, kCapPciCfg = 5;
constexpr unsigned kDeviceFeatureSelect = 0x00, kDeviceFeature = 0x04, kDriverFeatureSelect = 0x08,
                   kDriverFeature = 0x0c, kMsixConfig = 0x10, kNumQueues = 0x12, kStatus = 0x14,
                   kGeneration = 0x15, kQueueSelect = 0x16, kQueueSize = 0x18, kQueueEnable = 0x1c,
                   kQueueNotifyOff = 0x1e, kQueueDesc = 0x20, kQueueDriver = 0x28,
                   kQueueDevice = 0x30;
constexpr uint8_t kAcknowledge = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8, kNeedsReset = 64;
constexpr uint64_t kVersion1 = 1ull << 32;

/// One capability as the driver found it (struct virtio_pci_cap, §4.1.4).
struct Cap {
  unsigned at = 0;  ///< its offset in configuration space
  uint8_t bar = 0;
  uint32_t offset = 0, length = 0, extra = 0;
};

using TempImage = testing::TempDiskImage;

/// The device behind PCI 00:03.0 on the machine's buses, and a driver's view of it.
class ModernDriver {
 public:
  ModernDriver(VirtioDevice& device, GuestMemory& mem, uint32_t class_code)
      : pci(mem, device, irq, kIrq, class_code, "dev0") {
    host.register_ports(io);
    host.attach(kSlot, pci);
    pci.attach_io(io);
    pci.attach_mmio(mmio);
  }
  // Configuration mechanism #1 (the guest's way to configuration space).
  uint32_t cfg_read(unsigned reg, unsigned size) {
    io.write(0xcf8, 4, 0x80000000u | (kSlot << 11) | (reg & 0xfc));
    return io.read(static_cast<uint16_t>(0xcfc + (reg & 3)), size);
  }
  void cfg_write(unsigned reg, unsigned size, uint32_t v) {
    io.write(0xcf8, 4, 0x80000000u | (kSlot << 11) | (reg & 0xfc));
    io.write(static_cast<uint16_t>(0xcfc + (reg & 3)), size, v);
  }
  /// Walks the capability list (PCI 3.0 §6.7) for the vendor-specific virtio ones (§4.1.4).
  std::optional<Cap> find_cap(uint8_t type) {
    if (!(cfg_read(0x06, 2) & 0x10)) return std::nullopt;  // no capabilities list
    unsigned at = cfg_read(0x34, 1) & 0xfc;
    for (unsigned hops = 0; at != 0 && hops < 48; ++hops) {
      if (cfg_read(at, 1) == 0x09 && cfg_read(at + 3, 1) == type) {
        Cap c;
        c.at = at;
        c.bar = static_cast<uint8_t>(cfg_read(at + 4, 1));
        c.offset = cfg_read(at + 8, 4);
        c.length = cfg_read(at + 12, 4);
        if (cfg_read(at + 2, 1) >= 20) c.extra = cfg_read(at + 16, 4);
        return c;
      }
      at = cfg_read(at + 1, 1) & 0xfc;
    }
    return std::nullopt;
  }
  /// Sizes BAR `index` (PCI 3.0 §6.2.5.1: all ones, read back the mask), places it at `base`
  /// and enables memory decoding; returns the size.
  uint32_t place_bar(unsigned index, uint32_t base) {
    const unsigned reg = 0x10 + 4 * index;
    cfg_write(0x04, 2, cfg_read(0x04, 2) & ~2u);  // memory decoding off while sizing
    cfg_write(reg, 4, 0xffffffffu);
    const uint32_t mask = cfg_read(reg, 4);
    cfg_write(reg, 4, base);
    cfg_write(0x04, 2, cfg_read(0x04, 2) | 2u | 4u);  // memory space, bus master
    return ~(mask & 0xfffffff0u) + 1;
  }
  /// Finds the four structures and places the BAR they are in.
  void discover() {
    for (uint8_t t : {kCapCommon, kCapNotify, kCapIsr, kCapDevice}) {
      const auto c = find_cap(t);
      ASSERT_TRUE(c) << "capability type " << int{t};
      caps[t] = *c;
    }
    ASSERT_EQ(caps[kCapCommon].bar, caps[kCapNotify].bar);
    place_bar(caps[kCapCommon].bar, kBarBase);
  }
  uint64_t common(unsigned off) const { return kBarBase + caps[kCapCommon].offset + off; }
  uint32_t rd(unsigned off, unsigned size) {
    return static_cast<uint32_t>(mmio.read(common(off), size));
  }
  void wr(unsigned off, unsigned size, uint32_t v) { mmio.write(common(off), size, v); }
  void wr64(unsigned off, uint64_t v) {  // §4.1.3.1: two 32-bit halves
    wr(off, 4, static_cast<uint32_t>(v));
    wr(off + 4, 4, static_cast<uint32_t>(v >> 32));
  }
  uint64_t device_features() {
    wr(kDeviceFeatureSelect, 4, 0);
    uint64_t f = rd(kDeviceFeature, 4);
    wr(kDeviceFeatureSelect, 4, 1);
    return f | uint64_t{rd(kDeviceFeature, 4)} << 32;
  }
  void set_driver_features(uint64_t f) {
    wr(kDriverFeatureSelect, 4, 0);
    wr(kDriverFeature, 4, static_cast<uint32_t>(f));
    wr(kDriverFeatureSelect, 4, 1);
    wr(kDriverFeature, 4, static_cast<uint32_t>(f >> 32));
  }
  /// §3.1.1 steps 1-6: reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK; true when it stuck.
  bool negotiate(uint64_t features) {
    wr(kStatus, 1, 0);
    EXPECT_EQ(rd(kStatus, 1), 0u);
    wr(kStatus, 1, kAcknowledge);
    wr(kStatus, 1, kAcknowledge | kDriver);
    set_driver_features(features);
    wr(kStatus, 1, kAcknowledge | kDriver | kFeaturesOk);
    return rd(kStatus, 1) & kFeaturesOk;
  }
  /// Queue `q` through the common configuration (§4.1.5.1.3) at `ring`'s place, `size` entries.
  void set_queue(uint16_t q, const testing::DriverRing& ring, uint16_t size) {
    wr(kQueueSelect, 2, q);
    wr(kQueueSize, 2, size);
    wr64(kQueueDesc, ring.desc_addr());
    wr64(kQueueDriver, ring.avail_addr());
    wr64(kQueueDevice, ring.used_addr());
    wr(kQueueEnable, 2, 1);
  }
  /// Notifies queue `q` (§4.1.5.2): a 16-bit write of its index at its doorbell.
  void notify(uint16_t q) {
    wr(kQueueSelect, 2, q);
    const uint32_t off = rd(kQueueNotifyOff, 2) * caps[kCapNotify].extra;
    mmio.write(kBarBase + caps[kCapNotify].offset + off, 2, q);
  }
  uint8_t read_isr() { return static_cast<uint8_t>(mmio.read(kBarBase + caps[kCapIsr].offset, 1)); }
  uint32_t device_cfg(unsigned off, unsigned size) {
    return static_cast<uint32_t>(mmio.read(kBarBase + caps[kCapDevice].offset + off, size));
  }
  uint64_t stat(const std::string& name) { return testing::transport_stat(pci, "dev0", name); }

  IoBus io;
  MmioBus mmio;
  PciHost host;
  testing::FakeIrqSink irq;
  VirtioPci pci;
  Cap caps[6];
};

class VirtioModernBlkTest : public ::testing::Test {
 protected:
  VirtioModernBlkTest()
      : mem(4u << 20),
        image(tmp.path, false, false),
        blk(mem, image, 0),
        drv(blk, mem, 0x010000),
        // The three parts far apart, as the modern interface allows (§2.7).
        ring(mem, 0x30000, 0x50002, 0x70004, 64) {}
  /// A read of `sectors` from `sector` into 0x21000 (header 0x20000, status 0x22000).
  void submit_read(uint64_t sector, uint32_t sectors) {
    uint8_t header[16] = {};
    std::memcpy(header + 8, &sector, 8);
    mem.write(0x20000, header, 16);
    ring.desc(0, 0x20000, 16, kNext, 1);
    ring.desc(1, 0x21000, 512 * sectors, kNext | kWrite, 2);
    ring.desc(2, 0x22000, 1, kWrite);
    ring.offer(0);
  }
  /// A driver that negotiated VERSION_1 and set up queue 0.
  void bring_up() {
    drv.discover();
    ASSERT_TRUE(drv.negotiate(kVersion1 | VirtioBlk::kFeatureBlkSize));
    drv.set_queue(0, ring, 64);
    drv.wr(kStatus, 1, kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  }

  TempImage tmp;
  GuestMemory mem;
  DiskImage image;
  VirtioBlk blk;
  ModernDriver drv;
  testing::DriverRing ring;
};

TEST_F(VirtioModernBlkTest, CapabilityListAsTheSpecLaysItOut) {
  // PCI status bit 4 and the capabilities pointer (PCI 3.0 §6.2.3, §6.7).
  EXPECT_TRUE(drv.cfg_read(0x06, 2) & 0x10);
  EXPECT_GE(drv.cfg_read(0x34, 1), 0x40u);
  // Transitional identity kept (§4.1.2.1): device 0x1001, revision 0, subsystem 2.
  EXPECT_EQ(drv.cfg_read(0x00, 4), 0x10011AF4u);
  EXPECT_EQ(drv.cfg_read(0x08, 1), 0u);
  EXPECT_EQ(drv.cfg_read(0x2e, 2), 2u);
  for (uint8_t t : {kCapCommon, kCapNotify, kCapIsr, kCapDevice, kCapPciCfg}) {
    const auto c = drv.find_cap(t);
    ASSERT_TRUE(c) << int{t};
    EXPECT_EQ(c->at % 4, 0u);
    // cap_len: 16, 20 for notify (notify_off_multiplier) and PCI_CFG (pci_cfg_data).
    EXPECT_EQ(drv.cfg_read(c->at + 2, 1), t == kCapNotify || t == kCapPciCfg ? 20u : 16u);
    if (t == kCapPciCfg) continue;
    EXPECT_EQ(c->bar, VirtioPci::kModernBar);
    EXPECT_EQ(c->offset % 4, 0u);  // §4.1.4: 4-byte aligned structures
  }
  // The common configuration holds struct virtio_pci_common_cfg (0x38 bytes), the ISR a byte,
  // the doorbells one queue's worth at the multiplier (§4.1.4.4: offset + multiplier * off).
  EXPECT_GE(drv.find_cap(kCapCommon)->length, 0x38u);
  EXPECT_GE(drv.find_cap(kCapIsr)->length, 1u);
  const Cap notify = *drv.find_cap(kCapNotify);
  EXPECT_EQ(notify.extra, VirtioPci::kNotifyOffMultiplier);
  EXPECT_GE(notify.length, 2u);  // queue 0's doorbell (off 0), 16 bits
  // The list ends (no loop) and the structures do not overlap within the BAR.
  unsigned at = drv.cfg_read(0x34, 1), n = 0;
  for (; at != 0 && n < 64; ++n) at = drv.cfg_read(at + 1, 1);
  EXPECT_EQ(at, 0u);
  EXPECT_EQ(n, 5u);
}

TEST_F(VirtioModernBlkTest, MemoryBarSizesPlacesAndMoves) {
  // BAR4: 32-bit memory, not prefetchable (bits 3-0 zero), 16 KiB.
  const unsigned reg = 0x10 + 4 * VirtioPci::kModernBar;
  EXPECT_EQ(drv.cfg_read(reg, 4) & 0xf, 0u);
  EXPECT_EQ(drv.place_bar(VirtioPci::kModernBar, kBarBase), VirtioPci::kModernBarSize);
  EXPECT_EQ(drv.cfg_read(reg, 4), kBarBase);
  // The legacy I/O BAR is still BAR0 (bit 0 set).
  EXPECT_EQ(drv.cfg_read(0x10, 4) & 1, 1u);
  drv.discover();
  EXPECT_EQ(drv.rd(kNumQueues, 2), 1u);
  // Moved: the old place decodes nothing, the new one the device.
  drv.place_bar(VirtioPci::kModernBar, 0xd0000000);
  EXPECT_FALSE(drv.mmio.claims(kBarBase));
  EXPECT_TRUE(drv.mmio.claims(0xd0000000 + 0x3fff));
  EXPECT_EQ(drv.mmio.read(0xd0000000 + kNumQueues, 2), 1u);
  // Memory decoding off: nothing.
  drv.cfg_write(0x04, 2, drv.cfg_read(0x04, 2) & ~2u);
  EXPECT_FALSE(drv.mmio.claims(0xd0000000));
  // An unaligned base is aligned down by the read-only low bits.
  drv.cfg_write(reg, 4, 0xd0001234);
  EXPECT_EQ(drv.cfg_read(reg, 4), 0xd0000000u);
}

TEST_F(VirtioModernBlkTest, ModernDriverReadsTheDiskThroughTheModernInterface) {
  drv.discover();
  // 64-bit features: the device's and VERSION_1 (bit 32), through the select (§4.1.4.3).
  const uint64_t offered = drv.device_features();
  EXPECT_EQ(offered, blk.features() | kVersion1);
  drv.wr(kDeviceFeatureSelect, 4, 7);
  EXPECT_EQ(drv.rd(kDeviceFeature, 4), 0u);  // no such word
  // The legacy interface offers no VERSION_1 (a 32-bit register).
  EXPECT_EQ(drv.pci.config_read(0x10, 4) & 1, 1u);
  ASSERT_TRUE(drv.negotiate(kVersion1 | VirtioBlk::kFeatureBlkSize));
  EXPECT_EQ(drv.pci.driver_features(), kVersion1 | VirtioBlk::kFeatureBlkSize);
  // No MSI-X: NO_VECTOR (§4.1.4.3, §4.1.5.1.2); one queue of 256, its notify offset its index.
  EXPECT_EQ(drv.rd(kMsixConfig, 2), 0xffffu);
  EXPECT_EQ(drv.rd(kGeneration, 1), 0u);
  drv.wr(kQueueSelect, 2, 0);
  EXPECT_EQ(drv.rd(kQueueSize, 2), VirtioBlk::kQueueSize);
  EXPECT_EQ(drv.rd(kQueueEnable, 2), 0u);
  EXPECT_EQ(drv.rd(kQueueNotifyOff, 2), 0u);
  drv.set_queue(0, ring, 64);
  EXPECT_EQ(drv.rd(kQueueSize, 2), 64u);
  EXPECT_EQ(drv.rd(kQueueEnable, 2), 1u);
  EXPECT_EQ(drv.rd(kQueueDriver, 4), 0x50002u);
  EXPECT_EQ(drv.rd(kQueueDriver + 4, 4), 0u);
  drv.wr(kStatus, 1, kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  // Device configuration, little-endian (§5.2.4): capacity 64 (a 64-bit field as two halves),
  // blk_size 512.
  EXPECT_EQ(drv.device_cfg(0, 4), 64u);
  EXPECT_EQ(drv.device_cfg(4, 4), 0u);
  EXPECT_EQ(drv.device_cfg(20, 4), 512u);
  // A read request, a notify at the doorbell, the used ring, ISR bit 0 and INTA#.
  submit_read(7, 2);
  drv.notify(0);
  ASSERT_EQ(ring.used_idx(), 1);
  EXPECT_EQ(ring.used(0), std::make_pair(0u, 1025u));
  uint8_t got[1025];
  mem.read(0x21000, got, 1024);
  mem.read(0x22000, got + 1024, 1);
  EXPECT_EQ(got[0], 7);
  EXPECT_EQ(got[1023], 8);
  EXPECT_EQ(got[1024], VirtioBlk::kStatusOk);
  EXPECT_TRUE(drv.irq.levels[kIrq]);
  EXPECT_EQ(drv.read_isr(), 1u);  // read clears (§4.1.4.5)
  EXPECT_FALSE(drv.irq.levels[kIrq]);
  EXPECT_EQ(drv.read_isr(), 0u);
  EXPECT_TRUE(drv.pci.modern());
  EXPECT_EQ(drv.stat("bad_accesses"), 0u);
  // The same through a VIRTIO_PCI_CAP_PCI_CFG window (§4.1.4.9): num_queues, then the status.
  const Cap cfg = *drv.find_cap(kCapPciCfg);
  drv.cfg_write(cfg.at + 4, 1, VirtioPci::kModernBar);
  drv.cfg_write(cfg.at + 8, 4, drv.caps[kCapCommon].offset + kNumQueues);
  drv.cfg_write(cfg.at + 12, 4, 2);
  EXPECT_EQ(drv.cfg_read(cfg.at + 16, 4), 1u);
  drv.cfg_write(cfg.at + 8, 4, drv.caps[kCapCommon].offset + kStatus);
  drv.cfg_write(cfg.at + 12, 4, 1);
  EXPECT_EQ(drv.cfg_read(cfg.at + 16, 1), kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  // Reset through the window: status 0, the queue gone (§4.1.4.3.2: queue_enable 0 after reset).
  drv.cfg_write(cfg.at + 16, 1, 0);
  EXPECT_EQ(drv.rd(kStatus, 1), 0u);
  EXPECT_EQ(drv.rd(kQueueEnable, 2), 0u);
  EXPECT_EQ(drv.rd(kQueueSize, 2), VirtioBlk::kQueueSize);
}

TEST_F(VirtioModernBlkTest, FeaturesOkRefusedForFeaturesNotOfferedOrWithoutVersion1) {
  drv.discover();
  // Bit 0 (VIRTIO_BLK_F_BARRIER) is not offered: FEATURES_OK does not stick (§2.2.1, §3.1.1).
  EXPECT_FALSE(drv.negotiate(kVersion1 | 1));
  // Bit 40 is not offered either.
  EXPECT_FALSE(drv.negotiate(kVersion1 | (1ull << 40)));
  // Without VERSION_1, a modern driver is refused (§6.1).
  EXPECT_FALSE(drv.negotiate(VirtioBlk::kFeatureFlush));
  // Refused, the device does not run the queue even at DRIVER_OK.
  drv.set_queue(0, ring, 64);
  drv.wr(kStatus, 1, kAcknowledge | kDriver | kDriverOk);
  submit_read(0, 1);
  drv.notify(0);
  EXPECT_EQ(ring.used_idx(), 0);
  // Accepted, the features cannot change afterwards.
  ASSERT_TRUE(drv.negotiate(kVersion1));
  drv.wr(kDriverFeatureSelect, 4, 0);
  drv.wr(kDriverFeature, 4, VirtioBlk::kFeatureFlush);
  EXPECT_EQ(drv.pci.driver_features(), kVersion1);
}

TEST_F(VirtioModernBlkTest, BadQueueValuesAreRefused) {
  drv.discover();
  ASSERT_TRUE(drv.negotiate(kVersion1));
  drv.wr(kQueueSelect, 2, 0);
  // queue_size: a power of two no larger than the maximum (§2.7); anything else is refused.
  for (uint32_t bad : {0u, 100u, 512u, 0xffffu}) {
    drv.wr(kQueueSize, 2, bad);
    EXPECT_EQ(drv.rd(kQueueSize, 2), VirtioBlk::kQueueSize) << bad;
  }
  drv.wr(kQueueSize, 2, 1);
  EXPECT_EQ(drv.rd(kQueueSize, 2), 1u);
  // A queue that does not exist: size 0, writes and enables go nowhere.
  drv.wr(kQueueSelect, 2, 5);
  EXPECT_EQ(drv.rd(kQueueSize, 2), 0u);
  drv.wr(kQueueSize, 2, 16);
  drv.wr(kQueueEnable, 2, 1);
  EXPECT_EQ(drv.rd(kQueueEnable, 2), 0u);
  drv.notify(5);  // no such doorbell either
  // Places the device refuses: above 4 GiB, past RAM, wrapping, misaligned. Each breaks the
  // queue; its first notify stops the device (DEVICE_NEEDS_RESET), as a bad legacy PFN does.
  const struct {
    uint64_t desc, avail, used;
  } places[] = {
      {0x1'0000'0000ull, 0x50000, 0x70000},  // descriptor table above 4 GiB
      {0x30000, 0x50000, 0x3fff00},          // used ring past the end of RAM
      {0x30000, ~0ull - 1, 0x70000},         // available ring wrapping
      {0x30008, 0x50000, 0x70000},           // descriptor table not 16-byte aligned
      {0x30000, 0x50001, 0x70000},           // available ring not 2-byte aligned
      {0x30000, 0x50000, 0x70002},           // used ring not 4-byte aligned
  };
  for (const auto& p : places) {
    ASSERT_TRUE(drv.negotiate(kVersion1));
    testing::DriverRing bad(mem, p.desc, p.avail, p.used, 64);
    drv.set_queue(0, bad, 64);
    drv.wr(kStatus, 1, kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
    ring.desc(0, 0x20000, 16, kNext, 1);
    drv.notify(0);
    EXPECT_TRUE(drv.rd(kStatus, 1) & kNeedsReset) << std::hex << p.desc << " " << p.avail;
  }
  // After a reset a good place works; while a queue runs, its place and size stay put.
  ASSERT_TRUE(drv.negotiate(kVersion1));
  drv.set_queue(0, ring, 64);
  drv.wr(kQueueSize, 2, 32);
  drv.wr64(kQueueDesc, 0x1'0000'0000ull);
  EXPECT_EQ(drv.rd(kQueueSize, 2), 64u);
  EXPECT_EQ(drv.rd(kQueueDesc + 4, 4), 0u);
  drv.wr(kStatus, 1, kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  submit_read(1, 1);
  drv.notify(0);
  EXPECT_EQ(ring.used_idx(), 1);
  EXPECT_FALSE(drv.rd(kStatus, 1) & kNeedsReset);
}

TEST_F(VirtioModernBlkTest, AccessesOfTheWrongWidthOrOffsetDoNothing) {
  bring_up();
  const uint64_t before = drv.stat("bad_accesses");
  // §4.1.3.1: each field with its own width. A 32-bit read of the 8-bit status, a 16-bit write
  // of a 32-bit select, an 8-bit write into queue_size, a read between fields.
  EXPECT_EQ(drv.rd(kStatus, 4), 0u);
  drv.wr(kDeviceFeatureSelect, 2, 1);
  EXPECT_EQ(drv.rd(kDeviceFeatureSelect, 4), 0u);
  drv.wr(kQueueSize, 1, 8);
  EXPECT_EQ(drv.rd(kQueueSize, 2), 64u);
  EXPECT_EQ(drv.rd(0x13, 1), 0u);   // inside num_queues
  EXPECT_EQ(drv.rd(0x22, 2), 0u);   // inside queue_desc
  EXPECT_EQ(drv.rd(0x200, 4), 0u);  // past the structure
  drv.wr(kStatus, 2, 0);            // not a reset: the wrong width
  EXPECT_EQ(drv.rd(kStatus, 1), kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  // The ISR: a byte at its offset only; a wider read neither answers nor clears.
  submit_read(2, 1);
  drv.notify(0);
  EXPECT_EQ(drv.mmio.read(kBarBase + drv.caps[kCapIsr].offset, 4), 0u);
  EXPECT_TRUE(drv.irq.levels[kIrq]);
  EXPECT_EQ(drv.read_isr(), 1u);
  drv.mmio.write(kBarBase + drv.caps[kCapIsr].offset, 1, 1);  // read-only
  EXPECT_EQ(drv.read_isr(), 0u);
  // Doorbells: a byte write, a write between doorbells, past the last, a read: no notify.
  const uint64_t notifies = drv.stat("notifies");
  const uint64_t bell = kBarBase + drv.caps[kCapNotify].offset;
  drv.mmio.write(bell, 1, 0);
  drv.mmio.write(bell + 2, 2, 0);
  drv.mmio.write(bell + 4, 2, 1);
  drv.mmio.write(bell + 0x800, 4, 0);
  drv.mmio.write(bell, 8, 0);
  EXPECT_EQ(drv.mmio.read(bell, 2), 0u);
  EXPECT_EQ(drv.stat("notifies"), notifies);
  // The device configuration is read-only and past its end reads 0.
  drv.mmio.write(kBarBase + drv.caps[kCapDevice].offset, 4, 0x12345678);
  EXPECT_EQ(drv.device_cfg(0, 4), 64u);
  EXPECT_EQ(drv.device_cfg(0xffc, 4), 0u);
  // Every offset and width of the BAR, read and written, ends here without harm.
  for (uint32_t off = 0; off < VirtioPci::kModernBarSize; off += 0x3f) {
    for (unsigned size : {1u, 2u, 4u, 8u}) (void)drv.mmio.read(kBarBase + off, size);
  }
  EXPECT_GT(drv.stat("bad_accesses"), before + 10);
  // The PCI_CFG window with a bad bar, length or offset reads 0 and writes nothing.
  const Cap cfg = *drv.find_cap(kCapPciCfg);
  drv.cfg_write(cfg.at + 4, 1, 0);  // BAR0: not a capability's BAR
  drv.cfg_write(cfg.at + 8, 4, kStatus);
  drv.cfg_write(cfg.at + 12, 4, 1);
  EXPECT_EQ(drv.cfg_read(cfg.at + 16, 1), 0u);
  drv.cfg_write(cfg.at + 4, 1, VirtioPci::kModernBar);
  drv.cfg_write(cfg.at + 12, 4, 3);  // a length of 3
  drv.cfg_write(cfg.at + 16, 1, 0);
  drv.cfg_write(cfg.at + 12, 4, 4);
  drv.cfg_write(cfg.at + 8, 4, VirtioPci::kModernBarSize - 2);  // past the BAR
  drv.cfg_write(cfg.at + 16, 4, 0);
  EXPECT_EQ(drv.rd(kStatus, 1), kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
}

TEST_F(VirtioModernBlkTest, TheLegacyInterfaceStillWorksOnTheSameDevice) {
  // A legacy driver (§4.1.4.8) of the same function: BAR0 at 0xc000.
  drv.pci.assign_io_bar(0, 0xc000);
  auto out = [&](unsigned reg, unsigned size, uint32_t v) { drv.io.write(0xc000 + reg, size, v); };
  auto in = [&](unsigned reg, unsigned size) { return drv.io.read(0xc000 + reg, size); };
  out(0x12, 1, 0);
  out(0x12, 1, kAcknowledge | kDriver);
  EXPECT_EQ(in(0x00, 4), static_cast<uint32_t>(blk.features()));
  out(0x04, 4, 0xffffffff);
  EXPECT_EQ(drv.pci.driver_features(), blk.features() & 0xffffffff);  // never VERSION_1
  testing::DriverRing legacy(mem, 0x40, VirtioBlk::kQueueSize);
  out(0x0e, 2, 0);
  EXPECT_EQ(in(0x0c, 2), VirtioBlk::kQueueSize);
  out(0x08, 4, legacy.pfn());
  out(0x12, 1, kAcknowledge | kDriver | kDriverOk);
  uint8_t header[16] = {};
  header[8] = 3;
  mem.write(0x20000, header, 16);
  legacy.desc(0, 0x20000, 16, kNext, 1);
  legacy.desc(1, 0x21000, 512, kNext | kWrite, 2);
  legacy.desc(2, 0x22000, 1, kWrite);
  legacy.offer(0);
  out(0x10, 2, 0);
  EXPECT_EQ(legacy.used_idx(), 1);
  EXPECT_EQ(in(0x13, 1), 1u);
  EXPECT_FALSE(drv.pci.modern());
  // The capability-based fields stay what they were: the device is transitional.
  EXPECT_EQ(drv.cfg_read(0x08, 1), 0u);
}

using CountingBackend = testing::FakeNetBackend;

/// virtio-net through the modern interface: the 12-byte header (§5.1.6) with VERSION_1.
TEST(VirtioModernNetTest, VersionOneUsesTheTwelveByteHeaderBothWays) {
  GuestMemory mem(4u << 20);
  CountingBackend backend;
  VirtioNet net(mem, backend);
  ModernDriver drv(net, mem, 0x020000);
  drv.discover();
  // Configuration (§5.1.4): mac, then status LINK_UP, little-endian.
  EXPECT_EQ(drv.device_cfg(0, 4), 0x12005452u);
  EXPECT_EQ(drv.device_cfg(4, 2), 0x5634u);
  EXPECT_EQ(drv.device_cfg(6, 2), 1u);
  EXPECT_EQ(drv.rd(kNumQueues, 2), 2u);
  ASSERT_TRUE(drv.negotiate(kVersion1 | VirtioNet::kFeatureMac));
  EXPECT_EQ(net.header_bytes(), VirtioNet::kHeaderBytesVersion1);
  testing::DriverRing rx(mem, 0x10000, 0x11000, 0x12000, 16);
  testing::DriverRing tx(mem, 0x20000, 0x21000, 0x22000, 16);
  drv.set_queue(0, rx, 16);
  drv.set_queue(1, tx, 16);
  drv.wr(kQueueSelect, 2, 1);
  EXPECT_EQ(drv.rd(kQueueNotifyOff, 2), 1u);
  drv.wr(kStatus, 1, kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
  // Transmit: 12 header bytes dropped, the frame sent.
  std::vector<uint8_t> packet(12 + 60, 0x77);
  mem.write(0x100000, packet.data(), packet.size());
  tx.desc(0, 0x100000, static_cast<uint32_t>(packet.size()), 0);
  tx.offer(0);
  drv.notify(1);
  ASSERT_EQ(backend.sent.size(), 1u);
  EXPECT_EQ(backend.sent[0].size(), 60u);
  // Receive: a 12-byte header, num_buffers 1 (§5.1.6.4.2), then the frame.
  std::vector<uint8_t> junk(0x1000, 0xaa);
  mem.write(0x200000, junk.data(), junk.size());
  rx.desc(0, 0x200000, 1526, kWrite);
  rx.offer(0);
  drv.notify(0);
  backend.inject(std::vector<uint8_t>(60, 0x42));
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used(0), std::make_pair(0u, 72u));
  uint8_t got[73];
  mem.read(0x200000, got, sizeof got);
  for (unsigned i = 0; i < 10; ++i) EXPECT_EQ(got[i], 0) << i;
  EXPECT_EQ(got[10], 1);
  EXPECT_EQ(got[11], 0);
  EXPECT_EQ(got[12], 0x42);
  EXPECT_EQ(got[72], 0xaa);
  // A reset takes the device back to the legacy header.
  drv.wr(kStatus, 1, 0);
  EXPECT_EQ(net.header_bytes(), VirtioNet::kHeaderBytes);
}

TEST(VirtioModernMachineTest, TheMachinePutsTheModernBarOnItsMmioBus) {
  TempImage tmp;
  BufferConsole console;
  GuestConfig config;
  config.ram_bytes = 16u << 20;
  config.kernel = "unused.elf";  // a machine for a kernel (not loaded here), not for firmware
  config.drives.push_back({tmp.path, true});
  Machine machine(config, console);
  // 00:03.0's BAR4 as the machine assigned it, memory decoding on.
  machine.io().write(0xcf8, 4, 0x80000000u | (3u << 11) | 0x20);
  const uint32_t bar = machine.io().read(0xcfc, 4);
  EXPECT_EQ(bar, 0xfe000000u);
  machine.io().write(0xcf8, 4, 0x80000000u | (3u << 11) | 0x04);
  EXPECT_TRUE(machine.io().read(0xcfc, 2) & 2);
  EXPECT_TRUE(machine.mmio().claims(bar));
  EXPECT_EQ(machine.mmio().read(bar + kNumQueues, 2), 1u);
  EXPECT_EQ(machine.mmio().read(bar + VirtioPci::kDeviceOffset, 4), 64u);  // capacity
}

}  // namespace
}  // namespace vmbt
