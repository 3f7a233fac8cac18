// The Intel 82371SB (PIIX3) PCI-to-ISA bridge, function 0: its identity and PCI interrupt
// steering.
#pragma once

#include <array>
#include <cstdint>

#include "vmm/devices/pci_function.h"
#include "vmm/machine/irq.h"

namespace vmbt {

/// PIIX3 function 0 at 00:01.0 (Intel 82371FB/82371SB datasheet, §2.2 "PCI to ISA bridge
/// configuration registers"): vendor 0x8086, device 0x7000, class 0x060100 (ISA bridge), header
/// type 0x80 (multi-function: functions 1-7 are not there here and read all ones), subsystem
/// 0x1af4:0x1100 as on QEMU's `pc` machine.
///
/// PIRQRC[A:D] (0x60-0x63, §2.2.10, reset value 0x80) steer the four PCI interrupt lines
/// PIRQA#-PIRQD# to ISA IRQs: bit 7 IRQROUTEEN (1: not routed), bits 3:0 the IRQ (3-7, 9-12,
/// 14, 15; the reserved values 0-2, 8 and 13 route nowhere); bits 6:4 are reserved and read 0.
/// The bridge is the IrqSink of the PCI functions' INTx# pins: set_irq(n, level) drives PIRQn#
/// (0-3, active while `level`), and each ISA IRQ is the OR of the PIRQs routed to it (level,
/// shared), driven on `isa` whenever a PIRQ or a routing register changes. The edge/level
/// control registers (ELCR, ports 0x4D0/0x4D1, §2.7.7) are the 8259 pair's
/// (vmm/devices/pic8259.h).
///
/// A PC wires slot d's INTA#-INTD# to PIRQ[(d - 1 + pin) mod 4] (pin 0 = INTA#), the rotation
/// SeaBIOS assumes (src/fw/pciinit.c, piix_pci_slot_get_irq): pirq_of().
class Piix3IsaBridge final : public PciFunction, public IrqSink {
 public:
  static constexpr uint16_t kDevice = 0x7000;
  static constexpr unsigned kPirqRoute = 0x60;  ///< PIRQRCA; B, C, D follow
  static constexpr uint8_t kRouteDisabled = 0x80;

  /// Routed PIRQs drive ISA IRQs on `isa`.
  explicit Piix3IsaBridge(IrqSink& isa);

  /// PIRQ line `pirq` (0-3 for PIRQA#-PIRQD#) at `level` (true: asserted); other values are
  /// ignored.
  void set_irq(unsigned pirq, bool level) override;
  /// The ISA IRQ PIRQ `pirq` is routed to now, or -1 for none.
  int routed_irq(unsigned pirq) const;
  /// The PIRQ (0-3) that INTx# `pin` (0 = INTA#) of PCI device `device` on bus 0 drives.
  static unsigned pirq_of(unsigned device, unsigned pin) { return (device + 3 + pin) & 3; }

 private:
  void config_written(unsigned reg, unsigned size) override;
  /// Drives every ISA IRQ to the OR of the asserted PIRQs routed to it, changing only the
  /// lines whose level changes.
  void update();

  IrqSink& isa_;
  std::array<bool, 4> pirq_{};
  uint16_t driven_ = 0;  ///< ISA IRQs this bridge holds asserted
};

}  // namespace vmbt
