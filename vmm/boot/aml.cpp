#include "vmm/boot/aml.h"

#include <fmt/format.h>

#include <cctype>

#include "vmm/error.h"

namespace vmbt::aml {

namespace {

/// `op` [ext] PkgLength body: the shape of every package-like term.
Bytes with_pkg_length(const Bytes& op, const Bytes& body) {
  return op + pkg_length(body.size()) + body;
}

}  // namespace

void append_le(Bytes& out, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes pkg_length(size_t content_length) {
  // The encoded length includes the PkgLength bytes themselves.
  if (content_length + 1 <= 63) return {static_cast<uint8_t>(content_length + 1)};
  for (unsigned follow = 1; follow <= 3; ++follow) {
    const size_t total = content_length + 1 + follow;
    if (total < (size_t{1} << (4 + 8 * follow))) {
      Bytes out{static_cast<uint8_t>((follow << 6) | (total & 0xf))};
      append_le(out, total >> 4, follow);
      return out;
    }
  }
  throw Error(fmt::format("internal: AML package of {} bytes is too long", content_length));
}

Bytes integer(uint64_t v) {
  if (v == 0) return {0x00};  // ZeroOp
  if (v == 1) return {0x01};  // OneOp
  Bytes out;
  if (v <= 0xff) {
    out.push_back(0x0A);
    append_le(out, v, 1);
  } else if (v <= 0xffff) {
    out.push_back(0x0B);
    append_le(out, v, 2);
  } else if (v <= 0xffffffff) {
    out.push_back(0x0C);
    append_le(out, v, 4);
  } else {
    out.push_back(0x0E);
    append_le(out, v, 8);
  }
  return out;
}

Bytes name_seg(const std::string& seg) {
  auto lead = [](char c) { return (c >= 'A' && c <= 'Z') || c == '_'; };
  auto valid = [&](char c) { return lead(c) || (c >= '0' && c <= '9'); };
  if (seg.empty() || seg.size() > 4 || !lead(seg[0])) {
    throw Error(fmt::format("internal: '{}' is not an AML NameSeg", seg));
  }
  Bytes out;
  for (size_t i = 0; i < 4; ++i) {
    const char c = i < seg.size() ? seg[i] : '_';
    if (!valid(c)) throw Error(fmt::format("internal: '{}' is not an AML NameSeg", seg));
    out.push_back(static_cast<uint8_t>(c));
  }
  return out;
}

Bytes name_string(const std::string& path) {
  Bytes out;
  std::string rest = path;
  if (!rest.empty() && rest[0] == '\\') {
    out.push_back('\\');  // RootChar
    rest.erase(0, 1);
  }
  const size_t dot = rest.find('.');
  if (dot == std::string::npos) return out + name_seg(rest);
  if (rest.find('.', dot + 1) != std::string::npos) {
    throw Error(fmt::format("internal: AML path '{}' has more than two segments", path));
  }
  out.push_back(0x2E);  // DualNamePrefix
  return out + name_seg(rest.substr(0, dot)) + name_seg(rest.substr(dot + 1));
}

Bytes name(const std::string& seg, const Bytes& object) {
  return Bytes{0x08} + name_seg(seg) + object;
}

Bytes package(const std::vector<Bytes>& elements) {
  if (elements.size() > 255) throw Error("internal: AML package of more than 255 elements");
  Bytes body{static_cast<uint8_t>(elements.size())};
  for (const Bytes& e : elements) body = body + e;
  return with_pkg_length({0x12}, body);
}

Bytes buffer(const Bytes& bytes) {
  return with_pkg_length({0x11}, integer(bytes.size()) + bytes);
}

Bytes scope(const std::string& path, const Bytes& body) {
  return with_pkg_length({0x10}, name_string(path) + body);
}

Bytes device(const std::string& seg, const Bytes& body) {
  return with_pkg_length({0x5B, 0x82}, name_seg(seg) + body);
}

Bytes eisa_id(const std::string& id) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  bool ok = id.size() == 7;
  for (size_t i = 0; ok && i < 3; ++i) ok = id[i] >= 'A' && id[i] <= 'Z';
  for (size_t i = 3; ok && i < 7; ++i) ok = hex(id[i]) >= 0;
  if (!ok)
    throw Error(fmt::format("internal: '{}' is not an EISA ID (three letters, four hex)", id));
  // Bytes in memory: the compressed vendor big-endian, then the product's two bytes in order.
  const unsigned vendor = ((id[0] - 0x40u) << 10) | ((id[1] - 0x40u) << 5) | (id[2] - 0x40u);
  const Bytes dword{static_cast<uint8_t>(vendor >> 8), static_cast<uint8_t>(vendor),
                    static_cast<uint8_t>((hex(id[3]) << 4) | hex(id[4])),
                    static_cast<uint8_t>((hex(id[5]) << 4) | hex(id[6]))};
  return Bytes{0x0C} + dword;
}

namespace resource {

namespace {

/// General flags of an address space descriptor: a producer (bit 0 clear), positive decode,
/// minimum and maximum fixed (ACPI 6.5 Table 6.48).
constexpr uint8_t kProducerFixed = (1u << 2) | (1u << 3);

/// An address space descriptor of `width`-byte fields (2: Word, §6.4.3.5.3, tag 0x88; 4: DWord,
/// §6.4.3.5.2, tag 0x87): resource type, flags, granularity 0, [min, max], no translation.
Bytes address_space(unsigned width, uint8_t type, uint8_t type_flags, uint32_t min, uint32_t max) {
  const uint8_t tag = width == 2 ? 0x88 : 0x87;
  const auto length = static_cast<uint8_t>(3 + 5 * width);  // bytes after the length field
  Bytes out{tag, length, 0x00, type, kProducerFixed, type_flags};
  append_le(out, 0, width);  // granularity
  append_le(out, min, width);
  append_le(out, max, width);
  append_le(out, 0, width);  // translation offset
  append_le(out, uint64_t{max} - min + 1, width);
  return out;
}

}  // namespace

Bytes word_bus_number(uint16_t min, uint16_t max) {
  return address_space(2, 2, 0, min, max);
}

Bytes word_io(uint16_t min, uint16_t max) {
  return address_space(2, 1, 0x03, min, max);  // _RNG = 3: ISA and non-ISA ranges
}

Bytes dword_memory(uint32_t min, uint32_t max) {
  return address_space(4, 0, 0x03, min, max);  // _RW = 1 (read-write), _MEM = 1 (cacheable)
}

Bytes io(uint16_t base, uint8_t length) {
  Bytes out{0x47, 0x01};  // _DEC = 1: 16-bit decode
  append_le(out, base, 2);
  append_le(out, base, 2);
  out.push_back(1);  // alignment
  out.push_back(length);
  return out;
}

Bytes end_tag() {
  return {0x79, 0x00};
}

}  // namespace resource

}  // namespace vmbt::aml
