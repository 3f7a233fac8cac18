// Guest basic block -> host x86-64 code (Zydis decodes, asmjit emits).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "bt/code_cache.h"
#include "bt/stubs.h"

namespace vmbt::bt {

/// Mode bits a block is translated for; part of the block's lookup key.
namespace tb_flags {
/// DS and ES have base 0: data accesses through them add no segment base.
constexpr uint32_t kFlatData = 1u << 0;
/// CR0.TS or CR0.EM is set: x87/MMX/SSE instructions raise #NM (Intel SDM Vol. 3A §2.5).
constexpr uint32_t kFpuTrap = 1u << 1;
/// Translate one instruction only (re-executing a store into the block's own page).
constexpr uint32_t kSingleInstruction = 1u << 2;
/// SS has base 0: stack accesses (PUSH/POP/CALL/RET) use [r15 + esp] directly.
constexpr uint32_t kFlatStack = 1u << 3;
/// CR4.OSFXSR is clear: SSE instructions raise #UD (Intel SDM Vol. 3A §13.1).
constexpr uint32_t kSseOff = 1u << 4;
/// The monitor has checked this single instruction's segment accesses: translate it directly.
constexpr uint32_t kSegUnchecked = 1u << 5;
/// CR0.PG is set: direct branches to other pages go through the indirect-branch table.
constexpr uint32_t kPaging = 1u << 6;
/// CPL 0: CLI, STI and PUSHF run inline on the virtual IF in the context (Intel SDM Vol. 2: at
/// CPL0 they cannot fault), as VMware's translator did for a guest kernel's interrupt masking.
constexpr uint32_t kCpl0 = 1u << 7;
/// RDTSC may run on the host: CPL0 or CR4.TSD clear, and the guest TSC is the host's (no
/// offset written): it then writes EDX:EAX exactly as the monitor's RDTSC would.
constexpr uint32_t kHostTsc = 1u << 14;
/// Sensitive instructions become direct calls into the monitor (Stubs::direct_call) instead of
/// block exits; off while a callout observer (vmbt trace) wants every one through the dispatcher.
constexpr uint32_t kDirectCalls = 1u << 15;
/// Breakpoints are ignored: the one instruction a debugger resumes or steps at (always with
/// kSingleInstruction, so never in a table or chained).
constexpr uint32_t kNoBreakpoints = 1u << 16;
/// CS.D = 0: 16-bit default operand and address size (real mode, 16-bit code segments).
constexpr uint32_t kCode16 = 1u << 17;
/// SS.B = 0: the stack pointer is SP, wrapping at 64 KiB (Intel SDM Vol. 3A §3.4.5.1).
constexpr uint32_t kStack16 = 1u << 18;
/// Bits 8-13: segment registers (SegIndex) that need limit/type checks (segment_checks.h);
/// instructions using them leave translated code for the monitor.
constexpr unsigned kRestrictedShift = 8;
/// Bits 19-24: the same for offsets that wrap at 64 KiB (16-bit addressing, a 16-bit stack): a
/// readable and writable data segment of 64 KiB or more needs no limit check there.
constexpr unsigned kRestricted16Shift = 19;
}  // namespace tb_flags

/// Reads guest code for the translator.
class CodeFetcher {
 public:
  virtual ~CodeFetcher() = default;
  /// Copies up to `len` bytes of guest code at linear `eip` into `dst` and returns how many could
  /// be fetched (stopping at an unmapped page). `phys_page` receives the guest-physical page of
  /// the first byte.
  virtual unsigned fetch(uint32_t eip, uint8_t* dst, unsigned len, uint32_t* phys_page) = 0;
  /// Whether the instruction at linear `eip` has stored into traced page tables (it then gets
  /// the monitor-assisted store shape instead of faulting on every store: adaptive translation).
  virtual bool writes_page_tables(uint32_t /*eip*/) const { return false; }
  /// Whether the instruction at linear `eip` kept taking page faults (true or hidden, each a host
  /// signal): its accesses then get an access probe (adaptive translation, docs/bt.md).
  virtual bool probes_access(uint32_t /*eip*/) const { return false; }
};

/// Counters the translator keeps.
struct TranslatorStats {
  uint64_t ident = 0;          ///< instructions copied unchanged (register-only)
  uint64_t rewritten_mem = 0;  ///< memory operand redirected through the window
  uint64_t control = 0;        ///< branches, calls, returns
  uint64_t stack = 0;          ///< push/pop family
  uint64_t string = 0;         ///< string instructions
  uint64_t callouts = 0;       ///< instructions ending a block with a callout
  uint64_t direct_calls = 0;   ///< sensitive instructions translated into direct calls
  uint64_t table_writers = 0;  ///< page-table stores translated into monitor-assisted stores
  uint64_t probed = 0;         ///< instructions translated with access probes
  uint64_t blocks = 0;         ///< blocks made (each block's TranslationBlock::serial)
};

/// Translates one block at a time into the code cache. See docs/bt.md for the code shapes.
class Translator {
 public:
  Translator(CodeCache& cache, const Stubs& stubs, CodeFetcher& fetcher, BtContext& ctx);
  ~Translator();

  /// Translates the block starting at offset `eip` in a code segment with base `cs_base`, for
  /// mode `key_flags`; flushes the cache when full. Guest-visible EIPs in the code (return
  /// addresses, exits) are offsets; code is fetched at the linear address cs_base + eip.
  /// Returns nullptr when not even the first instruction byte can be fetched.
  TranslationBlock* translate(uint32_t eip, uint32_t key_flags, uint32_t cs_base = 0);

  const TranslatorStats& stats() const { return stats_; }

  /// Debugger breakpoints, as sorted guest linear addresses: a block ends before an instruction
  /// at one, and a block starting at one only exits with ExitKind::kDebugStop (unless translated
  /// with tb_flags::kNoBreakpoints). Blocks translated before a change are the caller's to drop.
  void set_breakpoints(std::vector<uint32_t> linear);

  /// Called after the translator had to flush a full cache (the engine drops its block pointers).
  std::function<void()> on_flush;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  TranslatorStats stats_;
};

}  // namespace vmbt::bt
