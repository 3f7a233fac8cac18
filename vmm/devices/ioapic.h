// The I/O APIC (Intel 82093AA) of a PC.
#pragma once

#include <array>
#include <cstdint>

#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

class LocalApic;

/// An Intel 82093AA I/O APIC at 0xFEC00000 (datasheet order 290566-001): IOREGSEL at offset 0x00,
/// IOWIN at 0x10; registers IOAPICID (0x00, bits 27:24), IOAPICVER (0x01: version 0x11, 24
/// redirection entries), IOAPICARB (0x02) and the 24 64-bit redirection entries at 0x10-0x3F.
///
/// - An entry (§3.2.4): vector, delivery mode, destination mode (physical APIC ID or logical),
///   delivery status (read-only, never busy), polarity (stored; pin levels here are already the
///   asserted state, as in QEMU), remote IRR (read-only), trigger mode, mask (set at reset) and the
///   destination (bits 63:56).
/// - Edge-triggered pins deliver on each rising edge while unmasked; level-triggered pins deliver
///   while asserted, once until the local APIC's EOI of their vector clears remote IRR (EOI
///   broadcast, eoi()), then again if still asserted. Unmasking an asserted level pin delivers it.
/// - Fixed, lowest-priority and NMI deliveries reach the one local APIC when the destination names
///   it; SMI, INIT and ExtINT entries are accepted and deliver nothing (no such paths to the vCPU
///   yet; Linux uses fixed delivery).
/// Pins: ISA IRQ n drives pin n, except the PIT's IRQ0, which drives pin 2 (the interrupt source
/// override a PC's MADT declares); PCI INTx would use pins 16-23.
class IoApic : public MmioDevice {
 public:
  static constexpr uint32_t kBase = 0xFEC00000;  ///< guest-physical
  static constexpr uint32_t kWindow = 0x1000;    ///< bytes of MMIO claimed
  static constexpr unsigned kPins = 24;
  static constexpr uint32_t kVersion = 0x00170011;  ///< max redirection entry 23, version 0x11

  explicit IoApic(LocalApic& apic);

  uint64_t mmio_read(uint64_t offset, unsigned size) override;
  void mmio_write(uint64_t offset, unsigned size, uint64_t value) override;

  /// Drives input pin `pin` (0-23) to `asserted`.
  void set_pin(unsigned pin, bool asserted);
  /// EOI broadcast from the local APIC for `vector`: clears remote IRR of level entries with it.
  void eoi(uint8_t vector);

  /// Redirection entry `pin` (tests and diagnostics).
  uint64_t entry(unsigned pin) const { return entries_[pin]; }

  static constexpr uint64_t kMasked = 1u << 16, kLevel = 1u << 15, kRemoteIrr = 1u << 14,
                            kLogical = 1u << 11;

 private:
  uint32_t read_register(uint8_t index) const;
  void write_register(uint8_t index, uint32_t value);
  /// Sends entry `pin` to the local APIC; true when that was a fixed or lowest-priority interrupt
  /// for it (one an EOI will retire).
  bool deliver(unsigned pin);
  /// Delivers level pin `pin` if asserted, unmasked and not awaiting an EOI.
  void service_level(unsigned pin);

  LocalApic& apic_;
  uint8_t select_ = 0;  ///< IOREGSEL
  uint32_t id_ = 0;     ///< IOAPICID bits 27:24
  std::array<uint64_t, kPins> entries_{};
  uint32_t pins_ = 0;  ///< asserted pins, bit per pin
};

/// The PC's ISA interrupt lines: each goes to the 8259 pair and to the I/O APIC (IRQ0 to pin 2),
/// as on a PIIX-based PC where both controllers see every ISA IRQ and the OS masks the one it
/// does not use.
class IsaIrqRouter final : public IrqSink {
 public:
  IsaIrqRouter(IrqSink& pic, IoApic& ioapic) : pic_(pic), ioapic_(ioapic) {}
  /// ISA line (0-15) to the IOAPIC pin it drives: 0 -> 2 (the override), 2 -> 9 (the AT bus's
  /// IRQ2 is IRQ9, as the 8259 pair wires it), others n -> n.
  static unsigned ioapic_pin(unsigned line) { return line == 0 ? 2 : line == 2 ? 9 : line; }
  void set_irq(unsigned line, bool level) override {
    pic_.set_irq(line, level);
    ioapic_.set_pin(ioapic_pin(line), level);
  }

 private:
  IrqSink& pic_;
  IoApic& ioapic_;
};

}  // namespace vmbt
