// The GDB remote serial protocol's framing: packets, acknowledgements, escapes and the interrupt
// byte (GDB manual, Appendix E "GDB Remote Serial Protocol", §E.1 "Overview").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vmbt::gdb {

/// Largest packet payload the stub accepts and advertises (qSupported PacketSize), in bytes after
/// unescaping. A longer packet is dropped whole and answered with a NAK.
inline constexpr size_t kMaxPacketSize = 16384;

/// One thing read from the debugger's byte stream.
struct InputEvent {
  enum class Kind {
    kPacket,       ///< "$payload#cs" with a valid checksum: `payload` holds it, unescaped
    kBadChecksum,  ///< a packet whose checksum did not match: answer '-' (GDB resends it)
    kTooLong,      ///< a packet over kMaxPacketSize: dropped; answer '-'
    kInterrupt,    ///< the 0x03 byte outside a packet: GDB's Ctrl-C
    kAck,          ///< '+'
    kNack,         ///< '-': the last packet sent must be sent again
  };
  Kind kind = Kind::kPacket;
  std::string payload;
};

/// Incremental decoder of the bytes GDB sends: any split of the stream into feed() calls gives
/// the same events. Bytes outside a packet other than '+', '-' and 0x03 are ignored (GDB sends
/// none). In a payload, '}' escapes the next byte (XOR 0x20), as GDB sends binary data (X).
class PacketDecoder {
 public:
  /// Decodes `size` bytes at `data`, appending each completed event to `out`.
  void feed(const uint8_t* data, size_t size, std::vector<InputEvent>& out);

 private:
  enum class State { kIdle, kPayload, kEscape, kChecksum1, kChecksum2 };
  State state_ = State::kIdle;
  std::string payload_;
  bool too_long_ = false;
  uint8_t sum_ = 0;       ///< running modulo-256 sum of the raw (escaped) payload bytes
  uint8_t sent_sum_ = 0;  ///< the checksum as sent, first digit
};

/// "$payload#cs" for `payload`, escaping '$', '#', '}' and '*' as §E.1 requires.
std::string frame_packet(std::string_view payload);

/// Lower-case hex of `size` bytes, in memory order ("m" replies, register images).
std::string to_hex(const uint8_t* data, size_t size);
/// Appends the bytes `hex` spells; false (and `out` unchanged) for an odd length or a non-hex
/// digit.
bool from_hex(std::string_view hex, std::vector<uint8_t>& out);
/// A big-endian hex number ("1000", "c0100000"): false for empty text, a non-hex digit or a
/// value over 64 bits.
bool parse_hex_number(std::string_view text, uint64_t* value);

}  // namespace vmbt::gdb
