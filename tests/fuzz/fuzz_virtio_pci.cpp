// libFuzzer target: the virtio-pci transport of a transitional device (virtio 1.2 §4.1), both
// interfaces, driven by a hostile driver: configuration space through mechanism #1 (the
// capability list, the PCI_CFG window, BAR sizing and moves), the legacy I/O BAR, the modern
// memory BAR (common configuration, ISR, device configuration, doorbells) and guest RAM under the
// queues, behind virtio-blk or virtio-net. No access may crash, hang, touch memory outside guest
// RAM or the image, or trip a sanitizer.
//
// Input: [0] bit 0: virtio-net (else virtio-blk), bit 1: set the device up through the modern
// interface first (VERSION_1 and every offered feature, every queue at 0x10000 + 0x4000 * q with
// its parts 0x1000 apart, DRIVER_OK), bit 2: through the legacy one (PFN 0x10 + 4 * q); [1]
// queue size for the modern set-up (log2). Then records of 8 bytes: [0] bits 0-1 the target (0
// configuration space, 1 legacy port, 2 modern BAR, 3 guest RAM), bit 2 a write, bit 3 deliver a
// frame (net); [1] size selector (1, 2, 4, 8: MMIO only); [2..3] offset; [4..7] value. The BAR
// target adds its offset to wherever BAR4 is now; the RAM target writes 4 bytes at 0x10000 +
// 4 * offset.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tests/fuzz/fuzz_virtio_support.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/virtio/virtio_blk.h"
#include "vmm/devices/virtio/virtio_net.h"
#include "vmm/devices/virtio/virtio_pci.h"
#include "vmm/machine/disk_image.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/io_bus.h"

namespace {
using vmbt::fuzzing::image_path;
using vmbt::fuzzing::NullBackend;
using vmbt::fuzzing::NullIrq;
constexpr unsigned kSlot = 3;
constexpr uint16_t kIoBar = 0xc000;
constexpr uint32_t kMemBar = 0xfe000000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static vmbt::GuestMemory mem(2u << 20);
  static vmbt::DiskImage image(image_path(), false, false);
  std::memset(mem.host_base(), 0, 0x60000);
  const uint8_t mode = data[0];
  const auto queue_size = static_cast<uint16_t>(1u << (data[1] % 10));
  data += 2;
  size -= 2;

  NullBackend backend;
  NullIrq irq;
  std::unique_ptr<vmbt::VirtioDevice> device;
  if (mode & 1) {
    device = std::make_unique<vmbt::VirtioNet>(mem, backend);
  } else {
    device = std::make_unique<vmbt::VirtioBlk>(mem, image, 0);
  }
  vmbt::VirtioPci pci(mem, *device, irq, 11, (mode & 1) ? 0x020000 : 0x010000, "dev0");
  vmbt::IoBus io;
  vmbt::MmioBus mmio;
  vmbt::PciHost host;
  host.register_ports(io);
  host.attach(kSlot, pci);
  pci.attach_io(io);
  pci.attach_mmio(mmio);
  pci.assign_io_bar(0, kIoBar);
  pci.assign_memory_bar(vmbt::VirtioPci::kModernBar, kMemBar);
  const unsigned queues = device->queue_count();

  if (mode & 2) {  // a modern driver's set-up (§3.1.1, §4.1.5.1.3)
    auto w = [&](unsigned off, unsigned n, uint32_t v) { mmio.write(kMemBar + off, n, v); };
    w(0x14, 1, 0);
    w(0x14, 1, 1 | 2);
    for (uint32_t word = 0; word < 2; ++word) {
      w(0x00, 4, word);
      w(0x08, 4, word);
      w(0x0c, 4, static_cast<uint32_t>(mmio.read(kMemBar + 0x04, 4)));
    }
    w(0x14, 1, 1 | 2 | 8);
    for (unsigned q = 0; q < queues; ++q) {
      const uint32_t base = 0x10000 + 0x4000 * q;
      w(0x16, 2, q);
      w(0x18, 2, queue_size);
      w(0x20, 4, base);
      w(0x28, 4, base + 0x1000);
      w(0x30, 4, base + 0x2000);
      w(0x1c, 2, 1);
    }
    w(0x14, 1, 1 | 2 | 4 | 8);
  } else if (mode & 4) {  // a legacy driver's (§3.1.2)
    io.write(kIoBar + 0x12, 1, 1 | 2);
    io.write(kIoBar + 0x04, 4, io.read(kIoBar + 0x00, 4));
    for (unsigned q = 0; q < queues; ++q) {
      io.write(kIoBar + 0x0e, 2, q);
      io.write(kIoBar + 0x08, 4, 0x10 + 4 * q);
    }
    io.write(kIoBar + 0x12, 1, 1 | 2 | 4);
  }

  std::vector<uint8_t> frame;
  for (size_t at = 0; at + 8 <= size && at < 8 * 4096; at += 8) {
    const uint8_t* r = data + at;
    const bool write = r[0] & 4;
    const unsigned bytes = 1u << (r[1] % 4);
    uint16_t offset;
    uint32_t value;
    std::memcpy(&offset, r + 2, 2);
    std::memcpy(&value, r + 4, 4);
    if ((r[0] & 8) && (mode & 1)) {
      frame.assign(value % 2048, static_cast<uint8_t>(offset));
      backend.inject(frame);
      continue;
    }
    const unsigned narrow = bytes > 4 ? 4 : bytes;
    switch (r[0] & 3) {
      case 0: {  // configuration space, through mechanism #1
        io.write(0xcf8, 4, 0x80000000u | (kSlot << 11) | (offset & 0xfc));
        const auto port = static_cast<uint16_t>(0xcfc + (offset & 3));
        if (write) {
          io.write(port, narrow, value);
        } else {
          (void)io.read(port, narrow);
        }
        break;
      }
      case 1: {  // the legacy I/O BAR (wherever the guest left it)
        const auto port = static_cast<uint16_t>(kIoBar + (offset & 0xff));
        if (write) {
          io.write(port, narrow, value);
        } else {
          (void)io.read(port, narrow);
        }
        break;
      }
      case 2: {  // the modern BAR, at its current base
        const uint32_t base = pci.config_read(0x10 + 4 * vmbt::VirtioPci::kModernBar, 4) & ~0xfu;
        const uint64_t gpa = uint64_t{base} + (offset & 0x3fff);
        if (write) {
          mmio.write(gpa, bytes, value);
        } else {
          (void)mmio.read(gpa, bytes);
        }
        break;
      }
      default:  // guest RAM under the queues and buffers
        mem.write(0x10000 + 4ull * offset, &value, 4);
        break;
    }
  }
  return 0;
}
