// The local APIC (xAPIC) of the one vCPU.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

/// The vCPU's local APIC in xAPIC mode (Intel SDM Vol. 3A ch. 11, "Advanced Programmable
/// Interrupt Controller"), as firmware leaves it on the bootstrap processor of a PC:
///
/// - IA32_APIC_BASE (MSR 0x1B, §11.4.4): base 0xFEE00000, BSP (bit 8) and global enable (bit 11)
///   set at reset. The 4 KiB register page follows the base (the machine re-registers the MMIO
///   window on a relocation); clearing EN hides the page, passes the 8259's INTR straight to the
///   CPU and returns the APIC to its reset state (§11.4.3), and CPUID.1:EDX.APIC reads 0 until it
///   is set again. x2APIC (EXTD, bit 10) is not implemented: setting it raises #GP, and CPUID does
///   not advertise it.
/// - Registers (Table 11-1), 32-bit at 16-byte strides: ID (bits 31:24, 0), version 0x00050014
///   (integrated APIC, six LVT entries), TPR, APR, PPR, EOI, LDR, DFR, SPIV (bit 8 software
///   enable; clearing it masks every LVT entry and keeps them masked, §11.4.7.2), ISR/TMR/IRR,
///   ESR (write to latch the errors seen since the last write, §11.5.3), ICR, LVT timer, thermal,
///   performance counter, LINT0, LINT1, error, initial/current count, divide configuration.
///   Reserved offsets read 0 and set ESR's "illegal register address" (bit 7).
/// - Priority (§11.8.3): PPR = TPR when TPR[7:4] >= ISRV[7:4], else ISRV & 0xF0; the highest IRR
///   vector is delivered when its class is above PPR's. EOI retires the highest ISR bit; a level-
///   triggered vector (TMR set) is broadcast to the IOAPIC through the EOI listener.
/// - Vectors 0-15 are illegal: an ICR send sets ESR bit 5 (send illegal vector), an LVT or
///   IOAPIC delivery sets ESR bit 6 (receive illegal vector); neither is delivered. A new error
///   raises the LVT error interrupt when it is unmasked.
/// - ICR (§11.6.1): fixed and lowest-priority IPIs to self (shorthand self, all including self,
///   or a destination matching this APIC) are accepted at once, and so are NMIs (nmi_pending);
///   INIT and SIPI to others (there are none) are accepted and go nowhere; SMI and INIT to self
///   are ignored (no SMM, no INIT path yet). The delivery-status bit (12) never stays busy.
/// - Timer (§11.5.4): one-shot, periodic and TSC-deadline modes. The timer counts at 1 GHz (1 ns
///   a tick, as QEMU's and KVM's) divided by the divide configuration (1-128); entering or
///   leaving TSC-deadline mode disarms it. A periodic period below kMinPeriodNs runs at that
///   rate (as KVM limits it). A software-disabled APIC accepts no fixed interrupts. TSC-deadline:
///   IA32_TSC_DEADLINE (MSR 0x6E0) in guest TSC cycles, converted to host time with the host TSC's
///   measured rate; 0 disarms it, a past deadline fires at once, and it reads 0 once fired.
/// - LINT0 at reset is ExtINT, unmasked (virtual-wire mode, as a PC BIOS programs it, as QEMU
///   resets it): the 8259's INTR reaches the CPU through it. LINT1 is NMI, masked.
class LocalApic : public MmioDevice, public InterruptSource, public PolledDevice {
 public:
  static constexpr uint32_t kDefaultBase = 0xFEE00000;  ///< guest-physical, 4 KiB
  static constexpr uint64_t kBaseMsrBsp = 1u << 8, kBaseMsrExtd = 1u << 10,
                            kBaseMsrEnable = 1u << 11;
  static constexpr uint32_t kVersion = 0x00050014;
  /// The shortest periodic timer period honoured (ns); shorter ones run at this rate.
  static constexpr uint64_t kMinPeriodNs = 100'000;

  /// `pic`: the 8259 pair's INTR (delivered through LINT0 as ExtINT). `now_ns`: the clock the
  /// timer follows (poll() gets times from the same clock). `tsc_hz`: the guest TSC's rate, asked
  /// for at the first TSC deadline (measuring it takes time).
  LocalApic(InterruptSource& pic, std::function<uint64_t()> now_ns, double (*tsc_hz)());

