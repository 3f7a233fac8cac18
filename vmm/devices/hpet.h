// The High Precision Event Timer of a PC (IA-PC HPET specification 1.0a).
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

class IoApic;

/// An HPET event timer block at 0xFED00000 (IA-PC HPET spec 1.0a, Intel order 314191-001): a
/// 64-bit main counter at 100 MHz (10 ns a tick, as QEMU's) and three comparators.
///
/// - General capabilities (0x000): revision 1, 3 timers, 64-bit counter, legacy replacement
///   capable, vendor 0x8086, COUNTER_CLK_PERIOD 10,000,000 fs. Configuration (0x010): ENABLE_CNF
///   starts and stops the counter (it keeps its value while stopped and may be written then),
///   LEG_RT_CNF routes timer 0 to ISA IRQ0 and timer 1 to ISA IRQ8 (§2.3.9.2.2; the PIT and RTC
///   keep their own outputs: a guest that uses the replacement leaves them idle). Interrupt status
///   (0x020): a level-triggered timer's bit, write 1 to clear (which deasserts its line).
/// - Timer n at 0x100 + 0x20n: configuration (edge/level, enable, periodic on timer 0 only, 32-bit
///   mode, VAL_SET, the I/O APIC route among INT_ROUTE_CAP pins 20-23, no FSB delivery) and
///   comparator. A comparator fires when the counter reaches it (in 32-bit mode its low 32
///   bits); periodic mode then adds the period last written (with VAL_SET for the comparator
///   value itself, §2.3.9.2.4); expiries missed between two polls are coalesced. A one-shot
///   fires once until its comparator or configuration is written again (not again after a
///   32-bit wrap). A comparator fires when the counter reaches it after it was set (a match that
///   fell between two polls is delivered at the next one; a comparator behind the counter waits
///   for the wrap, as the hardware does). Periods below kMinPeriod ticks run at kMinPeriod. Only
///   timers with interrupts enabled are followed.
/// - Edge-triggered timers pulse their line; level-triggered ones set their status bit and hold
///   the line until the guest clears it.
class Hpet : public MmioDevice, public PolledDevice {
 public:
  static constexpr uint32_t kBase = 0xFED00000;
  static constexpr uint32_t kWindow = 0x400;
  static constexpr unsigned kTimers = 3;
  static constexpr uint64_t kPeriodFs = 10'000'000;  ///< femtoseconds a tick: 100 MHz
  /// Capabilities low half: vendor 8086, LEG_RT_CAP, COUNT_SIZE_CAP, NUM_TIM_CAP 2, REV_ID 1.
  static constexpr uint32_t kCapabilitiesLow = 0x8086A201;
  /// I/O APIC pins a timer may be routed to (Tn_INT_ROUTE_CAP).
  static constexpr uint32_t kRouteCap = 0x00F00000;
  /// The shortest periodic period honoured, in ticks (100 us).
  static constexpr uint64_t kMinPeriod = 10'000;

  /// `isa`: ISA lines for the legacy replacement route; `ioapic`: pins for the others.
  Hpet(IrqSink& isa, IoApic& ioapic, std::function<uint64_t()> now_ns);

  uint64_t mmio_read(uint64_t offset, unsigned size) override;
  void mmio_write(uint64_t offset, unsigned size, uint64_t value) override;
  void poll(uint64_t now_ns) override;
  uint64_t next_deadline_ns() const override;

  /// The main counter now.
  uint64_t counter() const;

 private:
  struct Timer {
    uint64_t config = 0;
    uint64_t comparator = ~0ull;
    uint64_t period = 0;
    bool asserted = false;  ///< a level-triggered line held
    bool fired = false;     ///< a one-shot expiry happened since the comparator was written
    uint64_t armed_at = 0;  ///< the counter when the comparator was last set or passed
  };
  uint64_t read64(uint64_t offset) const;
  void write64(uint64_t offset, uint64_t value, uint64_t mask);
  /// Counter ticks until timer `n` fires (0: due), or UINT64_MAX when it will not.
  uint64_t ticks_until(unsigned n) const;
  void fire(unsigned n);
  /// Drives timer `n`'s line (its route now).
  void set_line(unsigned n, bool level);

  IrqSink& isa_;
  IoApic& ioapic_;
  std::function<uint64_t()> now_ns_;
  uint64_t config_ = 0;
  uint64_t status_ = 0;
  uint64_t counter_at_start_ = 0;  ///< counter value when it was last started
  uint64_t start_ns_ = 0;          ///< host time of that start
  std::array<Timer, kTimers> timers_{};
};

}  // namespace vmbt
