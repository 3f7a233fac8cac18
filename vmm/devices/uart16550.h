// National Semiconductor / TI PC16550D UART (the PC's COM ports).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>

#include "vmm/devices/char_backend.h"
#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

/// A 16550A UART at `base` .. `base + 7` (PC16550D datasheet, "Registers", Table II), connected
/// to a host CharBackend. Modelled:
///
/// - RBR/THR, IER (4 bits), IIR/FCR, LCR (DLAB switches offsets 0/1 to DLL/DLM), MCR (5 bits),
///   LSR, MSR, SCR.
/// - FIFO mode (FCR0): a 16-byte receiver FIFO, RX trigger levels 1/4/8/14 (FCR7-6), FCR1/FCR2
///   clear the FIFOs, IIR7-6 = 11 while FIFOs are enabled; the character timeout interrupt (IIR =
///   0xc) fires when the FIFO holds data nobody received or read for 4 character times, computed
///   from the divisor and LCR word length, parity and stop bits at a 1.8432 MHz input clock.
///   Without FIFOs the receiver holds one byte.
/// - Transmission is immediate: a THR write hands the byte to the backend and THR/TSR are empty
///   again at once (LSR.THRE and LSR.TEMT always read 1). Each THR write ends the THRE interrupt
///   and raises it again, as the real chip does when the character has moved to the shift
///   register; enabling IER.ETBEI (0 -> 1) arms it too (what 16550s do and drivers such as Linux's
///   8250 probe for). Reading IIR while THRE is the reported source clears it.
/// - Interrupt priorities (Table IV): receiver line status (OE; PE/FE/BI never occur) > received
///   data available / character timeout > THR empty > modem status.
/// - Loopback (MCR4): THR bytes go to the receiver instead of the backend, host input is
///   disconnected, and MSR CTS/DSR/RI/DCD follow MCR RTS/DTR/OUT1/OUT2 with the delta bits
///   (DCTS, DDSR, TERI, DDCD) set on change. Outside loopback the modem inputs read as a connected
///   terminal: DCD, DSR and CTS asserted, RI not.
/// - The interrupt line is driven high while an enabled interrupt is pending AND MCR.OUT2 is set
///   (the PC gates the UART's INTR with OUT2) AND the UART is not in loopback (the datasheet forces
///   OUT2 inactive in loopback, which closes that gate).
///
/// Received bytes are never lost: poll() only takes from the backend what the receiver has room
/// for, so LSR.OE only happens in loopback.
class Uart16550 : public ByteIoDevice, public PolledDevice {
 public:
  /// `irq_line` is the ISA line driven on `irq`; `now_ns` is the clock (ns) used for the character
  /// timeout.
  Uart16550(uint16_t base, IrqSink& irq, unsigned irq_line, CharBackend& backend,
            std::function<uint64_t()> now_ns = host_now_ns);

  /// Adds ports base .. base + 7 to `bus`.
  void register_ports(IoBus& bus);

  /// Takes input from the backend while the receiver has room, evaluates the character timeout
  /// at `now_ns`, and updates the interrupt line.
  void poll(uint64_t now_ns) override;
  /// When the character timeout would fire (ns), or UINT64_MAX.
  uint64_t next_deadline_ns() const override;

  uint16_t base() const { return base_; }

 private:
  enum : uint8_t {
    kIerRda = 0x01,   ///< ERBFI: received data available (and timeout)
    kIerThre = 0x02,  ///< ETBEI: transmitter holding register empty
    kIerRls = 0x04,   ///< ELSI: receiver line status
    kIerMsi = 0x08,   ///< EDSSI: modem status
  };

  uint8_t read_byte(uint16_t port) override;
  void write_byte(uint16_t port, uint8_t value) override;
  /// The register at `offset` (0-7) from the base port.
  uint8_t read_register(unsigned offset);
  void write_register(unsigned offset, uint8_t value);
  /// Current IIR bits 3-0 (0x1 = nothing pending).
  uint8_t interrupt_id() const;
  void update_irq();
  void receive(uint8_t byte, uint64_t now_ns);
  void clear_rx();
  size_t rx_capacity() const { return fifo_enabled_ ? kFifoSize : 1; }
  uint8_t lsr() const;
  /// CTS/DSR/RI/DCD (MSR bits 7-4) as seen now.
  uint8_t modem_inputs() const;
  void set_modem_inputs(uint8_t inputs);
  /// Four character times in ns for the current divisor and line format.
  uint64_t timeout_ns() const;

  static constexpr size_t kFifoSize = 16;

  uint16_t base_;
  IrqSink& irq_;
  unsigned irq_line_;
  CharBackend& backend_;
  std::function<uint64_t()> now_ns_;

  std::deque<uint8_t> rx_;
  uint8_t last_rbr_ = 0;
  uint8_t ier_ = 0;
  uint8_t lcr_ = 0;
  uint8_t mcr_ = 0;
  uint8_t msr_ = 0;          ///< inputs (bits 7-4) and deltas (bits 3-0)
  uint8_t line_errors_ = 0;  ///< LSR error bits (OE) until LSR is read
  uint8_t scr_ = 0;
  uint16_t divisor_ = 12;  ///< 9600 baud at 1.8432 MHz
  bool fifo_enabled_ = false;
  bool dma_mode_ = false;
  uint8_t rx_trigger_ = 1;
  bool thre_pending_ = false;
  bool timeout_pending_ = false;
  uint64_t rx_activity_ns_ = 0;  ///< last byte received or read, for the character timeout
  bool irq_level_ = false;
};

}  // namespace vmbt
