// System Control Port A (IBM PS/2; PIIX "Port 92h").
#include "vmm/devices/port92.h"

namespace vmbt {

void Port92::register_ports(IoBus& bus) {
  bus.add(kPort, 1, this, "port92");
}

uint32_t Port92::io_read(uint16_t, unsigned size) {
  uint32_t fill = size >= 4 ? 0xffffff00u : ((1u << (8 * size)) - 1) & ~0xffu;
  return fill | (value_ & ~0x01u);
}

void Port92::io_write(uint16_t, unsigned, uint32_t value) {
  uint8_t v = static_cast<uint8_t>(value);
  if ((v & 0x01) && !(value_ & 0x01) && !reset_) reset_ = 0;  // 0 -> 1 on bit 0: fast reset
  const bool a20_was = a20();
  value_ = v & ~0x01;  // the reset bit reads back as 0 once the reset has happened
  if (a20() != a20_was && on_a20_) on_a20_(a20());
}

}  // namespace vmbt
