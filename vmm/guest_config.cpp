#include "vmm/guest_config.h"

#include "vmm/machine/machine.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <optional>

#include "vmm/error.h"

namespace vmbt {

const char* engine_name(EngineKind kind) {
  switch (kind) {
    case EngineKind::kBt:
      return "bt";
    case EngineKind::kKvm:
      return "kvm";
    case EngineKind::kAuto:
      return "auto";
  }
  return "bt";
}

EngineKind parse_engine_kind(const std::string& name) {
  if (name == "bt") return EngineKind::kBt;
  if (name == "kvm") return EngineKind::kKvm;
  if (name == "auto") return EngineKind::kAuto;
  throw Error(fmt::format("unknown engine '{}': choose auto, bt or kvm", name));
}

uint64_t parse_memory_size(const std::string& text) {
  auto bad = [&] {
    return Error(
        fmt::format("invalid memory size '{}': use a number with K, M or G (e.g. 256M)", text));
  };
  size_t i = 0;
  uint64_t n = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (n > (UINT64_MAX - 9) / 10) throw bad();
    n = n * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  if (i == 0) throw bad();
  unsigned shift = 20;  // bare number: MiB
  if (i < text.size()) {
    switch (std::toupper(static_cast<unsigned char>(text[i]))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      default:
        throw bad();
    }
    ++i;
    if (i < text.size() && std::toupper(static_cast<unsigned char>(text[i])) == 'I') ++i;
    if (i < text.size() && std::toupper(static_cast<unsigned char>(text[i])) == 'B') ++i;
    if (i != text.size()) throw bad();
  }
  if (n > (UINT64_MAX >> shift)) throw bad();
  return n << shift;
}

uint64_t parse_ram_size(const std::string& text) {
  const uint64_t bytes = parse_memory_size(text);
  if (bytes < GuestMemory::kMinBytes || bytes > GuestMemory::kMaxBytes) {
    throw Error(fmt::format("--memory {} is out of range: vmbt guests have 2M to 3G of RAM", text));
  }
  return bytes;
}

std::string format_memory_size(uint64_t bytes) {
  if (bytes != 0 && bytes % (1ull << 30) == 0) return fmt::format("{}G", bytes >> 30);
  if (bytes % (1ull << 20) == 0) return fmt::format("{}M", bytes >> 20);
  return fmt::format("{}K", bytes >> 10);  // (--memory's spellings are whole KiB)
}

namespace {
/// Splits at single commas; ",," is a literal comma (QEMU's option syntax).
std::vector<std::string> split_options(const std::string& spec) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == ',' && i + 1 < spec.size() && spec[i + 1] == ',') {
      parts.back() += ',';
      ++i;
    } else if (spec[i] == ',') {
      parts.emplace_back();
    } else {
      parts.back() += spec[i];
    }
  }
  return parts;
}

/// A port number, 1-65535, in decimal.
std::optional<uint16_t> parse_port(const std::string& text) {
  unsigned v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (text.empty() || ec != std::errc() || ptr != end || v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

/// A dotted IPv4 address (host byte order); `fallback` when empty.
std::optional<uint32_t> parse_ipv4(const std::string& text, uint32_t fallback) {
  if (text.empty()) return fallback;
  in_addr a{};
  if (inet_pton(AF_INET, text.c_str(), &a) != 1) return std::nullopt;
  return ntohl(a.s_addr);
}

/// `[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT` (QEMU's hostfwd rule).
HostForward parse_hostfwd(const std::string& rule) {
  auto bad = [&](const std::string& why) {
    return Error(
        fmt::format("--net user,hostfwd={}: {} (the form is hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-"
                    "[GUESTADDR]:GUESTPORT, e.g. hostfwd=tcp::2222-:22)",
                    rule, why));
  };
  HostForward f;
  const size_t c1 = rule.find(':');
  const size_t c2 = c1 == std::string::npos ? c1 : rule.find(':', c1 + 1);
  const size_t dash = c2 == std::string::npos ? c2 : rule.find('-', c2 + 1);
  const size_t c3 = dash == std::string::npos ? dash : rule.find(':', dash + 1);
  if (c3 == std::string::npos) throw bad("malformed");
  const std::string proto = rule.substr(0, c1);
  if (proto == "udp") {
    f.udp = true;
  } else if (!proto.empty() && proto != "tcp") {
    throw bad(fmt::format("protocol '{}': tcp or udp", proto));
  }
  const auto host = parse_ipv4(rule.substr(c1 + 1, c2 - c1 - 1), f.host_addr);
  const auto host_port = parse_port(rule.substr(c2 + 1, dash - c2 - 1));
  const auto guest = parse_ipv4(rule.substr(dash + 1, c3 - dash - 1), f.guest_addr);
  const auto guest_port = parse_port(rule.substr(c3 + 1));
  if (!host) throw bad("the host address is not a dotted IPv4 address");
  if (!host_port) throw bad("the host port is not a number from 1 to 65535");
  if (!guest) throw bad("the guest address is not a dotted IPv4 address");
  if ((*guest & 0xffffff00) != 0x0a000200) throw bad("the guest address is not in 10.0.2.0/24");
  if (!guest_port) throw bad("the guest port is not a number from 1 to 65535");
  f.host_addr = *host;
  f.host_port = *host_port;
  f.guest_addr = *guest;
  f.guest_port = *guest_port;
  return f;
}
}  // namespace

NetConfig parse_net(const std::string& spec) {
  const std::vector<std::string> parts = split_options(spec);
  NetConfig n;
  if (parts[0] == "none" && parts.size() == 1) return n;
  if (parts[0] != "user") {
    throw Error(fmt::format(
        "--net {}: vmbt's networks are 'user' (user-mode networking, libslirp) and 'none'", spec));
  }
  n.user = true;
  for (size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    if (p.rfind("hostfwd=", 0) == 0) {
      n.forwards.push_back(parse_hostfwd(p.substr(8)));
    } else {
      throw Error(fmt::format("--net {}: unknown option '{}' (user takes hostfwd=...)", spec, p));
    }
  }
  return n;
}

DriveConfig parse_drive(const std::string& spec) {
  const std::vector<std::string> parts = split_options(spec);
  DriveConfig d;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const size_t eq = p.find('=');
    const std::string key = eq == std::string::npos ? "" : p.substr(0, eq);
    const std::string value = eq == std::string::npos ? p : p.substr(eq + 1);
    if (key.empty() && i == 0) {
      d.path = value;
    } else if (key == "file") {
      d.path = value;
    } else if (key == "format") {
      if (value != "raw") {
        throw Error(
            fmt::format("--drive {}: format={} is not supported: vmbt reads raw images "
                        "(convert with qemu-img convert -O raw)",
                        spec, value));
      }
    } else if (key == "if") {
      if (value != "virtio") {
        throw Error(
            fmt::format("--drive {}: if={}: vmbt's disks are virtio-blk (if=virtio)", spec, value));
      }
    } else if (key == "readonly") {
      if (value != "on" && value != "off") {
        throw Error(fmt::format("--drive {}: readonly takes on or off", spec));
      }
      d.read_only = value == "on";
    } else {
      throw Error(
          fmt::format("--drive {}: unknown option '{}' (file, format, if, readonly)", spec, p));
    }
  }
  if (d.path.empty()) throw Error(fmt::format("--drive {}: no image file", spec));
  return d;
}

}  // namespace vmbt
