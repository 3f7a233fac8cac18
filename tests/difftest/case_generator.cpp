// IA-32 case generator. Encodings and flag effects follow the Intel SDM Vol. 2 instruction
// pages; "undefined" flags are the ones those pages (or the AMD APM, where stricter) leave
// undefined.
#include "tests/difftest/case_generator.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <optional>
#include <span>

#include "tests/difftest/decode_check.h"

namespace vmbt::difftest {
namespace {

using flag::kAf;
using flag::kArith;
using flag::kCf;
using flag::kOf;
using flag::kPf;
using flag::kSf;
using flag::kZf;

/// splitmix64: small, fast, and identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed) {}
  uint64_t next() {
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  uint32_t u32() { return static_cast<uint32_t>(next()); }
  uint32_t below(uint32_t n) { return n ? static_cast<uint32_t>(next() % n) : 0; }
  bool chance(unsigned percent) { return below(100) < percent; }
  int32_t range(int32_t lo, int32_t hi) { return lo + static_cast<int32_t>(below(hi - lo + 1)); }
  template <class T>
  T pick(std::initializer_list<T> items) {
    return items.begin()[below(static_cast<uint32_t>(items.size()))];
  }

 private:
  uint64_t s_;
};

/// Operand values that hit carries, overflows, sign changes and BCD corners.
uint32_t interesting(Rng& r) {
  static constexpr uint32_t kValues[] = {
      0,          1,          2,          7,          9,          0x0f,       0x10,
      0x7f,       0x80,       0x99,       0xff,       0x100,      0x7fff,     0x8000,
      0xffff,     0x10000,    0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe, 0xffffffff,
      0x12345678, 0xdeadbeef, 0x00ff00ff, 0x55555555, 0xaaaaaaaa};
  switch (r.below(5)) {
    case 0:
    case 1:
      return kValues[r.below(sizeof kValues / sizeof kValues[0])];
    case 2:
      return r.below(0x100);
    case 3:
      return static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(r.u32())));
    default:
      return r.u32();
  }
}

uint32_t shift_count(Rng& r) {
  if (r.chance(30)) return r.below(256);
  return r.pick<uint32_t>({0, 1, 1, 2, 3, 4, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 255});
}

uint32_t mask_of(unsigned size) {
  return size == 32 ? 0xffffffffu : (1u << size) - 1;
}

/// Status flags a condition code (low nibble of Jcc/SETcc/CMOVcc) reads.
uint32_t cc_reads(unsigned cc) {
  static constexpr uint32_t kReads[8] = {kOf, kCf, kZf,       kCf | kZf,
                                         kSf, kPf, kSf | kOf, kZf | kSf | kOf};
  return kReads[(cc >> 1) & 7];
}

const char* const kCcNames[16] = {"o", "no", "b", "ae", "e", "ne", "be", "a",
                                  "s", "ns", "p", "np", "l", "ge", "le", "g"};
const char* const kAluNames[8] = {"add", "or", "adc", "sbb", "and", "sub", "xor", "cmp"};
const char* const kShiftNames[8] = {"rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"};

/// A ModRM memory operand (with SIB and displacement), 32- or 16-bit addressing.
struct MemOp {
  bool addr16 = false;
  uint8_t mod = 0, rm = 0;
  bool has_sib = false;
  uint8_t sib = 0;
  int32_t disp = 0;
  uint8_t disp_size = 0;

  void encode(unsigned regfield, std::vector<uint8_t>& out) const {
    out.push_back(static_cast<uint8_t>(mod << 6 | (regfield & 7) << 3 | rm));
    if (has_sib) out.push_back(sib);
    for (unsigned i = 0; i < disp_size; ++i)
      out.push_back(static_cast<uint8_t>(static_cast<uint32_t>(disp) >> (8 * i)));
  }
  /// Displacement-only address (no base register).
  bool base_less() const {
    if (addr16) return mod == 0 && rm == 6;
    return mod == 0 && (rm == 5 || (has_sib && (sib & 7) == 5));
  }
  /// The same operand `delta` bytes further on.
  MemOp plus(int32_t delta) const {
    MemOp m = *this;
    if (base_less()) {
      m.disp += delta;
      return m;
    }
    const int32_t d = (mod == 0 ? 0 : disp) + delta;
    if (d >= -128 && d <= 127) {
      m.mod = 1;
      m.disp_size = 1;
    } else {
      m.mod = 2;
      m.disp_size = addr16 ? 2 : 4;
    }
    m.disp = d;
    return m;
  }
};

/// A ModRM r/m operand: a register encoding or a memory operand.
struct Rm {
  bool mem = false;
  uint8_t reg = 0;
  MemOp m;
};

/// Instruction bytes under construction.
struct Insn {
  std::vector<uint8_t> pfx, body;
  uint32_t attrs = 0;
  Insn& p(uint8_t b) {
    pfx.push_back(b);
    return *this;
  }
  Insn& o(std::initializer_list<uint8_t> b) {
    body.insert(body.end(), b);
    return *this;
  }
  Insn& opsize(unsigned size) {
    if (size == 16) {
      pfx.push_back(0x66);
      attrs |= kAttrOpsize16;
    }
    return *this;
  }
  Insn& rm(const Rm& x, unsigned regfield) {
    if (!x.mem) {
      body.push_back(static_cast<uint8_t>(0xc0 | (regfield & 7) << 3 | x.reg));
      return *this;
    }
    attrs |= kAttrMem;
    if (x.m.addr16) {
      pfx.push_back(0x67);
      attrs |= kAttrAddr16;
    }
    x.m.encode(regfield, body);
    return *this;
  }
  Insn& imm(uint32_t v, unsigned bytes) {
    for (unsigned i = 0; i < bytes; ++i) body.push_back(static_cast<uint8_t>(v >> (8 * i)));
    return *this;
  }
};

/// Register roles: a register with a role other than kFree is never written by generated
/// instructions (except the instructions that define the role: string ops, stack ops, ENTER).
enum class Kind : uint8_t {
  kFree,
  kPtr,     ///< arena pointer in [0x4000, 0x7400]: base, 16-bit pair member, index with scale 1
  kStack,   ///< ESP, or EBP after ENTER: a base with a small displacement only
  kIdx,     ///< small index in [0, 0x200): any scale
  kBitOff,  ///< signed bit offset in [-0x800, 0x800] for BT* m, r
  kFixed,   ///< value must be kept (ECX in a loop body)
  kFar,     ///< an arena pointer minus a large displacement: the base of that one operand only
};

/// Flag and register effects of one instruction.
struct Fx {
  uint8_t writes = 0;  ///< GPRs written (bit per register)
  uint32_t reads = 0;  ///< status flags read
  uint32_t def = 0;    ///< status flags written with a defined value
  uint32_t undef = 0;  ///< status flags written with an undefined value
};

constexpr uint8_t bit(unsigned g) {
  return static_cast<uint8_t>(1u << g);
}

/// Keeps free registers that an instruction uses implicitly from being claimed as pointers
/// while its operands are chosen.
class Pin {
 public:
  Pin(std::array<Kind, 8>& kinds, uint8_t mask) : kinds_(kinds) {
    for (unsigned g = 0; g < 8; ++g) {
      if ((mask & bit(g)) && kinds_[g] == Kind::kFree) {
        kinds_[g] = Kind::kFixed;
        pinned_ |= bit(g);
      }
    }
  }
  ~Pin() {
    for (unsigned g = 0; g < 8; ++g)
      if (pinned_ & bit(g)) kinds_[g] = Kind::kFree;
  }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;

 private:
  std::array<Kind, 8>& kinds_;
  uint8_t pinned_ = 0;
};

class CaseBuilder;
using GenFn = bool (CaseBuilder::*)();

/// Class table entry.
struct ClassEntry {
  const char* name;
  unsigned weight;
  GenFn fn;
  bool top_level_only;  ///< not inside loop bodies / skipped blocks / PUSHAD blocks
  bool invalid;         ///< only with GeneratorOptions::include_invalid
};

class CaseBuilder {
 public:
  CaseBuilder(Rng& rng, const GeneratorOptions& opt) : r_(rng), opt_(opt) {}
  GeneratedCase build(size_t index);

  // Instruction classes; each returns false (after possibly emitting setup code that the
  // caller rolls back) if it cannot be generated in the current state.
  bool gen_alu();
  bool gen_incdec();
  bool gen_negnot();
  bool gen_test();
  bool gen_mul();
  bool gen_imul();
  bool gen_div();
  bool gen_shift();
  bool gen_shld();
  bool gen_bt();
  bool gen_bsf();
  bool gen_bswap();
  bool gen_xchg();
  bool gen_xadd();
  bool gen_cmpxchg();
  bool gen_cmpxchg8b();
  bool gen_movx();
  bool gen_cbw();
  bool gen_setcc();
  bool gen_cmov();
  bool gen_lea();
  bool gen_bcd();
  bool gen_flagops();
  bool gen_sahf_lahf();
  bool gen_push_pop();
  bool gen_pushad();
  bool gen_enter_leave();
  bool gen_string();
  bool gen_loop();
  bool gen_jcc();
  bool gen_mov();
  bool gen_bound();
  bool gen_xlat();
  bool gen_invalid();

 private:
  struct State {
    size_t code_size, insn_count;
    CpuSnapshot in;
    std::array<Kind, 8> kind;
    uint8_t written;
    uint32_t undef;
  };
  struct Ctx {
    bool block = false;     ///< inside a loop body / skipped block: no control flow, no setup
                            ///< movs that create pointers
    bool no_mem = false;    ///< no memory operands (PUSHAD block)
    bool no_stack = false;  ///< no stack operations (PUSHAD block)
  };