  // Register page (offsets relative to the APIC base).
  uint64_t mmio_read(uint64_t offset, unsigned size) override;
  void mmio_write(uint64_t offset, unsigned size, uint64_t value) override;

  /// INTR as the CPU sees it: a deliverable APIC vector, or the 8259's INTR through LINT0.
  bool interrupt_pending() const override;
  /// The INTA cycle: the highest deliverable vector moves from IRR to ISR; otherwise the 8259's
  /// vector (ExtINT); otherwise the spurious vector (SPIV[7:0]), with no ISR bit set.
  uint8_t acknowledge_interrupt() override;

  void poll(uint64_t now_ns) override;
  uint64_t next_deadline_ns() const override;

  /// IA32_APIC_BASE. write_base_msr returns false (the guest gets #GP) for reserved bits or EXTD.
  uint64_t base_msr() const { return base_msr_; }
  bool write_base_msr(uint64_t value);
  /// The register page's guest-physical base, and whether it is visible (APIC globally enabled).
  uint32_t base() const { return static_cast<uint32_t>(base_msr_ & 0xFFFFF000u); }
  bool hardware_enabled() const { return (base_msr_ & kBaseMsrEnable) != 0; }
  /// Called after IA32_APIC_BASE changed the page's base or visibility (the machine moves the
  /// MMIO window).
  void set_on_base_change(std::function<void()> callback) { on_base_change_ = std::move(callback); }

  /// IA32_TSC_DEADLINE: `guest_tsc` is the guest's TSC at the access.
  uint64_t tsc_deadline() const { return tsc_deadline_; }
  void write_tsc_deadline(uint64_t deadline, uint64_t guest_tsc);

  bool nmi_pending() const override { return nmi_pending_; }
  void acknowledge_nmi() override { nmi_pending_ = false; }
  /// An NMI message (ICR or I/O APIC delivery mode NMI) for this APIC.
  void accept_nmi() {
    if (hardware_enabled()) nmi_pending_ = true;
  }
  /// An edge on the LINT1 pin, where a PC wires its NMI line (the chipset's IOCHK/SERR# NMI;
  /// QEMU's `nmi` monitor command arrives here too). Delivered as LVT LINT1 says (Intel SDM Vol.
  /// 3A §11.5.1): masked (also while the APIC is software-disabled) nothing; NMI mode an NMI;
  /// fixed mode its vector, edge-triggered; other modes (SMI, INIT, ExtINT) nothing, as none is
  /// wired here. With the APIC hardware-disabled LINT1 is the processor's NMI pin (§11.4.3).
  void raise_lint1();

  /// An interrupt from the IOAPIC (or another APIC-bus source): fixed or lowest-priority delivery
  /// of `vector`, edge or level. Destination matching is the caller's (matches_destination).
  void accept_fixed(uint8_t vector, bool level_triggered);
  /// Physical (APIC ID, 0xFF broadcast) or logical (flat or cluster model of DFR/LDR, §11.6.2.2)
  /// destination `dest` names this APIC.
  bool matches_destination(uint8_t dest, bool logical) const;
  /// Called with the vector when a level-triggered interrupt is retired by EOI (the IOAPIC's
  /// remote IRR, 82093AA §3.2.4).
  void set_eoi_listener(std::function<void(uint8_t)> listener) {
    eoi_listener_ = std::move(listener);
  }

  /// Register views for tests: bit v of the 256-bit IRR/ISR/TMR.
  bool irr(uint8_t v) const { return test(irr_, v); }
  bool isr(uint8_t v) const { return test(isr_, v); }
  bool tmr(uint8_t v) const { return test(tmr_, v); }
  uint32_t ppr() const;

