// 16550A UART: behaviour from the PC16550D datasheet (Table II registers, Table IV interrupts).
#include "vmm/devices/uart16550.h"

#include <gtest/gtest.h>

#include "tests/unit/fake_irq_sink.h"
#include "vmm/devices/buffer_console.h"
#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

constexpr uint16_t kBase = 0x3f8;
constexpr uint16_t kRbr = kBase, kIer = kBase + 1, kIir = kBase + 2, kLcr = kBase + 3,
                   kMcr = kBase + 4, kLsr = kBase + 5, kMsr = kBase + 6, kScr = kBase + 7;

class UartTest : public ::testing::Test {
 protected:
  UartTest() : uart(kBase, irq, 4, console, [this] { return now; }) { uart.register_ports(bus); }
  uint8_t in(uint16_t port) { return static_cast<uint8_t>(bus.read(port, 1)); }
  void out(uint16_t port, uint8_t v) { bus.write(port, 1, v); }

  uint64_t now = 1'000'000;
  testing::FakeIrqSink irq;
  BufferConsole console;
  Uart16550 uart;
  IoBus bus;
};

TEST_F(UartTest, ResetState) {
  EXPECT_EQ(in(kIer), 0x00);
  EXPECT_EQ(in(kIir), 0x01);  // no interrupt pending, FIFOs off
  EXPECT_EQ(in(kLcr), 0x00);
  EXPECT_EQ(in(kMcr), 0x00);
  EXPECT_EQ(in(kLsr), 0x60);       // THRE | TEMT
  EXPECT_EQ(in(kMsr)&0xf0, 0xb0);  // DCD, DSR, CTS of a connected terminal
}

TEST_F(UartTest, DlabSwitchesOffsetsZeroAndOneToDivisorLatch) {
  out(kIer, 0x05);
  out(kLcr, 0x83);  // DLAB, 8N1
  out(kRbr, 0x01);  // DLL
  out(kIer, 0x02);  // DLM
  EXPECT_EQ(in(kRbr), 0x01);
  EXPECT_EQ(in(kIer), 0x02);
  EXPECT_TRUE(console.output().empty());  // DLL write did not transmit
  out(kLcr, 0x03);
  EXPECT_EQ(in(kIer), 0x05);  // IER untouched by the DLM write
  EXPECT_EQ(in(kLcr), 0x03);
}

TEST_F(UartTest, IerHasFourBits) {
  out(kIer, 0xff);
  EXPECT_EQ(in(kIer), 0x0f);
}

TEST_F(UartTest, ThrWriteGoesToBackend) {
  out(kRbr, 'h');
  out(kRbr, 'i');
  EXPECT_EQ(console.output(), "hi");
  EXPECT_EQ(in(kLsr)&0x60, 0x60);
}

TEST_F(UartTest, LoopbackEchoesThrToRbr) {
  out(kMcr, 0x10);
  out(kRbr, 'A');
  EXPECT_TRUE(console.output().empty());
  EXPECT_EQ(in(kLsr)&0x01, 0x01);  // DR
  EXPECT_EQ(in(kRbr), 'A');
  EXPECT_EQ(in(kLsr)&0x01, 0x00);
}

TEST_F(UartTest, LoopbackIgnoresHostInput) {
  out(kMcr, 0x10);
  console.push_input("x");
  uart.poll(now);
  EXPECT_EQ(in(kLsr)&0x01, 0x00);
  EXPECT_EQ(console.pending_input(), 1u);
}

TEST_F(UartTest, LoopbackModemStatusFollowsMcr) {
  in(kMsr);
  out(kMcr, 0x10);            // loop, all outputs off: CTS, DSR, DCD drop
  EXPECT_EQ(in(kMsr), 0x0b);  // DCTS | DDSR | DDCD
  EXPECT_EQ(in(kMsr), 0x00);  // deltas cleared by the read
  out(kMcr, 0x1a);            // loop | OUT2 | RTS -> DCD | CTS (what Linux's 8250 probe checks)
  EXPECT_EQ(in(kMsr), 0x99);
  out(kMcr, 0x14);            // OUT1 -> RI; OUT2/RTS off
  EXPECT_EQ(in(kMsr), 0x49);  // RI, DCTS, DDCD (RI rising sets no TERI)
  out(kMcr, 0x10);
  EXPECT_EQ(in(kMsr), 0x04);  // TERI on RI's trailing edge
}

