#include "vmm/devices/pci_function.h"

#include "vmm/error.h"
#include "vmm/machine/io_bus.h"

namespace vmbt {

PciFunction::PciFunction(uint16_t vendor, uint16_t device, uint8_t revision, uint32_t class_code) {
  put16(0x00, vendor);
  put16(0x02, device);
  config_[0x08] = revision;
  config_[0x09] = static_cast<uint8_t>(class_code);
  config_[0x0a] = static_cast<uint8_t>(class_code >> 8);
  config_[0x0b] = static_cast<uint8_t>(class_code >> 16);
  config_[0x0e] = 0x00;  // header type 0, single function
  wmask_[0x04] = 0x47;   // I/O, memory, bus master, parity error response
  wmask_[0x05] = 0x05;   // SERR# enable, interrupt disable
  wmask_[0x0d] = 0xff;   // latency timer
}

void PciFunction::put16(unsigned off, uint16_t v) {
  config_[off] = static_cast<uint8_t>(v);
  config_[off + 1] = static_cast<uint8_t>(v >> 8);
}

void PciFunction::put32(unsigned off, uint32_t v) {
  put16(off, static_cast<uint16_t>(v));
  put16(off + 2, static_cast<uint16_t>(v >> 16));
}

void PciFunction::set_subsystem(uint16_t vendor, uint16_t id) {
  put16(0x2c, vendor);
  put16(0x2e, id);
}

void PciFunction::set_interrupt(uint8_t pin, uint8_t line) {
  config_[0x3d] = pin;
  config_[kInterruptLine] = line;
  wmask_[kInterruptLine] = 0xff;  // firmware and the OS keep their routing here
}

void PciFunction::add_memory_bar(unsigned index, uint32_t size, MmioDevice* device) {
  if (index >= memory_bars_.size() || size < 16 || size > (1u << 30) || (size & (size - 1)) ||
      io_bars_[index].size) {
    throw Error("internal: a PCI memory BAR is 16 bytes to 1 GiB, a power of two");
  }
  memory_bars_[index] = {size, device};
  const unsigned off = kBar0 + 4 * index;
  put32(off, 0);  // memory space, 32-bit (type 00), not prefetchable
  const uint32_t mask = ~(size - 1) & 0xfffffff0u;
  for (unsigned i = 0; i < 4; ++i) wmask_[off + i] = static_cast<uint8_t>(mask >> (8 * i));
}

unsigned PciFunction::add_capability(uint8_t id, const uint8_t* body, unsigned length) {
  const unsigned at = next_capability_;
  if (at + 2 + length > config_.size()) throw Error("internal: PCI capabilities overflow");
  config_[at] = id;
  config_[at + 1] = 0;  // the end of the list, until another follows
  for (unsigned i = 0; i < length; ++i) config_[at + 2 + i] = body[i];
  if (last_capability_) {
    config_[last_capability_ + 1] = static_cast<uint8_t>(at);
  } else {
    config_[kCapabilitiesPointer] = static_cast<uint8_t>(at);
    put16(kStatus, static_cast<uint16_t>(config_read(kStatus, 2) | kStatusCapabilities));
  }
  last_capability_ = at;
  next_capability_ = (at + 2 + length + 3) & ~3u;
  return at;
}

void PciFunction::set_config_window(unsigned begin, unsigned end) {
  window_begin_ = begin;
  window_end_ = end;
}

uint32_t PciFunction::config_window_read(unsigned reg, unsigned size) {
  return stored(reg, size);
}

void PciFunction::config_window_write(unsigned /*reg*/, unsigned /*size*/, uint32_t /*value*/) {}

void PciFunction::add_io_bar(unsigned index, uint32_t size, IoDevice* device) {
  if (index >= io_bars_.size() || size < 4 || size > 256 || (size & (size - 1))) {
    throw Error("internal: a PCI I/O BAR is 4-256 bytes, a power of two");
  }
  io_bars_[index] = {size, device};
  const unsigned off = kBar0 + 4 * index;
  put32(off, 1);  // I/O space indicator
  const uint32_t mask = ~(size - 1) & 0xfffffffc;
  for (unsigned i = 0; i < 4; ++i) wmask_[off + i] = static_cast<uint8_t>(mask >> (8 * i));
}

uint32_t PciFunction::config_read(unsigned reg, unsigned size) {
  reg &= 0xff;
  if (reg >= window_begin_ && reg < window_end_) return config_window_read(reg, size);
  return stored(reg, size);
}

uint32_t PciFunction::stored(unsigned reg, unsigned size) const {
  uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= uint32_t{config_[(reg + i) & 0xff]} << (8 * i);
  return v;
}

void PciFunction::config_write(unsigned reg, unsigned size, uint32_t value) {
  reg &= 0xff;
  if (reg >= window_begin_ && reg < window_end_) {
    config_window_write(reg, size, value);
    return;
  }
  for (unsigned i = 0; i < size; ++i) {
    const unsigned r = (reg + i) & 0xff;
    const uint8_t b = static_cast<uint8_t>(value >> (8 * i));
    config_[r] = static_cast<uint8_t>((config_[r] & ~wmask_[r]) | (b & wmask_[r]));
  }
  const unsigned end = reg + size;
  if ((reg <= kCommand + 1 && end > kCommand) || (reg < kBar0 + 24 && end > kBar0)) {
    update_io_windows();
  }
  config_written(reg, size);
}

void PciFunction::attach_io(IoBus& bus) {
  io_bus_ = &bus;
  for (const IoBar& bar : io_bars_) {
    if (bar.size) bus.add_movable(bar.size, bar.device, "pci-bar");
  }
  update_io_windows();
}

void PciFunction::assign_io_bar(unsigned index, uint16_t base) {
  put32(kBar0 + 4 * index, (base & ~(io_bars_[index].size - 1)) | 1);  // (an I/O BAR)
  config_[kCommand] |= kCommandIo | kCommandBusMaster;
  update_io_windows();
}

void PciFunction::attach_mmio(MmioBus& bus) {
  mmio_bus_ = &bus;
  for (const MemoryBar& bar : memory_bars_) {
    if (bar.size) bus.add_movable(bar.size, bar.device, "pci-bar");
  }
  update_io_windows();
}

void PciFunction::assign_memory_bar(unsigned index, uint32_t base) {
  put32(kBar0 + 4 * index, base & ~(memory_bars_[index].size - 1));
  config_[kCommand] |= kCommandMemory | kCommandBusMaster;
  update_io_windows();
}

void PciFunction::update_io_windows() {
  if (io_bus_) {
    const bool io_on = config_[kCommand] & kCommandIo;
    for (unsigned i = 0; i < io_bars_.size(); ++i) {
      const IoBar& bar = io_bars_[i];
      if (!bar.size) continue;
      const uint32_t base = stored(kBar0 + 4 * i, 4) & 0xfffffffc;
      // A base of 0 is unassigned; one past the 64K port space decodes nothing.
      const bool visible = io_on && base != 0 && base + bar.size <= 0x10000;
      io_bus_->relocate(bar.device, static_cast<uint16_t>(base), visible);
    }
  }
  if (mmio_bus_) {
    const bool memory_on = config_[kCommand] & kCommandMemory;
    for (unsigned i = 0; i < memory_bars_.size(); ++i) {
      const MemoryBar& bar = memory_bars_[i];
      if (!bar.size) continue;
      const uint32_t base = stored(kBar0 + 4 * i, 4) & 0xfffffff0u;
      // A base of 0 is unassigned (and would cover low RAM, which wins anyway).
      mmio_bus_->relocate(bar.device, base, memory_on && base != 0);
    }
  }
}

}  // namespace vmbt