  State save() const { return {code_.size(), insns_.size(), in_, kind_, written_, undef_}; }
  void restore(const State& s) {
    code_.resize(s.code_size);
    insns_.resize(s.insn_count);
    in_ = s.in;
    kind_ = s.kind;
    written_ = s.written;
    undef_ = s.undef;
  }

  void gen_one();
  void gen_block(unsigned n);
  void emit(const std::string& cls, Insn& insn, const Fx& fx);
  void emit_definer();
  void emit_mov_imm(unsigned g, uint32_t value, unsigned size = 32);

  bool free(unsigned g) const { return kind_[g] == Kind::kFree; }
  bool claimable(unsigned g) const { return free(g) && (!(written_ & bit(g)) || !ctx_.block); }
  uint32_t value_for(Kind k);
  bool claim(unsigned g, Kind k);
  int pick_dst(unsigned size);
  int pointer_reg(bool allow_stack);
  int role_reg(Kind k);
  bool use_as_pointer(unsigned g, bool allow_stack);
  uint32_t arena_addr() { return NativeRunner::kDataBase + 0x2000 + r_.below(0xb000); }
  MemOp mem32();
  MemOp mem16();
  MemOp mem_operand() { return r_.chance(15) ? mem16() : mem32(); }
  std::optional<Rm> pick_rm(unsigned size, bool dest, unsigned mem_pct = 40);
  unsigned pick_size(bool allow8) {
    const uint32_t x = r_.below(100);
    if (allow8 && x < 25) return 8;
    return x < 75 ? 32 : 16;
  }
  void maybe_lock(Insn& in, const Rm& rm) {
    if (rm.mem && r_.chance(25)) {
      in.p(0xf0);
      in.attrs |= kAttrLock;
    }
  }
  static uint8_t reg_of(unsigned enc, unsigned size) { return size == 8 ? enc & 3 : enc; }
  static uint8_t wr(const Rm& rm, unsigned size) { return rm.mem ? 0 : bit(reg_of(rm.reg, size)); }
  bool forward_skip(std::vector<uint8_t> branch, bool rel8, const std::string& cls, Fx fx,
                    uint32_t attrs);

  Rng& r_;
  const GeneratorOptions& opt_;
  std::vector<uint8_t> code_;
  std::vector<GeneratedInsn> insns_;
  CpuSnapshot in_;
  std::array<Kind, 8> kind_{};
  uint8_t written_ = 0;
  uint32_t undef_ = 0;
  Ctx ctx_;
};

const ClassEntry kClasses[] = {
    {"alu", 12, &CaseBuilder::gen_alu, false, false},
    {"incdec", 5, &CaseBuilder::gen_incdec, false, false},
    {"negnot", 3, &CaseBuilder::gen_negnot, false, false},
    {"test", 3, &CaseBuilder::gen_test, false, false},
    {"mul", 3, &CaseBuilder::gen_mul, false, false},
    {"imul", 3, &CaseBuilder::gen_imul, false, false},
    {"div", 5, &CaseBuilder::gen_div, false, false},
    {"shift", 7, &CaseBuilder::gen_shift, false, false},
    {"shld", 3, &CaseBuilder::gen_shld, false, false},
    {"bt", 5, &CaseBuilder::gen_bt, false, false},
    {"bsf", 2, &CaseBuilder::gen_bsf, false, false},
    {"bswap", 1, &CaseBuilder::gen_bswap, false, false},
    {"xchg", 2, &CaseBuilder::gen_xchg, false, false},
    {"xadd", 2, &CaseBuilder::gen_xadd, false, false},
    {"cmpxchg", 2, &CaseBuilder::gen_cmpxchg, false, false},
    {"cmpxchg8b", 2, &CaseBuilder::gen_cmpxchg8b, false, false},
    {"movx", 3, &CaseBuilder::gen_movx, false, false},
    {"cbw", 2, &CaseBuilder::gen_cbw, false, false},
    {"setcc", 3, &CaseBuilder::gen_setcc, false, false},
    {"cmov", 3, &CaseBuilder::gen_cmov, false, false},
    {"lea", 4, &CaseBuilder::gen_lea, false, false},
    {"bcd", 4, &CaseBuilder::gen_bcd, false, false},
    {"flags", 3, &CaseBuilder::gen_flagops, false, false},
    {"sahf_lahf", 2, &CaseBuilder::gen_sahf_lahf, false, false},
    {"stack", 5, &CaseBuilder::gen_push_pop, false, false},
    {"pushad", 2, &CaseBuilder::gen_pushad, true, false},
    {"enter_leave", 2, &CaseBuilder::gen_enter_leave, true, false},
    {"string", 6, &CaseBuilder::gen_string, false, false},
    {"loop", 4, &CaseBuilder::gen_loop, true, false},
    {"jcc", 3, &CaseBuilder::gen_jcc, true, false},
    {"mov", 4, &CaseBuilder::gen_mov, false, false},
    {"bound", 1, &CaseBuilder::gen_bound, false, false},
    {"xlat", 1, &CaseBuilder::gen_xlat, false, false},
    {"invalid", 2, &CaseBuilder::gen_invalid, false, true},
};

// ---- emission -------------------------------------------------------------------------------

void CaseBuilder::emit(const std::string& cls, Insn& insn, const Fx& fx) {
  if (fx.reads & undef_) emit_definer();
  // Occasionally a redundant ES/SS/DS override on a memory operand (flat segments: no effect).
  if ((insn.attrs & kAttrMem) && r_.chance(5)) {
    insn.pfx.push_back(r_.pick<uint8_t>({0x26, 0x36, 0x3e}));
    insn.attrs |= kAttrSegPrefix;
  }
  if (insn.pfx.size() > 1 && r_.chance(30)) {
    for (size_t i = insn.pfx.size() - 1; i > 0; --i)
      std::swap(insn.pfx[i], insn.pfx[r_.below(static_cast<uint32_t>(i + 1))]);
  }
  GeneratedInsn gi;
  gi.offset = static_cast<uint32_t>(code_.size());
  gi.length = static_cast<uint32_t>(insn.pfx.size() + insn.body.size());
  gi.cls = cls;
  gi.attrs = insn.attrs;
  gi.undefined_flags_before = undef_;
  insns_.push_back(std::move(gi));
  code_.insert(code_.end(), insn.pfx.begin(), insn.pfx.end());
  code_.insert(code_.end(), insn.body.begin(), insn.body.end());
  written_ |= fx.writes;
  undef_ = (undef_ & ~fx.def) | fx.undef;
}

/// CMP r32, r32: makes all six status flags defined before a flag reader.
void CaseBuilder::emit_definer() {
  Insn in;
  in.o({0x3b, static_cast<uint8_t>(0xc0 | r_.below(8) << 3 | r_.below(8))});
  emit("setup:cmp", in, Fx{.def = kArith});
}

void CaseBuilder::emit_mov_imm(unsigned g, uint32_t value, unsigned size) {
  Insn in;
  if (size == 8) {
    in.o({static_cast<uint8_t>(0xb0 + g)}).imm(value, 1);  // g is a byte-register encoding
    emit("setup:mov", in, Fx{.writes = bit(g & 3)});
    return;
  }
  in.opsize(size).o({static_cast<uint8_t>(0xb8 + g)}).imm(value, size / 8);
  emit("setup:mov", in, Fx{.writes = bit(g)});
}

// ---- registers and operands -----------------------------------------------------------------

uint32_t CaseBuilder::value_for(Kind k) {
  switch (k) {
    case Kind::kPtr: {
      uint32_t v = 0x4000 + r_.below(0x3400);
      return r_.chance(50) ? v & ~3u : v;
    }
    case Kind::kIdx:
      return r_.chance(15) ? 0 : r_.below(0x200);
    case Kind::kBitOff:
      return static_cast<uint32_t>(r_.range(-0x800, 0x800));
    default:
      return interesting(r_);
  }
}

/// Gives free register g the role k: through its initial value if nothing wrote it yet,
/// otherwise (outside blocks) with a MOV.
bool CaseBuilder::claim(unsigned g, Kind k) {
  if (!claimable(g)) return false;
  const uint32_t v = value_for(k);
  if (!(written_ & bit(g))) {
    in_.gpr[g] = v;
  } else {
    emit_mov_imm(g, v);
  }
  kind_[g] = k;
  return true;
}

int CaseBuilder::pick_dst(unsigned size) {
  int cands[8];
  int n = 0;
  for (unsigned e = 0; e < 8; ++e) {
    if (size != 8 && e == reg::kEsp) continue;
    if (free(reg_of(e, size))) cands[n++] = static_cast<int>(e);
  }
  return n ? cands[r_.below(n)] : -1;
}

/// A register usable as a base: an existing pointer, or a newly claimed one.
int CaseBuilder::pointer_reg(bool allow_stack) {
  int pool[8], fresh[8], fresh_pref[8];
  int np = 0, nf = 0, nfp = 0;
  bool only_esp = true;
  for (unsigned g = 0; g < 8; ++g) {
    if (kind_[g] == Kind::kPtr || (allow_stack && kind_[g] == Kind::kStack)) {
      pool[np++] = static_cast<int>(g);
      if (g != reg::kEsp) only_esp = false;
    } else if (claimable(g)) {
      fresh[nf++] = static_cast<int>(g);
      if (g == reg::kEbx || g == reg::kEbp || g == reg::kEsi || g == reg::kEdi)
        fresh_pref[nfp++] = static_cast<int>(g);
    }
  }
  if (nf && (np == 0 || r_.chance(only_esp ? 65 : 20))) {
    const int g = nfp && r_.chance(80) ? fresh_pref[r_.below(nfp)] : fresh[r_.below(nf)];
    claim(g, Kind::kPtr);
    return g;
  }
  return np ? pool[r_.below(np)] : -1;
}

