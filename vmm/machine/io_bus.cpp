#include "vmm/machine/io_bus.h"

#include <fmt/format.h>

#include <algorithm>

#include "vmm/error.h"

namespace vmbt {

uint32_t ByteIoDevice::io_read(uint16_t port, unsigned size) {
  uint32_t value = 0;
  for (unsigned i = 0; i < size; ++i) {
    value |= static_cast<uint32_t>(read_byte(static_cast<uint16_t>(port + i))) << (8 * i);
  }
  return value;
}

void ByteIoDevice::io_write(uint16_t port, unsigned size, uint32_t value) {
  for (unsigned i = 0; i < size; ++i) {
    write_byte(static_cast<uint16_t>(port + i), static_cast<uint8_t>(value >> (8 * i)));
  }
}

namespace {
uint32_t all_ones(unsigned size) {
  return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}
}  // namespace

void IoBus::add(uint16_t base, unsigned count, IoDevice* device, std::string name) {
  if (count == 0 || base + count > 0x10000) throw Error("I/O range out of the 64K port space");
  for (const auto& r : ranges_) {
    if (!r.movable && base < r.base + r.count && r.base < base + count) {
      throw Error(fmt::format("I/O ports {:#x}+{} of {} overlap {}", base, count, name, r.name));
    }
  }
  ranges_.push_back({base, count, device, std::move(name)});
  map_ports();
}

void IoBus::add_movable(unsigned count, IoDevice* device, std::string name) {
  if (count == 0 || count > 0x10000) throw Error("I/O range out of the 64K port space");
  ranges_.push_back({0, count, device, std::move(name), false, true});
  map_ports();
}

void IoBus::relocate(const IoDevice* device, uint16_t base, bool visible) {
  for (auto& r : ranges_) {
    if (r.device != device) continue;
    r.base = base;
    r.visible = visible && base + r.count <= 0x10000;
  }
  map_ports();
}

void IoBus::map_ports() {
  if (ranges_.size() >= 0xffff) throw Error("too many I/O ranges");
  // Painted from the lowest precedence up: movable ranges, later ones first (an earlier BAR
  // wins an overlap), then fixed ones (a BAR moved over a fixed device never hides it).
  std::fill(owner_.begin(), owner_.end(), 0);
  auto paint = [&](size_t i) {
    const Range& r = ranges_[i];
    if (!r.visible) return;
    const unsigned end = std::min<unsigned>(r.base + r.count, 0x10000);
    for (unsigned port = r.base; port < end; ++port) owner_[port] = static_cast<uint16_t>(i + 1);
  };
  for (size_t i = ranges_.size(); i-- > 0;) {
    if (ranges_[i].movable) paint(i);
  }
  for (size_t i = 0; i < ranges_.size(); ++i) {
    if (!ranges_[i].movable) paint(i);
  }
}

uint32_t IoBus::read(uint16_t port, unsigned size) {
  ++accesses_[port];
  const Range* r = find(port);
  uint32_t value = r ? r->device->io_read(port, size) & all_ones(size) : all_ones(size);
  if (!r) ++unclaimed_;
  if (trace_) {
    fmt::print(trace_, "io: in{} port {:#06x} -> {:#x}{}\n", "bwdd"[size / 2], port, value,
               r ? "" : " (unclaimed)");
  }
  return value;
}

void IoBus::write(uint16_t port, unsigned size, uint32_t value) {
  ++accesses_[port];
  value &= all_ones(size);
  const Range* r = find(port);
  if (trace_) {
    fmt::print(trace_, "io: out{} port {:#06x} <- {:#x}{}\n", "bwdd"[size / 2], port, value,
               r ? "" : " (unclaimed)");
  }
  if (r) {
    r->device->io_write(port, size, value);
  } else {
    ++unclaimed_;
  }
}

void MmioBus::add(uint64_t base, uint64_t length, MmioDevice* device, std::string name) {
  for (const auto& r : ranges_) {
    if (base < r.base + r.length && r.base < base + length) {
      throw Error(
          fmt::format("MMIO window {:#x}+{:#x} of {} overlaps {}", base, length, name, r.name));
    }
  }
  ranges_.push_back({base, length, device, std::move(name)});
}

void MmioBus::add_movable(uint64_t length, MmioDevice* device, std::string name) {
  if (length == 0) throw Error("an MMIO window of no bytes");
  ranges_.push_back({0, length, device, std::move(name), false});
}

void MmioBus::relocate(const MmioDevice* device, uint64_t base, bool visible) {
  for (auto& r : ranges_) {
    if (r.device == device) {
      r.base = base;
      r.visible = visible;
    }
  }
}

const MmioBus::Range* MmioBus::find(uint64_t gpa) const {
  for (const auto& r : ranges_) {
    if (r.visible && gpa >= r.base && gpa - r.base < r.length) return &r;
  }
  return nullptr;
}

uint64_t MmioBus::read(uint64_t gpa, unsigned size) {
  const Range* r = find(gpa);
  uint64_t value = r ? r->device->mmio_read(gpa - r->base, size) : ~0ull;
  if (!r) ++unclaimed_;
  if (trace_) fmt::print(trace_, "mmio: read{} {:#x} -> {:#x}\n", size * 8, gpa, value);
  return value;
}

void MmioBus::write(uint64_t gpa, unsigned size, uint64_t value) {
  const Range* r = find(gpa);
  if (trace_) fmt::print(trace_, "mmio: write{} {:#x} <- {:#x}\n", size * 8, gpa, value);
  if (r) {
    r->device->mmio_write(gpa - r->base, size, value);
  } else {
    ++unclaimed_;
  }
}

}  // namespace vmbt
