// The PC/AT pair of Intel 8259A programmable interrupt controllers plus the PIIX ELCR.
#pragma once

#include <cstdint>

#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

/// Master 8259A at ports 0x20/0x21 (IRQ0-7), slave at 0xa0/0xa1 (IRQ8-15) whose INT output drives
/// the master's IR2, and the edge/level control registers ELCR1/ELCR2 at 0x4d0/0x4d1 (Intel
/// 82371AB PIIX4 datasheet, 4.1.11). Follows the Intel 8259A datasheet (order 231468):
///
/// - Initialization: ICW1 (bit 4 set, written to the even port) starts the sequence; ICW2 gives the
///   vector base (bits 7-3), ICW3 is expected unless ICW1.SNGL, ICW4 only if ICW1.IC4 (its
///   AEOI and SFNM bits are honoured; without ICW4 they are zero). ICW1 clears the IMR, the ISR,
///   special mask mode, rotation and the edge-sense latches, and selects IRR for reads.
/// - OCW1 (odd port after init) writes the IMR, reads of the odd port return it.
/// - OCW2: non-specific EOI, specific EOI, rotate on non-specific EOI, rotate in automatic EOI
///   mode (set/clear), rotate on specific EOI, set priority.
/// - OCW3: read IRR/ISR select, poll command, special mask mode.
/// - Edge-triggered lines latch a request into the IRR on a rising edge; the latch holds when the
///   line falls again, so a device can pulse a line (raise then lower) between two instructions
///   (real 8259As require the line to stay high until INTA; devices here deliver pulses
///   instantaneously). Level-triggered lines (ELCR bit set, or ICW1.LTIM for a whole chip) request
///   for as long as the line is high.
/// - INTA with nothing to deliver (request withdrawn or masked since INTR rose) gives the spurious
///   vector IR7 of the chip involved without setting its ISR bit: master base+7, or slave base+7
///   when the master granted IR2 but the slave had no request (the master's ISR bit 2 is set, so
///   the guest must EOI the master, as on real hardware).
///
/// set_irq(2, ...) drives IRQ9: on the AT bus the ISA IRQ2 pin is wired to the slave's IR1,
/// the master's IR2 being the cascade.
class Pic8259Pair : public ByteIoDevice, public IrqSink, public InterruptSource {
 public:
  /// Power-on state: both chips uninitialized (vector base 0, IMR 0), all lines edge-triggered.
  Pic8259Pair();

  /// Adds 0x20-0x21, 0xa0-0xa1 and 0x4d0-0x4d1 to `bus`.
  void register_ports(IoBus& bus);

  /// Drives ISA interrupt line `line` (0-15) to `level`.
  void set_irq(unsigned line, bool level) override;

  /// The master's INT output (the CPU's INTR pin).
  bool interrupt_pending() const override { return intr_; }
  /// The INTA cycle: returns the vector of the highest-priority unmasked request not blocked by a
  /// higher-priority in-service one, moving it from IRR to ISR (unless in automatic-EOI mode).
  uint8_t acknowledge_interrupt() override;

  /// Register views for tests and diagnostics: bits 0-7 master, bits 8-15 slave.
  uint16_t irr() const { return chips_[0].irr | (chips_[1].irr << 8); }
  uint16_t isr() const { return chips_[0].isr | (chips_[1].isr << 8); }
  uint16_t imr() const { return chips_[0].imr | (chips_[1].imr << 8); }
  uint16_t elcr() const { return chips_[0].elcr | (chips_[1].elcr << 8); }

 private:
  /// One 8259A.
  struct Chip {
    bool master = false;
    uint8_t irr = 0;            ///< interrupt request register
    uint8_t isr = 0;            ///< in-service register
    uint8_t imr = 0;            ///< interrupt mask register (OCW1)
    uint8_t pins = 0;           ///< current input levels of IR0-7
    uint8_t elcr = 0;           ///< level-triggered lines (PIIX ELCR)
    uint8_t elcr_mask = 0;      ///< writable ELCR bits
    uint8_t vector_base = 0;    ///< ICW2 & 0xf8
    uint8_t lowest = 7;         ///< the line with the lowest priority (rotation)
    uint8_t init_step = 0;      ///< 0: ready; 1, 2, 3: expecting ICW2, ICW3, ICW4
    bool icw4_needed = false;   ///< ICW1.IC4
    bool single = false;        ///< ICW1.SNGL
    bool ltim = false;          ///< ICW1.LTIM: all lines level-triggered
    bool auto_eoi = false;      ///< ICW4.AEOI
    bool sfnm = false;          ///< ICW4.SFNM: special fully nested mode
    bool rotate_aeoi = false;   ///< OCW2 rotate in automatic EOI mode
    bool read_isr = false;      ///< OCW3.RIS: even-port reads return ISR instead of IRR
    bool poll = false;          ///< OCW3.P: next read is a poll word
    bool special_mask = false;  ///< OCW3.SMM

    uint8_t level_mask() const { return ltim ? 0xff : elcr; }
    void set_pin(unsigned ir, bool level);
    /// Priority rank (0 highest) of the best line in `bits`, or 8 if none.
    unsigned best_rank(uint8_t bits) const;
    /// The IR line the chip would present now, or -1.
    int pending_line() const;
    /// Moves `ir` from IRR to ISR as the INTA cycle does.
    void acknowledge(unsigned ir);
    void write_command(uint8_t value);  // ICW1, OCW2, OCW3
    void write_data(uint8_t value);     // ICW2-4, OCW1
    uint8_t read(bool odd);
  };

  uint8_t read_byte(uint16_t port) override;
  void write_byte(uint16_t port, uint8_t value) override;
  /// Propagates the slave's INT to the master's IR2 and recomputes INTR.
  void update();

  Chip chips_[2];
  bool intr_ = false;
};

}  // namespace vmbt
