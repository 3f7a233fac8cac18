#include "vmm/gdb/gdb_packet.h"

#include <fmt/format.h>

namespace vmbt::gdb {

namespace {

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

void PacketDecoder::feed(const uint8_t* data, size_t size, std::vector<InputEvent>& out) {
  for (size_t i = 0; i < size; ++i) {
    const uint8_t c = data[i];
    switch (state_) {
      case State::kIdle:
        if (c == '$') {
          state_ = State::kPayload;
          payload_.clear();
          too_long_ = false;
          sum_ = 0;
        } else if (c == 0x03) {
          out.push_back({InputEvent::Kind::kInterrupt, {}});
        } else if (c == '+') {
          out.push_back({InputEvent::Kind::kAck, {}});
        } else if (c == '-') {
          out.push_back({InputEvent::Kind::kNack, {}});
        }
        break;
      case State::kPayload:
      case State::kEscape:
        if (c == '#' && state_ == State::kPayload) {
          state_ = State::kChecksum1;
          break;
        }
        sum_ = static_cast<uint8_t>(sum_ + c);
        if (state_ == State::kPayload && c == '}') {
          state_ = State::kEscape;
          break;
        }
        if (payload_.size() < kMaxPacketSize) {
          payload_.push_back(static_cast<char>(state_ == State::kEscape ? c ^ 0x20 : c));
        } else {
          too_long_ = true;  // keep reading to the checksum, keep nothing more
        }
        state_ = State::kPayload;
        break;
      case State::kChecksum1: {
        const int d = hex_digit(static_cast<char>(c));
        sent_sum_ = static_cast<uint8_t>((d < 0 ? 0x100 : d) << 4);  // a bad digit never matches
        state_ = d < 0 ? State::kIdle : State::kChecksum2;
        if (d < 0) out.push_back({InputEvent::Kind::kBadChecksum, {}});
        break;
      }
      case State::kChecksum2: {
        const int d = hex_digit(static_cast<char>(c));
        state_ = State::kIdle;
        if (too_long_) {
          out.push_back({InputEvent::Kind::kTooLong, {}});
        } else if (d < 0 || static_cast<uint8_t>(sent_sum_ | d) != sum_) {
          out.push_back({InputEvent::Kind::kBadChecksum, {}});
        } else {
          out.push_back({InputEvent::Kind::kPacket, std::move(payload_)});
        }
        payload_.clear();
        break;
      }
    }
  }
}

std::string frame_packet(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 4);
  out.push_back('$');
  uint8_t sum = 0;
  for (char c : payload) {
    if (c == '$' || c == '#' || c == '}' || c == '*') {
      out.push_back('}');
      sum = static_cast<uint8_t>(sum + '}');
      c = static_cast<char>(c ^ 0x20);
    }
    out.push_back(c);
    sum = static_cast<uint8_t>(sum + static_cast<uint8_t>(c));
  }
  out += fmt::format("#{:02x}", sum);
  return out;
}

std::string to_hex(const uint8_t* data, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(size * 2, '0');
  for (size_t i = 0; i < size; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 15];
  }
  return out;
}

bool from_hex(std::string_view hex, std::vector<uint8_t>& out) {
  if (hex.size() % 2) return false;
  for (char c : hex) {
    if (hex_digit(c) < 0) return false;
  }
  for (size_t i = 0; i < hex.size(); i += 2) {
    out.push_back(static_cast<uint8_t>(hex_digit(hex[i]) << 4 | hex_digit(hex[i + 1])));
  }
  return true;
}

bool parse_hex_number(std::string_view text, uint64_t* value) {
  if (text.empty()) return false;
  uint64_t v = 0;
  for (char c : text) {
    const int d = hex_digit(c);
    if (d < 0 || (v >> 60) != 0) return false;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  *value = v;
  return true;
}

}  // namespace vmbt::gdb