TEST_F(UartTest, LoopbackOverrunWithoutFifoOverwritesRbr) {
  out(kMcr, 0x10);
  out(kRbr, '1');
  out(kRbr, '2');
  EXPECT_EQ(in(kLsr), 0x63);  // DR | OE | THRE | TEMT
  EXPECT_EQ(in(kLsr), 0x61);  // OE cleared by reading LSR
  EXPECT_EQ(in(kRbr), '2');
}

TEST_F(UartTest, FifoEnableShowsInIir) {
  out(kIir, 0x01);
  EXPECT_EQ(in(kIir), 0xc1);
  out(kIir, 0x00);
  EXPECT_EQ(in(kIir), 0x01);
}

TEST_F(UartTest, RxInterruptOnlyAtTriggerLevel) {
  out(kIir, 0x41);  // FIFO on, trigger 4
  out(kIer, 0x01);
  out(kMcr, 0x08);  // OUT2
  console.push_input("abc");
  uart.poll(now);
  EXPECT_EQ(in(kIir), 0xc1);
  EXPECT_FALSE(irq.levels[4]);
  EXPECT_EQ(in(kLsr)&0x01, 0x01);
  console.push_input("d");
  uart.poll(now);
  EXPECT_EQ(in(kIir), 0xc4);
  EXPECT_TRUE(irq.levels[4]);
  EXPECT_EQ(in(kRbr), 'a');  // below the trigger again
  EXPECT_EQ(in(kIir), 0xc1);
  EXPECT_FALSE(irq.levels[4]);
}

TEST_F(UartTest, TriggerLevels) {
  const struct {
    uint8_t fcr;
    size_t level;
  } cases[] = {{0x01, 1}, {0x41, 4}, {0x81, 8}, {0xc1, 14}};
  for (const auto& c : cases) {
    out(kIir, c.fcr | 0x02);  // also clear the RX FIFO
    out(kIer, 0x01);
    console.push_input(std::string(c.level - 1, 'x'));
    uart.poll(now);
    EXPECT_EQ(in(kIir)&0x0f, 0x01) << "level " << c.level;
    console.push_input("y");
    uart.poll(now);
    EXPECT_EQ(in(kIir)&0x0f, 0x04) << "level " << c.level;
  }
}

TEST_F(UartTest, FifoHoldsSixteenBytesAndPollTakesOnlyWhatFits) {
  out(kIir, 0x01);
  console.push_input(std::string(20, 'z'));
  uart.poll(now);
  EXPECT_EQ(console.pending_input(), 4u);
  EXPECT_EQ(in(kLsr)&0x02, 0x00);  // nothing lost: no overrun
  for (int i = 0; i < 16; ++i) EXPECT_EQ(in(kRbr), 'z');
  EXPECT_EQ(in(kLsr)&0x01, 0x00);
}

TEST_F(UartTest, WithoutFifoOneByteAtATime) {
  console.push_input("ab");
  uart.poll(now);
  EXPECT_EQ(console.pending_input(), 1u);
  EXPECT_EQ(in(kRbr), 'a');
  uart.poll(now);
  EXPECT_EQ(in(kRbr), 'b');
}

TEST_F(UartTest, FcrClearsReceiveFifo) {
  out(kIir, 0x01);
  console.push_input("abc");
  uart.poll(now);
  out(kIir, 0x03);
  EXPECT_EQ(in(kLsr)&0x01, 0x00);
}