/// A register with role k (kIdx, kBitOff): existing or newly claimed.
int CaseBuilder::role_reg(Kind k) {
  int pool[8], fresh[8];
  int np = 0, nf = 0;
  for (unsigned g = 0; g < 8; ++g) {
    if (kind_[g] == k)
      pool[np++] = static_cast<int>(g);
    else if (claimable(g))
      fresh[nf++] = static_cast<int>(g);
  }
  if (nf && (np == 0 || r_.chance(30))) {
    const int g = fresh[r_.below(nf)];
    claim(g, k);
    return g;
  }
  return np ? pool[r_.below(np)] : -1;
}

bool CaseBuilder::use_as_pointer(unsigned g, bool allow_stack) {
  if (kind_[g] == Kind::kPtr || (allow_stack && kind_[g] == Kind::kStack)) return true;
  return claim(g, Kind::kPtr);
}

/// A 32-bit-addressing operand inside the arena.
MemOp CaseBuilder::mem32() {
  MemOp m;
  auto set_disp = [&](bool allow_none) {
    const uint32_t d = r_.below(allow_none ? 3 : 2) + (allow_none ? 0 : 1);
    m.mod = static_cast<uint8_t>(d);
    if (d == 1) {
      m.disp = static_cast<int8_t>(r_.u32());
      m.disp_size = 1;
    } else if (d == 2) {
      m.disp = r_.range(-0x800, 0x800);
      m.disp_size = 4;
    }
  };
  const uint32_t form = r_.below(8);
  if (form == 7) {
    // [base + disp32] whose 64-bit sum is not the address (bt's direct window form): the 32-bit
    // sum wraps past 2^32, or the displacement is below -496 MiB, as a kernel's address above
    // 2 GiB is (Intel SDM Vol. 1 §3.7.5: the effective address is taken modulo 2^32).
    for (const int g : {reg::kEbx, reg::kEsi, reg::kEdi, reg::kEbp, reg::kEdx, reg::kEax}) {
      if (!claimable(static_cast<unsigned>(g))) continue;
      const int32_t disp = r_.pick<int32_t>(
          {-0x40000000, INT32_MIN, -0x1f000000 - 0x10, 0x40000000, 0x7ffff000, -0x7fff0000});
      const uint32_t value = 0x4000 + r_.below(0x3400) - static_cast<uint32_t>(disp);
      if (!(written_ & bit(static_cast<unsigned>(g)))) {
        in_.gpr[g] = value;
      } else {
        emit_mov_imm(static_cast<unsigned>(g), value);
      }
      kind_[g] = Kind::kFar;
      m.mod = 2;
      m.rm = static_cast<uint8_t>(g);
      m.disp = disp;
      m.disp_size = 4;
      return m;
    }
  }
  if (form == 1 || form == 2) {  // [base + disp], no SIB unless the base is ESP
    const int b = pointer_reg(true);
    if (b >= 0) {
      set_disp(b != reg::kEbp);
      if (b == reg::kEsp) {
        m.rm = 4;
        m.has_sib = true;
        m.sib = static_cast<uint8_t>(r_.below(4) << 6 | 4 << 3 | 4);
      } else {
        m.rm = static_cast<uint8_t>(b);
      }
      return m;
    }
  } else if (form == 3 || form == 4) {  // [base + index*scale + disp]
    const int b = pointer_reg(true);
    if (b >= 0) {
      int i = -1;
      unsigned scale = 0;
      if (kind_[b] == Kind::kPtr && r_.chance(40)) {
        for (int tries = 0; tries < 4 && i < 0; ++tries) {
          const int c = pointer_reg(false);
          if (c >= 0 && c != reg::kEsp) i = c;
        }
      }
      if (i < 0) {
        i = role_reg(Kind::kIdx);
        scale = r_.below(4);
      }
      if (i >= 0 && i != reg::kEsp) {
        set_disp(b != reg::kEbp);
        m.rm = 4;
        m.has_sib = true;
        m.sib = static_cast<uint8_t>(scale << 6 | i << 3 | b);
        return m;
      }
    }
  } else if (form == 5) {  // [index*scale + disp32]
    const int i = role_reg(Kind::kIdx);
    if (i >= 0 && i != reg::kEsp) {
      m.mod = 0;
      m.rm = 4;
      m.has_sib = true;
      m.sib = static_cast<uint8_t>(r_.below(4) << 6 | i << 3 | 5);
      m.disp = static_cast<int32_t>(NativeRunner::kDataBase + 0x2000 + r_.below(0xa000));
      m.disp_size = 4;
      return m;
    }
  } else if (form == 6) {  // [base] through a SIB without index (scale ignored)
    const int b = pointer_reg(true);
    if (b >= 0) {
      set_disp(b != reg::kEbp);
      m.rm = 4;
      m.has_sib = true;
      m.sib = static_cast<uint8_t>(r_.below(4) << 6 | 4 << 3 | b);
      return m;
    }
  }
  // [disp32]
  m.mod = 0;
  m.rm = 5;
  m.disp = static_cast<int32_t>(arena_addr());
  m.disp_size = 4;
  return m;
}

/// A 16-bit-addressing operand (0x67) inside the arena.
MemOp CaseBuilder::mem16() {
  MemOp m;
  m.addr16 = true;
  // rm: [bx+si] [bx+di] [bp+si] [bp+di] [si] [di] [bp]/[disp16] [bx]
  static constexpr int kFirst[8] = {reg::kEbx, reg::kEbx, reg::kEbp, reg::kEbp,
                                    reg::kEsi, reg::kEdi, reg::kEbp, reg::kEbx};
  static constexpr int kSecond[8] = {reg::kEsi, reg::kEdi, reg::kEsi, reg::kEdi, -1, -1, -1, -1};
  const uint8_t rm = static_cast<uint8_t>(r_.below(8));
  const bool absolute = rm == 6 && r_.chance(35);
  bool ok = !absolute;
  if (ok) {
    const bool pair = kSecond[rm] >= 0;
    ok = use_as_pointer(kFirst[rm], !pair) && (!pair || use_as_pointer(kSecond[rm], false));
  }
  if (!ok) {
    m.mod = 0;
    m.rm = 6;
    m.disp = static_cast<int32_t>(arena_addr());
    m.disp_size = 2;
    return m;
  }
  m.rm = rm;
  const uint32_t d = rm == 6 ? 1 + r_.below(2) : r_.below(3);
  m.mod = static_cast<uint8_t>(d);
  if (d == 1) {
    m.disp = static_cast<int8_t>(r_.u32());
    m.disp_size = 1;
  } else if (d == 2) {
    m.disp = r_.range(-0x800, 0x800);
    m.disp_size = 2;
  }
  return m;
}

std::optional<Rm> CaseBuilder::pick_rm(unsigned size, bool dest, unsigned mem_pct) {
  if (!ctx_.no_mem && r_.chance(mem_pct)) return Rm{true, 0, mem_operand()};
  const int e = dest ? pick_dst(size) : static_cast<int>(r_.below(8));
  if (e < 0) {
    if (ctx_.no_mem) return std::nullopt;
    return Rm{true, 0, mem_operand()};
  }
  return Rm{false, static_cast<uint8_t>(e), {}};
}

// ---- instruction classes --------------------------------------------------------------------

bool CaseBuilder::gen_alu() {
  const unsigned op = r_.below(8);
  const unsigned size = pick_size(true);
  const bool writes = op != 7;
  Fx fx;
  fx.reads = (op == 2 || op == 3) ? kCf : 0;
  if (op == 1 || op == 4 || op == 6) {
    fx.def = kArith & ~kAf;
    fx.undef = kAf;
  } else {
    fx.def = kArith;
  }
  const uint8_t w = size == 8 ? 0 : 1;
  Insn in;
  in.opsize(size);
  bool alias82 = false;
  switch (r_.below(4)) {
    case 0: {  // r/m, r
      const auto rm = pick_rm(size, writes);
      if (!rm) return false;
      if (writes) maybe_lock(in, *rm);
      in.o({static_cast<uint8_t>(op * 8 + w)}).rm(*rm, r_.below(8));
      fx.writes = writes ? wr(*rm, size) : 0;
      break;
    }
    case 1: {  // r, r/m
      const auto rm = pick_rm(size, false);
      if (!rm) return false;
      const int d = writes ? pick_dst(size) : static_cast<int>(r_.below(8));
      if (d < 0) return false;
      in.o({static_cast<uint8_t>(op * 8 + 2 + w)}).rm(*rm, d);
      fx.writes = writes ? bit(reg_of(d, size)) : 0;
      break;
    }
    case 2: {  // AL/AX/EAX, imm
      if (writes && !free(reg::kEax)) return false;
      in.o({static_cast<uint8_t>(op * 8 + 4 + w)}).imm(interesting(r_), size / 8);
      fx.writes = writes ? bit(reg::kEax) : 0;
      break;
    }
    default: {  // 80 /op ib, 81 /op iz, 83 /op ib (sign-extended), 82 /op ib (80 alias)
      const auto rm = pick_rm(size, writes);
      if (!rm) return false;
      if (writes) maybe_lock(in, *rm);
      if (size == 8) {
        alias82 = r_.chance(25);  // 82: 80's alias, valid only outside 64-bit mode
        in.o({static_cast<uint8_t>(alias82 ? 0x82 : 0x80)}).rm(*rm, op).imm(interesting(r_), 1);
      } else if (r_.chance(50)) {
        in.o({0x83}).rm(*rm, op).imm(interesting(r_), 1);
      } else {
        in.o({0x81}).rm(*rm, op).imm(interesting(r_), size / 8);
      }
      fx.writes = writes ? wr(*rm, size) : 0;
      break;
    }
  }
  emit(std::string(alias82 ? "alu82:" : "alu:") + kAluNames[op], in, fx);
  return true;
}

