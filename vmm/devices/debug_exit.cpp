// isa-debug-exit (QEMU hw/misc/debugexit.c semantics) and the POST port 0x80.
#include "vmm/devices/debug_exit.h"

namespace vmbt {

void DebugExit::register_ports(IoBus& bus) {
  bus.add(kPort, 1, this, "debug-exit");
}

uint32_t DebugExit::io_read(uint16_t, unsigned) {
  return 0;
}

void DebugExit::io_write(uint16_t, unsigned size, uint32_t value) {
  if (status_) return;
  if (size < 4) value &= (1u << (8 * size)) - 1;
  // (V << 1) | 1 computed in 32 bits, as QEMU's exit() argument is an int.
  status_ = static_cast<int>((value << 1) | 1u);
  if (on_exit_) on_exit_(*status_);
}

void PostPort::register_ports(IoBus& bus) {
  bus.add(kPort, 1, this, "post");
}

uint32_t PostPort::io_read(uint16_t, unsigned size) {
  return size >= 4 ? 0xffffffffu : (1u << (8 * size)) - 1;
}

void PostPort::io_write(uint16_t, unsigned, uint32_t value) {
  last_ = static_cast<uint8_t>(value);
}

}  // namespace vmbt
