// PC16550D UART. Register and bit names follow the datasheet's Table II; interrupt priorities its
// Table IV ("Interrupt Control Functions"); FIFO behaviour its "FIFO Interrupt Mode Operation".
#include "vmm/devices/uart16550.h"

#include <algorithm>

namespace vmbt {

namespace {
// Register offsets (DLAB = 0 unless noted).
constexpr unsigned kRbrThr = 0;  // DLL with DLAB = 1
constexpr unsigned kIer = 1;     // DLM with DLAB = 1
constexpr unsigned kIirFcr = 2;
constexpr unsigned kLcr = 3;
constexpr unsigned kMcr = 4;
constexpr unsigned kLsr = 5;
constexpr unsigned kMsr = 6;
constexpr unsigned kScr = 7;

constexpr uint8_t kLcrDlab = 0x80;
constexpr uint8_t kMcrDtr = 0x01, kMcrRts = 0x02, kMcrOut1 = 0x04, kMcrOut2 = 0x08, kMcrLoop = 0x10;
constexpr uint8_t kLsrDr = 0x01, kLsrOe = 0x02, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr uint8_t kLsrErrors = 0x1e;  // OE, PE, FE, BI
constexpr uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr uint8_t kMsrDcts = 0x01, kMsrDdsr = 0x02, kMsrTeri = 0x04, kMsrDdcd = 0x08;

// IIR bits 3-0.
constexpr uint8_t kIidNone = 0x01, kIidRls = 0x06, kIidRda = 0x04, kIidTimeout = 0x0c,
                  kIidThre = 0x02, kIidMsi = 0x00;

constexpr uint64_t kUartClockHz = 1'843'200;
}  // namespace

Uart16550::Uart16550(uint16_t base, IrqSink& irq, unsigned irq_line, CharBackend& backend,
                     std::function<uint64_t()> now_ns)
    : base_(base), irq_(irq), irq_line_(irq_line), backend_(backend), now_ns_(std::move(now_ns)) {
  msr_ = modem_inputs();
}

void Uart16550::register_ports(IoBus& bus) {
  bus.add(base_, 8, this, "uart16550");
}

uint8_t Uart16550::read_byte(uint16_t port) {
  const unsigned offset = static_cast<unsigned>(port - base_);
  return offset < 8 ? read_register(offset) : 0xff;
}

void Uart16550::write_byte(uint16_t port, uint8_t value) {
  const unsigned offset = static_cast<unsigned>(port - base_);
  if (offset < 8) write_register(offset, value);
}

uint8_t Uart16550::lsr() const {
  uint8_t value = kLsrThre | kLsrTemt | line_errors_;
  if (!rx_.empty()) value |= kLsrDr;
  return value;
}

uint8_t Uart16550::modem_inputs() const {
  if (!(mcr_ & kMcrLoop)) return kMsrDcd | kMsrDsr | kMsrCts;
  uint8_t inputs = 0;
  if (mcr_ & kMcrRts) inputs |= kMsrCts;
  if (mcr_ & kMcrDtr) inputs |= kMsrDsr;
  if (mcr_ & kMcrOut1) inputs |= kMsrRi;
  if (mcr_ & kMcrOut2) inputs |= kMsrDcd;
  return inputs;
}

void Uart16550::set_modem_inputs(uint8_t inputs) {
  const uint8_t old = msr_ & 0xf0;
  const uint8_t changed = old ^ inputs;
  uint8_t deltas = msr_ & 0x0f;
  if (changed & kMsrCts) deltas |= kMsrDcts;
  if (changed & kMsrDsr) deltas |= kMsrDdsr;
  if ((old & kMsrRi) && !(inputs & kMsrRi)) deltas |= kMsrTeri;  // trailing edge only
  if (changed & kMsrDcd) deltas |= kMsrDdcd;
  msr_ = inputs | deltas;
}

uint64_t Uart16550::timeout_ns() const {
  // Start bit + 5-8 data bits + optional parity + 1 or 2 stop bits; 16 clocks per bit.
  const unsigned bits = 1 + (5 + (lcr_ & 3)) + ((lcr_ & 0x08) ? 1 : 0) + ((lcr_ & 0x04) ? 2 : 1);
  const uint64_t divisor = divisor_ ? divisor_ : 0x10000;
  return 4 * bits * divisor * 16 * 1'000'000'000ull / kUartClockHz;
}

uint8_t Uart16550::interrupt_id() const {
  if ((ier_ & kIerRls) && (line_errors_ & kLsrErrors)) return kIidRls;
  if (ier_ & kIerRda) {
    if (fifo_enabled_) {
      if (rx_.size() >= rx_trigger_) return kIidRda;
      if (timeout_pending_) return kIidTimeout;
    } else if (!rx_.empty()) {
      return kIidRda;
    }
  }
  if ((ier_ & kIerThre) && thre_pending_) return kIidThre;
  if ((ier_ & kIerMsi) && (msr_ & 0x0f)) return kIidMsi;
  return kIidNone;
}

void Uart16550::update_irq() {
  const bool level = interrupt_id() != kIidNone && (mcr_ & kMcrOut2) && !(mcr_ & kMcrLoop);
  if (level != irq_level_) {
    irq_level_ = level;
    irq_.set_irq(irq_line_, level);
  }
}

void Uart16550::receive(uint8_t byte, uint64_t now_ns) {
  if (rx_.size() >= rx_capacity()) {
    // Overrun: without FIFOs the RBR is overwritten; with FIFOs the character in the shift
    // register is lost and the FIFO is kept.
    line_errors_ |= kLsrOe;
    if (!fifo_enabled_) rx_.back() = byte;
  } else {
    rx_.push_back(byte);
  }
  rx_activity_ns_ = now_ns;
  timeout_pending_ = false;
}

void Uart16550::clear_rx() {
  rx_.clear();
  timeout_pending_ = false;
}

uint8_t Uart16550::read_register(unsigned offset) {
  const bool dlab = lcr_ & kLcrDlab;
  uint8_t value = 0xff;
  switch (offset) {
    case kRbrThr:
      if (dlab) {
        value = static_cast<uint8_t>(divisor_);
      } else {
        if (!rx_.empty()) {
          last_rbr_ = rx_.front();
          rx_.pop_front();
        }
        value = last_rbr_;
        // Reading the FIFO clears a timeout indication and restarts its timer.
        timeout_pending_ = false;
        rx_activity_ns_ = now_ns_();
      }
      break;
    case kIer:
      value = dlab ? static_cast<uint8_t>(divisor_ >> 8) : ier_;
      break;
    case kIirFcr: {
      const uint8_t id = interrupt_id();
      if (id == kIidThre) thre_pending_ = false;
      value = static_cast<uint8_t>(id | (fifo_enabled_ ? 0xc0 : 0x00));
      break;
    }
    case kLcr:
      value = lcr_;
      break;
    case kMcr:
      value = mcr_;
      break;
    case kLsr:
      value = lsr();
      line_errors_ = 0;
      break;
    case kMsr:
      value = msr_;
      msr_ &= 0xf0;
      break;
    case kScr:
      value = scr_;
      break;
  }
  update_irq();
  return value;
}

void Uart16550::write_register(unsigned offset, uint8_t value) {
  const bool dlab = lcr_ & kLcrDlab;
  switch (offset) {
    case kRbrThr:
      if (dlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0xff00) | value);
      } else {
        thre_pending_ = false;
        update_irq();
        if (mcr_ & kMcrLoop) {
          receive(value, now_ns_());
        } else {
          backend_.write(value);
        }
        thre_pending_ = true;  // the byte has left THR
      }
      break;
    case kIer:
      if (dlab) {
        divisor_ = static_cast<uint16_t>((divisor_ & 0x00ff) | (value << 8));
      } else {
        const uint8_t old = ier_;
        ier_ = value & 0x0f;
        if ((ier_ & kIerThre) && !(old & kIerThre)) thre_pending_ = true;  // THR is empty
        if (!(ier_ & kIerThre)) thre_pending_ = false;
      }
      break;
    case kIirFcr: {  // FCR
      const bool enable = value & 0x01;
      if (enable != fifo_enabled_) clear_rx();  // mode change clears the FIFOs
      fifo_enabled_ = enable;
      if (enable) {  // other bits are only programmed with FCR0 = 1
        if (value & 0x02) clear_rx();
        // FCR2 (clear XMIT FIFO): nothing is ever queued for transmission.
        dma_mode_ = value & 0x08;
        static constexpr uint8_t kTrigger[4] = {1, 4, 8, 14};
        rx_trigger_ = kTrigger[value >> 6];
      }
      break;
    }
    case kLcr:
      lcr_ = value;
      break;
    case kMcr:
      mcr_ = value & 0x1f;
      set_modem_inputs(modem_inputs());
      break;
    case kLsr:  // factory test only
    case kMsr:
      break;
    case kScr:
      scr_ = value;
      break;
  }
  update_irq();
}

void Uart16550::poll(uint64_t now_ns) {
  if (!(mcr_ & kMcrLoop)) {
    while (rx_.size() < rx_capacity()) {
      uint8_t buf[kFifoSize];
      const size_t room = rx_capacity() - rx_.size();
      const size_t n = backend_.read(buf, room);
      if (n == 0) break;
      for (size_t i = 0; i < std::min(n, room); ++i) receive(buf[i], now_ns);
    }
  }
  if (fifo_enabled_ && !rx_.empty() && !timeout_pending_ &&
      now_ns >= rx_activity_ns_ + timeout_ns()) {
    timeout_pending_ = true;
  }
  update_irq();
}

uint64_t Uart16550::next_deadline_ns() const {
  if (fifo_enabled_ && (ier_ & kIerRda) && !rx_.empty() && !timeout_pending_ &&
      rx_.size() < rx_trigger_) {
    return rx_activity_ns_ + timeout_ns();
  }
  return UINT64_MAX;
}

}  // namespace vmbt
