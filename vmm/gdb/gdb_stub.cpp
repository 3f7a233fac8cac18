#include "vmm/gdb/gdb_stub.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "vmm/gdb/gdb_packet.h"

namespace vmbt::gdb {

namespace {

// GDB's i386 features (gdb/features/i386/32bit-core.xml and 32bit-sse.xml, whose register
// order the 'g' packet follows), plus a feature of vmbt's own for the control registers.
constexpr std::string_view kTargetXml = R"(<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
<architecture>i386</architecture>
<feature name="org.gnu.gdb.i386.core">
<flags id="i386_eflags" size="4">
<field name="CF" start="0" end="0"/><field name="" start="1" end="1"/>
<field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/>
<field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
<field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/>
<field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/>
<field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/>
<field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/>
<field name="VIF" start="19" end="19"/><field name="VIP" start="20" end="20"/>
<field name="ID" start="21" end="21"/>
</flags>
<reg name="eax" bitsize="32" type="int32" regnum="0"/>
<reg name="ecx" bitsize="32" type="int32"/>
<reg name="edx" bitsize="32" type="int32"/>
<reg name="ebx" bitsize="32" type="int32"/>
<reg name="esp" bitsize="32" type="data_ptr"/>
<reg name="ebp" bitsize="32" type="data_ptr"/>
<reg name="esi" bitsize="32" type="int32"/>
<reg name="edi" bitsize="32" type="int32"/>
<reg name="eip" bitsize="32" type="code_ptr"/>
<reg name="eflags" bitsize="32" type="i386_eflags"/>
<reg name="cs" bitsize="32" type="int32"/>
<reg name="ss" bitsize="32" type="int32"/>
<reg name="ds" bitsize="32" type="int32"/>
<reg name="es" bitsize="32" type="int32"/>
<reg name="fs" bitsize="32" type="int32"/>
<reg name="gs" bitsize="32" type="int32"/>
<reg name="st0" bitsize="80" type="i387_ext"/>
<reg name="st1" bitsize="80" type="i387_ext"/>
<reg name="st2" bitsize="80" type="i387_ext"/>
<reg name="st3" bitsize="80" type="i387_ext"/>
<reg name="st4" bitsize="80" type="i387_ext"/>
<reg name="st5" bitsize="80" type="i387_ext"/>
<reg name="st6" bitsize="80" type="i387_ext"/>
<reg name="st7" bitsize="80" type="i387_ext"/>
<reg name="fctrl" bitsize="32" type="int" group="float"/>
<reg name="fstat" bitsize="32" type="int" group="float"/>
<reg name="ftag" bitsize="32" type="int" group="float"/>
<reg name="fiseg" bitsize="32" type="int" group="float"/>
<reg name="fioff" bitsize="32" type="int" group="float"/>
<reg name="foseg" bitsize="32" type="int" group="float"/>
<reg name="fooff" bitsize="32" type="int" group="float"/>
<reg name="fop" bitsize="32" type="int" group="float"/>
</feature>
<feature name="org.gnu.gdb.i386.sse">
<vector id="v4f" type="ieee_single" count="4"/>
<vector id="v2d" type="ieee_double" count="2"/>
<vector id="v16i8" type="int8" count="16"/>
<vector id="v8i16" type="int16" count="8"/>
<vector id="v4i32" type="int32" count="4"/>
<vector id="v2i64" type="int64" count="2"/>
<union id="vec128">
<field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>
<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/>
<field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>
<field name="uint128" type="uint128"/>
</union>
<reg name="xmm0" bitsize="128" type="vec128" regnum="32"/>
<reg name="xmm1" bitsize="128" type="vec128"/>
<reg name="xmm2" bitsize="128" type="vec128"/>
<reg name="xmm3" bitsize="128" type="vec128"/>
<reg name="xmm4" bitsize="128" type="vec128"/>
<reg name="xmm5" bitsize="128" type="vec128"/>
<reg name="xmm6" bitsize="128" type="vec128"/>
<reg name="xmm7" bitsize="128" type="vec128"/>
<reg name="mxcsr" bitsize="32" type="int" group="vector"/>
</feature>
<feature name="org.vmbt.ia32.system">
<reg name="cr0" bitsize="32" type="int32" group="system"/>
<reg name="cr2" bitsize="32" type="int32" group="system"/>
<reg name="cr3" bitsize="32" type="int32" group="system"/>
<reg name="cr4" bitsize="32" type="int32" group="system"/>
</feature>
</target>
)";

// Register numbers of the description above.
constexpr size_t kEip = 8, kEflags = 9, kFirstSeg = 10, kFirstSt = 16, kFctrl = 24, kFirstXmm = 32,
                 kMxcsr = 40, kFirstCr = 41;
// 'cs', 'ss', 'ds', 'es', 'fs', 'gs' in vmbt's SegIndex numbering.
constexpr SegIndex kSegOrder[6] = {kCs, kSs, kDs, kEs, kFs, kGs};

// FXSAVE image offsets (Intel SDM Vol. 1 §10.5.1, Table 10-2).
constexpr size_t kFxFcw = 0, kFxFsw = 2, kFxFtw = 4, kFxFop = 6, kFxFip = 8, kFxFcs = 12,
                 kFxFdp = 16, kFxFds = 20, kFxMxcsr = 24, kFxSt = 32, kFxXmm = 160;

uint32_t fx_get(const VcpuState& s, size_t offset, size_t size) {
  uint32_t v = 0;
  std::memcpy(&v, s.fxsave.data() + offset, size);
  return v;
}
void fx_set(VcpuState& s, size_t offset, size_t size, uint32_t v) {
  std::memcpy(s.fxsave.data() + offset, &v, size);
}

void append_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

/// The value of 32-bit register `regno` (not st/xmm).
uint32_t read_u32(const VcpuState& s, size_t regno) {
  if (regno < 8) return s.gpr[regno];
  if (regno == kEip) return s.eip;
  if (regno == kEflags) return s.eflags;
  if (regno < kFirstSt) return s.seg[kSegOrder[regno - kFirstSeg]].selector;
  switch (regno - kFctrl) {
    case 0:
      return fx_get(s, kFxFcw, 2);
    case 1:
      return fx_get(s, kFxFsw, 2);
    case 2: {
      // The full tag word from FXSAVE's abridged one (bit i = register i not empty): 11 for
      // an empty register, 00 (valid) otherwise.
      const uint32_t abridged = fx_get(s, kFxFtw, 1);
      uint32_t tag = 0;
      for (int i = 0; i < 8; ++i) tag |= ((abridged >> i) & 1 ? 0u : 3u) << (2 * i);
      return tag;
    }
    case 3:
      return fx_get(s, kFxFcs, 2);
    case 4:
      return fx_get(s, kFxFip, 4);
    case 5:
      return fx_get(s, kFxFds, 2);
    case 6:
      return fx_get(s, kFxFdp, 4);
    case 7:
      return fx_get(s, kFxFop, 2) & 0x7ff;
  }
  if (regno == kMxcsr) return fx_get(s, kFxMxcsr, 4);
  const uint32_t crs[4] = {s.cr0, s.cr2, s.cr3, s.cr4};
  return crs[regno - kFirstCr];
}

}  // namespace

