// Intel 8042 keyboard controller with nothing attached (IBM PC/AT Technical Reference,
// "Keyboard controller"; PS/2 AUX commands).
#include "vmm/devices/i8042.h"

namespace vmbt {

I8042::I8042(IrqSink& irq) : irq_(irq) {
  ram_[0] = kInitialCtr;
}

void I8042::register_ports(IoBus& bus) {
  bus.add(kDataPort, 1, this, "i8042-data");
  bus.add(kCommandPort, 1, this, "i8042-cmd");
}

uint8_t I8042::status() const {
  uint8_t s = kStatusUnlocked;
  if (obf_) s |= kStatusObf;
  if (obf_ && source_ == Source::kAux) s |= kStatusAuxObf;
  if (timeout_) s |= kStatusTimeout;
  if (sys_ || (ram_[0] & kCtrSys)) s |= kStatusSys;
  if (last_was_command_) s |= kStatusCommand;
  return s;
}

void I8042::update_irqs() {
  // The 8042 drives IRQ1 from OBF for keyboard/controller bytes and IRQ12 from AUX OBF, each
  // gated by its command byte enable bit.
  bool kbd = obf_ && source_ != Source::kAux && (ram_[0] & kCtrKbdInt);
  bool aux = obf_ && source_ == Source::kAux && (ram_[0] & kCtrAuxInt);
  if (kbd != irq1_) irq_.set_irq(kKeyboardIrq, irq1_ = kbd);
  if (aux != irq12_) irq_.set_irq(kAuxIrq, irq12_ = aux);
}

void I8042::output(uint8_t value, Source source, bool timeout) {
  // A new byte is a new interrupt: drop the line first so the edge-triggered PIC sees it.
  obf_ = false;
  update_irqs();
  out_ = value;
  obf_ = true;
  source_ = source;
  timeout_ = timeout;
  update_irqs();
}

uint32_t I8042::io_read(uint16_t port, unsigned size) {
  uint32_t fill = size >= 4 ? 0xffffff00u : ((1u << (8 * size)) - 1) & ~0xffu;
  if (port == kCommandPort) return fill | status();
  uint8_t v = out_;
  obf_ = false;
  timeout_ = false;
  update_irqs();
  return fill | v;
}

void I8042::write_output_port(uint8_t value) {
  const uint8_t changed = outport_ ^ value;
  outport_ = value;
  if (!(value & 0x01) && !reset_) reset_ = 0;              // bit 0 low resets the CPU
  if ((changed & 0x02) && on_a20_) on_a20_(value & 0x02);  // bit 1: the A20 gate
}

void I8042::io_write(uint16_t port, unsigned, uint32_t value) {
  uint8_t v = static_cast<uint8_t>(value);
  if (port == kCommandPort) {
    last_was_command_ = true;
    pending_.reset();
    command(v);
    return;
  }
  last_was_command_ = false;
  if (pending_) {
    uint8_t cmd = *pending_;
    pending_.reset();
    if (cmd >= 0x60 && cmd <= 0x7f) {
      ram_[cmd - 0x60] = v;
      update_irqs();  // the interrupt enables may have changed
    } else if (cmd == 0xd1) {
      write_output_port(v);
    } else if (cmd == 0xd2) {
      output(v, Source::kKeyboard);
    } else if (cmd == 0xd3) {
      output(v, Source::kAux);
    } else if (cmd == 0xd4) {
      output(0xfe, Source::kAux, /*timeout=*/true);  // no mouse clocks the byte in
    }
    return;
  }
  // A byte for the keyboard, which is not there: transmission timeout, 0xfe (PS/2 resend/NAK).
  output(0xfe, Source::kKeyboard, /*timeout=*/true);
}

void I8042::command(uint8_t cmd) {
  if (cmd >= 0x20 && cmd <= 0x3f) {
    output(ram_[cmd - 0x20], Source::kController);
    return;
  }
  if ((cmd >= 0x60 && cmd <= 0x7f) || cmd == 0xd1 || cmd == 0xd2 || cmd == 0xd3 || cmd == 0xd4) {
    pending_ = cmd;
    return;
  }
  if (cmd >= 0xf0) {
    // Pulse output port bits 0-3 low where the command's bits are 0; bit 0 is CPU reset.
    if (!(cmd & 0x01) && !reset_) reset_ = 0;
    return;
  }
  switch (cmd) {
    case 0xdd:  // disable A20 (QEMU's KBD_CCMD_DISABLE_A20)
      write_output_port(outport_ & ~0x02);
      break;
    case 0xdf:  // enable A20
      write_output_port(outport_ | 0x02);
      break;
    case 0xa7:
      ram_[0] |= kCtrAuxDisabled;
      break;
    case 0xa8:
      ram_[0] &= ~kCtrAuxDisabled;
      break;
    case 0xa9:  // AUX interface test: 0x00 = no error
    case 0xab:  // keyboard interface test: 0x00 = no error
      output(0x00, Source::kController);
      break;
    case 0xaa:  // controller self-test
      sys_ = true;
      output(0x55, Source::kController);
      break;
    case 0xad:
      ram_[0] |= kCtrKbdDisabled;
      break;
    case 0xae:
      ram_[0] &= ~kCtrKbdDisabled;
      break;
    case 0xc0:  // input port: bit 7 keyboard not inhibited, bit 4 (AT) 512 KiB+ of base RAM
      output(0x80, Source::kController);
      break;
    case 0xd0: {  // output port, with bits 4/5 showing the buffer state
      uint8_t v = outport_ & 0xcf;
      if (obf_ && source_ != Source::kAux) v |= 0x10;
      if (obf_ && source_ == Source::kAux) v |= 0x20;
      output(v, Source::kController);
      break;
    }
    default:
      break;
  }
}

}  // namespace vmbt
