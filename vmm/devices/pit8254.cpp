// Intel 8254 PIT (datasheet 231164: "Control Word Format", "Read Operations", "Read-Back
// Command", "Modes of Operation") and PC system control port B.
#include "vmm/devices/pit8254.h"

namespace vmbt {

namespace {
constexpr uint16_t kCounterPort = 0x40;
constexpr uint16_t kControlPort = 0x43;
constexpr uint16_t kPortB = 0x61;
constexpr uint64_t kRefreshTicks = 18;  // channel 1's BIOS count: a toggle every ~15.1 us
constexpr uint64_t kNsPerSecond = 1'000'000'000;

uint16_t to_bcd(uint32_t v) {
  return static_cast<uint16_t>((v % 10) | ((v / 10 % 10) << 4) | ((v / 100 % 10) << 8) |
                               ((v / 1000 % 10) << 12));
}

uint32_t from_bcd(uint16_t v) {
  return (v & 0xf) + ((v >> 4) & 0xf) * 10 + ((v >> 8) & 0xf) * 100 + ((v >> 12) & 0xf) * 1000;
}
}  // namespace

// ---- Channel ------------------------------------------------------------------------------------

void Pit8254::Channel::settle(uint64_t tick) {
  if (!reload_pending || !running) return;
  if (elapsed(tick) < reload_at) return;
  // The current period ended (an OUT rising edge) and the counter reloaded with the new count.
  if (reload_at / n > edges_seen) edge_owed = true;
  start_tick += reload_at;
  n = cr;
  reload_pending = false;
  edges_seen = 0;
}

bool Pit8254::Channel::out(uint64_t tick) const {
  const uint64_t d = elapsed(tick);
  switch (mode) {
    case 0:  // low from the control word until terminal count
      return armed && d >= n;
    case 1:  // low from the trigger until terminal count
      return !triggered || d >= n;
    case 2:  // low for one clock when the count reaches 1
      return !(armed && running && n > 1 && d % n == n - 1);
    case 3:  // high for ceil(n/2) clocks, low for floor(n/2)
      return !(armed && running) || d % n < (n + 1) / 2;
    case 4:  // low for one clock at terminal count
      return !(armed && d == n);
    default:  // 5
      return !(triggered && d == n);
  }
}

uint32_t Pit8254::Channel::count(uint64_t tick) const {
  const uint32_t m = modulus();
  if (!armed || ((mode == 1 || mode == 5) && !triggered)) return n % m;
  const uint64_t d = elapsed(tick);
  switch (mode) {
    case 2:
      return static_cast<uint32_t>(n - d % n) % m;
    case 3: {
      // Decrements by two; an odd count spends one extra clock high (first clock: -1) and one
      // fewer low (first clock after reload: -3).
      const uint64_t t = d % n;
      const uint64_t high = (n + 1) / 2;
      uint64_t v;
      if (n % 2 == 0) {
        v = t < high ? n - 2 * t : n - 2 * (t - high);
      } else if (t < high) {
        v = t == 0 ? n : n + 1 - 2 * t;
      } else {
        v = t == high ? n : n - 1 - 2 * (t - high);
      }
      return static_cast<uint32_t>(v % m);
    }
    default:  // 0, 1, 4, 5: down-counter wrapping through the modulus after terminal count
      return static_cast<uint32_t>((n + m - d % m) % m);
  }
}

uint16_t Pit8254::Channel::read_value(uint64_t tick) const {
  const uint32_t v = count(tick);
  return bcd ? to_bcd(v) : static_cast<uint16_t>(v);
}

uint64_t Pit8254::Channel::edges(uint64_t d) const {
  switch (mode) {
    case 0:
      return armed && d >= n;
    case 1:
      return triggered && d >= n;
    case 2:
    case 3:
      return armed ? d / n : 0;
    case 4:
      return armed && d >= n + 1;
    default:
      return triggered && d >= n + 1;
  }
}

uint64_t Pit8254::Channel::next_edge() const {
  switch (mode) {
    case 0:
      return armed && edges_seen == 0 ? n : UINT64_MAX;
    case 1:
      return triggered && edges_seen == 0 ? n : UINT64_MAX;
    case 2:
    case 3:
      return armed ? (edges_seen + 1) * n : UINT64_MAX;
    case 4:
      return armed && edges_seen == 0 ? n + 1 : UINT64_MAX;
    default:
      return triggered && edges_seen == 0 ? n + 1 : UINT64_MAX;
  }
}

void Pit8254::Channel::account(uint64_t tick) {
  settle(tick);
  const uint64_t e = edges(elapsed(tick));
  if (e > edges_seen) {
    edge_owed = true;
    edges_seen = e;
  }
}

void Pit8254::Channel::control(uint8_t value) {
  // "When a Control Word is written to a Counter, all Control Logic is immediately reset and OUT
  // goes to a known initial state"; the new mode needs a count before it counts.
  mode_bits = (value >> 1) & 7;
  mode = mode_bits > 5 ? mode_bits - 4 : mode_bits;
  rw = (value >> 4) & 3;
  bcd = value & 1;
  armed = false;
  triggered = false;
  running = false;
  frozen = 0;
  reload_pending = false;
  null_until = UINT64_MAX;
  edges_seen = 0;
  write_msb_next = false;
  read_msb_next = false;
  count_latched = false;
  status_latched = false;
}

void Pit8254::Channel::write_count(uint8_t value, uint64_t tick) {
  uint16_t raw;
  switch (rw) {
    case 1:
      raw = value;
      break;
    case 2:
      raw = static_cast<uint16_t>(value << 8);
      break;
    default:
      if (!write_msb_next) {
        write_lsb = value;
        write_msb_next = true;
        if (mode == 0) {  // "writing the first byte disables counting", OUT goes low
          armed = false;
          running = false;
          edges_seen = 0;
        }
        return;
      }
      write_msb_next = false;
      raw = static_cast<uint16_t>(write_lsb | (value << 8));
      break;
  }
  uint32_t decoded = bcd ? from_bcd(raw) : raw;
  if (decoded == 0) decoded = modulus();
  cr = decoded;
  load(tick);
}

void Pit8254::Channel::load(uint64_t tick) {
  switch (mode) {
    case 1:
    case 5:  // the count waits for a gate trigger
      armed = true;
      null_until = UINT64_MAX;
      return;
    case 2:
    case 3:
      if (armed && running) {  // takes effect at the end of the current period
        reload_pending = true;
        reload_at = (elapsed(tick) / n + 1) * n;
        null_until = start_tick + reload_at;
        return;
      }
      break;
    default:
      break;
  }
  n = cr;
  armed = true;
  edges_seen = 0;
  reload_pending = false;
  null_until = tick + 1;
  if (gate) {
    running = true;
    start_tick = tick;
  } else {
    running = false;
    frozen = 0;
  }
}

uint8_t Pit8254::Channel::read(uint64_t tick) {
  if (status_latched) {
    status_latched = false;
    return status;
  }
  const uint16_t v = count_latched ? latched : read_value(tick);
  switch (rw) {
    case 1:
      count_latched = false;
      return static_cast<uint8_t>(v);
    case 2:
      count_latched = false;
      return static_cast<uint8_t>(v >> 8);
    default:
      if (!read_msb_next) {
        read_msb_next = true;
        return static_cast<uint8_t>(v);
      }
      read_msb_next = false;
      count_latched = false;
      return static_cast<uint8_t>(v >> 8);
  }
}

void Pit8254::Channel::latch_count(uint64_t tick) {
  if (count_latched) return;  // a second latch before the count is read is ignored
  latched = read_value(tick);
  count_latched = true;
}

void Pit8254::Channel::latch_status(uint64_t tick) {
  if (status_latched) return;
  status = static_cast<uint8_t>((out(tick) ? 0x80 : 0) | (tick < null_until ? 0x40 : 0) |
                                (rw << 4) | (mode_bits << 1) | (bcd ? 1 : 0));
  status_latched = true;
}

void Pit8254::Channel::set_gate(bool level, uint64_t tick) {
  if (level == gate) return;
  gate = level;
  switch (mode) {
    case 0:
    case 4:  // gate enables/suspends counting
      if (!armed) return;
      if (level) {
        running = true;
        start_tick = tick - frozen;
      } else {
        frozen = elapsed(tick);
        running = false;
      }
      return;
    case 1:
    case 5:  // rising edge (re)triggers
      if (level && armed) {
        n = cr;
        triggered = true;
        running = true;
        start_tick = tick;
        edges_seen = 0;
        if (null_until > tick) null_until = tick;
      }
      return;
    default:  // 2, 3: low stops counting (OUT high), rising edge reloads
      if (!armed) return;
      if (level) {
        n = cr;
        reload_pending = false;
        running = true;
        start_tick = tick;
        edges_seen = 0;
      } else {
        frozen = elapsed(tick);
        running = false;
      }
      return;
  }
}

// ---- Pit8254 ------------------------------------------------------------------------------------

Pit8254::Pit8254(IrqSink& irq, std::function<uint64_t()> now_ns)
    : irq_(irq), now_ns_(std::move(now_ns)) {
  channels_[2].gate = false;  // port 0x61 bit 0 starts clear
}

void Pit8254::register_ports(IoBus& bus) {
  bus.add(kCounterPort, 4, this, "pit8254");
  bus.add(kPortB, 1, this, "port61");
}

uint64_t Pit8254::tick_of(uint64_t ns) {
  uint64_t tick =
      static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * kInputHz / kNsPerSecond);
  if (tick < last_tick_) tick = last_tick_;  // the counters never run backwards
  last_tick_ = tick;
  return tick;
}