std::string_view target_xml() {
  return kTargetXml;
}

size_t register_size(size_t regno) {
  if (regno >= kFirstSt && regno < kFctrl) return 10;
  if (regno >= kFirstXmm && regno < kMxcsr) return 16;
  return 4;
}

void read_register(const VcpuState& s, size_t regno, std::vector<uint8_t>& out) {
  if (regno >= kFirstSt && regno < kFctrl) {
    const uint8_t* p = s.fxsave.data() + kFxSt + 16 * (regno - kFirstSt);
    out.insert(out.end(), p, p + 10);
  } else if (regno >= kFirstXmm && regno < kMxcsr) {
    const uint8_t* p = s.fxsave.data() + kFxXmm + 16 * (regno - kFirstXmm);
    out.insert(out.end(), p, p + 16);
  } else {
    append_u32(out, read_u32(s, regno));
  }
}

bool write_register(VcpuState& s, size_t regno, const uint8_t* bytes) {
  if (regno >= kFirstSt && regno < kFctrl) {
    std::memcpy(s.fxsave.data() + kFxSt + 16 * (regno - kFirstSt), bytes, 10);
    return true;
  }
  if (regno >= kFirstXmm && regno < kMxcsr) {
    std::memcpy(s.fxsave.data() + kFxXmm + 16 * (regno - kFirstXmm), bytes, 16);
    return true;
  }
  uint32_t v = 0;
  std::memcpy(&v, bytes, 4);
  if (regno < 8) {
    s.gpr[regno] = v;
  } else if (regno == kEip) {
    s.eip = v;
  } else if (regno == kEflags) {
    // Only the flags an instruction could set at this CPL: not VM (a mode switch), and bit 1
    // stays set (Intel SDM Vol. 1 §3.4.3).
    constexpr uint32_t kWritable = eflags::kArith | eflags::kTf | eflags::kIf | eflags::kDf |
                                   eflags::kIopl | eflags::kNt | eflags::kRf | eflags::kAc |
                                   eflags::kVif | eflags::kVip | eflags::kId;
    if ((v ^ s.eflags) & ~(kWritable | eflags::kFixed1)) return false;
    s.eflags = (v & kWritable) | eflags::kFixed1;
  } else if (regno < kFirstSt || regno >= kFirstCr) {
    return v == read_u32(s, regno);  // segment and control registers: only their own value
  } else if (regno == kMxcsr) {
    fx_set(s, kFxMxcsr, 4, v);
  } else {
    switch (regno - kFctrl) {
      case 0:
        fx_set(s, kFxFcw, 2, v);
        break;
      case 1:
        fx_set(s, kFxFsw, 2, v);
        break;
      case 2: {
        uint32_t abridged = 0;
        for (int i = 0; i < 8; ++i) abridged |= (((v >> (2 * i)) & 3) != 3 ? 1u : 0u) << i;
        fx_set(s, kFxFtw, 1, abridged);
        break;
      }
      case 3:
        fx_set(s, kFxFcs, 2, v);
        break;
      case 4:
        fx_set(s, kFxFip, 4, v);
        break;
      case 5:
        fx_set(s, kFxFds, 2, v);
        break;
      case 6:
        fx_set(s, kFxFdp, 4, v);
        break;
      case 7:
        fx_set(s, kFxFop, 2, v & 0x7ff);
        break;
    }
  }
  return true;
}

