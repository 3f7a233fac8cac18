#include "vmm/devices/acpi_pm.h"

namespace vmbt {

namespace {
constexpr uint16_t kTmrSts = 1u << 0;
constexpr uint16_t kSciEn = 1u << 0, kSlpTypMask = 7u << 10, kSlpEn = 1u << 13;
constexpr unsigned kS5SleepType = 0;
}  // namespace

AcpiPm::AcpiPm(std::function<uint64_t()> now_ns) : now_ns_(std::move(now_ns)) {
  start_ns_ = now_ns_();
}

void AcpiPm::register_ports(IoBus& bus) {
  bus.add(kBase, kPorts, this, "acpi-pm");
}

uint64_t AcpiPm::ticks() const {
  const uint64_t ns = now_ns_() - start_ns_;
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * kTimerHz / 1'000'000'000u);
}

uint32_t AcpiPm::timer() const {
  return static_cast<uint32_t>(ticks() & 0xFFFFFF);
}

uint16_t AcpiPm::read16(unsigned offset) {
  switch (offset) {
    case 0: {
      // TMR_STS: bit 23 of the timer changed since the status was last cleared.
      const bool carried = (ticks() >> 23) != (tmr_sts_from_ >> 23);
      return static_cast<uint16_t>(pm1_sts_ | (carried ? kTmrSts : 0));
    }
    case 2:
      return pm1_en_;
    case 4:
      return pm1_cnt_;
    default:
      return 0;
  }
}

void AcpiPm::write16(unsigned offset, uint16_t value) {
  switch (offset) {
    case 0:  // write 1 to clear
      pm1_sts_ &= static_cast<uint16_t>(~value);
      if (value & kTmrSts) tmr_sts_from_ = ticks();
      break;
    case 2:
      pm1_en_ = value;
      break;
    case 4:
      pm1_cnt_ = static_cast<uint16_t>((value & kSlpTypMask) | kSciEn);
      if ((value & kSlpEn) && ((value & kSlpTypMask) >> 10) == kS5SleepType) power_off_ = 0;
      break;
    default:
      break;
  }
}

uint32_t AcpiPm::io_read(uint16_t port, unsigned size) {
  const unsigned offset = port - kBase;
  if (offset >= 8) {
    const uint32_t t = timer() >> (8 * (offset - 8));
    return size >= 4 ? t : t & ((1u << (8 * size)) - 1);
  }
  // The 16-bit registers, read by any width: assemble the bytes from their registers.
  uint32_t v = 0;
  for (unsigned i = 0; i < size && offset + i < 8; ++i) {
    const unsigned at = offset + i;
    const uint16_t reg = read16(at & ~1u);
    v |= uint32_t{static_cast<uint8_t>(reg >> (8 * (at & 1)))} << (8 * i);
  }
  return v;
}

void AcpiPm::io_write(uint16_t port, unsigned size, uint32_t value) {
  const unsigned offset = port - kBase;
  if (offset >= 8) return;  // the PM timer is read-only
  if (size == 1) {
    // A byte write changes half a register (the other half keeps its value; status bits not
    // written are not cleared).
    const unsigned reg = offset & ~1u;
    const uint16_t old = offset == 0 ? 0 : read16(reg);
    const unsigned shift = 8 * (offset & 1);
    const uint16_t merged =
        static_cast<uint16_t>((old & ~(0xFF << shift)) | ((value & 0xFF) << shift));
    write16(reg, merged);
    return;
  }
  write16(offset & ~1u, static_cast<uint16_t>(value));
  if (size == 4 && (offset & ~1u) + 2 < 8)
    write16((offset & ~1u) + 2, static_cast<uint16_t>(value >> 16));
}

}  // namespace vmbt
