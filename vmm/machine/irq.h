// Interrupt wiring between devices, the interrupt controller and the engines.
#pragma once

#include <cstdint>

namespace vmbt {

/// Where a device drives an ISA interrupt line (0-15). The 8259 pair implements it; lines are
/// edge-triggered unless the ELCR says otherwise, so a device raises then lowers for a pulse.
class IrqSink {
 public:
  virtual ~IrqSink() = default;
  virtual void set_irq(unsigned line, bool level) = 0;
};

/// What an engine asks at an injection point: is a maskable interrupt pending (INTR asserted), and
/// the vector of the INTA cycle that acknowledges it (Intel 8259A datasheet, "interrupt sequence").
class InterruptSource {
 public:
  virtual ~InterruptSource() = default;
  virtual bool interrupt_pending() const = 0;
  /// Acknowledges the highest-priority request and returns its vector (spurious IRQ7/15 if none).
  virtual uint8_t acknowledge_interrupt() = 0;
  /// A non-maskable interrupt is waiting (Intel SDM Vol. 3A §6.7): an APIC NMI message or the
  /// NMI pin. NMIs do not queue: one waits at most.
  virtual bool nmi_pending() const { return false; }
  /// The CPU takes the waiting NMI (it delivers vector 2 and blocks NMIs until the next IRET).
  virtual void acknowledge_nmi() {}
};

/// An interrupt source that never has anything pending: for guests run without a machine (the
/// KVM probe's tiny guests, bt's snippet runner, unit tests).
class NoInterrupts final : public InterruptSource {
 public:
  bool interrupt_pending() const override { return false; }
  uint8_t acknowledge_interrupt() override { return 0; }
};

/// Host monotonic time in nanoseconds; devices keep their time in this unit.
uint64_t host_now_ns();
/// The host TSC's rate in Hz (both engines' guest TSCs tick at it), measured against host_now_ns()
/// over 10 ms on the first call and remembered.
double host_tsc_hz();

/// A device whose state advances with host time (PIT, RTC) or host input (UART).
class PolledDevice {
 public:
  virtual ~PolledDevice() = default;
  /// Brings the device up to `now_ns` (raising interrupts that became due).
  virtual void poll(uint64_t now_ns) = 0;
  /// The next host time at which poll() has something to do, or UINT64_MAX.
  virtual uint64_t next_deadline_ns() const { return UINT64_MAX; }
};

}  // namespace vmbt
