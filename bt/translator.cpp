// Translation of IA-32 guest blocks into x86-64 host code, in passes (as QEMU's translator_loop
// and DynamoRIO's decode -> mangle -> emit):
//   1. decode   fetch and decode the block's instructions, each once, and ask the instruction
//               policy (bt/insn_policy.h) for its shape; find where the block ends
//   2. emit     the block's indirect entry, each instruction's code shape (bt/code_shapes.h),
//               the tail exit and the exits' stubs
//   3. install  place the code in the translation cache and point the exits at their stubs
#include "bt/translator.h"

#include <Zydis/Zydis.h>
#include <asmjit/x86.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bt/block_emitter.h"
#include "bt/code_shapes.h"
#include "bt/fpu_class.h"
#include "bt/guest_insn.h"
#include "bt/insn_policy.h"
#include "vmm/error.h"

namespace vmbt::bt {

namespace x86 = asmjit::x86;

namespace {

/// One instruction of a block and the shape it is emitted in.
struct PlannedInsn {
  GuestInsn in;
  policy::Shape shape = policy::Shape::kIdent;
  policy::AccessProbes probes;  ///< checked before it runs (adaptive: it kept faulting)
};

/// What the decode pass found: the block's instructions and what follows the last one.
struct BlockPlan {
  /// How the block ends after its planned instructions.
  enum class Tail : uint8_t {
    kByLastInsn,   ///< the last instruction's shape ends it (a branch, the monitor)
    kFallThrough,  ///< a direct exit to `tail_eip` (page end, block size, unfetchable code)
    kDebugStop,    ///< a debugger's breakpoint at `tail_eip`, the block's only instruction
    kUndecodable,  ///< no valid instruction at `tail_eip`: a callout, where the monitor raises #UD
  };
  std::vector<PlannedInsn> insns;
  Tail tail = Tail::kByLastInsn;
  uint32_t tail_eip = 0;
  uint32_t pages[2] = {0, 0};
  unsigned page_count = 1;
  /// Guest instructions the block covers, the stopped or undecodable one included.
  unsigned instructions = 0;

  void clear() {
    insns.clear();
    tail = Tail::kByLastInsn;
    tail_eip = 0;
    pages[0] = pages[1] = 0;
    page_count = 1;
    instructions = 0;
  }
};

/// Removes the F3 prefix of an instruction and decodes it again (keeping its guest length, so
/// EIP arithmetic still covers the prefix byte).
void strip_rep_prefix(GuestInsn& in, const ZydisDecoder& decoder) {
  uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH] = {};
  unsigned n = 0;
  for (unsigned i = 0; i < in.d.length; ++i) {
    if (i < in.d.raw.prefix_count && in.bytes[i] == 0xf3) continue;
    bytes[n++] = in.bytes[i];
  }
  GuestInsn out;
  std::memcpy(out.bytes, bytes, sizeof bytes);
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, out.bytes, n, &out.d, out.ops))) return;
  out.eip = in.eip;
  out.next = in.next;
  in = out;
}

/// Whether the operand-size prefix chooses this 16-bit-code instruction's operand size between
/// 16 and 32 bits (so the host, whose default is 32, needs it toggled): decoded again with 66h
/// toggled, its operand width is the other one. Byte, MMX/SSE and fixed-size instructions keep
/// their width (or change it otherwise, as MMX to SSE), and keep their prefixes.
bool operand_size_prefix_chooses(const GuestInsn& in, const ZydisDecoder& decoder16) {
  if (in.d.operand_width != 16 && in.d.operand_width != 32) return false;
  uint8_t bytes[ZYDIS_MAX_INSTRUCTION_LENGTH + 1] = {};
  unsigned n = 0;
  if (!in.has_prefix(0x66)) bytes[n++] = 0x66;
  for (unsigned i = 0; i < in.d.length; ++i) {
    if (i < in.d.raw.prefix_count && in.bytes[i] == 0x66) continue;
    bytes[n++] = in.bytes[i];
  }
  // The other operand size may take a longer immediate: the bytes after the instruction.
  for (unsigned i = in.d.length; i < sizeof in.bytes && n < sizeof bytes; ++i) {
    bytes[n++] = in.bytes[i];
  }
  ZydisDecodedInstruction other;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (!ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder16, bytes, n, &other, ops))) return false;
  return other.operand_width == 16 + 32 - in.d.operand_width;
}