uint64_t Pit8254::now_tick() {
  return tick_of(now_ns_());
}

uint8_t Pit8254::read_byte(uint16_t port) {
  const uint64_t tick = now_tick();
  for (Channel& ch : channels_) ch.account(tick);
  if (port >= kCounterPort && port < kControlPort) return channels_[port - kCounterPort].read(tick);
  if (port == kPortB) {
    return static_cast<uint8_t>(port61_ | (((tick / kRefreshTicks) & 1) << 4) |
                                (channels_[2].out(tick) ? 0x20 : 0));
  }
  return 0xff;  // the control register is write-only
}

void Pit8254::write_byte(uint16_t port, uint8_t value) {
  const uint64_t tick = now_tick();
  for (Channel& ch : channels_) ch.account(tick);
  if (port >= kCounterPort && port < kControlPort) {
    channels_[port - kCounterPort].write_count(value, tick);
  } else if (port == kControlPort) {
    const unsigned select = value >> 6;
    if (select == 3) {
      // Read-back: bit 5 = !COUNT, bit 4 = !STATUS, bits 3-1 select counters 2-0.
      for (unsigned i = 0; i < 3; ++i) {
        if (!(value & (2u << i))) continue;
        if (!(value & 0x20)) channels_[i].latch_count(tick);
        if (!(value & 0x10)) channels_[i].latch_status(tick);
      }
    } else if (((value >> 4) & 3) == 0) {
      channels_[select].latch_count(tick);
    } else {
      channels_[select].control(value);
    }
  } else if (port == kPortB) {
    port61_ = value & 0x0f;
    channels_[2].set_gate(value & 1, tick);
  }
}

bool Pit8254::out(unsigned channel) {
  const uint64_t tick = now_tick();
  Channel& ch = channels_[channel % 3];
  ch.account(tick);
  return ch.out(tick);
}

void Pit8254::poll(uint64_t now_ns) {
  Channel& ch = channels_[0];
  ch.account(tick_of(now_ns));
  if (ch.edge_owed) {
    ch.edge_owed = false;
    irq_.set_irq(0, true);
    irq_.set_irq(0, false);
  }
}

uint64_t Pit8254::next_deadline_ns() const {
  const Channel& ch = channels_[0];
  if (ch.edge_owed) return 0;
  if (!ch.running) return UINT64_MAX;
  const uint64_t e = ch.next_edge();
  if (e == UINT64_MAX) return UINT64_MAX;
  // The first ns whose tick is >= the edge's tick.
  const unsigned __int128 tick = static_cast<unsigned __int128>(ch.start_tick) + e;
  return static_cast<uint64_t>((tick * kNsPerSecond + kInputHz - 1) / kInputHz);
}

}  // namespace vmbt
