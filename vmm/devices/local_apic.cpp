#include "vmm/devices/local_apic.h"

#include <algorithm>
#include <cmath>

namespace vmbt {

namespace {
constexpr uint32_t kEsrSendIllegalVector = 1u << 5, kEsrReceiveIllegalVector = 1u << 6,
                   kEsrIllegalRegister = 1u << 7;
// ICR fields (Intel SDM Vol. 3A §11.6.1, Figure 11-12).
constexpr uint32_t kIcrDeliveryMode = 7u << 8, kIcrLogical = 1u << 11;
constexpr uint32_t kModeFixed = 0, kModeLowest = 1u << 8, kModeNmi = 4u << 8, kModeExtInt = 7u << 8;
constexpr unsigned kShorthandShift = 18;
enum Shorthand : uint32_t { kNoShorthand = 0, kSelf = 1, kAllIncludingSelf = 2, kAllButSelf = 3 };
}  // namespace

LocalApic::LocalApic(InterruptSource& pic, std::function<uint64_t()> now_ns, double (*tsc_hz)())
    : pic_(pic), now_ns_(std::move(now_ns)), tsc_hz_(tsc_hz) {
  reset();
}

void LocalApic::reset() {
  id_ = 0;
  tpr_ = 0;
  ldr_ = 0;
  dfr_ = 0xFFFFFFFF;
  spiv_ = 0xFF;
  esr_ = esr_pending_ = 0;
  icr_low_ = icr_high_ = 0;
  lvt_.fill(kLvtMasked);
  lvt_[kLint0] = kModeExtInt;             // virtual wire, as firmware leaves the BSP
  lvt_[kLint1] = kLvtMasked | (4u << 8);  // NMI, masked
  irr_ = isr_ = tmr_ = Bits{};
  vector_pending_ = false;
  timer_initial_ = timer_divide_ = 0;
  tsc_deadline_ = 0;
  nmi_pending_ = false;
  disarm();
}

void LocalApic::set(Bits& b, uint8_t v, bool on) {
  if (on) {
    b[v >> 5] |= 1u << (v & 31);
  } else {
    b[v >> 5] &= ~(1u << (v & 31));
  }
}

int LocalApic::highest(const Bits& b) {
  for (int i = 7; i >= 0; --i) {
    if (b[i]) return i * 32 + 31 - __builtin_clz(b[i]);
  }
  return -1;
}

uint32_t LocalApic::ppr() const {
  const int isrv = highest(isr_);
  const uint32_t isr_class = isrv < 0 ? 0 : static_cast<uint32_t>(isrv) & 0xF0;
  return (tpr_ & 0xF0) >= isr_class ? tpr_ & 0xFF : isr_class;
}

int LocalApic::deliverable() const {
  if (!hardware_enabled()) return -1;
  const int v = highest(irr_);
  if (v < 0 || (static_cast<uint32_t>(v) & 0xF0) <= (ppr() & 0xF0)) return -1;
  return v;
}

bool LocalApic::extint_open() const {
  if (!hardware_enabled()) return true;
  const uint32_t lint0 = lvt_[kLint0];
  return !(lint0 & kLvtMasked) && (lint0 & kIcrDeliveryMode) == kModeExtInt;
}

void LocalApic::refresh_pending() {
  vector_pending_ = deliverable() >= 0;
}

bool LocalApic::interrupt_pending() const {
  // Asked before every block and direct call: the APIC's part is kept up to date by every change
  // of IRR, ISR, TPR or IA32_APIC_BASE instead of being scanned here.
  return vector_pending_ || (extint_open() && pic_.interrupt_pending());
}

uint8_t LocalApic::acknowledge_interrupt() {
  if (const int v = deliverable(); v >= 0) {
    set(irr_, static_cast<uint8_t>(v), false);
    set(isr_, static_cast<uint8_t>(v), true);
    refresh_pending();
    return static_cast<uint8_t>(v);
  }
  if (extint_open() && pic_.interrupt_pending()) return pic_.acknowledge_interrupt();
  return static_cast<uint8_t>(spiv_ & 0xFF);
}

void LocalApic::error(uint32_t bits) {
  const bool fresh = (esr_pending_ | bits) != esr_pending_;
  esr_pending_ |= bits;
  const uint32_t lvt = lvt_[kError];
  if (fresh && !(lvt & kLvtMasked)) accept(static_cast<uint8_t>(lvt & 0xFF), false);
}

void LocalApic::accept(uint8_t vector, bool level) {
  if (vector < 16) {
    error(kEsrReceiveIllegalVector);
    return;
  }
  set(irr_, vector, true);
  refresh_pending();
  set(tmr_, vector, level);
}

void LocalApic::accept_fixed(uint8_t vector, bool level_triggered) {
  // A software-disabled APIC takes NMI, INIT and SIPI messages only (§11.4.7.2; KVM drops fixed
  // ones too). What IRR already holds stays deliverable.
  if (!hardware_enabled() || !software_enabled()) return;
  accept(vector, level_triggered);
}

void LocalApic::raise_lint1() {
  if (!hardware_enabled()) {
    nmi_pending_ = true;
    return;
  }
  const uint32_t lvt = lvt_[kLint1];
  if (lvt & kLvtMasked) return;
  switch (lvt & kIcrDeliveryMode) {
    case kModeNmi:
      nmi_pending_ = true;
      break;
    case kModeFixed:
      accept(static_cast<uint8_t>(lvt & 0xFF), false);
      break;
    default:
      break;
  }
}

bool LocalApic::matches_destination(uint8_t dest, bool logical) const {
  if (!hardware_enabled()) return false;
  if (!logical) return dest == 0xFF || dest == (id_ >> 24);
  const uint8_t ldr = static_cast<uint8_t>(ldr_ >> 24);
  if ((dfr_ >> 28) == 0xF) return (dest & ldr) != 0;  // flat model: a bit per APIC
  // Cluster model: high nibble the cluster (0xF all), low nibble a bit per APIC in it.
  return ((dest >> 4) == 0xF || (dest >> 4) == (ldr >> 4)) && (dest & ldr & 0x0F) != 0;
}

void LocalApic::eoi() {
  const int v = highest(isr_);
  if (v < 0) return;
  set(isr_, static_cast<uint8_t>(v), false);
  refresh_pending();
  if (test(tmr_, static_cast<uint8_t>(v))) {
    set(tmr_, static_cast<uint8_t>(v), false);
    if (eoi_listener_) eoi_listener_(static_cast<uint8_t>(v));
  }
}

uint64_t LocalApic::timer_divisor() const {
  // Divide configuration (Figure 11-10): bits 3,1,0; 0b111 divides by 1, n by 2^(n+1).
  const uint32_t n = (timer_divide_ & 3) | ((timer_divide_ >> 1) & 4);
  return n == 7 ? 1 : 2ull << n;
}

void LocalApic::start_count(uint32_t initial) {
  timer_initial_ = initial;
  timer_start_ns_ = now_ns_();
  if (initial == 0 || timer_mode() == kTscDeadline) {
    disarm();
    return;
  }
  timer_deadline_ns_ = timer_start_ns_ + timer_period_ns();
}

uint64_t LocalApic::timer_period_ns() const {
  const uint64_t period = uint64_t{timer_initial_} * timer_divisor();
  // A periodic timer is not polled faster than kMinPeriodNs (KVM's min_timer_period_us is 200):
  // a 1 ns period would keep the host busy for nothing a guest could observe.
  return timer_mode() == kPeriodic ? std::max<uint64_t>(period, kMinPeriodNs) : period;
}

void LocalApic::rebase_period(uint64_t now_ns) {
  const uint64_t period = timer_period_ns();
  if (period == 0 || now_ns < timer_start_ns_) return;
  timer_start_ns_ += (now_ns - timer_start_ns_) / period * period;
  timer_deadline_ns_ = timer_start_ns_ + period;
}

uint32_t LocalApic::current_count() const {
  if (timer_deadline_ns_ == UINT64_MAX || timer_mode() == kTscDeadline) return 0;
  const uint64_t period = timer_period_ns();
  uint64_t elapsed = now_ns_() - timer_start_ns_;
  if (timer_mode() == kPeriodic) {
    elapsed %= period;
  } else if (elapsed >= period) {
    return 0;  // expired, not yet polled
  }
  const uint64_t ticks = elapsed / timer_divisor();
  if (ticks < timer_initial_ && period == uint64_t{timer_initial_} * timer_divisor()) {
    return timer_initial_ - static_cast<uint32_t>(ticks);
  }
  // A period stretched to kMinPeriodNs: the count falls in proportion.
  const unsigned __int128 left = static_cast<unsigned __int128>(period - elapsed) * timer_initial_;
  return static_cast<uint32_t>(left / period);
}

void LocalApic::poll(uint64_t now_ns) {
  if (now_ns < timer_deadline_ns_) return;
  const uint32_t lvt = lvt_[kTimer];
  if (!(lvt & kLvtMasked) && hardware_enabled()) accept(static_cast<uint8_t>(lvt & 0xFF), false);
  switch (timer_mode()) {
    case kPeriodic:
      // Expiries missed between two polls are coalesced into one interrupt; the phase is kept.
      rebase_period(now_ns);
      break;
    case kTscDeadline:
      tsc_deadline_ = 0;
      disarm();
      break;
    default:
      disarm();
      break;
  }
}

uint64_t LocalApic::next_deadline_ns() const {
  // A masked timer raises nothing: nobody needs to wake for it (its count is computed from time).
  return (lvt_[kTimer] & kLvtMasked) ? UINT64_MAX : timer_deadline_ns_;
}

void LocalApic::write_tsc_deadline(uint64_t deadline, uint64_t guest_tsc) {
  // Ignored outside TSC-deadline mode (Intel SDM Vol. 3A §11.5.4.1).
  if (!hardware_enabled() || timer_mode() != kTscDeadline) return;
  tsc_deadline_ = deadline;
  if (deadline == 0) {
    disarm();
    return;
  }
  const double hz = tsc_hz_();  // first: measuring the rate takes time
  const uint64_t now = now_ns_();
  if (deadline <= guest_tsc) {
    timer_deadline_ns_ = now;
    return;
  }
  const double ns = static_cast<double>(deadline - guest_tsc) * 1e9 / hz;
  timer_deadline_ns_ = ns >= 1e18 ? UINT64_MAX - 1 : now + static_cast<uint64_t>(std::ceil(ns));
}

bool LocalApic::write_base_msr(uint64_t value) {
  // Bits 0-7 and 9 are reserved; EXTD (bit 10) would select x2APIC mode, which is not modelled.
  // Without PAE, MAXPHYADDR is 32 (CPUID.80000008H absent, SDM Vol. 3A §4.1.4): bits 32-63 are
  // reserved too.
  constexpr uint64_t kWritable = 0xFFFFF000ull | kBaseMsrBsp | kBaseMsrEnable;
  if (value & ~kWritable) return false;
  const bool was_enabled = hardware_enabled();
  value = (value & ~kBaseMsrBsp) | (base_msr_ & kBaseMsrBsp);  // BSP is read-only
  const bool moved = (value & 0xFFFFF000u) != base();
  base_msr_ = value;
  if (was_enabled && !hardware_enabled()) {
    const uint64_t keep = base_msr_;
    reset();
    base_msr_ = keep;
  }
  refresh_pending();
  if ((moved || was_enabled != hardware_enabled()) && on_base_change_) on_base_change_();
  return true;
}

uint64_t LocalApic::mmio_read(uint64_t offset, unsigned size) {
  const uint32_t reg = read_register(static_cast<uint32_t>(offset & 0xFF0));
  // Narrower reads see the bytes of the 32-bit register at their offset in it.
  const unsigned shift = 8 * (offset & 3);
  const uint64_t value = (offset & 0xF) < 4 ? uint64_t{reg} >> shift : 0;
  return size >= 8 ? value : value & ((1ull << (8 * size)) - 1);
}

void LocalApic::mmio_write(uint64_t offset, unsigned size, uint64_t value) {
  // Only aligned 32-bit stores reach a register (§11.4.1: "all registers must be accessed using
  // 128-bit aligned 32-bit loads or stores"); others are dropped.
  if ((offset & 0xF) != 0 || size < 4) return;
  write_register(static_cast<uint32_t>(offset & 0xFF0), static_cast<uint32_t>(value));
}

int LocalApic::lvt_of(uint32_t offset) {
  return offset >= kLvtTimer && offset <= kLvtError ? static_cast<int>((offset - kLvtTimer) >> 4)
                                                    : -1;
}

uint32_t LocalApic::read_register(uint32_t offset) {
  if (const int lvt = lvt_of(offset); lvt >= 0) return lvt_[static_cast<size_t>(lvt)];
  if (offset >= kIsr && offset < kIsr + 0x80) return isr_[(offset - kIsr) >> 4];
  if (offset >= kTmr && offset < kTmr + 0x80) return tmr_[(offset - kTmr) >> 4];
  if (offset >= kIrr && offset < kIrr + 0x80) return irr_[(offset - kIrr) >> 4];
  switch (offset) {
    case kId:
      return id_;
    case kVersionReg:
      return kVersion;
    case kTpr:
      return tpr_;
    case kApr:
      return 0;  // arbitration priority: one APIC, never arbitrating
    case kPpr:
      return ppr();
    case kEoi:
    case kRrd:  // remote read: not supported by xAPICs of this family
      return 0;
    case kLdr:
      return ldr_;
    case kDfr:
      return dfr_;
    case kSpiv:
      return spiv_;
    case kEsr:
      return esr_;
    case kIcrLow:
      return icr_low_;
    case kIcrHigh:
      return icr_high_;
    case kTimerInitial:
      return timer_initial_;
    case kTimerCurrent:
      return current_count();
    case kTimerDivide:
      return timer_divide_;
    default:
      error(kEsrIllegalRegister);
      return 0;
  }
}

void LocalApic::write_lvt(Lvt lvt, uint32_t value) {
  // Vector, delivery mode (not for timer/error), trigger mode and polarity (LINT only), mask, timer
  // mode; delivery status and remote IRR are read-only (Figure 11-8).
  static constexpr uint32_t kWritable[kLvtCount] = {
      0xFF | kLvtMasked | (3u << 17),                           // timer
      0xFF | (7u << 8) | kLvtMasked,                            // thermal
      0xFF | (7u << 8) | kLvtMasked,                            // performance counter
      0xFF | (7u << 8) | (1u << 13) | (1u << 15) | kLvtMasked,  // LINT0
      0xFF | (7u << 8) | (1u << 13) | (1u << 15) | kLvtMasked,  // LINT1
      0xFF | kLvtMasked,                                        // error
  };
  value &= kWritable[lvt];
  if (!software_enabled()) value |= kLvtMasked;  // §11.4.7.2: masks cannot be cleared
  if (lvt == kTimer) {
    const TimerMode old_mode = timer_mode();
    const bool unmasking = (lvt_[kTimer] & kLvtMasked) && !(value & kLvtMasked);
    lvt_[kTimer] = value;
    // Expiries while masked were not interrupts: a periodic count starts its next one from now.
    if (unmasking && timer_mode() == kPeriodic && timer_deadline_ns_ != UINT64_MAX) {
      rebase_period(now_ns_());
    }
    const TimerMode mode = timer_mode();
    if (mode == old_mode) return;
    if (mode == kTscDeadline || old_mode == kTscDeadline) {
      // Entering or leaving TSC-deadline mode disarms the timer (§11.5.4.1).
      timer_initial_ = 0;
      tsc_deadline_ = 0;
      disarm();
    } else if (timer_deadline_ns_ != UINT64_MAX) {
      // One-shot <-> periodic: the count goes on from where it is in the current period (a
      // one-shot then ends at 0; an expired one-shot stays expired in periodic mode).
      rebase_period(now_ns_());
    }
    return;
  }
  lvt_[lvt] = value;
}

void LocalApic::write_icr(uint32_t low) {
  icr_low_ = low & ~(1u << 12);  // delivery status: idle at once
  const uint32_t mode = low & kIcrDeliveryMode;
  const uint8_t vector = static_cast<uint8_t>(low & 0xFF);
  bool to_self = false;
  switch ((low >> kShorthandShift) & 3) {
    case kSelf:
    case kAllIncludingSelf:
      to_self = true;
      break;
    case kAllButSelf:
      break;  // one CPU: nobody else to reach
    default:
      to_self = matches_destination(static_cast<uint8_t>(icr_high_ >> 24), low & kIcrLogical);
      break;
  }
  if (mode == kModeNmi) {
    if (to_self) accept_nmi();  // the vector field is ignored (§11.6.1)
    return;
  }
  if (mode != kModeFixed && mode != kModeLowest) return;  // INIT, SIPI, SMI: see the class
  if (vector < 16) {
    error(kEsrSendIllegalVector);
    return;
  }
  if (to_self) accept_fixed(vector, false);  // an IPI is edge-triggered whatever its trigger bit
}

void LocalApic::write_register(uint32_t offset, uint32_t value) {
  if (const int lvt = lvt_of(offset); lvt >= 0) {
    write_lvt(static_cast<Lvt>(lvt), value);
    return;
  }
  switch (offset) {
    case kId:
      id_ = value & 0xFF000000u;
      break;
    case kTpr:
      tpr_ = value & 0xFF;
      refresh_pending();
      break;
    case kEoi:
      eoi();
      break;
    case kLdr:
      ldr_ = value & 0xFF000000u;
      break;
    case kDfr:
      dfr_ = value | 0x0FFFFFFFu;
      break;
    case kSpiv:
      spiv_ = value & (0xFF | kSpivEnable | (1u << 9));
      if (!software_enabled()) {
        for (auto& l : lvt_) l |= kLvtMasked;
      }
      break;
    case kEsr:
      esr_ = esr_pending_;
      esr_pending_ = 0;
      break;
    case kIcrLow:
      write_icr(value);
      break;
    case kIcrHigh:
      icr_high_ = value & 0xFF000000u;
      break;
    case kTimerInitial:
      if (timer_mode() != kTscDeadline) start_count(value);
      break;
    case kTimerDivide:
      // As QEMU: the count goes on at the new rate, measured from when it was loaded. (No effect
      // on a TSC deadline, §11.5.4.1.)
      timer_divide_ = value & 0xB;
      if (timer_deadline_ns_ != UINT64_MAX && timer_mode() != kTscDeadline) {
        timer_deadline_ns_ = timer_start_ns_ + timer_period_ns();
      }
      break;
    case kVersionReg:
    case kApr:
    case kPpr:
    case kRrd:
    case kTimerCurrent:
      break;  // read-only
    default:
      if ((offset >= kIsr && offset < kIrr + 0x80)) break;  // ISR/TMR/IRR are read-only
      error(kEsrIllegalRegister);
      break;
  }
}

}  // namespace vmbt
