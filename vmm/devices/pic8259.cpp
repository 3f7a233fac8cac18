// Intel 8259A pair (master/slave) and PIIX ELCR. Section numbers refer to the Intel 8259A
// datasheet (order 231468): "Interrupt sequence", "Programming the 8259A", "Operation command
// words", and the 82371AB PIIX4 datasheet 4.1.11 for the ELCR.
#include "vmm/devices/pic8259.h"

namespace vmbt {

namespace {
constexpr uint16_t kMasterPort = 0x20;
constexpr uint16_t kSlavePort = 0xa0;
constexpr uint16_t kElcrPort = 0x4d0;
constexpr unsigned kCascadeLine = 2;
}  // namespace

void Pic8259Pair::Chip::set_pin(unsigned ir, bool level) {
  const uint8_t bit = static_cast<uint8_t>(1u << ir);
  if (level_mask() & bit) {
    // Level-sensitive: the request follows the line.
    irr = level ? (irr | bit) : (irr & ~bit);
  } else if (level && !(pins & bit)) {
    // Edge-sensitive: a rising edge latches a request.
    irr |= bit;
  }
  pins = level ? (pins | bit) : (pins & ~bit);
}

unsigned Pic8259Pair::Chip::best_rank(uint8_t bits) const {
  for (unsigned rank = 0; rank < 8; ++rank) {
    if (bits & (1u << ((lowest + 1 + rank) & 7))) return rank;
  }
  return 8;
}

int Pic8259Pair::Chip::pending_line() const {
  const unsigned rank = best_rank(irr & ~imr);
  if (rank == 8) return -1;
  const unsigned line = (lowest + 1 + rank) & 7;
  // In special mask mode a masked in-service level does not block other levels ("Special mask
  // mode"); in special fully nested mode the master accepts a new request from a slave that is
  // already in service ("Special fully nested mode").
  uint8_t in_service = isr;
  if (special_mask) in_service &= ~imr;
  const unsigned current = best_rank(in_service);
  if (rank < current) return static_cast<int>(line);
  if (sfnm && master && line == kCascadeLine && rank == current) return static_cast<int>(line);
  return -1;
}

void Pic8259Pair::Chip::acknowledge(unsigned ir) {
  const uint8_t bit = static_cast<uint8_t>(1u << ir);
  if (auto_eoi) {
    // AEOI: the ISR bit is reset at the end of the INTA sequence.
    if (rotate_aeoi) lowest = static_cast<uint8_t>(ir);
  } else {
    isr |= bit;
  }
  // An edge request is consumed; a level request stays while its line is high.
  if (!(level_mask() & bit)) irr &= ~bit;
}

void Pic8259Pair::Chip::write_command(uint8_t value) {
  if (value & 0x10) {
    // ICW1: "the edge sense circuit is reset ... the IMR is cleared, IR7 is assigned the lowest
    // priority, the special mask mode is cleared and status read is set to IRR; if IC4 = 0 all
    // functions selected in ICW4 are set to zero".
    ltim = value & 0x08;
    single = value & 0x02;
    icw4_needed = value & 0x01;
    imr = 0;
    isr = 0;
    irr &= static_cast<uint8_t>(level_mask() & pins);
    lowest = 7;
    special_mask = false;
    read_isr = false;
    poll = false;
    auto_eoi = false;
    sfnm = false;
    rotate_aeoi = false;
    init_step = 1;
    return;
  }
  if (value & 0x08) {
    // OCW3: bit 2 poll, bits 1-0 RR/RIS, bits 6-5 ESMM/SMM.
    if (value & 0x04) poll = true;
    if (value & 0x02) read_isr = value & 0x01;
    if (value & 0x40) special_mask = value & 0x20;
    return;
  }
  // OCW2: bits 7-5 R, SL, EOI; bits 2-0 level.
  const unsigned level = value & 7;
  switch (value >> 5) {
    case 0:  // rotate in automatic EOI mode (clear)
      rotate_aeoi = false;
      break;
    case 4:  // rotate in automatic EOI mode (set)
      rotate_aeoi = true;
      break;
    case 1:    // non-specific EOI
    case 5: {  // rotate on non-specific EOI
      const unsigned rank = best_rank(isr);
      if (rank < 8) {
        const unsigned line = (lowest + 1 + rank) & 7;
        isr &= static_cast<uint8_t>(~(1u << line));
        if (value >> 5 == 5) lowest = static_cast<uint8_t>(line);
      }
      break;
    }
    case 3:  // specific EOI
      isr &= static_cast<uint8_t>(~(1u << level));
      break;
    case 7:  // rotate on specific EOI
      isr &= static_cast<uint8_t>(~(1u << level));
      lowest = static_cast<uint8_t>(level);
      break;
    case 6:  // set priority
      lowest = static_cast<uint8_t>(level);
      break;
    default:  // 2: no operation
      break;
  }
}

void Pic8259Pair::Chip::write_data(uint8_t value) {
  switch (init_step) {
    case 0:  // OCW1
      imr = value;
      break;
    case 1:  // ICW2: T7-T3
      vector_base = value & 0xf8;
      init_step = single ? (icw4_needed ? 3 : 0) : 2;
      break;
    case 2:  // ICW3: cascade wiring, fixed on a PC
      init_step = icw4_needed ? 3 : 0;
      break;
    default:  // ICW4: bit 1 AEOI, bit 4 SFNM (uPM, BUF, M/S do not matter here)
      auto_eoi = value & 0x02;
      sfnm = value & 0x10;
      init_step = 0;
      break;
  }
}

uint8_t Pic8259Pair::Chip::read(bool odd) {
  if (poll) {
    // Poll command: the next read returns 1000 0WWW (W = highest request) and acknowledges it.
    poll = false;
    const int line = pending_line();
    if (line < 0) return 0;
    acknowledge(static_cast<unsigned>(line));
    return static_cast<uint8_t>(0x80 | line);
  }
  if (odd) return imr;
  return read_isr ? isr : irr;
}

Pic8259Pair::Pic8259Pair() {
  chips_[0].master = true;
  chips_[0].elcr_mask = 0xf8;  // IRQ0-2 are edge-only (PIIX4 ELCR1)
  chips_[1].elcr_mask = 0xde;  // IRQ8 and IRQ13 are edge-only (PIIX4 ELCR2)
}

void Pic8259Pair::register_ports(IoBus& bus) {
  bus.add(kMasterPort, 2, this, "pic-master");
  bus.add(kSlavePort, 2, this, "pic-slave");
  bus.add(kElcrPort, 2, this, "elcr");
}

uint8_t Pic8259Pair::read_byte(uint16_t port) {
  uint8_t value = 0xff;
  if (port == kMasterPort || port == kMasterPort + 1) {
    value = chips_[0].read(port & 1);
  } else if (port == kSlavePort || port == kSlavePort + 1) {
    value = chips_[1].read(port & 1);
  } else if (port == kElcrPort || port == kElcrPort + 1) {
    value = chips_[port & 1].elcr;
  }
  update();  // a poll read acknowledges
  return value;
}

void Pic8259Pair::write_byte(uint16_t port, uint8_t value) {
  if (port == kMasterPort || port == kSlavePort) {
    chips_[port == kSlavePort].write_command(value);
  } else if (port == kMasterPort + 1 || port == kSlavePort + 1) {
    chips_[port == kSlavePort + 1].write_data(value);
  } else if (port == kElcrPort || port == kElcrPort + 1) {
    Chip& chip = chips_[port & 1];
    chip.elcr = value & chip.elcr_mask;
    // Lines that became level-sensitive request according to their current level.
    const uint8_t level = chip.level_mask();
    chip.irr = static_cast<uint8_t>((chip.irr & ~level) | (chip.pins & level));
  }
  update();
}

void Pic8259Pair::set_irq(unsigned line, bool level) {
  if (line >= 16) return;
  if (line == kCascadeLine) line = 9;
  chips_[line / 8].set_pin(line % 8, level);
  update();
}

void Pic8259Pair::update() {
  chips_[0].set_pin(kCascadeLine, chips_[1].pending_line() >= 0);
  intr_ = chips_[0].pending_line() >= 0;
}

uint8_t Pic8259Pair::acknowledge_interrupt() {
  Chip& master = chips_[0];
  Chip& slave = chips_[1];
  uint8_t vector;
  const int line = master.pending_line();
  if (line < 0) {
    vector = master.vector_base + 7;  // spurious IRQ7: ISR untouched
  } else if (line == static_cast<int>(kCascadeLine) && !master.single) {
    master.acknowledge(kCascadeLine);
    const int slave_line = slave.pending_line();
    if (slave_line >= 0) {
      slave.acknowledge(static_cast<unsigned>(slave_line));
      vector = static_cast<uint8_t>(slave.vector_base + slave_line);
    } else {
      vector = slave.vector_base + 7;  // spurious IRQ15: the master's ISR bit 2 is set
    }
    // A slave still presenting a request (automatic EOI, special mask mode) keeps its INT high
    // through the INTA cycle; the master sees the request again instead of losing it.
    if (slave.pending_line() >= 0) master.irr |= 1u << kCascadeLine;
  } else {
    master.acknowledge(static_cast<unsigned>(line));
    vector = static_cast<uint8_t>(master.vector_base + line);
  }
  update();
  return vector;
}

}  // namespace vmbt