/// Counts an instruction of `shape` in the translator's statistics.
void count(TranslatorStats& stats, policy::Shape shape, const GuestInsn& in) {
  using policy::Shape;
  switch (shape) {
    case Shape::kNop:
      break;
    case Shape::kIdent:
    case Shape::kLea:
    case Shape::kCpl0Flags:
      ++stats.ident;
      break;
    case Shape::kMemory:
    case Shape::kMoffs:
      ++stats.rewritten_mem;
      break;
    case Shape::kDivide:
      ++(in.mem() ? stats.rewritten_mem : stats.ident);
      break;
    case Shape::kStack:
    case Shape::kPushSreg:
      ++stats.stack;
      break;
    case Shape::kString:
    case Shape::kMaskmov:
      ++stats.string;
      break;
    case Shape::kJump:
    case Shape::kCall:
    case Shape::kReturn:
    case Shape::kCondBranch:
      ++stats.control;
      break;
    case Shape::kTableStore:
      ++stats.table_writers;
      break;
    case Shape::kMonitorCall:
      ++stats.direct_calls;
      break;
    case Shape::kMonitorExit:
      ++stats.callouts;
      break;
  }
}

}  // namespace

struct Translator::Impl {
  CodeCache& cache;
  const Stubs& stubs;
  CodeFetcher& fetcher;
  BtContext& ctx;
  TranslatorStats& stats;
  ZydisDecoder decoder{};             ///< 32-bit code
  ZydisDecoder decoder16{};           ///< 16-bit code (tb_flags::kCode16)
  std::vector<uint32_t> breakpoints;  ///< sorted linear addresses (Translator::set_breakpoints)
  BlockPlan plan;                     ///< the block being translated (kept for its capacity)

  Impl(CodeCache& c, const Stubs& s, CodeFetcher& f, BtContext& x, TranslatorStats& st)
      : cache(c), stubs(s), fetcher(f), ctx(x), stats(st) {
    ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
    ZydisDecoderInit(&decoder16, ZYDIS_MACHINE_MODE_LEGACY_16, ZYDIS_STACK_WIDTH_16);
  }

  bool breakpoint_at(uint32_t linear, uint32_t key_flags) const {
    return !breakpoints.empty() && !(key_flags & tb_flags::kNoBreakpoints) &&
           std::binary_search(breakpoints.begin(), breakpoints.end(), linear);
  }

  bool decode(uint32_t eip, uint32_t key_flags, uint32_t cs_base);
  void emit(BlockEmitter& e, TranslationBlock& tb, uint32_t eip);
  TranslationBlock* install(std::unique_ptr<TranslationBlock> tb, asmjit::CodeHolder& code,
                            BlockEmitter& e, size_t entry_offset);
};