bool CaseBuilder::gen_incdec() {
  const bool dec = r_.chance(50);
  const unsigned size = pick_size(true);
  const Fx base{.def = kArith & ~kCf};
  Insn in;
  in.opsize(size);
  if (size != 8 && r_.chance(60)) {  // 40+r / 48+r: REX prefixes in 64-bit mode
    const int d = pick_dst(size);
    if (d < 0) return false;
    in.o({static_cast<uint8_t>((dec ? 0x48 : 0x40) + d)});
    Fx fx = base;
    fx.writes = bit(d);
    emit(dec ? "incdec:dec short" : "incdec:inc short", in, fx);
    return true;
  }
  const auto rm = pick_rm(size, true);
  if (!rm) return false;
  maybe_lock(in, *rm);
  in.o({static_cast<uint8_t>(size == 8 ? 0xfe : 0xff)}).rm(*rm, dec ? 1 : 0);
  Fx fx = base;
  fx.writes = wr(*rm, size);
  emit(dec ? "incdec:dec" : "incdec:inc", in, fx);
  return true;
}

bool CaseBuilder::gen_negnot() {
  const bool neg = r_.chance(55);
  const unsigned size = pick_size(true);
  const auto rm = pick_rm(size, true);
  if (!rm) return false;
  Insn in;
  in.opsize(size);
  maybe_lock(in, *rm);
  in.o({static_cast<uint8_t>(size == 8 ? 0xf6 : 0xf7)}).rm(*rm, neg ? 3 : 2);
  Fx fx{.writes = wr(*rm, size)};
  if (neg) fx.def = kArith;
  emit(neg ? "negnot:neg" : "negnot:not", in, fx);
  return true;
}

bool CaseBuilder::gen_test() {
  const unsigned size = pick_size(true);
  const uint8_t w = size == 8 ? 0 : 1;
  Insn in;
  in.opsize(size);
  const char* test_cls = "test:rm,r";
  switch (r_.below(3)) {
    case 0: {
      const auto rm = pick_rm(size, false);
      in.o({static_cast<uint8_t>(0x84 + w)}).rm(*rm, r_.below(8));
      break;
    }
    case 1:
      in.o({static_cast<uint8_t>(0xa8 + w)}).imm(interesting(r_), size / 8);
      test_cls = "test:acc,imm";
      break;
    default: {
      const auto rm = pick_rm(size, false);
      in.o({static_cast<uint8_t>(0xf6 + w)}).rm(*rm, 0).imm(interesting(r_), size / 8);
      test_cls = "test:rm,imm";
      break;
    }
  }
  emit(test_cls, in, Fx{.def = kArith & ~kAf, .undef = kAf});
  return true;
}

bool CaseBuilder::gen_mul() {
  const bool sign = r_.chance(50);
  const unsigned size = pick_size(true);
  if (!free(reg::kEax) || (size != 8 && !free(reg::kEdx))) return false;
  const Pin pin(kind_, bit(reg::kEax) | bit(reg::kEdx));
  const auto rm = pick_rm(size, false);
  Insn in;
  in.opsize(size).o({static_cast<uint8_t>(size == 8 ? 0xf6 : 0xf7)}).rm(*rm, sign ? 5 : 4);
  Fx fx{.writes = static_cast<uint8_t>(bit(reg::kEax) | (size != 8 ? bit(reg::kEdx) : 0)),
        .def = kCf | kOf,
        .undef = kSf | kZf | kAf | kPf};
  emit(sign ? "mul:imul1" : "mul:mul", in, fx);
  return true;
}

bool CaseBuilder::gen_imul() {
  const unsigned size = pick_size(false);
  const auto rm = pick_rm(size, false);
  const int d = pick_dst(size);
  if (d < 0) return false;
  Insn in;
  in.opsize(size);
  std::string cls;
  switch (r_.below(3)) {
    case 0:
      in.o({0x0f, 0xaf}).rm(*rm, d);
      cls = "imul:imul2";
      break;
    case 1:
      in.o({0x6b}).rm(*rm, d).imm(interesting(r_), 1);
      cls = "imul:imul3 imm8";
      break;
    default:
      in.o({0x69}).rm(*rm, d).imm(interesting(r_), size / 8);
      cls = "imul:imul3 imm";
      break;
  }
  emit(cls, in, Fx{.writes = bit(d), .def = kCf | kOf, .undef = kSf | kZf | kAf | kPf});
  return true;
}

bool CaseBuilder::gen_div() {
  const bool sign = r_.chance(50);
  const unsigned size = pick_size(true);
  if (!free(reg::kEax) || (size != 8 && !free(reg::kEdx))) return false;
  const Pin pin(kind_, bit(reg::kEax) | bit(reg::kEdx));
  const uint32_t m = mask_of(size);
  const uint32_t top = 1u << (size - 1);
  enum { kNormal, kZero, kOverflow, kRaw } mode = kNormal;
  const uint32_t x = r_.below(100);
  if (x < 6)
    mode = kZero;
  else if (x < 12)
    mode = kOverflow;
  else if (x < 22)
    mode = kRaw;

  // Divisor operand: memory, or a free register other than the dividend's.
  std::optional<Rm> rm;
  if (!ctx_.no_mem && r_.chance(40)) {
    rm = Rm{true, 0, mem_operand()};
  } else if (mode == kRaw) {
    rm = Rm{false, static_cast<uint8_t>(r_.below(8)), {}};
  } else {
    int cands[8], n = 0;
    for (unsigned e = 0; e < 8; ++e) {
      const unsigned g = reg_of(e, size);
      if (size != 8 && e == reg::kEsp) continue;
      if (g == reg::kEax || (size != 8 && g == reg::kEdx) || !free(g)) continue;
      if (size == 8 && (e == 0 || e == 4)) continue;  // AL, AH: the dividend
      cands[n++] = static_cast<int>(e);
    }
    if (n == 0) return false;
    rm = Rm{false, static_cast<uint8_t>(cands[r_.below(n)]), {}};
  }

  if (mode != kRaw) {
    uint32_t d = 0, lo = 0, hi = 0;
    const uint32_t upper = r_.u32() & ~m;  // bits above the operand that must not matter
    switch (mode) {
      case kZero:
        d = 0;
        lo = interesting(r_) & m;
        hi = interesting(r_) & m;
        break;
      case kOverflow:
        if (sign) {
          lo = top;
          hi = m;  // dividend = -2^(2n-1)... / -1 overflows
          d = m;
          if (size == 8) lo = top;  // AX = 0xff80: -128 / -1
        } else {
          d = (interesting(r_) & m) | 1;
          hi = static_cast<uint32_t>(std::min<uint64_t>(m, uint64_t{d} + r_.below(5)));
          lo = r_.u32() & m;
        }
        break;
      default:
        d = interesting(r_) & m;
        if (d == 0) d = 1 + r_.below(m < 1000 ? m : 1000);
        lo = interesting(r_) & m;
        if (sign) {
          hi = (lo & top) ? m : 0;
          if (d == m && lo == top) lo = 1;
        } else {
          hi = r_.below(d < 0x10000000 ? d : 0x10000000);
        }
        break;
    }
    if (size == 8) {
      emit_mov_imm(reg::kEax, (upper & 0xffff0000u) | (hi & 0xff) << 8 | (lo & 0xff), 32);
    } else {
      emit_mov_imm(reg::kEax, (upper & (size == 16 ? 0xffff0000u : 0)) | lo, 32);
      if (sign && mode == kNormal && r_.chance(40)) {
        Insn cw;
        cw.opsize(size).o({0x99});  // CWD / CDQ
        emit(size == 16 ? "cbw:cwd" : "cbw:cdq", cw, Fx{.writes = bit(reg::kEdx)});
      } else {
        emit_mov_imm(reg::kEdx, (r_.u32() & ~m) | hi, 32);
      }
    }
    if (rm->mem) {
      Insn st;
      st.opsize(size).o({static_cast<uint8_t>(size == 8 ? 0xc6 : 0xc7)}).rm(*rm, 0);
      st.imm(d, size == 8 ? 1 : size / 8);
      emit("setup:mov", st, Fx{});
    } else if (size == 8) {
      emit_mov_imm(rm->reg, d, 8);
    } else {
      emit_mov_imm(rm->reg, (r_.u32() & ~m) | d, 32);
    }
  }
  Insn in;
  in.opsize(size).o({static_cast<uint8_t>(size == 8 ? 0xf6 : 0xf7)}).rm(*rm, sign ? 7 : 6);
  Fx fx{.writes = static_cast<uint8_t>(bit(reg::kEax) | (size != 8 ? bit(reg::kEdx) : 0)),
        .undef = kArith};
  emit(sign ? "div:idiv" : "div:div", in, fx);
  return true;
}

