// Descriptor, stack and register helpers of the system emulator (Intel SDM Vol. 3A ch. 3 and 5).
#include <cstring>

#include "bt/system/internal.h"

namespace vmbt::bt::sys {

SegmentReg segment_from(uint16_t selector, const Descriptor& d) {
  SegmentReg r;
  r.selector = selector;
  r.base = d.base();
  r.limit = d.limit();
  r.type = d.type();
  r.dpl = static_cast<uint8_t>(d.dpl());
  r.s = d.s();
  r.present = d.present();
  r.db = d.db();
  r.g = d.g();
  r.avl = d.avl();
  r.unusable = false;
  return r;
}

SegmentReg null_segment(uint16_t selector) {
  SegmentReg r;
  r.selector = selector;
  r.unusable = true;
  return r;
}

bool in_limit(const SegmentReg& seg, uint32_t offset, uint32_t len) {
  if (len == 0) return true;
  const uint64_t last = uint64_t{offset} + len - 1;
  const bool expand_down = seg.s && !(seg.type & 8) && (seg.type & 4);
  if (expand_down) {
    // Valid offsets are limit+1 .. 0xFFFF or 0xFFFFFFFF (B flag), Intel SDM Vol. 3A §5.3.
    const uint64_t upper = seg.db ? 0xffffffffu : 0xffffu;
    return offset > seg.limit && last <= upper;
  }
  return last <= seg.limit;
}

uint32_t read_u(LinearMemory& m, uint32_t linear, unsigned size, bool user) {
  uint8_t b[4] = {};
  m.read(linear, b, size, user);
  uint32_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= uint32_t{b[i]} << (8 * i);
  return v;
}

void write_u(LinearMemory& m, uint32_t linear, uint32_t value, unsigned size, bool user) {
  uint8_t b[4];
  for (unsigned i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(value >> (8 * i));
  m.write(linear, b, size, user);
}

bool descriptor_address(const VcpuState& s, uint16_t selector, uint32_t* addr) {
  uint32_t base, limit;
  if (selector & 4) {
    if (s.ldtr.unusable || !s.ldtr.present) return false;
    base = s.ldtr.base;
    limit = s.ldtr.limit;
  } else {
    base = s.gdtr.base;
    limit = s.gdtr.limit;
  }
  const uint32_t index = selector & 0xfff8u;
  if (index + 7u > limit) return false;
  *addr = base + index;
  return true;
}

Descriptor read_descriptor(LinearMemory& m, uint32_t addr) {
  uint8_t b[8];
  m.read(addr, b, 8, false);
  Descriptor d;
  std::memcpy(&d.lo, b, 4);
  std::memcpy(&d.hi, b + 4, 4);
  return d;
}

Descriptor fetch_descriptor(LinearMemory& m, const VcpuState& s, uint16_t selector, uint8_t vector,
                            uint32_t ext, uint32_t* addr) {
  uint32_t a;
  if (!descriptor_address(s, selector, &a)) fault(vector, sel_code(selector, ext));
  if (addr) *addr = a;
  return read_descriptor(m, a);
}

namespace {
/// Writes back byte 5 of a descriptor (present, DPL, S, type), where its Accessed and busy bits
/// are.
void write_type_byte(LinearMemory& m, uint32_t addr, const Descriptor& d) {
  const uint8_t byte5 = static_cast<uint8_t>(d.hi >> 8);
  m.write(addr + 5, &byte5, 1, false);
}
}  // namespace

void set_accessed(LinearMemory& m, uint32_t addr, Descriptor& d) {
  if (!d.s() || (d.hi & (1u << 8))) return;
  d.hi |= 1u << 8;
  write_type_byte(m, addr, d);
}

void set_busy(LinearMemory& m, uint32_t addr, Descriptor& d, bool busy) {
  d.hi = busy ? d.hi | (2u << 8) : d.hi & ~(2u << 8);
  write_type_byte(m, addr, d);
}

StackPtr current_stack(const VcpuState& s) {
  StackPtr sp;
  sp.ss = s.seg[vmbt::kSs];
  sp.esp = s.gpr[kEsp];
  sp.user = cpl(s) == 3;
  return sp;
}

FarReturn peek_far_return(LinearMemory& m, const VcpuState& s, const Insn& in) {
  FarReturn r;
  r.imm = in.ops[0].type == ZYDIS_OPERAND_TYPE_IMMEDIATE
              ? static_cast<uint32_t>(in.ops[0].imm.value.u & 0xffff)
              : 0;
  r.sp = current_stack(s);
  check_pop_room(r.sp, 2 * in.osize, vec::kSs, 0);
  r.eip = peek(m, r.sp, 0, in.osize);
  r.cs = static_cast<uint16_t>(peek(m, r.sp, in.osize, 2));
  return r;
}

void commit_esp(VcpuState& s, const StackPtr& sp) {
  const uint32_t mask = sp.mask();
  s.gpr[kEsp] = (s.gpr[kEsp] & ~mask) | (sp.esp & mask);
}

namespace {
// [offset, offset+bytes) with wrap-around at the stack's address size.
bool stack_range_ok(const SegmentReg& ss, uint32_t mask, uint32_t offset, uint32_t bytes) {
  if (bytes == 0) return true;
  if (uint64_t{offset} + bytes - 1 <= mask) return in_limit(ss, offset, bytes);
  const uint32_t first = mask - offset + 1;
  return in_limit(ss, offset, first) && in_limit(ss, 0, bytes - first);
}
}  // namespace

void check_push_room(const StackPtr& sp, uint32_t bytes, uint8_t vector, uint32_t code) {
  const uint32_t mask = sp.mask();
  if (!stack_range_ok(sp.ss, mask, (sp.esp - bytes) & mask, bytes)) fault(vector, code);
}

void check_pop_room(const StackPtr& sp, uint32_t bytes, uint8_t vector, uint32_t code) {
  const uint32_t mask = sp.mask();
  if (!stack_range_ok(sp.ss, mask, sp.esp & mask, bytes)) fault(vector, code);
}

void push(LinearMemory& m, StackPtr& sp, uint32_t value, unsigned size) {
  const uint32_t mask = sp.mask();
  const uint32_t off = (sp.esp - size) & mask;
  if (uint64_t{off} + size - 1 > mask || !in_limit(sp.ss, off, size)) fault(vec::kSs, 0);
  write_u(m, sp.ss.base + off, value, size, sp.user);
  sp.esp = (sp.esp & ~mask) | off;
}

uint32_t peek(LinearMemory& m, const StackPtr& sp, uint32_t delta, unsigned size) {
  const uint32_t mask = sp.mask();
  const uint32_t off = (sp.esp + delta) & mask;
  if (uint64_t{off} + size - 1 > mask || !in_limit(sp.ss, off, size)) fault(vec::kSs, 0);
  return read_u(m, sp.ss.base + off, size, sp.user);
}

void push_frame(LinearMemory& m, StackPtr& sp, const uint32_t* values, unsigned count,
                unsigned size) {
  const uint32_t mask = sp.mask();
  const uint32_t bytes = count * size;
  const uint32_t off = (sp.esp - bytes) & mask;
  if (count > 8 || uint64_t{off} + bytes - 1 > mask || !in_limit(sp.ss, off, bytes)) {
    for (unsigned i = 0; i < count; ++i) push(m, sp, values[i], size);  // wraps: one at a time
    return;
  }
  uint8_t frame[32];
  for (unsigned i = 0; i < count; ++i) {  // values[count - 1] at the lowest address
    const uint32_t v = values[count - 1 - i];
    for (unsigned b = 0; b < size; ++b) frame[i * size + b] = static_cast<uint8_t>(v >> (8 * b));
  }
  try {
    m.write(sp.ss.base + off, frame, bytes, sp.user);  // all or nothing (LinearMemory::write)
  } catch (const GuestFault&) {
    // The pushes one at a time, highest address first, fault where the CPU's would: CR2 names
    // the first push that cannot be written.
    for (unsigned i = 0; i < count; ++i) push(m, sp, values[i], size);
    return;
  }
  sp.esp = (sp.esp & ~mask) | off;
}

void peek_frame(LinearMemory& m, const StackPtr& sp, uint32_t delta, uint32_t* values,
                unsigned count, unsigned size) {
  const uint32_t mask = sp.mask();
  const uint32_t bytes = count * size;
  const uint32_t off = (sp.esp + delta) & mask;
  if (count > 8 || uint64_t{off} + bytes - 1 > mask || !in_limit(sp.ss, off, bytes)) {
    for (unsigned i = 0; i < count; ++i) values[i] = peek(m, sp, delta + i * size, size);
    return;
  }
  uint8_t frame[32];
  m.read(sp.ss.base + off, frame, bytes, sp.user);
  for (unsigned i = 0; i < count; ++i) {
    uint32_t v = 0;
    for (unsigned b = 0; b < size; ++b) v |= uint32_t{frame[i * size + b]} << (8 * b);
    values[i] = v;
  }
}

uint32_t pop(LinearMemory& m, StackPtr& sp, unsigned size) {
  const uint32_t v = peek(m, sp, 0, size);
  const uint32_t mask = sp.mask();
  sp.esp = (sp.esp & ~mask) | ((sp.esp + size) & mask);
  return v;
}

int sreg_index(ZydisRegister r) {
  if (r >= ZYDIS_REGISTER_ES && r <= ZYDIS_REGISTER_GS) return r - ZYDIS_REGISTER_ES;
  return -1;
}

uint32_t read_reg(const VcpuState& s, ZydisRegister r) {
  if (r >= ZYDIS_REGISTER_EAX && r <= ZYDIS_REGISTER_EDI) return s.gpr[r - ZYDIS_REGISTER_EAX];
  if (r >= ZYDIS_REGISTER_AX && r <= ZYDIS_REGISTER_DI)
    return s.gpr[r - ZYDIS_REGISTER_AX] & 0xffff;
  if (r >= ZYDIS_REGISTER_AL && r <= ZYDIS_REGISTER_BL) return s.gpr[r - ZYDIS_REGISTER_AL] & 0xff;
  if (r >= ZYDIS_REGISTER_AH && r <= ZYDIS_REGISTER_BH)
    return (s.gpr[r - ZYDIS_REGISTER_AH] >> 8) & 0xff;
  int seg = sreg_index(r);
  if (seg >= 0) return s.seg[seg].selector;
  return 0;
}

void write_reg(VcpuState& s, ZydisRegister r, uint32_t value) {
  if (r >= ZYDIS_REGISTER_EAX && r <= ZYDIS_REGISTER_EDI) {
    s.gpr[r - ZYDIS_REGISTER_EAX] = value;
  } else if (r >= ZYDIS_REGISTER_AX && r <= ZYDIS_REGISTER_DI) {
    uint32_t& g = s.gpr[r - ZYDIS_REGISTER_AX];
    g = (g & 0xffff0000u) | (value & 0xffff);
  } else if (r >= ZYDIS_REGISTER_AL && r <= ZYDIS_REGISTER_BL) {
    uint32_t& g = s.gpr[r - ZYDIS_REGISTER_AL];
    g = (g & 0xffffff00u) | (value & 0xff);
  } else if (r >= ZYDIS_REGISTER_AH && r <= ZYDIS_REGISTER_BH) {
    uint32_t& g = s.gpr[r - ZYDIS_REGISTER_AH];
    g = (g & 0xffff00ffu) | ((value & 0xff) << 8);
  }
}

uint32_t effective_offset(const VcpuState& s, const Insn& in, const ZydisDecodedOperand& op) {
  uint64_t ea = static_cast<uint64_t>(op.mem.disp.value);
  if (op.mem.base != ZYDIS_REGISTER_NONE) ea += read_reg(s, op.mem.base);
  if (op.mem.index != ZYDIS_REGISTER_NONE) ea += uint64_t{read_reg(s, op.mem.index)} * op.mem.scale;
  return static_cast<uint32_t>(ea) & (in.asize == 2 ? 0xffffu : 0xffffffffu);
}

}  // namespace vmbt::bt::sys