std::string GdbStub::read_registers() {
  const VcpuState s = target_.registers();
  std::vector<uint8_t> image;
  for (size_t r = 0; r < kRegisterCount; ++r) read_register(s, r, image);
  return to_hex(image.data(), image.size());
}

std::string GdbStub::write_registers(std::string_view hex) {
  std::vector<uint8_t> image;
  if (!from_hex(hex, image)) return "E01";
  VcpuState s = target_.registers();
  size_t offset = 0;
  for (size_t r = 0; r < kRegisterCount && offset + register_size(r) <= image.size(); ++r) {
    if (!write_register(s, r, image.data() + offset)) return "E02";
    offset += register_size(r);
  }
  target_.set_registers(s);
  return "OK";
}

std::string GdbStub::read_memory(std::string_view args) {
  // m addr,length
  const size_t comma = args.find(',');
  uint64_t addr = 0, length = 0;
  if (comma == std::string_view::npos || !parse_hex_number(args.substr(0, comma), &addr) ||
      !parse_hex_number(args.substr(comma + 1), &length) || addr > UINT32_MAX) {
    return "E01";
  }
  // The reply (two hex digits a byte) must fit the packet size GDB was told.
  length = std::min<uint64_t>(length, kMaxPacketSize / 2 - 16);
  if (length == 0) return "";
  if (addr + length - 1 > UINT32_MAX) return "E14";
  std::vector<uint8_t> data(length);
  if (!target_.access_memory(static_cast<uint32_t>(addr), data.data(), length, false)) {
    return "E14";  // EFAULT: GDB says "Cannot access memory at address"
  }
  return to_hex(data.data(), data.size());
}

std::string GdbStub::write_memory(std::string_view args, bool binary) {
  // M addr,length:XX...  or  X addr,length:binary
  const size_t comma = args.find(','), colon = args.find(':');
  uint64_t addr = 0, length = 0;
  if (comma == std::string_view::npos || colon == std::string_view::npos || colon < comma ||
      !parse_hex_number(args.substr(0, comma), &addr) ||
      !parse_hex_number(args.substr(comma + 1, colon - comma - 1), &length) || addr > UINT32_MAX ||
      length > kMaxPacketSize) {
    return "E01";
  }
  std::vector<uint8_t> data;
  const std::string_view body = args.substr(colon + 1);
  if (binary) {
    data.assign(body.begin(), body.end());
  } else if (!from_hex(body, data)) {
    return "E01";
  }
  if (data.size() != length) return "E01";
  if (length == 0) return "OK";  // GDB's probe for X support
  if (addr + length - 1 > UINT32_MAX) return "E14";
  if (!target_.access_memory(static_cast<uint32_t>(addr), data.data(), length, true)) return "E14";
  return "OK";
}

