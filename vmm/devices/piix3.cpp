// Intel 82371FB/82371SB (PIIX/PIIX3) datasheet §2.2: PCI-to-ISA bridge configuration and the
// PIRQ route control registers (§2.2.10).
#include "vmm/devices/piix3.h"

#include "vmm/devices/i440fx.h"

namespace vmbt {

Piix3IsaBridge::Piix3IsaBridge(IrqSink& isa)
    : PciFunction(I440fxHostBridge::kVendorIntel, kDevice, 0x00, 0x060100), isa_(isa) {
  config_[0x0e] = 0x80;  // header type 0, multi-function device
  put16(0x04, 0x0007);   // command: I/O, memory, bus master (reset value, §2.2.3)
  put16(0x06, 0x0200);   // status: DEVSEL medium
  set_subsystem(0x1af4, 0x1100);
  for (unsigned i = 0; i < 4; ++i) {
    config_[kPirqRoute + i] = kRouteDisabled;
    wmask_[kPirqRoute + i] = 0x8f;
  }
}

int Piix3IsaBridge::routed_irq(unsigned pirq) const {
  if (pirq >= 4) return -1;
  const uint8_t r = config_[kPirqRoute + pirq];
  const unsigned irq = r & 0x0f;
  if ((r & kRouteDisabled) || irq < 3 || irq == 8 || irq == 13) return -1;
  return static_cast<int>(irq);
}

void Piix3IsaBridge::set_irq(unsigned pirq, bool level) {
  if (pirq >= 4 || pirq_[pirq] == level) return;
  pirq_[pirq] = level;
  update();
}

void Piix3IsaBridge::config_written(unsigned reg, unsigned size) {
  if (reg < kPirqRoute + 4 && reg + size > kPirqRoute) update();
}

void Piix3IsaBridge::update() {
  uint16_t want = 0;
  for (unsigned i = 0; i < 4; ++i) {
    const int irq = routed_irq(i);
    if (pirq_[i] && irq >= 0) want |= static_cast<uint16_t>(1u << irq);
  }
  const uint16_t changed = want ^ driven_;
  driven_ = want;
  for (unsigned irq = 0; irq < 16; ++irq) {
    if (changed & (1u << irq)) isa_.set_irq(irq, want & (1u << irq));
  }
}

}  // namespace vmbt