/// Pass 1. Fills `plan`; false when not even the first instruction can be fetched and decoded
/// (the dispatcher raises the fetch's #PF, or #UD where no RAM is).
bool Translator::Impl::decode(uint32_t eip, uint32_t key_flags, uint32_t cs_base) {
  plan.clear();
  const bool code16 = key_flags & tb_flags::kCode16;
  const ZydisDecoder& dec = code16 ? decoder16 : decoder;
  uint32_t pc = eip;
  for (;;) {
    PlannedInsn& p = plan.insns.emplace_back();
    GuestInsn& in = p.in;
    in.eip = pc;
    uint32_t page = 0;
    const uint32_t lin = cs_base + pc;  // page arithmetic is on linear addresses
    const unsigned got = fetcher.fetch(lin, in.bytes, sizeof in.bytes, &page);
    auto stop = [&](BlockPlan::Tail tail) {
      plan.insns.pop_back();
      plan.tail = tail;
      plan.tail_eip = pc;
      return true;
    };
    if (got == 0) {
      if (plan.instructions == 0) return false;
      return stop(BlockPlan::Tail::kFallThrough);  // the next page is not mapped: fault there
    }
    const ZyanStatus st = ZydisDecoderDecodeFull(&dec, in.bytes, got, &in.d, in.ops);
    if (!ZYAN_SUCCESS(st) && got < sizeof in.bytes && plan.instructions > 0) {
      return stop(BlockPlan::Tail::kFallThrough);  // may continue on an unmapped page
    }
    if (st == ZYDIS_STATUS_NO_MORE_DATA && got < sizeof in.bytes) {
      // The instruction goes on into a page that cannot be fetched now: that is the fetch's
      // #PF (or #UD where no RAM is), which the dispatcher raises. A block would keep the
      // decision after the page is mapped and run the whole instruction as a callout.
      return false;
    }
    if (plan.instructions == 0) plan.pages[0] = page;
    if (breakpoint_at(lin, key_flags)) {
      // A debugger's breakpoint: the block before it ends there; the block at it only stops.
      if (plan.instructions > 0) return stop(BlockPlan::Tail::kFallThrough);
      ++plan.instructions;
      return stop(BlockPlan::Tail::kDebugStop);
    }
    const bool crosses = ZYAN_SUCCESS(st) && ((lin & 0xfff) + in.d.length > 0x1000);
    if (plan.instructions > 0 && ((lin & 0xfff) == 0 || crosses)) {
      return stop(BlockPlan::Tail::kFallThrough);  // one page plus at most one crossing insn
    }
    if (crosses) {
      uint32_t page2 = 0;
      uint8_t scratch;
      fetcher.fetch((lin | 0xfff) + 1, &scratch, 1, &page2);
      plan.pages[1] = page2;
      plan.page_count = 2;
    }
    ++plan.instructions;
    if (!ZYAN_SUCCESS(st)) return stop(BlockPlan::Tail::kUndecodable);
    in.next = pc + in.d.length;
    if (code16) in.next &= 0xffff;  // IP wraps at 64 KiB
    if (in.d.mnemonic == ZYDIS_MNEMONIC_TZCNT || in.d.mnemonic == ZYDIS_MNEMONIC_LZCNT) {
      // Without BMI1/LZCNT (the vmbt model has neither) F3 0F BC/BD is BSF/BSR with an
      // ignored REP prefix, which compilers emit on purpose ("rep bsf"). The host has
      // BMI1, so the prefix is dropped before the instruction is re-encoded.
      strip_rep_prefix(in, dec);
    }
    if (code16) in.flip_operand_size = operand_size_prefix_chooses(in, decoder16);
    p.shape = policy::decide(in, key_flags, fetcher, lin);
    p.probes = policy::access_probes(in, p.shape, key_flags, fetcher, lin);
    if (policy::ends_block(p.shape, in.d)) return true;
    pc = in.next;
    if (plan.instructions >= TranslationBlock::kMaxInstructions ||
        (key_flags & tb_flags::kSingleInstruction)) {
      plan.tail = BlockPlan::Tail::kFallThrough;
      plan.tail_eip = pc;
      return true;
    }
  }
}

/// Pass 2. The block's code after its indirect entry: each planned instruction in its shape,
/// then the tail and the exits' stubs.
void Translator::Impl::emit(BlockEmitter& e, TranslationBlock& tb, uint32_t eip) {
  for (const PlannedInsn& p : plan.insns) {
    e.begin_insn(p.in.eip);
    count(stats, p.shape, p.in);
    if (p.probes.count) {
      ++stats.probed;
      emit_access_probes(e, p.in, p.probes);
    }
    emit_shape(e, p.in, p.shape);
    if (fpu_class(p.in.d) != FpuClass::kNone) tb.uses_fpu = true;
  }
  switch (plan.tail) {
    case BlockPlan::Tail::kByLastInsn:
      break;
    case BlockPlan::Tail::kFallThrough:
      e.direct_exit(plan.tail_eip);
      break;
    case BlockPlan::Tail::kDebugStop:
      e.begin_insn(plan.tail_eip);
      e.exit_to_monitor(plan.tail_eip, ExitKind::kDebugStop);
      break;
    case BlockPlan::Tail::kUndecodable:
      e.begin_insn(plan.tail_eip);
      e.callout_exit(plan.tail_eip);
      ++stats.callouts;
      break;
  }
  e.emit_stubs();
  tb.instructions = plan.instructions;
  tb.pages[0] = plan.pages[0];
  tb.pages[1] = plan.pages[1];
  tb.page_count = plan.page_count;
  const uint32_t end =
      plan.tail == BlockPlan::Tail::kByLastInsn ? plan.insns.back().in.next : plan.tail_eip;
  tb.guest_bytes = end - eip;
}

