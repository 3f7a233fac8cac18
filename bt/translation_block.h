// A translation block: one guest basic block and its host code in the translation cache.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "bt/system/decoded_insn.h"

namespace vmbt::bt {

/// What a fault inside one guest instruction's host code must undo to recover the guest state
/// as it was before that instruction (precise exceptions, Intel SDM Vol. 3A §6.5).
struct InsnFixup {
  bool si_biased = false;  ///< ESI holds a host pointer (window base added)
  bool di_biased = false;  ///< EDI holds a host pointer (window base added)
};

/// Host-code offset of each guest instruction's translation, for fault attribution.
struct InsnMap {
  uint32_t host_offset;  ///< from TranslationBlock::host_start
  uint32_t guest_eip;
  InsnFixup fixup;
};

/// A patchable direct exit (a jmp rel32 or jcc rel32 whose target is a stub or a chained block).
struct TbExit {
  uint32_t target_eip = 0;
  uint32_t rel32_offset = 0;  ///< offset of the rel32 field from host_start
  uint32_t stub_offset = 0;   ///< offset of this exit's stub from host_start
  struct TranslationBlock* linked = nullptr;
};

/// A sensitive instruction that translated code hands to the monitor with a direct call
/// (Stubs::direct_call), decoded once at translation time.
struct CalloutSite {
  enum class Kind : uint8_t {
    kInstruction,      ///< the monitor executes the sensitive instruction `insn`
    kTableWriteBegin,  ///< before `insn`'s store into a traced page table (adaptive translation):
                       ///< the monitor checks the access at BtContext::table_linear and gives
                       ///< a RAM pointer for it in BtContext::table_offset
    kTableWriteEnd,    ///< after that store: the shadows derived from what it changed go
    kDivideError,      ///< `insn` (DIV/IDIV) found a zero divisor: the monitor raises #DE
    kAccessProbe,      ///< `insn`'s access at BtContext::probe_linear found its page unmapped
                       ///< for it (an access probe): the monitor fills it or raises #PF
  } kind = Kind::kInstruction;
  /// A kInstruction the monitor can run on the context alone, without the system emulator, in
  /// the common case (policy::choose_fast_path, bt/insn_policy.h; otherwise the emulator runs it).
  enum class FastPath : uint8_t {
    kNone,
    kCpuid,   ///< CPUID: the CPU model's leaf; never faults in protected mode
    kPortIo,  ///< IN/OUT with CPL <= IOPL: straight to the run loop's I/O bus
    kInvlpg,  ///< INVLPG at CPL 0 through a segment with base 0: forget the page's global blocks
    kSystemCall,         ///< SYSENTER/SYSEXIT in the common case (SystemEmulator::fast_system_call)
    kSoftwareInterrupt,  ///< INT n, INT3 in the common case
                         ///< (SystemEmulator::fast_software_interrupt)
    kIret,               ///< IRETD in the common case (SystemEmulator::fast_iret)
  } fast = FastPath::kNone;
  bool io_write = false;                  ///< kPortIo: OUT
  int32_t io_port = -1;                   ///< kPortIo: the immediate port, or -1 for DX
  uint8_t access_size = 0;                ///< bytes: kTableWriteBegin's store, kPortIo's access
  bool probe_write = false;               ///< kAccessProbe: the access writes
  struct TranslationBlock* tb = nullptr;  ///< the block the call sits in
  /// The block goes on after the call when the instruction completes without a control transfer
  /// (CPUID, IN, POPF...); a transfer (INT n, IRET, SYSENTER...) ends the block.
  bool falls_through = false;
  /// Where its last control transfer went (BtEngine::transfer_to): reused, without the code
  /// cache's lookup, while the target EIP, mode, CS base, address space and code frame are the
  /// same and the cache was not flushed (the block records stay until a flush).
  struct LastTarget {
    uint64_t flushes = ~uint64_t{0};
    uint32_t eip = 0, flags = 0, cs_base = 0, space = 0, phys_page = 0;
    struct TranslationBlock* tb = nullptr;
  } last_target;
  sys::Insn insn;  ///< eip and next_eip included
};

/// A guest basic block translated to host code. Block boundaries: a control transfer, a
/// sensitive instruction (callout), a page boundary, or kMaxInstructions.
struct TranslationBlock {
  static constexpr unsigned kMaxInstructions = 48;

  uint32_t eip = 0;            ///< EIP (offset in CS) of the first instruction
  uint32_t cs_base = 0;        ///< the code segment base it was translated for
  uint32_t guest_bytes = 0;    ///< bytes of guest code covered
  uint32_t key_flags = 0;      ///< the mode the block was translated for (TbKey flags)
  uint32_t pages[2] = {0, 0};  ///< guest-physical page numbers the code came from
  unsigned page_count = 1;
  uint8_t* host_start = nullptr;  ///< first byte of host code (the indirect entry)
  uint8_t* entry = nullptr;       ///< the normal entry (direct branches and the dispatcher)
  uint32_t host_size = 0;
  unsigned instructions = 0;
  uint64_t serial =
      0;  ///< the translator's count of blocks made before it (TranslatorStats::blocks)
  bool valid = true;
  bool uses_fpu = false;
  TbExit exits[2];
  unsigned exit_count = 0;
  /// Exits through the indirect-branch table (indirect branches, and direct branches to another
  /// page when paging is on): where each one's lookup sequence (after the target is in r9d)
  /// starts and ends, so a kick landing inside one can leave through Stubs::indirect_exit.
  struct TableExit {
    uint32_t lookup_start;
    uint32_t lookup_end;
  };
  std::vector<TableExit> table_exits;
  std::vector<InsnMap> insns;
  std::vector<std::unique_ptr<CalloutSite>> callout_sites;  ///< direct calls in this block
  /// Exits of other blocks chained to this one: (block, exit index), to unlink on invalidation.
  std::vector<std::pair<TranslationBlock*, unsigned>> incoming;
};

}  // namespace vmbt::bt
