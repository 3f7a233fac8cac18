// Intel 8254 PIT with a fake clock: counts, OUT and IRQ0 against the datasheet's mode timing
// (input clock 1193182 Hz; tick k of time t ns is floor(t * 1193182 / 1e9)).
#include "vmm/devices/pit8254.h"

#include <gtest/gtest.h>

#include "tests/unit/fake_irq_sink.h"
#include "vmm/machine/io_bus.h"

namespace vmbt {
namespace {

constexpr uint64_t kHz = 1193182;

uint64_t ticks(uint64_t ns) {
  return static_cast<uint64_t>(static_cast<unsigned __int128>(ns) * kHz / 1'000'000'000u);
}
// The first nanosecond of tick k.
uint64_t at_tick(uint64_t k) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(k) * 1'000'000'000u + kHz - 1) /
                               kHz);
}

class PitTest : public ::testing::Test {
 protected:
  PitTest() : pit(irq, [this] { return now; }) { pit.register_ports(bus); }
  uint8_t in(uint16_t port) { return static_cast<uint8_t>(bus.read(port, 1)); }
  void out(uint16_t port, uint8_t v) { bus.write(port, 1, v); }
  void program(uint8_t control, unsigned channel, uint16_t count) {
    out(0x43, control);
    out(0x40 + channel, count & 0xff);
    out(0x40 + channel, count >> 8);
  }
  uint16_t latched(unsigned channel) {
    out(0x43, static_cast<uint8_t>(channel << 6));  // counter latch command
    const uint8_t lo = in(0x40 + channel);
    return static_cast<uint16_t>(lo | (in(0x40 + channel) << 8));
  }
  uint64_t now = 0;
  testing::FakeIrqSink irq;
  Pit8254 pit;
  IoBus bus;
};

TEST_F(PitTest, Mode2CountFollowsElapsedTime) {
  program(0x34, 0, 1000);  // channel 0, LSB then MSB, mode 2, binary
  for (uint64_t n : {0ull, 838ull, 839ull, 123'456ull, 838'000ull, 5'000'000ull, 77'777'777ull}) {
    now = n;
    EXPECT_EQ(latched(0), 1000 - ticks(n) % 1000) << n << " ns";
  }
}

TEST_F(PitTest, CountZeroMeans65536) {
  program(0x34, 0, 0);
  EXPECT_EQ(latched(0), 0);  // 65536 reads as 0
  now = at_tick(1);
  EXPECT_EQ(latched(0), 0xffff);
  now = at_tick(65536 + 5);
  EXPECT_EQ(latched(0), 65536 - 5);
}

TEST_F(PitTest, LatchFreezesValueUntilRead) {
  program(0x34, 0, 50000);
  now = 1'000'000;
  out(0x43, 0x00);  // latch counter 0
  now = 2'000'000;
  out(0x43, 0x00);  // ignored: the first latch was not read yet
  const uint8_t lo = in(0x40), hi = in(0x40);
  EXPECT_EQ(lo | (hi << 8), 50000 - ticks(1'000'000));
  const uint8_t lo2 = in(0x40), hi2 = in(0x40);  // unlatched: current value
  EXPECT_EQ(lo2 | (hi2 << 8), 50000 - ticks(2'000'000));
}

TEST_F(PitTest, ReadBackStatusByte) {
  out(0x43, 0x34);
  out(0x43, 0xe2);  // read-back: status only, counter 0
  // OUT high (mode 2 initial), NULL COUNT (no count yet), RW = 11, mode 010, binary.
  EXPECT_EQ(in(0x40), 0xf4);
  out(0x40, 0xe8);
  out(0x40, 0x03);
  now = at_tick(10);
  out(0x43, 0xe2);
  EXPECT_EQ(in(0x40), 0xb4);  // count loaded: NULL COUNT clear

  out(0x43, 0x70);  // counter 1, mode 0
  out(0x43, 0xe4);
  EXPECT_EQ(in(0x41), 0x70);  // OUT low in mode 0, NULL COUNT

  out(0x43, 0x97);  // counter 2, LSB only, mode 3, BCD
  out(0x43, 0xe8);
  EXPECT_EQ(in(0x42), 0xd7);
}

TEST_F(PitTest, ReadBackStatusThenCount) {
  program(0x34, 0, 1000);
  now = at_tick(100);
  out(0x43, 0xc2);  // latch count and status of counter 0
  EXPECT_EQ(in(0x40), 0xb4);
  now = at_tick(200);
  const uint8_t lo = in(0x40), hi = in(0x40);
  EXPECT_EQ(lo | (hi << 8), 900);
}

TEST_F(PitTest, LsbOnlyAndMsbOnlyAccess) {
  out(0x43, 0x10);  // counter 0, LSB only, mode 0
  out(0x40, 0x50);
  EXPECT_EQ(in(0x40), 0x50);
  now = at_tick(10);
  EXPECT_EQ(in(0x40), 70);
  EXPECT_EQ(in(0x40), 70);  // no byte flip-flop in LSB-only mode
  out(0x43, 0x20);          // counter 0, MSB only, mode 0
  out(0x40, 0x02);          // count 0x200
  EXPECT_EQ(in(0x40), 0x02);
  now = at_tick(11);
  EXPECT_EQ(in(0x40), 0x01);  // 0x1ff
}

TEST_F(PitTest, BcdCounting) {
  program(0x31, 0, 0x1000);  // mode 0, BCD count 1000
  now = at_tick(1);
  EXPECT_EQ(latched(0), 0x0999);
  now = at_tick(1000 + 1);
  EXPECT_EQ(latched(0), 0x9999);  // wraps through 0 to 9999
}

TEST_F(PitTest, Mode0Out2AtPort61OnlyWithGate) {
  out(0x61, 0x01);  // gate 2 on, speaker off
  EXPECT_EQ(in(0x61) & 0x03, 0x01);
  program(0xb0, 2, 100);  // counter 2, mode 0
  EXPECT_EQ(in(0x61) & 0x20, 0x00);
  now = 83'000;  // 99 ticks
  EXPECT_EQ(in(0x61) & 0x20, 0x00);
  now = 84'000;  // 100 ticks: terminal count
  EXPECT_EQ(in(0x61) & 0x20, 0x20);
  now = 1'000'000'000;
  EXPECT_EQ(in(0x61) & 0x20, 0x20);  // stays high
}

TEST_F(PitTest, Mode0GateLowSuspendsCounting) {
  out(0x61, 0x00);
  program(0xb0, 2, 100);
  now = 1'000'000;
  EXPECT_EQ(in(0x61) & 0x20, 0x00);
  EXPECT_EQ(latched(2), 100);
  out(0x61, 0x01);  // counting starts now
  now = 1'083'000;  // 99 ticks later
  EXPECT_EQ(in(0x61) & 0x20, 0x00);
  now = 1'084'000;  // 100 ticks later
  EXPECT_EQ(in(0x61) & 0x20, 0x20);
}

TEST_F(PitTest, Mode3SquareWaveEvenAndOdd) {
  out(0x61, 0x01);
  program(0xb6, 2, 4);  // counter 2, mode 3, count 4: 2 ticks high, 2 low, counting by 2
  const bool out4[] = {true, true, false, false, true, true, false, false};
  const uint16_t count4[] = {4, 2, 4, 2, 4, 2, 4, 2};
  for (uint64_t k = 0; k < 8; ++k) {
    now = at_tick(k);
    EXPECT_EQ((in(0x61) & 0x20) != 0, out4[k]) << "tick " << k;
    EXPECT_EQ(latched(2), count4[k]) << "tick " << k;
  }
  now = at_tick(8);
  program(0xb6, 2, 5);  // odd: high (5+1)/2 = 3 ticks, low 2 ticks
  const bool out5[] = {true, true, true, false, false, true};
  const uint16_t count5[] = {5, 4, 2, 5, 2, 5};
  for (uint64_t k = 0; k < 6; ++k) {
    now = at_tick(8 + k);
    EXPECT_EQ((in(0x61) & 0x20) != 0, out5[k]) << "tick " << k;
    EXPECT_EQ(latched(2), count5[k]) << "tick " << k;
  }
}

TEST_F(PitTest, Mode2OutLowForOneClockBeforeReload) {
  out(0x61, 0x01);
  program(0xb4, 2, 5);
  for (uint64_t k = 0; k < 11; ++k) {
    now = at_tick(k);
    EXPECT_EQ((in(0x61) & 0x20) != 0, k % 5 != 4) << "tick " << k;
  }
}

TEST_F(PitTest, Mode2NewCountTakesEffectAtEndOfPeriod) {
  program(0x34, 0, 1000);
  now = at_tick(300);
  out(0x40, 500 & 0xff);
  out(0x40, 500 >> 8);
  now = at_tick(400);
  EXPECT_EQ(latched(0), 600);
  now = at_tick(1200);
  EXPECT_EQ(latched(0), 300);
  pit.poll(now);
  EXPECT_EQ(irq.rises[0], 1u);  // the edge that ended the old period
  EXPECT_EQ(pit.next_deadline_ns(), at_tick(1000 + 500));
}

TEST_F(PitTest, Mode0RaisesIrq0OnceAtTerminalCount) {
  program(0x30, 0, 100);
  pit.poll(50'000);
  EXPECT_EQ(irq.rises[0], 0u);
  EXPECT_EQ(pit.next_deadline_ns(), at_tick(100));
  pit.poll(at_tick(100));
  EXPECT_EQ(irq.rises[0], 1u);
  EXPECT_FALSE(irq.levels[0]);  // a pulse
  pit.poll(1'000'000);
  EXPECT_EQ(irq.rises[0], 1u);
  EXPECT_EQ(pit.next_deadline_ns(), UINT64_MAX);
}

TEST_F(PitTest, Mode2Irq0CoalescesMissedPeriodsAndKeepsPhase) {
  program(0x34, 0, 1193);
  pit.poll(500'000);
  EXPECT_EQ(irq.rises[0], 0u);
  EXPECT_EQ(pit.next_deadline_ns(), at_tick(1193));
  pit.poll(at_tick(1193));
  EXPECT_EQ(irq.rises[0], 1u);
  pit.poll(5'500'000);  // edges at periods 2..5 passed: one pulse
  EXPECT_EQ(irq.rises[0], 2u);
  const uint64_t next = at_tick(6 * 1193);  // still on the original grid
  EXPECT_EQ(pit.next_deadline_ns(), next);
  pit.poll(next - 1);
  EXPECT_EQ(irq.rises[0], 2u);
  pit.poll(next);
  EXPECT_EQ(irq.rises[0], 3u);
}

TEST_F(PitTest, NoIrqBeforeChannel0IsProgrammed) {
  pit.poll(1'000'000'000);
  EXPECT_EQ(irq.rises[0], 0u);
  EXPECT_EQ(pit.next_deadline_ns(), UINT64_MAX);
}

TEST_F(PitTest, PollWithAnOlderTimestampIsHarmless) {
  now = 2'000'000;
  program(0x34, 0, 1193);
  pit.poll(1'000'000);  // taken before the programming I/O exit
  EXPECT_EQ(irq.rises[0], 0u);
  EXPECT_EQ(latched(0), 1193);
}

TEST_F(PitTest, Mode4StrobeAtTerminalCount) {
  program(0x38, 0, 10);
  now = at_tick(9);
  EXPECT_TRUE(pit.out(0));
  now = at_tick(10);
  EXPECT_FALSE(pit.out(0));  // one clock low
  now = at_tick(11);
  EXPECT_TRUE(pit.out(0));
  pit.poll(at_tick(11));
  EXPECT_EQ(irq.rises[0], 1u);
}

TEST_F(PitTest, Mode1TriggeredByGate) {
  out(0x61, 0x00);
  program(0xb2, 2, 10);     // counter 2, mode 1
  EXPECT_TRUE(pit.out(2));  // waits for a trigger
  now = at_tick(5);
  out(0x61, 0x01);  // trigger
  EXPECT_FALSE(pit.out(2));
  now = at_tick(14);
  EXPECT_FALSE(pit.out(2));
  now = at_tick(15);
  EXPECT_TRUE(pit.out(2));
}

TEST_F(PitTest, RefreshToggleFlipsEvery18Ticks) {
  now = at_tick(0);
  const uint8_t a = in(0x61) & 0x10;
  now = at_tick(17);
  EXPECT_EQ(in(0x61) & 0x10, a);
  now = at_tick(18);
  EXPECT_NE(in(0x61) & 0x10, a);
}

TEST_F(PitTest, Port61KeepsLowBits) {
  out(0x61, 0xff);
  EXPECT_EQ(in(0x61) & 0x0f, 0x0f);
  EXPECT_EQ(in(0x61) & 0xc0, 0x00);
}

}  // namespace
}  // namespace vmbt
