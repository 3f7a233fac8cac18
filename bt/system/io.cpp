// Port I/O: IN, OUT, INS, OUTS and the I/O permission checks (Intel SDM Vol. 1 §19.5; Vol. 2A IN,
// INS; Vol. 2B OUT, OUTS).
#include <algorithm>

#include "bt/debug_registers.h"
#include "bt/system/internal.h"
#include "bt/system/system_emulator.h"

namespace vmbt::bt {

using sys::Insn;

// Protected-mode I/O permission (Intel SDM Vol. 1 §19.5.1-19.5.2): allowed when CPL <= IOPL
// outside virtual-8086 mode;
// otherwise TR must hold a 32-bit TSS with limit >= 103, and every bit for the accessed bytes in
// the I/O permission bit map (base at TSS+66H) must be 0. The processor reads two bytes of the
// map; if they are not both inside the TSS limit the access is refused. Violations: #GP(0).
void SystemEmulator::check_io_permission(const VcpuState& s, uint16_t port, unsigned size) {
  // In virtual-8086 mode the bitmap decides whatever IOPL is (§19.5.2, Vol. 3A §20.2.8.1).
  if (!sys::vm86(s) && sys::cpl(s) <= sys::iopl(s)) return;
  const SegmentReg& tr = s.tr;
  if (tr.unusable || !(tr.type == sys::kTss32Avail || tr.type == sys::kTss32Busy) ||
      tr.limit < 103) {
    sys::gp(0);
  }
  const uint32_t map_base = sys::read_u(mem_, tr.base + 0x66, 2, false);
  const uint32_t byte = map_base + port / 8u;
  if (byte + 1 > tr.limit) sys::gp(0);
  const uint32_t bits = sys::read_u(mem_, tr.base + byte, 2, false);
  const uint32_t needed = ((1u << size) - 1) << (port & 7);
  if (bits & needed) sys::gp(0);
}

// IN AL/AX/EAX, imm8|DX and OUT imm8|DX, AL/AX/EAX: after the permission check, the engine
// performs the access (kIo) and finish_io completes it.
StepResult SystemEmulator::in_out(VcpuState& s, const Insn& in) {
  const bool is_in = in.mnemonic() == ZYDIS_MNEMONIC_IN;
  const ZydisDecodedOperand& port_op = is_in ? in.ops[1] : in.ops[0];
  const ZydisDecodedOperand& data_op = is_in ? in.ops[0] : in.ops[1];
  const uint16_t port = port_op.type == ZYDIS_OPERAND_TYPE_IMMEDIATE
                            ? static_cast<uint16_t>(port_op.imm.value.u & 0xff)
                            : static_cast<uint16_t>(s.gpr[kEdx] & 0xffff);
  const unsigned size = ZydisRegisterGetWidth(ZYDIS_MACHINE_MODE_LEGACY_32, data_op.reg.value) / 8;
  check_io_permission(s, port, size);
  StepResult r;
  r.kind = StepKind::kIo;
  r.io.port = port;
  r.io.size = static_cast<uint8_t>(size);
  r.io.write = !is_in;
  r.io.count = 1;
  r.io.data = io_buffer_.data();
  if (!is_in) {
    for (unsigned i = 0; i < size; ++i) r.io.data[i] = static_cast<uint8_t>(s.gpr[kEax] >> (8 * i));
  }
  pending_ = PendingIo{};
  pending_.active = true;
  pending_.in = is_in;
  pending_.size = static_cast<uint8_t>(size);
  pending_.port = port;
  pending_.count = 1;
  pending_.eip = in.eip;
  pending_.next_eip = in.next_eip;
  return r;
}

// INS (ES:(E)DI, never overridden) and OUTS (DS:(E)SI or override), with REP: a batch is the
// elements that stay within one page of the memory operand and within the segment limit, at most
// (E)CX; faults on the first element are raised now (#GP(0)/#SS(0) limit, #PF), and INS probes
// its destination so a store fault is raised before the device is accessed.
StepResult SystemEmulator::string_io(VcpuState& s, const Insn& in) {
  const ZydisMnemonic m = in.mnemonic();
  const bool is_in =
      m == ZYDIS_MNEMONIC_INSB || m == ZYDIS_MNEMONIC_INSW || m == ZYDIS_MNEMONIC_INSD;
  const unsigned size = (m == ZYDIS_MNEMONIC_INSB || m == ZYDIS_MNEMONIC_OUTSB)   ? 1
                        : (m == ZYDIS_MNEMONIC_INSW || m == ZYDIS_MNEMONIC_OUTSW) ? 2
                                                                                  : 4;
  const uint32_t amask = in.asize == 2 ? 0xffffu : 0xffffffffu;
  const bool rep = in.rep();
  const uint32_t ecx = s.gpr[kEcx] & amask;
  if (rep && ecx == 0) {
    s.eip = in.next_eip;
    return {};
  }
  const uint16_t port = static_cast<uint16_t>(s.gpr[kEdx] & 0xffff);
  check_io_permission(s, port, size);

  unsigned seg = kEs;
  if (!is_in) {
    seg = kDs;
    for (unsigned i = 0; i < in.zi.operand_count; ++i) {
      if (in.is_mem(i)) seg = static_cast<unsigned>(sys::sreg_index(in.ops[i].mem.segment));
    }
  }
  const uint32_t off = s.gpr[is_in ? kEdi : kEsi] & amask;
  const int64_t dir = (s.eflags & eflags::kDf) ? -1 : 1;
  const uint32_t lin0 = data_linear(s, seg, off, size, is_in);
  // One element per step under single-step, so the trap follows every iteration.
  uint32_t max = rep ? std::min<uint32_t>(ecx, 4096 / size) : 1;
  if (s.eflags & eflags::kTf) max = 1;
  uint32_t count = 1;
  const bool first_crosses = (lin0 >> 12) != ((lin0 + size - 1) >> 12);
  if (!first_crosses) {
    const SegmentReg& sr = s.seg[seg];
    while (count < max) {
      const int64_t o = int64_t{off} + dir * int64_t{count} * size;
      if (o < 0 || o + size - 1 > int64_t{amask}) break;
      if (!sys::in_limit(sr, static_cast<uint32_t>(o), size)) break;
      const uint32_t lin = sr.base + static_cast<uint32_t>(o);
      if ((lin >> 12) != (lin0 >> 12) || ((lin + size - 1) >> 12) != (lin0 >> 12)) break;
      ++count;
    }
  }
  const bool user = sys::cpl(s) == 3;
  const uint32_t bytes = count * size;
  const uint32_t lo = dir > 0 ? lin0 : lin0 - (count - 1) * size;
  StepResult r;
  r.kind = StepKind::kIo;
  r.io.port = port;
  r.io.size = static_cast<uint8_t>(size);
  r.io.write = !is_in;
  r.io.count = count;
  r.io.data = io_buffer_.data();
  std::array<uint8_t, kIoBufferBytes> tmp;
  mem_.read(lo, tmp.data(), bytes, user);
  if (is_in) {
    mem_.write(lo, tmp.data(), bytes, user);  // probe: a store fault comes before the I/O
  } else {
    for (uint32_t k = 0; k < count; ++k) {
      const uint32_t at = dir > 0 ? k * size : (count - 1 - k) * size;
      std::copy_n(tmp.begin() + at, size, r.io.data + k * size);
    }
  }
  pending_ = PendingIo{};
  pending_.active = true;
  pending_.string = true;
  pending_.in = is_in;
  pending_.rep = rep;
  pending_.size = static_cast<uint8_t>(size);
  pending_.asize = static_cast<uint8_t>(in.asize);
  pending_.port = port;
  pending_.count = count;
  pending_.eip = in.eip;
  pending_.next_eip = in.next_eip;
  return r;
}

StepResult SystemEmulator::finish_io(VcpuState& s, const IoRequest& io) {
  interrupt_shadow = false;
  event_delivered_ = false;
  if (!pending_.active) return {};
  const PendingIo p = pending_;
  pending_ = PendingIo{};
  const VcpuRegisters before = s;
  StepResult r;
  try {
    const uint32_t amask = p.asize == 2 ? 0xffffu : 0xffffffffu;
    if (!p.string) {
      if (p.in) {
        uint32_t v = 0;
        for (unsigned i = 0; i < p.size; ++i) v |= uint32_t{io.data[i]} << (8 * i);
        const uint32_t keep = p.size == 4 ? 0 : (p.size == 2 ? 0xffff0000u : 0xffffff00u);
        s.gpr[kEax] = (s.gpr[kEax] & keep) | v;
      }
    } else {
      const int64_t dir = (s.eflags & eflags::kDf) ? -1 : 1;
      const unsigned reg = p.in ? kEdi : kEsi;
      const uint32_t off = s.gpr[reg] & amask;
      if (p.in) {
        const bool user = sys::cpl(s) == 3;
        for (uint32_t k = 0; k < p.count; ++k) {
          const uint32_t o =
              static_cast<uint32_t>(int64_t{off} + dir * int64_t{k} * p.size) & amask;
          mem_.write(s.seg[kEs].base + o, io.data + k * p.size, p.size, user);
        }
      }
      const uint32_t next = static_cast<uint32_t>(int64_t{off} + dir * int64_t{p.count} * p.size);
      s.gpr[reg] = (s.gpr[reg] & ~amask) | (next & amask);
      if (p.rep) {
        const uint32_t ecx = ((s.gpr[kEcx] & amask) - p.count) & amask;
        s.gpr[kEcx] = (s.gpr[kEcx] & ~amask) | ecx;
      }
    }
    const bool done = !p.rep || (s.gpr[kEcx] & amask) == 0;
    if (done) {
      s.eip = p.next_eip;
      s.eflags &= ~eflags::kRf;
    } else {
      // An event between iterations of a REP string instruction pushes RF=1 (Vol. 3A §17.3.1.1).
      s.eflags |= eflags::kRf;
    }
    if (p.single_step) r = debug_trap(s, dr::kBs);
  } catch (const GuestFault& f) {
    sys::restore_state(s, before);
    sys::Event ev;
    ev.vector = f.vector;
    ev.error_code = f.error_code;
    ev.return_eip = s.eip;
    ev.fault = sys::exception_is_fault(f.vector);
    r = deliver_event(s, ev);
  }
  return r;
}

}  // namespace vmbt::bt
