#include "vmm/devices/hpet.h"

#include <algorithm>

#include "vmm/devices/ioapic.h"

namespace vmbt {

namespace {
constexpr uint64_t kEnableCnf = 1u << 0, kLegacyCnf = 1u << 1;
// Timer configuration bits (IA-PC HPET 1.0a §2.3.8).
constexpr uint64_t kLevel = 1u << 1, kIntEnable = 1u << 2, kPeriodic = 1u << 3,
                   kPeriodicCap = 1u << 4, kSize64Cap = 1u << 5, kValSet = 1u << 6,
                   k32Mode = 1u << 8, kRouteShift = 9, kRouteMask = 0x1Fu << kRouteShift;
constexpr uint64_t kNsPerTick = Hpet::kPeriodFs / 1'000'000;
/// The comparator's width as a mask: 32 bits in 32-bit mode (Tn_32MODE_CNF), else 64.
uint64_t width_mask(uint64_t config) {
  return (config & k32Mode) ? 0xFFFFFFFFull : ~0ull;
}
}  // namespace

Hpet::Hpet(IrqSink& isa, IoApic& ioapic, std::function<uint64_t()> now_ns)
    : isa_(isa), ioapic_(ioapic), now_ns_(std::move(now_ns)) {
  for (unsigned n = 0; n < kTimers; ++n) {
    timers_[n].config = (uint64_t{kRouteCap} << 32) | kSize64Cap | (n == 0 ? kPeriodicCap : 0);
  }
}

uint64_t Hpet::counter() const {
  if (!(config_ & kEnableCnf)) return counter_at_start_;
  return counter_at_start_ + (now_ns_() - start_ns_) / kNsPerTick;
}

uint64_t Hpet::ticks_until(unsigned n) const {
  const Timer& t = timers_[n];
  if (!(config_ & kEnableCnf) || !(t.config & kIntEnable) || t.fired) return UINT64_MAX;
  const uint64_t wrap = width_mask(t.config);
  const uint64_t c = counter();
  // Due once the counter has reached the comparator since the timer was armed (counting from
  // `armed_at`, with wrap-around): a match passed between two polls is due now, one ahead is not.
  const uint64_t to_match = (t.comparator - t.armed_at) & wrap;
  const uint64_t run = (c - t.armed_at) & wrap;
  return run >= to_match ? 0 : to_match - run;
}

uint64_t Hpet::next_deadline_ns() const {
  uint64_t ticks = UINT64_MAX;
  for (unsigned n = 0; n < kTimers; ++n) ticks = std::min(ticks, ticks_until(n));
  if (ticks == UINT64_MAX || ticks > (UINT64_MAX - now_ns_()) / kNsPerTick) return UINT64_MAX;
  return now_ns_() + ticks * kNsPerTick;
}

void Hpet::set_line(unsigned n, bool level) {
  if ((config_ & kLegacyCnf) && n < 2) {
    isa_.set_irq(n == 0 ? 0 : 8, level);
    return;
  }
  ioapic_.set_pin(static_cast<unsigned>((timers_[n].config & kRouteMask) >> kRouteShift), level);
}

void Hpet::fire(unsigned n) {
  Timer& t = timers_[n];
  if (t.config & kLevel) {
    status_ |= 1u << n;
    if (!t.asserted) set_line(n, true);
    t.asserted = true;
  } else {
    set_line(n, true);
    set_line(n, false);
  }
  const uint64_t c = counter();
  const uint64_t wrap = width_mask(t.config);
  if ((t.config & kPeriodic) && t.period) {
    // The next multiple of the period after now (missed expiries coalesce); periods below
    // kMinPeriod ticks run at that rate (nothing a guest can observe needs them faster).
    const uint64_t period = std::max(t.period, kMinPeriod);
    const uint64_t behind = ((c & wrap) - t.comparator) & wrap;
    t.comparator = (t.comparator + (behind / period + 1) * period) & wrap;
    t.armed_at = c & wrap;
  } else {
    t.fired = true;  // a one-shot fires once until its comparator or configuration is written
  }
}

void Hpet::poll(uint64_t /*now_ns*/) {
  // The counter follows the device's own clock: due means the counter reached the comparator.
  for (unsigned n = 0; n < kTimers; ++n) {
    if (ticks_until(n) == 0) fire(n);
  }
}

uint64_t Hpet::read64(uint64_t offset) const {
  if (offset >= 0x100 && offset < 0x100 + 0x20 * kTimers) {
    const Timer& t = timers_[(offset - 0x100) / 0x20];
    switch (offset & 0x1F) {
      case 0x00:
        return t.config;
      case 0x08:
        return t.comparator;
      default:
        return 0;  // FSB interrupt route: no FSB delivery
    }
  }
  switch (offset) {
    case 0x000:
      return (kPeriodFs << 32) | kCapabilitiesLow;
    case 0x010:
      return config_;
    case 0x020:
      return status_;
    case 0x0F0:
      return counter();
    default:
      return 0;
  }
}

void Hpet::write64(uint64_t offset, uint64_t value, uint64_t mask) {
  const uint64_t old = read64(offset);
  const uint64_t v = (old & ~mask) | (value & mask);
  if (offset >= 0x100 && offset < 0x100 + 0x20 * kTimers) {
    const unsigned n = static_cast<unsigned>((offset - 0x100) / 0x20);
    Timer& t = timers_[n];
    if ((offset & 0x1F) == 0x00) {
      uint64_t writable = kLevel | kIntEnable | kValSet | k32Mode | kRouteMask;
      if (t.config & kPeriodicCap) writable |= kPeriodic;
      uint64_t config = (t.config & ~writable) | (v & writable);
      const unsigned route = static_cast<unsigned>((config & kRouteMask) >> kRouteShift);
      if (!((kRouteCap >> route) & 1)) {  // an unsupported route reads back as the old one
        config = (config & ~kRouteMask) | (t.config & kRouteMask);
      }
      if (t.asserted && (!(config & kIntEnable) || !(config & kLevel))) {
        set_line(n, false);
        t.asserted = false;
      }
      t.config = config;
      t.fired = false;
      t.armed_at = counter() & width_mask(config);
      if (config & k32Mode) t.comparator &= 0xFFFFFFFF;
    } else if ((offset & 0x1F) == 0x08) {
      // As QEMU: a periodic timer's write sets the period, and the comparator too when VAL_SET
      // was set; a one-shot timer's sets the comparator. VAL_SET clears itself.
      uint64_t value64 = (t.config & k32Mode) ? v & 0xFFFFFFFF : v;
      if (!(t.config & kPeriodic) || (t.config & kValSet)) t.comparator = value64;
      if (t.config & kPeriodic) t.period = (t.period & ~mask) | (value64 & mask);
      t.config &= ~kValSet;
      t.fired = false;
      t.armed_at = counter() & width_mask(t.config);
    }
    return;
  }
  switch (offset) {
    case 0x010: {
      const uint64_t c = counter();
      const uint64_t cfg = v & (kEnableCnf | kLegacyCnf);
      if ((cfg ^ config_) & kLegacyCnf) {
        for (unsigned n = 0; n < 2; ++n) {  // the held lines move with the route
          if (timers_[n].asserted) set_line(n, false);
        }
      }
      config_ = cfg;
      counter_at_start_ = c;  // the counter keeps its value across a stop or start
      start_ns_ = now_ns_();
      for (unsigned n = 0; n < 2; ++n) {
        if (timers_[n].asserted) set_line(n, true);
      }
      break;
    }
    case 0x020:  // write 1 to clear a level-triggered status bit, which deasserts its line
      for (unsigned n = 0; n < kTimers; ++n) {
        if ((value & mask) & (1u << n)) {
          status_ &= ~(uint64_t{1} << n);
          if (timers_[n].asserted) set_line(n, false);
          timers_[n].asserted = false;
        }
      }
      break;
    case 0x0F0:
      counter_at_start_ = v;
      start_ns_ = now_ns_();
      break;
    default:
      break;  // capabilities and reserved registers are read-only
  }
}

uint64_t Hpet::mmio_read(uint64_t offset, unsigned size) {
  const uint64_t reg = read64(offset & ~7ull);
  const uint64_t v = reg >> (8 * (offset & 7));
  return size >= 8 ? v : v & ((1ull << (8 * size)) - 1);
}

void Hpet::mmio_write(uint64_t offset, unsigned size, uint64_t value) {
  const unsigned shift = 8 * (offset & 7);
  const uint64_t mask = (size >= 8 ? ~0ull : ((1ull << (8 * size)) - 1)) << shift;
  write64(offset & ~7ull, value << shift, mask);
}

}  // namespace vmbt