std::string GdbStub::change_breakpoint(std::string_view args, bool insert) {
  // Z0,addr,kind / z0,addr,kind (software) and Z1 (hardware): both are breakpoints the engine
  // stops at without writing guest memory. Z2/Z3/Z4,addr,length: write, read and access
  // watchpoints.
  if (args.size() < 2 || args[0] < '0' || args[0] > '4' || args[1] != ',') return "";
  const std::string_view rest = args.substr(2);
  const size_t comma = rest.find(',');
  uint64_t addr = 0;
  if (!parse_hex_number(rest.substr(0, comma), &addr) || addr > UINT32_MAX) return "E01";
  if (args[0] >= '2') {
    uint64_t length = 0;
    if (comma == std::string_view::npos || !parse_hex_number(rest.substr(comma + 1), &length) ||
        length == 0 || length > 0x1000 || addr + length - 1 > UINT32_MAX) {
      return "E01";
    }
    using Kind = DebugSettings::Watch::Kind;
    const Kind kind = args[0] == '2' ? Kind::kWrite : args[0] == '3' ? Kind::kRead : Kind::kAccess;
    const DebugSettings::Watch w{static_cast<uint32_t>(addr), static_cast<uint32_t>(length), kind};
    auto it = std::find_if(watchpoints_.begin(), watchpoints_.end(), [&](const auto& o) {
      return o.linear == w.linear && o.length == w.length && o.kind == w.kind;
    });
    if (insert && it == watchpoints_.end()) {
      if (watchpoints_.size() >= kMaxWatchpoints) return "E28";
      watchpoints_.push_back(w);
    } else if (!insert && it != watchpoints_.end()) {
      watchpoints_.erase(it);
    }
    return "OK";
  }
  const auto it = std::lower_bound(breakpoints_.begin(), breakpoints_.end(), addr);
  const bool present = it != breakpoints_.end() && *it == addr;
  if (insert && !present) {
    if (breakpoints_.size() >= kMaxBreakpoints) return "E28";  // ENOSPC
    breakpoints_.insert(it, static_cast<uint32_t>(addr));
  } else if (!insert && present) {
    breakpoints_.erase(it);
  }
  return "OK";
}

std::string GdbStub::query(std::string_view packet) {
  auto starts = [&](std::string_view prefix) { return packet.substr(0, prefix.size()) == prefix; };
  if (starts("qSupported")) {
    return fmt::format("PacketSize={:x};qXfer:features:read+;QStartNoAckMode+;vContSupported+",
                       kMaxPacketSize);
  }
  if (starts("qXfer:features:read:")) {
    // qXfer:features:read:ANNEX:offset,length
    std::string_view rest = packet.substr(std::string_view("qXfer:features:read:").size());
    const size_t colon = rest.find(':');
    if (colon == std::string_view::npos) return "E00";
    if (rest.substr(0, colon) != "target.xml") return "E00";
    rest = rest.substr(colon + 1);
    const size_t comma = rest.find(',');
    uint64_t offset = 0, length = 0;
    if (comma == std::string_view::npos || !parse_hex_number(rest.substr(0, comma), &offset) ||
        !parse_hex_number(rest.substr(comma + 1), &length)) {
      return "E00";
    }
    const std::string_view xml = target_xml();
    if (offset >= xml.size()) return "l";
    length = std::min<uint64_t>(length, kMaxPacketSize / 2);
    const std::string_view part = xml.substr(offset, length);
    return std::string(offset + part.size() >= xml.size() ? "l" : "m") + std::string(part);
  }
  if (starts("qAttached")) return "1";  // attached to a running machine: 'k' only detaches
  if (starts("qC")) return "QC1";
  if (starts("qfThreadInfo")) return "m1";
  if (starts("qsThreadInfo")) return "l";
  if (starts("qSymbol")) return "OK";
  if (starts("qRcmd,")) {
    std::vector<uint8_t> command;
    if (!from_hex(packet.substr(6), command)) return "E01";
    const std::string out = target_.monitor(
        std::string_view(reinterpret_cast<const char*>(command.data()), command.size()));
    if (out.empty()) return "OK";
    return to_hex(reinterpret_cast<const uint8_t*>(out.data()), out.size());
  }
  if (starts("QStartNoAckMode")) {
    no_ack_ = true;
    return "OK";
  }
  return "";
}

