// Console: the Ctrl-A escape state machine (QEMU's mux escapes), the non-terminal stream path and
// the in-memory backend. No terminal is needed.
#include "vmm/devices/console.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <string>

#include "vmm/devices/buffer_console.h"

namespace vmbt {
namespace {

using Action = EscapeDecoder::Action;

TEST(EscapeDecoderTest, PlainBytesAreForwarded) {
  EscapeDecoder d;
  for (int b : {int{'a'}, int{'\r'}, 0x03, 0x1b, 0xff}) {
    const auto r = d.feed(static_cast<uint8_t>(b));
    EXPECT_EQ(r.action, Action::kForward);
    EXPECT_EQ(r.byte, b);
  }
}

TEST(EscapeDecoderTest, CtrlAXQuits) {
  EscapeDecoder d;
  EXPECT_EQ(d.feed(0x01).action, Action::kNone);
  EXPECT_TRUE(d.escape_pending());
  EXPECT_EQ(d.feed('x').action, Action::kQuit);
  EXPECT_FALSE(d.escape_pending());
}

TEST(EscapeDecoderTest, CtrlASSwitchesEngines) {
  EscapeDecoder d;
  EXPECT_EQ(d.feed(0x01).action, Action::kNone);
  EXPECT_EQ(d.feed('s').action, Action::kSwitch);
  EXPECT_EQ(d.feed('s').action, Action::kForward);  // a plain 's' is the guest's
  EXPECT_NE(std::string(EscapeDecoder::help_text()).find("C-a s"), std::string::npos);
}

TEST(EscapeDecoderTest, CtrlANRaisesAnNmi) {
  EscapeDecoder d;
  EXPECT_EQ(d.feed(0x01).action, Action::kNone);
  EXPECT_EQ(d.feed('n').action, Action::kNmi);
  EXPECT_EQ(d.feed('n').action, Action::kForward);  // a plain 'n' is the guest's
  EXPECT_NE(std::string(EscapeDecoder::help_text()).find("C-a n"), std::string::npos);
}

TEST(EscapeDecoderTest, XWithoutEscapeIsJustX) {
  EscapeDecoder d;
  const auto r = d.feed('x');
  EXPECT_EQ(r.action, Action::kForward);
  EXPECT_EQ(r.byte, 'x');
}

TEST(EscapeDecoderTest, CtrlAHPrintsHelp) {
  EscapeDecoder d;
  d.feed(0x01);
  EXPECT_EQ(d.feed('h').action, Action::kHelp);
  d.feed(0x01);
  EXPECT_EQ(d.feed('?').action, Action::kHelp);
  const std::string help(EscapeDecoder::help_text());
  EXPECT_NE(help.find("C-a x"), std::string::npos);
  EXPECT_NE(help.find("C-a h"), std::string::npos);
  EXPECT_NE(help.find("C-a C-a"), std::string::npos);
}

TEST(EscapeDecoderTest, DoubleCtrlASendsOneCtrlA) {
  EscapeDecoder d;
  EXPECT_EQ(d.feed(0x01).action, Action::kNone);
  const auto r = d.feed(0x01);
  EXPECT_EQ(r.action, Action::kForward);
  EXPECT_EQ(r.byte, 0x01);
  // The escape is over: a following x is data.
  const auto next = d.feed('x');
  EXPECT_EQ(next.action, Action::kForward);
  EXPECT_EQ(next.byte, 'x');
}

TEST(EscapeDecoderTest, OtherEscapesAreSwallowed) {
  EscapeDecoder d;
  for (int key : {'c', 'b', 't', 'q', 'X'}) {
    d.feed(0x01);
    EXPECT_EQ(d.feed(static_cast<uint8_t>(key)).action, Action::kNone) << char(key);
    EXPECT_FALSE(d.escape_pending());
  }
  EXPECT_EQ(d.feed('z').action, Action::kForward);
}

// With a pipe for input the console is not a terminal: escapes are off, bytes go through as they
// are, and end of file stops reading.
TEST(TerminalConsoleTest, PipeInputIsVerbatimAndStopsAtEof) {
  int in[2], out[2];
  ASSERT_EQ(pipe(in), 0);
  ASSERT_EQ(pipe(out), 0);
  {
    TerminalConsole console(in[0], out[1]);
    EXPECT_FALSE(console.is_tty());
    uint8_t buf[16];
    EXPECT_EQ(console.read(buf, sizeof buf), 0u);  // nothing yet, and no blocking
    ASSERT_EQ(write(in[1], "a\x01x", 3), 3);
    ASSERT_EQ(console.read(buf, sizeof buf), 3u);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), 3), "a\x01x");
    EXPECT_FALSE(console.quit_requested());
    close(in[1]);
    EXPECT_EQ(console.read(buf, sizeof buf), 0u);
    EXPECT_TRUE(console.input_closed());

    console.write('O');
    console.write('K');
    char got[2];
    ASSERT_EQ(read(out[0], got, 2), 2);
    EXPECT_EQ(std::string(got, 2), "OK");
  }
  close(in[0]);
  close(out[0]);
  close(out[1]);
}

TEST(BufferConsoleTest, QueuesInputAndCollectsOutput) {
  BufferConsole c;
  c.write('h');
  c.write('i');
  EXPECT_EQ(c.output(), "hi");
  c.push_input("abc");
  uint8_t buf[2];
  EXPECT_EQ(c.read(buf, 2), 2u);
  EXPECT_EQ(buf[0], 'a');
  EXPECT_EQ(buf[1], 'b');
  EXPECT_EQ(c.pending_input(), 1u);
  EXPECT_EQ(c.read(buf, 2), 1u);
  EXPECT_EQ(c.read(buf, 2), 0u);
}

}  // namespace
}  // namespace vmbt
