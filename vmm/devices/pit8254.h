// Intel 8254 programmable interval timer and the PC's system control port B (0x61).
#pragma once

#include <cstdint>
#include <functional>

#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

/// The PC's 8254 at ports 0x40-0x43 (Intel 8254 datasheet, order 231164) plus port 0x61 (system
/// control port B, IBM PC/AT Technical Reference "System Timer" / PIIX4 datasheet 4.1.26 NMISC).
///
/// Counters are derived from elapsed host time, never ticked: the input clock is 1193182 Hz and
/// the tick number of a host time t (ns) is floor(t * 1193182 / 1e9), so all channels and the
/// refresh toggle share one tick grid. A count is taken to be loaded at the tick of its write
/// (the datasheet's extra "load" clock, 838 ns, is not modelled).
///
/// - Modes 0-5 (6 and 7 alias 2 and 3), count 0 = 65536 (10000 in BCD), binary and BCD counting,
///   access modes LSB / MSB / LSB-then-MSB with the read and write byte flip-flops, the counter
///   latch command and the read-back command (count and status latching, status byte OUT, NULL
///   COUNT, RW, M2-M0, BCD; a second latch before the first is read is ignored).
/// - Gates: channels 0 and 1 are tied high; channel 2's gate is port 0x61 bit 0. Modes 0/4: gate
///   low suspends counting; modes 2/3: gate low stops counting with OUT high, a rising edge
///   reloads; modes 1/5: a rising edge (re)triggers.
/// - Mode 2/3 count writes during counting take effect at the end of the current period; mode 0/4
///   writes restart counting (the first byte of a two-byte mode-0 count stops it, OUT low).
/// - Channel 0's OUT drives IRQ0: every rising edge of OUT is delivered as a pulse (raise, then
///   lower) on line 0 by poll(); edges that fell between two polls are coalesced into one pulse,
///   the period's phase is kept. Mode 0/4 also give one pulse (at terminal count / after the
///   strobe).
/// - Port 0x61: bit 0 gate 2, bit 1 speaker data enable, bits 2-3 stored (parity/IOCHK check
///   enables), bit 4 refresh toggle (flips every 18 ticks, about 15.1 us), bit 5 OUT2, bits 6-7 0.
///   Writes set bits 0-3.
///
/// Initial state: no channel has a count (as after a control word for mode 3, LSB-then-MSB), so
/// IRQ0 stays quiet until the guest programs channel 0 (there is no BIOS to start the 18.2 Hz
/// tick).
class Pit8254 : public ByteIoDevice, public PolledDevice {
 public:
  static constexpr uint64_t kInputHz = 1'193'182;  ///< counter input clock (Hz)

  /// `now_ns` is the clock (ns) the counters follow; poll() receives times from the same clock.
  explicit Pit8254(IrqSink& irq, std::function<uint64_t()> now_ns = host_now_ns);

  /// Adds ports 0x40-0x43 and 0x61 to `bus`.
  void register_ports(IoBus& bus);

  /// Delivers an IRQ0 pulse if channel 0's OUT rose since the last poll.
  void poll(uint64_t now_ns) override;
  /// Host time (ns) of channel 0's next OUT rising edge (0 if one is already owed), or UINT64_MAX.
  uint64_t next_deadline_ns() const override;

  /// OUT of `channel` (0-2) at the current time.
  bool out(unsigned channel);

 private:
  struct Channel {
    uint8_t mode = 3;       ///< effective mode 0-5
    uint8_t mode_bits = 3;  ///< M2-M0 as written (status byte)
    uint8_t rw = 3;         ///< 1 LSB, 2 MSB, 3 LSB then MSB
    bool bcd = false;
    bool gate = true;
    uint32_t cr = 0x10000;        ///< count register (decoded, 1..65536)
    uint32_t n = 0x10000;         ///< count being counted (decoded)
    bool armed = false;           ///< a count has been written since the control word
    bool triggered = false;       ///< modes 1/5: a gate trigger started counting
    bool running = false;         ///< counting (false: suspended at `frozen`)
    uint64_t start_tick = 0;      ///< absolute tick at which elapsed = 0
    uint64_t frozen = 0;          ///< elapsed ticks while suspended
    bool reload_pending = false;  ///< modes 2/3: cr takes over at elapsed = reload_at
    uint64_t reload_at = 0;
    uint64_t null_until = UINT64_MAX;  ///< absolute tick at which NULL COUNT clears
    uint64_t edges_seen = 0;           ///< OUT rising edges already delivered in this epoch
    bool edge_owed = false;            ///< an edge of a finished epoch not yet delivered
    bool write_msb_next = false;
    uint8_t write_lsb = 0;
    bool read_msb_next = false;
    bool count_latched = false;
    uint16_t latched = 0;
    bool status_latched = false;
    uint8_t status = 0;

    uint64_t elapsed(uint64_t tick) const { return running ? tick - start_tick : frozen; }
    uint32_t modulus() const { return bcd ? 10000 : 0x10000; }
    /// Applies a deferred mode 2/3 reload whose time has come.
    void settle(uint64_t tick);
    /// settle(), then records OUT rising edges up to `tick` in `edge_owed`.
    void account(uint64_t tick);
    bool out(uint64_t tick) const;
    /// Counting element value (binary, 0..modulus-1).
    uint32_t count(uint64_t tick) const;
    /// Count as the guest reads it (BCD-encoded in BCD mode).
    uint16_t read_value(uint64_t tick) const;
    /// OUT rising edges in the current epoch up to elapsed `d`.
    uint64_t edges(uint64_t d) const;
    /// Elapsed ticks of the next rising edge after `edges_seen`, or UINT64_MAX.
    uint64_t next_edge() const;
    void control(uint8_t value);
    void write_count(uint8_t value, uint64_t tick);
    void load(uint64_t tick);
    uint8_t read(uint64_t tick);
    void latch_count(uint64_t tick);
    void latch_status(uint64_t tick);
    void set_gate(bool level, uint64_t tick);
  };

  /// Host tick now, never going backwards.
  uint64_t now_tick();
  uint64_t tick_of(uint64_t ns);
  uint8_t read_byte(uint16_t port) override;
  void write_byte(uint16_t port, uint8_t value) override;

  IrqSink& irq_;
  std::function<uint64_t()> now_ns_;
  Channel channels_[3];
  uint8_t port61_ = 0;  ///< bits 0-3 as written
  uint64_t last_tick_ = 0;
};

}  // namespace vmbt