bool CaseBuilder::gen_shift() {
  const unsigned op = r_.chance(3) ? 6 : r_.pick<unsigned>({0, 1, 2, 3, 4, 5, 7});
  const unsigned size = pick_size(true);
  const uint8_t w = size == 8 ? 0 : 1;
  const unsigned form = r_.below(3);  // 0: by 1, 1: imm8, 2: CL
  uint32_t count = 1;
  bool known = true;
  if (form == 1) count = shift_count(r_);
  if (form == 2) {
    if (free(reg::kEcx) && r_.chance(85)) {
      count = shift_count(r_);
      emit_mov_imm(1 /* CL */, count, 8);
    } else {
      known = false;  // whatever CL holds
    }
  }
  std::optional<Rm> rm;
  {
    const Pin pin(kind_, form == 2 && known ? bit(reg::kEcx) : 0);
    rm = pick_rm(size, true);
  }
  if (!rm) return false;
  if (form == 2 && known && !rm->mem && r_.chance(15))
    rm->reg = size == 8 ? r_.pick<uint8_t>({1, 5}) : 1;  // shift ECX/CL/CH by CL
  Insn in;
  in.opsize(size);
  if (form == 0) in.o({static_cast<uint8_t>(0xd0 + w)}).rm(*rm, op);
  if (form == 1) in.o({static_cast<uint8_t>(0xc0 + w)}).rm(*rm, op).imm(count, 1);
  if (form == 2) in.o({static_cast<uint8_t>(0xd2 + w)}).rm(*rm, op);
  Fx fx{.writes = wr(*rm, size)};
  const bool rotate = op <= 3;
  const bool through_carry = op == 2 || op == 3;
  if (through_carry) fx.reads = kCf;
  if (!known) {
    // Count unknown (may be 0: flags kept). Only the flags that can be undefined become so.
    fx.undef = rotate ? kOf : kOf | kAf | (size < 32 ? kCf : 0);
  } else {
    const uint32_t mc = count & 31;
    if (mc == 0) {
      fx.reads = 0;
    } else if (rotate) {
      fx.def = kCf | (mc == 1 ? kOf : 0);
      fx.undef = mc == 1 ? 0 : kOf;
    } else {
      fx.def = kSf | kZf | kPf | (mc == 1 ? kOf : 0) | (mc < size ? kCf : 0);
      fx.undef = kAf | (mc == 1 ? 0 : kOf) | (mc < size ? 0 : kCf);
    }
  }
  std::string cls = std::string("shift:") + kShiftNames[op];
  cls += form == 0 ? " 1" : form == 1 ? " imm" : " cl";
  emit(cls, in, fx);
  return true;
}

bool CaseBuilder::gen_shld() {
  const bool right = r_.chance(50);
  const unsigned size = pick_size(false);
  const bool by_cl = r_.chance(40) && free(reg::kEcx);
  // 16-bit counts above 16 give undefined results: keep the masked count below 16 there.
  uint32_t count =
      size == 32
          ? shift_count(r_)
          : (r_.below(16) | (r_.chance(30) ? r_.pick<uint32_t>({0x20, 0x40, 0x80, 0xe0}) : 0));
  if (by_cl) emit_mov_imm(1 /* CL */, count, 8);
  std::optional<Rm> rm;
  {
    const Pin pin(kind_, by_cl ? bit(reg::kEcx) : 0);
    rm = pick_rm(size, true);
  }
  if (!rm) return false;
  if (by_cl && !rm->mem && r_.chance(15)) rm->reg = 1;  // SHLD ECX, r, CL
  Insn in;
  in.opsize(size);
  const uint8_t opc = static_cast<uint8_t>((right ? 0xac : 0xa4) + (by_cl ? 1 : 0));
  in.o({0x0f, opc}).rm(*rm, r_.below(8));
  if (!by_cl) in.imm(count, 1);
  Fx fx{.writes = wr(*rm, size)};
  const uint32_t mc = count & 31;
  if (mc != 0) {
    fx.def = kCf | kSf | kZf | kPf | (mc == 1 ? kOf : 0);
    fx.undef = kAf | (mc == 1 ? 0 : kOf);
  }
  emit(std::string("shld:") + (right ? "shrd" : "shld") + (by_cl ? " cl" : " imm"), in, fx);
  return true;
}

bool CaseBuilder::gen_bt() {
  static const char* const kNames[4] = {"bt", "bts", "btr", "btc"};
  const unsigned op = r_.below(4);
  const unsigned size = pick_size(false);
  const bool imm_form = r_.chance(40);
  const bool modifies = op != 0;
  std::string cls = std::string("bt:") + kNames[op];
  Insn in;
  in.opsize(size);
  std::optional<Rm> rm;
  int offreg = -1;
  if (!imm_form && !ctx_.no_mem && r_.chance(50)) {
    // BT* m, r: the register is a signed bit offset that can reach beyond the dword.
    offreg = role_reg(Kind::kBitOff);
    if (offreg >= 0) {
      rm = Rm{true, 0, mem_operand()};
      cls += " m,r";
    }
  }
  if (!rm) {
    rm = pick_rm(size, modifies);
    if (!rm) return false;
    cls += imm_form ? (rm->mem ? " m,imm" : " r,imm") : (rm->mem ? " m,r" : " r,r");
    if (!imm_form && rm->mem) {
      // Memory with an arbitrary register offset could leave the arena: use a bit offset.
      offreg = role_reg(Kind::kBitOff);
      if (offreg < 0) return false;
    }
  }
  if (modifies) maybe_lock(in, *rm);
  if (imm_form) {
    in.o({0x0f, 0xba}).rm(*rm, 4 + op).imm(r_.chance(50) ? r_.below(size) : r_.below(256), 1);
  } else {
    static constexpr uint8_t kOps[4] = {0xa3, 0xab, 0xb3, 0xbb};
    const unsigned src = offreg >= 0 ? static_cast<unsigned>(offreg) : r_.below(8);
    in.o({0x0f, kOps[op]}).rm(*rm, src);
  }
  // CF defined, ZF unchanged, OF SF AF PF undefined (SDM; the AMD hosts checked keep ZF too).
  emit(cls, in,
       Fx{.writes = modifies ? wr(*rm, size) : uint8_t{0},
          .def = kCf,
          .undef = kOf | kSf | kAf | kPf});
  return true;
}

bool CaseBuilder::gen_bsf() {
  const bool rev = r_.chance(50);
  const unsigned size = pick_size(false);
  const auto rm = pick_rm(size, false);
  const int d = pick_dst(size);
  if (d < 0) return false;
  Insn in;
  in.opsize(size).o({0x0f, static_cast<uint8_t>(rev ? 0xbd : 0xbc)}).rm(*rm, d);
  emit(rev ? "bsf:bsr" : "bsf:bsf", in,
       Fx{.writes = bit(d), .def = kZf, .undef = kCf | kOf | kSf | kAf | kPf});
  return true;
}

bool CaseBuilder::gen_bswap() {
  const int d = pick_dst(32);
  if (d < 0) return false;
  Insn in;
  in.o({0x0f, static_cast<uint8_t>(0xc8 + d)});
  emit("bswap:r32", in, Fx{.writes = bit(d)});
  return true;
}

bool CaseBuilder::gen_xchg() {
  const unsigned size = pick_size(true);
  Insn in;
  in.opsize(size);
  if (size != 8 && r_.chance(35)) {  // 90+r: XCHG eAX, r (r != 0: 90 is NOP)
    const int d = pick_dst(size);
    if (d <= 0 || !free(reg::kEax)) return false;
    in.o({static_cast<uint8_t>(0x90 + d)});
    emit("xchg:eax,r", in, Fx{.writes = static_cast<uint8_t>(bit(d) | bit(reg::kEax))});
    return true;
  }
  const auto rm = pick_rm(size, true);
  if (!rm) return false;
  const int d = pick_dst(size);
  if (d < 0) return false;
  if (rm->mem && r_.chance(20)) {  // implicitly locked anyway
    in.p(0xf0);
    in.attrs |= kAttrLock;
  }
  in.o({static_cast<uint8_t>(size == 8 ? 0x86 : 0x87)}).rm(*rm, d);
  emit(rm->mem ? "xchg:m,r" : "xchg:r,r", in,
       Fx{.writes = static_cast<uint8_t>(wr(*rm, size) | bit(reg_of(d, size)))});
  return true;
}

bool CaseBuilder::gen_xadd() {
  const unsigned size = pick_size(true);
  const auto rm = pick_rm(size, true);
  if (!rm) return false;
  const int d = pick_dst(size);
  if (d < 0) return false;
  Insn in;
  in.opsize(size);
  maybe_lock(in, *rm);
  in.o({0x0f, static_cast<uint8_t>(size == 8 ? 0xc0 : 0xc1)}).rm(*rm, d);
  emit(rm->mem ? "xadd:m,r" : "xadd:r,r", in,
       Fx{.writes = static_cast<uint8_t>(wr(*rm, size) | bit(reg_of(d, size))), .def = kArith});
  return true;
}

bool CaseBuilder::gen_cmpxchg() {
  const unsigned size = pick_size(true);
  if (!free(reg::kEax)) return false;
  std::optional<Rm> rm;
  {
    const Pin pin(kind_, bit(reg::kEax));
    rm = pick_rm(size, true);
  }
  if (!rm) return false;
  if (!rm->mem && r_.chance(15)) rm->reg = 0;  // destination = accumulator
  if (r_.chance(35)) {  // make the comparison succeed: (E)AX/AL <- destination
    Insn ld;
    ld.opsize(size).o({static_cast<uint8_t>(size == 8 ? 0x8a : 0x8b)}).rm(*rm, 0);
    emit("setup:mov", ld, Fx{.writes = bit(reg::kEax)});
  }
  Insn in;
  in.opsize(size);
  maybe_lock(in, *rm);
  in.o({0x0f, static_cast<uint8_t>(size == 8 ? 0xb0 : 0xb1)}).rm(*rm, r_.below(8));
  emit(rm->mem ? "cmpxchg:cmpxchg m" : "cmpxchg:cmpxchg r", in,
       Fx{.writes = static_cast<uint8_t>(wr(*rm, size) | bit(reg::kEax)), .def = kArith});
  return true;
}