Resume GdbStub::resume_command(std::string_view packet, std::string* reply) {
  // c [addr], s [addr], C sig[;addr], S sig[;addr], vCont;ACTION[:thread]...
  // A resume address moves EIP first; a signal to deliver is ignored (no guest signals).
  const char kind = packet[0];
  std::string_view addr_text;
  if (kind == 'c' || kind == 's') {
    addr_text = packet.substr(1);
  } else {
    const size_t semi = packet.find(';');
    if (semi != std::string_view::npos) addr_text = packet.substr(semi + 1);
  }
  if (!addr_text.empty()) {
    uint64_t addr = 0;
    if (!parse_hex_number(addr_text, &addr) || addr > UINT32_MAX) {
      *reply = "E01";
      return Resume::kNone;
    }
    VcpuState s = target_.registers();
    s.eip = static_cast<uint32_t>(addr);
    target_.set_registers(s);
  }
  return (kind == 's' || kind == 'S') ? Resume::kStep : Resume::kContinue;
}

Resume GdbStub::handle(std::string_view packet, std::string* reply) {
  reply->clear();
  if (packet.empty()) return Resume::kNone;
  switch (packet[0]) {
    case '?':
      *reply = stop_reply(last_signal_);
      return Resume::kNone;
    case 'g':
      *reply = read_registers();
      return Resume::kNone;
    case 'G':
      *reply = write_registers(packet.substr(1));
      return Resume::kNone;
    case 'p': {
      uint64_t regno = 0;
      if (!parse_hex_number(packet.substr(1), &regno) || regno >= kRegisterCount) {
        *reply = "E01";
        return Resume::kNone;
      }
      std::vector<uint8_t> bytes;
      read_register(target_.registers(), regno, bytes);
      *reply = to_hex(bytes.data(), bytes.size());
      return Resume::kNone;
    }
    case 'P': {
      const size_t eq = packet.find('=');
      uint64_t regno = 0;
      std::vector<uint8_t> bytes;
      if (eq == std::string_view::npos || !parse_hex_number(packet.substr(1, eq - 1), &regno) ||
          regno >= kRegisterCount || !from_hex(packet.substr(eq + 1), bytes) ||
          bytes.size() != register_size(regno)) {
        *reply = "E01";
        return Resume::kNone;
      }
      VcpuState s = target_.registers();
      if (!write_register(s, regno, bytes.data())) {
        *reply = "E02";
        return Resume::kNone;
      }
      target_.set_registers(s);
      *reply = "OK";
      return Resume::kNone;
    }
    case 'm':
      *reply = read_memory(packet.substr(1));
      return Resume::kNone;
    case 'M':
      *reply = write_memory(packet.substr(1), false);
      return Resume::kNone;
    case 'X':
      *reply = write_memory(packet.substr(1), true);
      return Resume::kNone;
    case 'Z':
    case 'z':
      *reply = change_breakpoint(packet.substr(1), packet[0] == 'Z');
      return Resume::kNone;
    case 'c':
    case 's':
    case 'C':
    case 'S':
      return resume_command(packet, reply);
    case 'v':
      if (packet == "vCont?") {
        *reply = "vCont;c;C;s;S";
        return Resume::kNone;
      }
      if (packet.substr(0, 6) == "vCont;") {
        // The first action applies to our one thread ("vCont;s:1;c" steps it).
        const char action = packet.size() > 6 ? packet[6] : '\0';
        if (action == 's' || action == 'S') return Resume::kStep;
        if (action == 'c' || action == 'C') return Resume::kContinue;
        *reply = "E01";
        return Resume::kNone;
      }
      return Resume::kNone;  // vMustReplyEmpty, vKill, vFile: not supported
    case 'H':
    case 'T':
      *reply = "OK";  // one thread: every thread id names it
      return Resume::kNone;
    case 'k':
      return Resume::kKill;
    case 'D':
      *reply = "OK";
      return Resume::kDetach;
    case 'q':
    case 'Q':
      *reply = query(packet);
      return Resume::kNone;
    default:
      return Resume::kNone;
  }
}

std::string GdbStub::stop_reply(StopSignal signal, std::optional<WatchStop> watch) {
  last_signal_ = signal;
  if (watch) {
    using Kind = DebugSettings::Watch::Kind;
    const char* name = watch->kind == Kind::kWrite  ? "watch"
                       : watch->kind == Kind::kRead ? "rwatch"
                                                    : "awatch";
    return fmt::format("T{:02x}{}:{:x};thread:01;", static_cast<unsigned>(signal), name,
                       watch->address);
  }
  return fmt::format("T{:02x}thread:01;", static_cast<unsigned>(signal));
}

}  // namespace vmbt::gdb
