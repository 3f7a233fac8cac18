// The GDB remote protocol's framing (vmm/gdb/gdb_packet.h) against the GDB manual's rules
// (Appendix E.1): "$payload#cs", cs = the payload's bytes summed modulo 256 as two lower-case hex
// digits; '}' escapes the next byte XOR 0x20; '+'/'-' acknowledge; 0x03 interrupts.
#include "vmm/gdb/gdb_packet.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace vmbt::gdb {
namespace {

std::string checksum_of(const std::string& raw) {
  unsigned sum = 0;
  for (unsigned char c : raw) sum += c;
  char buf[3];
  std::snprintf(buf, sizeof buf, "%02x", sum & 0xff);
  return buf;
}

std::vector<InputEvent> decode(const std::string& bytes, size_t chunk = 0) {
  PacketDecoder d;
  std::vector<InputEvent> out;
  if (chunk == 0) chunk = bytes.size();
  for (size_t i = 0; i < bytes.size(); i += chunk) {
    const std::string part = bytes.substr(i, chunk);
    d.feed(reinterpret_cast<const uint8_t*>(part.data()), part.size(), out);
  }
  return out;
}

TEST(GdbPacket, AWellFormedPacketDecodesToItsPayload) {
  // "$g#67": 'g' is 0x67 (the manual's own example of a checksum).
  auto events = decode("$g#67");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, InputEvent::Kind::kPacket);
  EXPECT_EQ(events[0].payload, "g");
}

TEST(GdbPacket, AnySplitOfTheStreamGivesTheSameEvents) {
  const std::string payload = "m100000,40";
  const std::string stream = std::string("+$") + payload + "#" + checksum_of(payload) + "\x03-";
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    auto events = decode(stream, chunk);
    ASSERT_EQ(events.size(), 4u) << "chunk " << chunk;
    EXPECT_EQ(events[0].kind, InputEvent::Kind::kAck);
    EXPECT_EQ(events[1].kind, InputEvent::Kind::kPacket);
    EXPECT_EQ(events[1].payload, payload);
    EXPECT_EQ(events[2].kind, InputEvent::Kind::kInterrupt);
    EXPECT_EQ(events[3].kind, InputEvent::Kind::kNack);
  }
}

TEST(GdbPacket, AWrongOrMalformedChecksumIsReportedNotDelivered) {
  EXPECT_EQ(decode("$g#68")[0].kind, InputEvent::Kind::kBadChecksum);
  EXPECT_EQ(decode("$g#zz")[0].kind, InputEvent::Kind::kBadChecksum);
  EXPECT_EQ(decode("$g#6z")[0].kind, InputEvent::Kind::kBadChecksum);
  // The decoder recovers: the next packet is fine.
  auto events = decode("$g#00$?#3f");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[1].kind, InputEvent::Kind::kPacket);
  EXPECT_EQ(events[1].payload, "?");
}

TEST(GdbPacket, EscapedBytesAreUnescapedAndTheChecksumCoversTheRawBytes) {
  // X packet data "#$}*" escaped as }\x03 }\x04 }] }\x0a.
  const std::string raw = std::string("X0,4:") + "}\x03" + "}\x04" + "}]" + "}\x0a";
  auto events = decode(std::string("$") + raw + "#" + checksum_of(raw));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].kind, InputEvent::Kind::kPacket);
  EXPECT_EQ(events[0].payload, "X0,4:#$}*");
}

TEST(GdbPacket, AnOverlongPacketIsDroppedWhole) {
  const std::string big(kMaxPacketSize + 10, 'a');
  auto events = decode(std::string("$") + big + "#" + checksum_of(big) + "$?#3f");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].kind, InputEvent::Kind::kTooLong);
  EXPECT_EQ(events[1].payload, "?");
}

TEST(GdbPacket, FramingEscapesTheFourSpecialBytesAndDecodesBack) {
  const std::string payload = "a$b#c}d*e";
  const std::string framed = frame_packet(payload);
  const std::string raw = framed.substr(1, framed.size() - 4);
  EXPECT_EQ(raw.find_first_of("$#*"), std::string::npos) << framed;
  EXPECT_EQ(framed.substr(framed.size() - 3), std::string("#") + checksum_of(raw));
  auto events = decode(framed);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].payload, payload);
}

TEST(GdbPacket, HexHelpers) {
  const uint8_t bytes[] = {0x00, 0x7f, 0xa5, 0xff};
  EXPECT_EQ(to_hex(bytes, 4), "007fa5ff");
  std::vector<uint8_t> back;
  ASSERT_TRUE(from_hex("007FA5ff", back));
  EXPECT_EQ(back, std::vector<uint8_t>(bytes, bytes + 4));
  EXPECT_FALSE(from_hex("abc", back));  // odd length
  EXPECT_FALSE(from_hex("zz", back));
  uint64_t v = 0;
  EXPECT_TRUE(parse_hex_number("c0100000", &v));
  EXPECT_EQ(v, 0xc0100000u);
  EXPECT_FALSE(parse_hex_number("", &v));
  EXPECT_FALSE(parse_hex_number("12x", &v));
  EXPECT_FALSE(parse_hex_number("10000000000000000", &v));  // 65 bits
  EXPECT_TRUE(parse_hex_number("ffffffffffffffff", &v));
  EXPECT_EQ(v, ~uint64_t{0});
}

}  // namespace
}  // namespace vmbt::gdb