bool CaseBuilder::gen_cmpxchg8b() {
  if (ctx_.no_mem || !free(reg::kEax) || !free(reg::kEdx)) return false;
  Rm rm;
  {
    const Pin pin(kind_, bit(reg::kEax) | bit(reg::kEdx));
    rm = Rm{true, 0, mem_operand()};
  }
  if (r_.chance(50)) {  // EDX:EAX <- m64 so that the exchange happens
    Insn lo, hi;
    lo.o({0x8b}).rm(rm, reg::kEax);
    emit("setup:mov", lo, Fx{.writes = bit(reg::kEax)});
    hi.o({0x8b}).rm(Rm{true, 0, rm.m.plus(4)}, reg::kEdx);
    emit("setup:mov", hi, Fx{.writes = bit(reg::kEdx)});
  }
  Insn in;
  maybe_lock(in, rm);
  in.o({0x0f, 0xc7}).rm(rm, 1);
  emit("cmpxchg:cmpxchg8b", in,
       Fx{.writes = static_cast<uint8_t>(bit(reg::kEax) | bit(reg::kEdx)), .def = kZf});
  return true;
}

bool CaseBuilder::gen_movx() {
  const bool sx = r_.chance(50);
  const unsigned dsize = pick_size(false);
  const unsigned ssize = dsize == 16 || r_.chance(55) ? 8 : 16;
  const auto rm = pick_rm(ssize, false);
  const int d = pick_dst(dsize);
  if (d < 0) return false;
  Insn in;
  in.opsize(dsize);
  in.o({0x0f, static_cast<uint8_t>((sx ? 0xbe : 0xb6) + (ssize == 16 ? 1 : 0))}).rm(*rm, d);
  emit(std::string("movx:") + (sx ? "movsx" : "movzx") + (ssize == 8 ? " 8" : " 16"), in,
       Fx{.writes = bit(d)});
  return true;
}

bool CaseBuilder::gen_cbw() {
  const bool wide = r_.chance(50);  // CWD/CDQ (writes DX/EDX) vs CBW/CWDE (writes AX/EAX)
  const bool o16 = r_.chance(50);
  const unsigned target = wide ? reg::kEdx : reg::kEax;
  if (!free(target)) return false;
  Insn in;
  in.opsize(o16 ? 16 : 32).o({static_cast<uint8_t>(wide ? 0x99 : 0x98)});
  emit(wide ? (o16 ? "cbw:cwd" : "cbw:cdq") : (o16 ? "cbw:cbw" : "cbw:cwde"), in,
       Fx{.writes = bit(target)});
  return true;
}

bool CaseBuilder::gen_setcc() {
  const unsigned cc = r_.below(16);
  const auto rm = pick_rm(8, true);
  if (!rm) return false;
  Insn in;
  in.o({0x0f, static_cast<uint8_t>(0x90 + cc)}).rm(*rm, 0);
  emit(std::string("setcc:set") + kCcNames[cc], in,
       Fx{.writes = wr(*rm, 8), .reads = cc_reads(cc)});
  return true;
}

bool CaseBuilder::gen_cmov() {
  const unsigned cc = r_.below(16);
  const unsigned size = pick_size(false);
  const auto rm = pick_rm(size, false);
  const int d = pick_dst(size);
  if (d < 0) return false;
  Insn in;
  in.opsize(size).o({0x0f, static_cast<uint8_t>(0x40 + cc)}).rm(*rm, d);
  emit(std::string("cmov:cmov") + kCcNames[cc], in, Fx{.writes = bit(d), .reads = cc_reads(cc)});
  return true;
}

bool CaseBuilder::gen_lea() {
  // LEA computes the address only: every ModRM/SIB form with any registers is fine.
  const unsigned size = pick_size(false);
  const int d = pick_dst(size);
  if (d < 0) return false;
  MemOp m;
  m.addr16 = r_.chance(25);
  m.mod = static_cast<uint8_t>(r_.below(3));
  m.rm = static_cast<uint8_t>(!m.addr16 && r_.chance(40) ? 4 : r_.below(8));
  if (m.addr16) {
    if (m.mod == 1) m.disp_size = 1;
    if (m.mod == 2 || (m.mod == 0 && m.rm == 6)) m.disp_size = 2;
  } else {
    if (m.rm == 4) {
      m.has_sib = true;
      m.sib = static_cast<uint8_t>(r_.u32());
    }
    if (m.mod == 1) m.disp_size = 1;
    if (m.mod == 2 || (m.mod == 0 && (m.rm == 5 || (m.has_sib && (m.sib & 7) == 5))))
      m.disp_size = 4;
  }
  m.disp = static_cast<int32_t>(interesting(r_));
  Insn in;
  in.opsize(size).o({0x8d}).rm(Rm{true, 0, m}, d);
  in.attrs &= ~kAttrMem;  // no memory access
  emit(m.addr16 ? "lea:addr16" : (m.has_sib ? "lea:sib" : "lea:modrm"), in, Fx{.writes = bit(d)});
  return true;
}

bool CaseBuilder::gen_bcd() {
  if (!free(reg::kEax)) return false;
  if (r_.chance(50)) {
    const uint32_t al = r_.pick<uint32_t>({0x00, 0x09, 0x0a, 0x0f, 0x19, 0x79, 0x99, 0x9a, 0xae,
                                           0xee, 0xf9, 0xff}) |
                        (r_.chance(30) ? r_.below(256) : 0);
    emit_mov_imm(reg::kEax, (r_.u32() & 0xffff0000u) | (r_.below(256) << 8) | (al & 0xff), 32);
  }
  Insn in;
  std::string cls;
  Fx fx{.writes = bit(reg::kEax)};
  switch (r_.below(6)) {
    case 0:
    case 1: {
      const bool das = r_.chance(50);
      in.o({static_cast<uint8_t>(das ? 0x2f : 0x27)});
      cls = das ? "bcd:das" : "bcd:daa";
      fx.reads = kCf | kAf;
      fx.def = kCf | kAf | kSf | kZf | kPf;
      fx.undef = kOf;
      break;
    }
    case 2:
    case 3: {
      const bool aas = r_.chance(50);
      in.o({static_cast<uint8_t>(aas ? 0x3f : 0x37)});
      cls = aas ? "bcd:aas" : "bcd:aaa";
      fx.reads = kAf;
      fx.def = kAf | kCf;
      fx.undef = kOf | kSf | kZf | kPf;
      break;
    }
    default: {
      const bool aad = r_.chance(50);
      uint32_t base = 10;
      if (r_.chance(25)) base = r_.below(256);
      if (!aad && r_.chance(5)) base = 0;  // AAM 0: #DE
      in.o({static_cast<uint8_t>(aad ? 0xd5 : 0xd4)}).imm(base, 1);
      cls = aad ? "bcd:aad" : "bcd:aam";
      fx.def = kSf | kZf | kPf;
      fx.undef = kOf | kAf | kCf;
      break;
    }
  }
  emit(cls, in, fx);
  return true;
}

bool CaseBuilder::gen_flagops() {
  Insn in;
  switch (r_.below(5)) {
    case 0:
      in.o({0xf8});
      emit("flags:clc", in, Fx{.def = kCf});
      break;
    case 1:
      in.o({0xf9});
      emit("flags:stc", in, Fx{.def = kCf});
      break;
    case 2:
      in.o({0xf5});
      emit("flags:cmc", in, Fx{.reads = kCf, .def = kCf});
      break;
    case 3:
      in.o({0xfc});
      emit("flags:cld", in, Fx{});
      break;
    default:
      in.o({0xfd});
      emit("flags:std", in, Fx{});
      break;
  }
  return true;
}

bool CaseBuilder::gen_sahf_lahf() {
  Insn in;
  if (r_.chance(50)) {
    in.o({0x9e});
    emit("sahf_lahf:sahf", in, Fx{.def = kSf | kZf | kAf | kPf | kCf});
    return true;
  }
  if (!free(reg::kEax)) return false;
  in.o({0x9f});
  emit("sahf_lahf:lahf", in, Fx{.writes = bit(reg::kEax), .reads = kSf | kZf | kAf | kPf | kCf});
  return true;
}

bool CaseBuilder::gen_push_pop() {
  if (ctx_.no_stack) return false;
  const unsigned size = r_.chance(20) ? 16 : 32;
  Insn in;
  in.opsize(size);
  const bool push = r_.chance(55);
  if (push) {
    switch (r_.below(4)) {
      case 0:
        in.o({static_cast<uint8_t>(0x50 + r_.below(8))});
        emit("stack:push r", in, Fx{});
        break;
      case 1:
        in.o({0x6a}).imm(interesting(r_), 1);
        emit("stack:push imm8", in, Fx{});
        break;
      case 2:
        in.o({0x68}).imm(interesting(r_), size / 8);
        emit("stack:push imm", in, Fx{});
        break;
      default: {
        const auto rm = pick_rm(size, false, 80);
        in.o({0xff}).rm(*rm, 6);
        emit(rm->mem ? "stack:push m" : "stack:push r(ff)", in, Fx{});
        break;
      }
    }
    return true;
  }
  if (r_.chance(55)) {
    const int d = pick_dst(size);
    if (d < 0) return false;
    in.o({static_cast<uint8_t>(0x58 + d)});
    emit("stack:pop r", in, Fx{.writes = bit(d)});
    return true;
  }
  const auto rm = pick_rm(size, true, 80);
  if (!rm) return false;
  in.o({0x8f}).rm(*rm, 0);  // address computed after ESP is incremented
  emit(rm->mem ? "stack:pop m" : "stack:pop r(8f)", in, Fx{.writes = wr(*rm, size)});
  return true;
}