/// Pass 3. Places the emitted code at the cache's cursor and commits the block; nullptr when the
/// cache is too full for it (the caller flushes and emits again).
TranslationBlock* Translator::Impl::install(std::unique_ptr<TranslationBlock> tb,
                                            asmjit::CodeHolder& code, BlockEmitter& e,
                                            size_t entry_offset) {
  ThrowingErrorHandler::check(code.flatten(), "lay out a block");
  ThrowingErrorHandler::check(code.resolveUnresolvedLinks(), "resolve a block's jumps");
  ThrowingErrorHandler::check(code.relocateToBase(reinterpret_cast<uint64_t>(cache.cursor())),
                              "place a block");
  const size_t size = code.codeSize();
  if (size + 64 > cache.remaining() || cache.over_budget()) return nullptr;
  code.copyFlattenedData(cache.cursor(), cache.remaining());
  tb->host_start = cache.cursor();
  tb->entry = tb->host_start + entry_offset;
  tb->host_size = static_cast<uint32_t>(size);
  e.resolve(code);
  // Exits start out pointing at their stubs.
  for (unsigned i = 0; i < tb->exit_count; ++i) {
    uint8_t* field = tb->host_start + tb->exits[i].rel32_offset;
    const auto rel =
        static_cast<int32_t>(tb->exits[i].stub_offset - (tb->exits[i].rel32_offset + 4));
    std::memcpy(field, &rel, 4);
  }
  if (tb->uses_fpu) ctx.fpu_active = 1;
  TranslationBlock* raw = tb.get();
  cache.commit(std::move(tb));
  return raw;
}

Translator::Translator(CodeCache& cache, const Stubs& stubs, CodeFetcher& fetcher, BtContext& ctx)
    : impl_(std::make_unique<Impl>(cache, stubs, fetcher, ctx, stats_)) {}

Translator::~Translator() = default;

void Translator::set_breakpoints(std::vector<uint32_t> linear) {
  impl_->breakpoints = std::move(linear);
}

TranslationBlock* Translator::translate(uint32_t eip, uint32_t key_flags, uint32_t cs_base) {
  Impl& im = *impl_;
  if (!im.decode(eip, key_flags, cs_base)) return nullptr;
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto tb = std::make_unique<TranslationBlock>();
    tb->serial = im.stats.blocks;
    tb->eip = eip;
    tb->key_flags = key_flags;
    tb->cs_base = cs_base;
    asmjit::CodeHolder code;
    ThrowingErrorHandler errors;
    code.init(asmjit::Environment::host(), reinterpret_cast<uint64_t>(im.cache.cursor()));
    code.setErrorHandler(&errors);
    x86::Assembler a(&code);
    BlockEmitter e(a, *tb, im.stubs, key_flags);

    // Indirect entry: continue only if the wanted EIP (r9d) is this block's, without flags
    // (JRCXZ on the difference, guest RCX waiting in r10). The hit path starts on a 16-byte
    // boundary and the entry chained branches take 3 bytes later, so a hot loop's blocks begin
    // at the start of a fetch block: bench/bt_loops' call and switch loops ran 1.2-1.9x native
    // unaligned (varying with where blocks happened to fall) and 1.0-1.1x aligned.
    a.mov(x86::r10, x86::rcx);
    a.lea(x86::ecx, x86::ptr(x86::r9, static_cast<int32_t>(0u - eip)));
    e.unless_ecx_zero(asmjit::imm(reinterpret_cast<uint64_t>(im.stubs.indirect_miss)), 16);
    const size_t entry_offset = a.offset();
    im.emit(e, *tb, eip);
    if (TranslationBlock* installed = im.install(std::move(tb), code, e, entry_offset)) {
      ++im.stats.blocks;
      return installed;
    }
    if (attempt > 0) throw Error("internal: a single block does not fit the translation cache");
    im.cache.flush();
    if (on_flush) on_flush();
  }
  return nullptr;
}

}  // namespace vmbt::bt