  // Register offsets (Intel SDM Vol. 3A Table 11-1).
  enum Reg : uint32_t {
    kId = 0x20,
    kVersionReg = 0x30,
    kTpr = 0x80,
    kApr = 0x90,
    kPpr = 0xA0,
    kEoi = 0xB0,
    kRrd = 0xC0,
    kLdr = 0xD0,
    kDfr = 0xE0,
    kSpiv = 0xF0,
    kIsr = 0x100,
    kTmr = 0x180,
    kIrr = 0x200,
    kEsr = 0x280,
    kIcrLow = 0x300,
    kIcrHigh = 0x310,
    kLvtTimer = 0x320,
    kLvtThermal = 0x330,
    kLvtPerf = 0x340,
    kLvtLint0 = 0x350,
    kLvtLint1 = 0x360,
    kLvtError = 0x370,
    kTimerInitial = 0x380,
    kTimerCurrent = 0x390,
    kTimerDivide = 0x3E0,
  };
  static constexpr uint32_t kLvtMasked = 1u << 16;
  static constexpr uint32_t kSpivEnable = 1u << 8;

 private:
  using Bits = std::array<uint32_t, 8>;
  enum Lvt { kTimer, kThermal, kPerf, kLint0, kLint1, kError, kLvtCount };
  enum TimerMode : uint32_t { kOneShot = 0, kPeriodic = 1, kTscDeadline = 2 };

  static bool test(const Bits& b, uint8_t v) { return (b[v >> 5] >> (v & 31)) & 1; }
  static void set(Bits& b, uint8_t v, bool on);
  /// The highest set vector, or -1.
  static int highest(const Bits& b);

  void reset();
  /// The LVT entry at register offset `offset`, or -1.
  static int lvt_of(uint32_t offset);
  bool software_enabled() const { return (spiv_ & kSpivEnable) != 0; }
  uint32_t read_register(uint32_t offset);
  void write_register(uint32_t offset, uint32_t value);
  void write_lvt(Lvt lvt, uint32_t value);
  void write_icr(uint32_t low);
  void eoi();
  /// The highest IRR vector PPR lets through, or -1.
  int deliverable() const;
  /// Recomputes vector_pending_ (after IRR, ISR, TPR or IA32_APIC_BASE changed).
  void refresh_pending();
  /// The 8259's INTR passes (APIC hardware-disabled, or LINT0 ExtINT unmasked).
  bool extint_open() const;
  /// Records an error (ESR bits), raising the LVT error interrupt when unmasked.
  void error(uint32_t bits);
  /// An interrupt for this APIC (vector checked, IRR set); `level` sets the TMR bit.
  void accept(uint8_t vector, bool level);

  TimerMode timer_mode() const { return static_cast<TimerMode>((lvt_[kTimer] >> 17) & 3); }
  uint64_t timer_divisor() const;
  /// One period of the one-shot/periodic count, in ns.
  uint64_t timer_period_ns() const;
  /// Moves the count's start to the beginning of the period `now_ns` is in, and the deadline to
  /// its end.
  void rebase_period(uint64_t now_ns);
  /// Arms one-shot/periodic counting of `initial` ticks from now (0 disarms).
  void start_count(uint32_t initial);
  uint32_t current_count() const;
  void disarm() { timer_deadline_ns_ = UINT64_MAX; }

  InterruptSource& pic_;
  std::function<uint64_t()> now_ns_;
  double (*tsc_hz_)();
  std::function<void()> on_base_change_;
  std::function<void(uint8_t)> eoi_listener_;

  uint64_t base_msr_ = kDefaultBase | kBaseMsrBsp | kBaseMsrEnable;
  uint32_t id_ = 0, tpr_ = 0, ldr_ = 0, dfr_ = 0xFFFFFFFF, spiv_ = 0xFF;
  uint32_t esr_ = 0, esr_pending_ = 0;
  uint32_t icr_low_ = 0, icr_high_ = 0;
  std::array<uint32_t, kLvtCount> lvt_{};
  Bits irr_{}, isr_{}, tmr_{};
  uint32_t timer_initial_ = 0, timer_divide_ = 0;
  uint64_t timer_start_ns_ = 0;              ///< when the current count was loaded
  uint64_t timer_deadline_ns_ = UINT64_MAX;  ///< next expiry, UINT64_MAX when disarmed
  uint64_t tsc_deadline_ = 0;
  bool nmi_pending_ = false;
  bool vector_pending_ = false;  ///< deliverable() >= 0, kept by refresh_pending()
};

}  // namespace vmbt