bool CaseBuilder::gen_pushad() {
  if (ctx_.no_stack) return false;
  const unsigned size = r_.chance(20) ? 16 : 32;
  bool all_free = true;
  for (unsigned g = 0; g < 8; ++g)
    if (g != reg::kEsp && !free(g)) all_free = false;
  Insn in;
  in.opsize(size);
  const uint32_t x = r_.below(100);
  if (x < 25 || (x < 40 && !all_free)) {
    in.o({0x60});
    emit("pushad:pushad", in, Fx{});
    return true;
  }
  uint8_t all = 0;
  for (unsigned g = 0; g < 8; ++g)
    if (g != reg::kEsp) all |= bit(g);
  if (x < 40) {
    in.o({0x61});
    emit("pushad:popad", in, Fx{.writes = all});
    return true;
  }
  // PUSHAD; register-only work; POPAD: restores every register, pointers included.
  in.o({0x60});
  emit("pushad:pushad", in, Fx{});
  const Ctx saved = ctx_;
  ctx_.block = ctx_.no_mem = ctx_.no_stack = true;
  gen_block(r_.below(3));
  ctx_ = saved;
  Insn pop;
  pop.opsize(size).o({0x61});
  uint8_t free_mask = 0;
  for (unsigned g = 0; g < 8; ++g)
    if (g != reg::kEsp && free(g)) free_mask |= bit(g);
  emit("pushad:popad", pop, Fx{.writes = free_mask});
  return true;
}

bool CaseBuilder::gen_enter_leave() {
  if (ctx_.no_stack || ctx_.block) return false;
  const Kind ebp = kind_[reg::kEbp];
  if (ebp != Kind::kFree && ebp != Kind::kPtr && ebp != Kind::kStack) return false;
  const bool o16 = r_.chance(10);
  const uint32_t x = r_.below(100);
  auto leave = [&]() {
    if (!use_as_pointer(reg::kEbp, true)) return false;
    Insn in;
    in.opsize(o16 ? 16 : 32).o({0xc9});
    kind_[reg::kEbp] = Kind::kFree;
    emit("enter_leave:leave", in, Fx{.writes = bit(reg::kEbp)});
    return true;
  };
  if (x < 20) return leave();
  // ENTER size, level: levels >= 2 copy frame pointers from [EBP-4*i].
  unsigned level = r_.pick<unsigned>({0, 0, 1, 1, 2, 3});
  if (level >= 2 && !use_as_pointer(reg::kEbp, true)) level = 1;
  const bool was_pointer = kind_[reg::kEbp] != Kind::kFree;
  const uint32_t alloc = r_.chance(70) ? r_.below(0x40) * 4 : r_.below(0x100);
  Insn in;
  in.opsize(o16 ? 16 : 32).o({0xc8}).imm(alloc, 2).imm(level, 1);
  // With 0x66 only BP is replaced: EBP stays a pointer only if its top half was already 0.
  kind_[reg::kEbp] = (!o16 || was_pointer) ? Kind::kStack : Kind::kFree;
  emit(level ? "enter_leave:enter nested" : "enter_leave:enter", in, Fx{.writes = bit(reg::kEbp)});
  if (x < 60) return true;
  // ENTER; body; LEAVE
  const Ctx saved = ctx_;
  ctx_.block = true;
  gen_block(r_.below(3));
  ctx_ = saved;
  if (kind_[reg::kEbp] != Kind::kStack) return true;
  Insn lv;
  lv.opsize(o16 ? 16 : 32).o({0xc9});
  kind_[reg::kEbp] = Kind::kFree;
  emit("enter_leave:leave", lv, Fx{.writes = bit(reg::kEbp)});
  return true;
}

bool CaseBuilder::gen_string() {
  if (ctx_.no_mem) return false;
  enum { kMovs, kStos, kLods, kScas, kCmps };
  static const char* const kNames[5] = {"movs", "stos", "lods", "scas", "cmps"};
  static constexpr uint8_t kOps[5] = {0xa4, 0xaa, 0xac, 0xae, 0xa6};
  const unsigned op = r_.below(5);
  const unsigned size = pick_size(true);
  const bool uses_si = op == kMovs || op == kLods || op == kCmps;
  const bool uses_di = op != kLods;
  if (uses_si && !use_as_pointer(reg::kEsi, true)) return false;
  if (uses_di && !use_as_pointer(reg::kEdi, true)) return false;
  if (op == kLods && !free(reg::kEax)) return false;
  const bool a16 = r_.chance(15);  // SI/DI/CX: the pointers are below 0x10000 anyway
  unsigned rep = 0;                // 0, 0xf3, 0xf2
  uint32_t n = 1;
  if (free(reg::kEcx) && r_.chance(60)) {
    rep = (op == kScas || op == kCmps) && r_.chance(50) ? 0xf2 : 0xf3;
    n = r_.chance(10) ? 0 : r_.below(17);
    emit_mov_imm(reg::kEcx, a16 ? (r_.u32() & 0xffff0000u) | n : n);
  }
  Insn in;
  if (rep) {
    in.p(static_cast<uint8_t>(rep));
    in.attrs |= kAttrRep;
  }
  in.opsize(size);
  if (a16) {
    in.p(0x67);
    in.attrs |= kAttrAddr16;
  }
  in.attrs |= kAttrMem;
  in.o({static_cast<uint8_t>(kOps[op] + (size == 8 ? 0 : 1))});
  Fx fx;
  if (rep) fx.writes |= bit(reg::kEcx);
  if (op == kLods) fx.writes |= bit(reg::kEax);
  if ((op == kScas || op == kCmps) && n != 0) fx.def = kArith;
  std::string cls = "string:";
  if (rep) cls += rep == 0xf2 ? "repne " : (op == kScas || op == kCmps) ? "repe " : "rep ";
  cls += kNames[op];
  emit(cls, in, fx);
  return true;
}

/// Emits `branch` (with a rel8/rel32 placeholder at its end), a block of instructions, and
/// patches the branch to skip the block.
bool CaseBuilder::forward_skip(std::vector<uint8_t> branch, bool rel8, const std::string& cls,
                               Fx fx, uint32_t attrs) {
  Insn in;
  in.body = std::move(branch);
  in.attrs = attrs;
  emit(cls, in, fx);
  const size_t end_of_branch = code_.size();
  const uint32_t undef_at_branch = undef_;
  const Ctx saved = ctx_;
  ctx_.block = true;
  gen_block(1 + r_.below(3));
  ctx_ = saved;
  const size_t rel = code_.size() - end_of_branch;
  if (rel8) {
    if (rel > 127) return false;
    code_[end_of_branch - 1] = static_cast<uint8_t>(rel);
  } else {
    const uint32_t v = static_cast<uint32_t>(rel);
    std::memcpy(&code_[end_of_branch - 4], &v, 4);
  }
  undef_ |= undef_at_branch;  // either path may have been taken
  return true;
}

bool CaseBuilder::gen_loop() {
  if (ctx_.block) return false;
  static const char* const kNames[4] = {"loopne", "loope", "loop", "jecxz"};
  const unsigned kind = r_.below(4);  // E0 LOOPNE, E1 LOOPE, E2 LOOP, E3 JECXZ
  const uint8_t opc = static_cast<uint8_t>(0xe0 + kind);
  const bool a16 = r_.chance(15);  // CX instead of ECX
  const uint32_t attrs = a16 ? uint32_t{kAttrAddr16} : 0u;
  std::vector<uint8_t> head;
  if (a16) head.push_back(0x67);
  head.push_back(opc);
  const uint32_t reads = kind == 0 || kind == 1 ? kZf : 0;
  std::string cls = std::string("loop:") + (a16 ? "a16 " : "") + kNames[kind];
  if (kind == 3) {  // JECXZ: forward only, reads ECX
    head.push_back(0);
    return forward_skip(head, true, cls + " fwd", Fx{}, attrs);
  }
  if (!free(reg::kEcx)) return false;
  if (r_.chance(45)) {  // forward: decrements whatever ECX holds
    head.push_back(0);
    return forward_skip(head, true, cls + " fwd", Fx{.writes = bit(reg::kEcx), .reads = reads},
                        attrs);
  }
  // Backward: MOV ECX, n; L: body; LOOPcc L
  const uint32_t n = 1 + r_.below(5);
  emit_mov_imm(reg::kEcx, a16 ? (r_.u32() & 0xffff0000u) | n : n);
  const size_t top = code_.size();
  kind_[reg::kEcx] = Kind::kFixed;
  const Ctx saved = ctx_;
  ctx_.block = true;
  undef_ |= kArith;  // later iterations see the flags the body leaves: assume nothing
  gen_block(r_.below(4));
  ctx_ = saved;
  kind_[reg::kEcx] = Kind::kFree;
  if (reads & undef_) emit_definer();  // inside the loop, before the branch
  const size_t end = code_.size() + head.size() + 1;
  const ptrdiff_t rel = static_cast<ptrdiff_t>(top) - static_cast<ptrdiff_t>(end);
  if (rel < -128) return false;
  head.push_back(static_cast<uint8_t>(static_cast<int8_t>(rel)));
  Insn in;
  in.body = head;
  in.attrs = attrs;
  emit(cls + " back", in, Fx{.writes = bit(reg::kEcx), .reads = reads});
  return true;
}

bool CaseBuilder::gen_jcc() {
  if (ctx_.block) return false;
  const unsigned cc = r_.below(16);
  const uint32_t x = r_.below(100);
  if (x < 10) {  // JMP over dead code
    const bool short_form = r_.chance(60);
    std::vector<uint8_t> b =
        short_form ? std::vector<uint8_t>{0xeb, 0} : std::vector<uint8_t>{0xe9, 0, 0, 0, 0};
    return forward_skip(b, short_form, short_form ? "jcc:jmp short" : "jcc:jmp near", Fx{}, 0);
  }
  const bool short_form = x < 65;
  std::vector<uint8_t> b =
      short_form ? std::vector<uint8_t>{static_cast<uint8_t>(0x70 + cc), 0}
                 : std::vector<uint8_t>{0x0f, static_cast<uint8_t>(0x80 + cc), 0, 0, 0, 0};
  return forward_skip(b, short_form,
                      std::string("jcc:j") + kCcNames[cc] + (short_form ? " short" : " near"),
                      Fx{.reads = cc_reads(cc)}, 0);
}