TEST_F(UartTest, CharacterTimeoutAfterFourCharacterTimes) {
  out(kLcr, 0x83);
  out(kRbr, 0x01);  // divisor 1: 115200 baud
  out(kIer, 0x00);
  out(kLcr, 0x03);  // 8N1: 10 bits a character, 86.8 us
  out(kIir, 0xc1);  // trigger 14
  out(kIer, 0x01);
  out(kMcr, 0x08);
  console.push_input("q");
  uart.poll(now);
  EXPECT_EQ(in(kIir), 0xc1);
  // 4 characters = 40 bits at 115200 baud = 347.2 us.
  EXPECT_NEAR(static_cast<double>(uart.next_deadline_ns() - now), 347222.0, 1.0);
  uart.poll(now + 340'000);
  EXPECT_EQ(in(kIir), 0xc1);
  uart.poll(now + 350'000);
  EXPECT_EQ(in(kIir), 0xcc);
  EXPECT_TRUE(irq.levels[4]);
  EXPECT_EQ(in(kRbr), 'q');
  EXPECT_EQ(in(kIir), 0xc1);
  EXPECT_FALSE(irq.levels[4]);
}

TEST_F(UartTest, ThreInterruptArmedByIerAndClearedByIirRead) {
  out(kMcr, 0x08);
  out(kIer, 0x02);
  EXPECT_TRUE(irq.levels[4]);
  EXPECT_EQ(in(kIir), 0x02);
  EXPECT_FALSE(irq.levels[4]);
  EXPECT_EQ(in(kIir), 0x01);
  // Re-enabling ETBEI re-arms it (the THR is still empty).
  out(kIer, 0x00);
  out(kIer, 0x02);
  EXPECT_EQ(in(kIir), 0x02);
  // Each transmitted byte empties THR again: a new edge on the line.
  const unsigned before = irq.rises[4];
  out(kRbr, 'x');
  EXPECT_EQ(irq.rises[4], before + 1);
  EXPECT_TRUE(irq.levels[4]);
}

TEST_F(UartTest, InterruptLineGatedByOut2) {
  out(kIer, 0x02);
  EXPECT_FALSE(irq.levels[4]);
  EXPECT_EQ(in(kIir), 0x02);  // pending inside the UART nonetheless
  out(kIer, 0x00);
  out(kIer, 0x02);
  out(kMcr, 0x08);
  EXPECT_TRUE(irq.levels[4]);
  out(kMcr, 0x00);
  EXPECT_FALSE(irq.levels[4]);
}

TEST_F(UartTest, LoopbackClosesTheInterruptGate) {
  out(kMcr, 0x18);  // loopback with OUT2
  out(kIer, 0x02);
  EXPECT_EQ(in(kIir), 0x02);  // pending inside the UART
  out(kIer, 0x00);
  out(kIer, 0x02);
  EXPECT_FALSE(irq.levels[4]);  // but OUT2 is forced inactive in loopback
  out(kMcr, 0x08);
  EXPECT_TRUE(irq.levels[4]);
}

TEST_F(UartTest, IirPriorityOrder) {
  out(kMcr, 0x10);  // loopback: produces MSR deltas and lets us overrun
  out(kRbr, '1');
  out(kRbr, '2');  // overrun
  out(kIer, 0x0f);
  EXPECT_EQ(in(kIir), 0x06);  // receiver line status first
  in(kLsr);
  EXPECT_EQ(in(kIir), 0x04);  // then received data
  in(kRbr);
  EXPECT_EQ(in(kIir), 0x02);  // then THR empty (cleared by this read)
  EXPECT_EQ(in(kIir), 0x00);  // then modem status
  in(kMsr);
  EXPECT_EQ(in(kIir), 0x01);
}

TEST_F(UartTest, ScratchRegister) {
  out(kScr, 0x5a);
  EXPECT_EQ(in(kScr), 0x5a);
}

TEST_F(UartTest, DataReadyOnHostInput) {
  console.push_input("k");
  uart.poll(now);
  EXPECT_EQ(in(kLsr), 0x61);
  EXPECT_EQ(in(kRbr), 'k');
  EXPECT_EQ(in(kLsr), 0x60);
}

}  // namespace
}  // namespace vmbt
