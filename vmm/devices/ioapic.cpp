#include "vmm/devices/ioapic.h"

#include "vmm/devices/local_apic.h"

namespace vmbt {

namespace {
constexpr uint8_t kRegId = 0x00, kRegVersion = 0x01, kRegArbitration = 0x02, kRegTable = 0x10;
// Writable bits of a redirection entry: vector, delivery mode, destination mode, polarity,
// trigger mode, mask, destination (82093AA §3.2.4).
constexpr uint64_t kEntryWritable =
    0xFF00000000000000ull | 0xFF | (7u << 8) | (1u << 11) | (1u << 13) | (1u << 15) | (1u << 16);
constexpr uint32_t kModeFixed = 0, kModeLowest = 1, kModeNmi = 4;
}  // namespace

IoApic::IoApic(LocalApic& apic) : apic_(apic) {
  entries_.fill(kMasked);
}

uint64_t IoApic::mmio_read(uint64_t offset, unsigned size) {
  uint32_t v = 0;
  if (offset == 0x00) {
    v = select_;
  } else if (offset >= 0x10 && offset < 0x14) {
    v = read_register(select_) >> (8 * (offset - 0x10));
  }
  return size >= 4 ? v : v & ((1u << (8 * size)) - 1);
}

void IoApic::mmio_write(uint64_t offset, unsigned size, uint64_t value) {
  if (offset == 0x00) {
    select_ = static_cast<uint8_t>(value);
  } else if (offset == 0x10 && size >= 4) {
    write_register(select_, static_cast<uint32_t>(value));
  }
}

uint32_t IoApic::read_register(uint8_t index) const {
  switch (index) {
    case kRegId:
    case kRegArbitration:  // arbitration ID follows the APIC ID after reset (§3.2.3)
      return id_;
    case kRegVersion:
      return kVersion;
    default:
      if (index >= kRegTable && index < kRegTable + 2 * kPins) {
        const uint64_t e = entries_[(index - kRegTable) / 2];
        return static_cast<uint32_t>((index & 1) ? e >> 32 : e);
      }
      return 0xFFFFFFFF;  // no register there
  }
}

void IoApic::write_register(uint8_t index, uint32_t value) {
  if (index == kRegId) {
    id_ = value & 0x0F000000u;
    return;
  }
  if (index < kRegTable || index >= kRegTable + 2 * kPins) return;  // version, arbitration: RO
  const unsigned pin = (index - kRegTable) / 2;
  uint64_t& e = entries_[pin];
  const uint64_t half = (index & 1) ? uint64_t{value} << 32 : value;
  const uint64_t half_mask = (index & 1) ? 0xFFFFFFFF00000000ull : 0xFFFFFFFFull;
  const uint64_t writable = kEntryWritable & half_mask;
  e = (e & ~writable) | (half & writable);
  if (!(e & kLevel)) e &= ~kRemoteIrr;  // remote IRR is undefined for edge entries: keep it 0
  service_level(pin);
}

void IoApic::set_pin(unsigned pin, bool asserted) {
  if (pin >= kPins) return;
  const uint32_t bit = 1u << pin;
  const bool was = (pins_ & bit) != 0;
  pins_ = asserted ? pins_ | bit : pins_ & ~bit;
  const uint64_t e = entries_[pin];
  if (e & kLevel) {
    service_level(pin);
  } else if (asserted && !was && !(e & kMasked)) {
    deliver(pin);
  }
}

void IoApic::service_level(unsigned pin) {
  uint64_t& e = entries_[pin];
  if (!(e & kLevel) || (e & (kMasked | kRemoteIrr)) || !(pins_ & (1u << pin))) return;
  // Remote IRR waits for an EOI of the vector, which only a fixed or lowest-priority interrupt
  // accepted by the local APIC brings (82093AA §3.2.4): other deliveries do not set it, so an
  // NMI-mode or mis-addressed level entry cannot lock its pin for good.
  if (deliver(pin)) e |= kRemoteIrr;
}

bool IoApic::deliver(unsigned pin) {
  const uint64_t e = entries_[pin];
  const uint32_t mode = (e >> 8) & 7;
  if (mode != kModeFixed && mode != kModeLowest && mode != kModeNmi) return false;
  if (!apic_.matches_destination(static_cast<uint8_t>(e >> 56), (e & kLogical) != 0)) return false;
  if (mode == kModeNmi) {
    apic_.accept_nmi();
    return false;
  }
  apic_.accept_fixed(static_cast<uint8_t>(e & 0xFF), (e & kLevel) != 0);
  return true;
}

void IoApic::eoi(uint8_t vector) {
  for (unsigned pin = 0; pin < kPins; ++pin) {
    uint64_t& e = entries_[pin];
    if ((e & kLevel) && (e & kRemoteIrr) && (e & 0xFF) == vector) {
      e &= ~kRemoteIrr;
      service_level(pin);
    }
  }
}

}  // namespace vmbt