bool CaseBuilder::gen_mov() {
  const unsigned size = pick_size(true);
  const uint8_t w = size == 8 ? 0 : 1;
  Insn in;
  in.opsize(size);
  switch (r_.below(5)) {
    case 0: {  // 88/89 r/m, r
      const auto rm = pick_rm(size, true, 60);
      if (!rm) return false;
      in.o({static_cast<uint8_t>(0x88 + w)}).rm(*rm, r_.below(8));
      emit("mov:rm,r", in, Fx{.writes = wr(*rm, size)});
      return true;
    }
    case 1: {  // 8A/8B r, r/m
      const auto rm = pick_rm(size, false, 60);
      const int d = pick_dst(size);
      if (d < 0) return false;
      in.o({static_cast<uint8_t>(0x8a + w)}).rm(*rm, d);
      emit("mov:r,rm", in, Fx{.writes = bit(reg_of(d, size))});
      return true;
    }
    case 2: {  // C6/C7 r/m, imm
      const auto rm = pick_rm(size, true, 60);
      if (!rm) return false;
      in.o({static_cast<uint8_t>(0xc6 + w)}).rm(*rm, 0).imm(interesting(r_), size / 8);
      emit("mov:rm,imm", in, Fx{.writes = wr(*rm, size)});
      return true;
    }
    case 3: {  // B0+r / B8+r
      const int d = pick_dst(size);
      if (d < 0) return false;
      in.o({static_cast<uint8_t>((size == 8 ? 0xb0 : 0xb8) + d)}).imm(interesting(r_), size / 8);
      emit("mov:r,imm", in, Fx{.writes = bit(reg_of(d, size))});
      return true;
    }
    default: {  // A0-A3 moffs
      if (ctx_.no_mem) return false;
      const bool store = r_.chance(50);
      if (!store && !free(reg::kEax)) return false;
      const bool a16 = r_.chance(20);
      if (a16) {
        in.p(0x67);
        in.attrs |= kAttrAddr16;
      }
      in.attrs |= kAttrMem;
      in.o({static_cast<uint8_t>((store ? 0xa2 : 0xa0) + w)}).imm(arena_addr(), a16 ? 2 : 4);
      emit(store ? "mov:moffs,acc" : "mov:acc,moffs", in,
           Fx{.writes = store ? uint8_t{0} : bit(reg::kEax)});
      return true;
    }
  }
}

bool CaseBuilder::gen_bound() {
  if (ctx_.no_mem) return false;
  const unsigned size = pick_size(false);
  const Rm rm{true, 0, mem_operand()};
  if (r_.chance(60)) {  // bounds [min, max]: never raises #BR
    const unsigned bytes = size / 8;
    Insn lo, hi;
    lo.opsize(size).o({0xc7}).rm(rm, 0).imm(size == 32 ? 0x80000000u : 0x8000u, bytes);
    emit("setup:mov", lo, Fx{});
    hi.opsize(size)
        .o({0xc7})
        .rm(Rm{true, 0, rm.m.plus(bytes)}, 0)
        .imm(size == 32 ? 0x7fffffffu : 0x7fffu, bytes);
    emit("setup:mov", hi, Fx{});
  }
  Insn in;
  in.opsize(size).o({0x62}).rm(rm, r_.below(8));
  emit("bound:bound", in, Fx{});
  return true;
}

bool CaseBuilder::gen_xlat() {
  if (ctx_.no_mem || !free(reg::kEax) || !use_as_pointer(reg::kEbx, true)) return false;
  Insn in;
  in.attrs |= kAttrMem;
  if (r_.chance(20)) {
    in.p(0x67);
    in.attrs |= kAttrAddr16;
  }
  in.o({0xd7});
  emit("xlat:xlat", in, Fx{.writes = bit(reg::kEax)});
  return true;
}

bool CaseBuilder::gen_invalid() {
  Insn in;
  switch (r_.below(3)) {
    case 0:  // LOCK on a register destination: #UD
      in.p(0xf0).o({0x01, static_cast<uint8_t>(0xc0 | r_.below(64))});
      emit("invalid:lock reg", in, Fx{});
      break;
    case 1:  // LEA with a register operand: #UD
      in.o({0x8d, static_cast<uint8_t>(0xc0 | r_.below(64))});
      emit("invalid:lea reg", in, Fx{});
      break;
    default:
      in.o({0x0f, 0x0b});
      emit("invalid:ud2", in, Fx{});
      break;
  }
  return true;
}

// ---- case assembly ----------------------------------------------------------------------------

void CaseBuilder::gen_one() {
  unsigned total = 0;
  for (const ClassEntry& c : kClasses) {
    if (c.invalid && !opt_.include_invalid) continue;
    if (c.top_level_only && ctx_.block) continue;
    total += c.weight;
  }
  for (int attempt = 0; attempt < 40; ++attempt) {
    uint32_t x = r_.below(total);
    const ClassEntry* chosen = nullptr;
    for (const ClassEntry& c : kClasses) {
      if (c.invalid && !opt_.include_invalid) continue;
      if (c.top_level_only && ctx_.block) continue;
      if (x < c.weight) {
        chosen = &c;
        break;
      }
      x -= c.weight;
    }
    const State s = save();
    if ((this->*(chosen->fn))()) return;
    restore(s);
  }
}

void CaseBuilder::gen_block(unsigned n) {
  for (unsigned i = 0; i < n; ++i) gen_one();
}

GeneratedCase CaseBuilder::build(size_t index) {
  code_.clear();
  insns_.clear();
  kind_.fill(Kind::kFree);
  kind_[reg::kEsp] = Kind::kStack;
  written_ = 0;
  undef_ = 0;
  ctx_ = Ctx{};
  for (uint32_t& g : in_.gpr) g = interesting(r_);
  uint32_t esp = NativeRunner::kDataBase + 0xc000 + r_.below(0x800);
  if (r_.chance(85)) esp &= ~3u;
  in_.gpr[reg::kEsp] = esp;
  in_.eflags = flag::kFixed1 | (r_.u32() & kArith) | (r_.chance(30) ? flag::kDf : 0);

  const unsigned items = opt_.min_items + r_.below(opt_.max_items - opt_.min_items + 1);
  for (unsigned i = 0; i < items; ++i) gen_one();

  GeneratedCase gc;
  gc.c.code = code_;
  gc.c.in = in_;
  gc.memory_seed = r_.next();
  gc.undefined_flags = undef_;
  gc.insns = insns_;
  gc.description = "#" + std::to_string(index) + ":";
  for (const GeneratedInsn& gi : insns_) {
    size_t len = 0;
    const std::string text =
        disassemble_one(std::span<const uint8_t>(code_).subspan(gi.offset, gi.length),
                        NativeRunner::kSnippetBase + gi.offset, &len);
    gc.description += " [" + gi.cls + "] " + (text.empty() ? "(undecodable)" : text) + ";";
  }
  return gc;
}

}  // namespace

std::vector<GeneratedCase> generate_cases(uint64_t seed, size_t count,
                                          const GeneratorOptions& options) {
  Rng rng(seed);
  CaseBuilder b(rng, options);
  std::vector<GeneratedCase> out;
  out.reserve(count);
  for (size_t i = 0; i < count; ++i) out.push_back(b.build(i));
  return out;
}

void fill_arena(uint8_t* arena, size_t size, uint64_t memory_seed) {
  Rng r(memory_seed);
  uint8_t pattern[64];
  for (uint8_t& b : pattern) b = static_cast<uint8_t>(r.u32());
  for (size_t off = 0; off < size; off += 64) {
    const size_t n = std::min<size_t>(64, size - off);
    switch (r.below(8)) {
      case 0:
        std::memset(arena + off, 0, n);
        break;
      case 1:
        std::memset(arena + off, r.pick<int>({0xff, 0x80, 0x41}), n);
        break;
      case 2:
      case 3:
        std::memcpy(arena + off, pattern, n);
        break;
      default:
        for (size_t i = 0; i < n; ++i) arena[off + i] = static_cast<uint8_t>(r.u32());
        break;
    }
  }
}

NativeResult run_case(NativeRunner& runner, const GeneratedCase& gc) {
  fill_arena(runner.data(), NativeRunner::kDataSize, gc.memory_seed);
  return runner.run(gc.c);
}

uint32_t undefined_flags_for(const GeneratedCase& gc, const NativeResult& result) {
  if (!result.faulted) return gc.undefined_flags;
  if (result.timed_out) return kArith;
  for (const GeneratedInsn& gi : gc.insns)
    if (NativeRunner::kSnippetBase + gi.offset == result.fault_eip)
      return gi.undefined_flags_before;
  return kArith;
}

Coverage coverage(const std::vector<GeneratedCase>& cases) {
  static const std::pair<uint32_t, const char*> kAttrNames[] = {
      {kAttrMem, "attr:mem"},   {kAttrOpsize16, "attr:opsize16"}, {kAttrAddr16, "attr:addr16"},
      {kAttrLock, "attr:lock"}, {kAttrRep, "attr:rep"},           {kAttrSegPrefix, "attr:segpfx"}};
  Coverage cov;
  cov["cases"] = cases.size();
  for (const GeneratedCase& gc : cases) {
    for (const GeneratedInsn& gi : gc.insns) {
      ++cov["insns"];
      ++cov[gi.cls];
      const size_t colon = gi.cls.find(':');
      if (colon != std::string::npos) ++cov["group:" + gi.cls.substr(0, colon)];
      for (const auto& [bitv, name] : kAttrNames)
        if (gi.attrs & bitv) ++cov[name];
    }
  }
  return cov;
}

std::string format_coverage(const Coverage& cov) {
  std::string s;
  for (const auto& [name, n] : cov) s += name + " " + std::to_string(n) + "\n";
  return s;
}

}  // namespace vmbt::difftest
