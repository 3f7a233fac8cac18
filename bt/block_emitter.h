// Per-block emission state of the translator: where each guest instruction's host code starts,
// the block's exits (chained jumps, the indirect-branch table, the monitor), direct calls into
// the monitor, and guest addresses in the linear window.
#pragma once

#include <Zydis/Zydis.h>
#include <asmjit/x86.h>

#include <cstdint>
#include <memory>

#include "bt/bt_context.h"
#include "bt/guest_insn.h"
#include "bt/guest_operands.h"
#include "bt/stubs.h"
#include "bt/translation_block.h"

namespace vmbt::bt {

/// Makes an assembler error (a label out of a short jump's reach, say) end translation with an
/// internal error instead of leaving mis-encoded code (asmjit returns errors by default, which
/// nothing would check at every emitted instruction).
class ThrowingErrorHandler : public asmjit::ErrorHandler {
 public:
  void handleError(asmjit::Error err, const char* message, asmjit::BaseEmitter*) override;
  /// Throws for `err` unless it is kErrorOk (for the CodeHolder calls, which return errors).
  static void check(asmjit::Error err, const char* what);
};

/// Emits one block's host code into an assembler and records what the block needs afterwards
/// (instruction map, exits, callout sites) in its TranslationBlock.
class BlockEmitter {
 public:
  BlockEmitter(asmjit::x86::Assembler& a, TranslationBlock& tb, const Stubs& stubs,
               uint32_t key_flags)
      : a_(a), tb_(tb), stubs_(stubs), key_flags_(key_flags) {}

  asmjit::x86::Assembler& a() { return a_; }
  uint32_t key_flags() const { return key_flags_; }
  TranslationBlock& tb() { return tb_; }

  /// Starts the host code of one guest instruction (for fault attribution).
  void begin_insn(uint32_t eip) {
    tb_.insns.push_back({static_cast<uint32_t>(a_.offset()), eip, {}});
  }
  InsnFixup& fixup() { return tb_.insns.back().fixup; }

  /// Computes the guest effective address (the offset in its segment) of memory operand `m`
  /// into r8d, flag-free, wrapped at 64 KiB for a 16-bit `address_width` (Intel SDM Vol. 1
  /// §3.7.5). `extra` is added to it (POP [ESP+x] sees ESP after the pop).
  void effective_address(const ZydisDecodedOperand& m, unsigned address_width, int32_t extra = 0);

  /// The same plus the operand's segment base: the guest linear address, in r8d.
  void address(const ZydisDecodedOperand& m, unsigned address_width, int32_t extra = 0) {
    effective_address(m, address_width, extra);
    add_segment_base(operand_segment(m), asmjit::x86::r8);
  }

  /// How a memory operand addresses the window with no `lea` (direct_window_address).
  struct DirectAddress {
    int reg = -1;       ///< the guest register added, or -1 for an absolute address
    bool high = false;  ///< relative to r12 (window + 4 GiB) rather than r15 (the window)
    int32_t disp = 0;
  };
  /// Whether memory operand `m` can be addressed in the window directly, as [guest register +
  /// r15 + disp] or [r15 + disp]: a 32-bit address of at most one register (a base, or an index
  /// with scale 1) through a segment whose base is known to be zero in this block's mode. A
  /// displacement below -496 MiB (as the host sign-extends it; a kernel's address above 2 GiB)
  /// is taken from r12 = r15 + 4 GiB instead. The 64-bit sum then differs from the guest's
  /// 32-bit one only by a multiple of 4 GiB, and stays in the window, its copy above it or the
  /// alias below it (shadow_mmu/linear_window.h): the same page, never outside the reservation.
  bool direct_window_address(const ZydisDecodedOperand& m, unsigned address_width,
                             DirectAddress* out) const;

  /// The host operand for a `size`-byte access to guest memory operand `m`: the direct form
  /// where direct_window_address allows it, else [r15 + r8] after address() (r8 then holds the
  /// guest linear address; with the direct form r8 is not set).
  asmjit::x86::Mem guest_memory(const ZydisDecodedOperand& m, unsigned address_width,
                                unsigned size);

  /// Adds the base of segment `seg` to `reg` (32-bit wrap) unless it is known to be zero.
  void add_segment_base(int seg, const asmjit::x86::Gp& reg);
  /// Whether segment `seg` (SegIndex) has base 0 in this block's mode: CS by the block's own
  /// base, SS by tb_flags::kFlatStack, DS and ES by tb_flags::kFlatData.
  bool segment_base_is_zero(int seg) const;

  /// [r15 + r8]: the window access for the address computed by address().
  static asmjit::x86::Mem window(unsigned size) {
    return asmjit::x86::ptr(asmjit::x86::r15, asmjit::x86::r8, 0, 0, size);
  }
  /// [r15 + rsp + disp]: the guest stack top in the window (flat SS).
  static asmjit::x86::Mem stack(unsigned size, int32_t disp = 0) {
    return asmjit::x86::ptr(asmjit::x86::rsp, asmjit::x86::r15, 0, disp, size);
  }

  /// A direct exit to `target` through a patchable jmp rel32 (or jcc rel32 when `cc` >= 0).
  /// With paging, a target on another linear page goes through the indirect-branch table
  /// instead: another address space may map that page to other code, and the table (one per
  /// space, kept coherent by the shadow MMU) is checked where a chain would not be.
  void direct_exit(uint32_t target, int cc = -1);

  /// An indirect exit: the guest target EIP is in r9d. The table is read through the context at
  /// every exit, so a kick (BtEngine::kick) stops every indirect exit at once by pointing the
  /// context at a table whose every slot leaves for the dispatcher.
  void indirect_exit();

  /// An indirect exit into another mode (an inline SYSENTER or SYSEXIT): the target EIP is in
  /// r9d, the window registers and the rest of the context are the new mode's already, and the
  /// context's field `tables_field` holds the new mode's first table and the kick table
  /// (SystemCallSwitch::tables).
  void indirect_exit_to_mode(size_t tables_field);

  /// With guest RCX in r10 and a value in ECX: falls through when the value is zero and jumps to
  /// `nonzero` otherwise, guest RCX back in place on both paths. JRCXZ tests without touching
  /// the flags, which hold the guest's; the moves cost nothing (register renaming), where the
  /// XCHG it replaces cost three micro-ops each. `zero_path_align` (bytes, 0 = none) starts the
  /// zero path on that boundary (a block's indirect entry).
  void unless_ecx_zero(const asmjit::Operand_& nonzero, uint32_t zero_path_align = 0);

  /// Jumps to the common exit stub (the context's eip and exit_kind already set).
  void jump_to_exit();

  /// A new callout site of this block for instruction `in` (kind, eip and next_eip set); the
  /// block owns it.
  CalloutSite& new_site(CalloutSite::Kind kind, const GuestInsn& in);

  /// Calls the monitor for `site` in place (Stubs::direct_call); the code after this goes on
  /// where the monitor returns for a site that falls through.
  void direct_call(CalloutSite* site);

  /// Ends the block with a callout for the instruction at `eip`.
  void callout_exit(uint32_t eip) { exit_to_monitor(eip, ExitKind::kCallout); }

  /// Leaves for the dispatcher at `eip` with `kind`, the instruction there not run.
  void exit_to_monitor(uint32_t eip, ExitKind kind);

  /// Emits the out-of-line stubs of the exits; call once after the last instruction.
  void emit_stubs();

  /// After the code is placed: the stub offsets for the exits (to patch and to unlink).
  void resolve(asmjit::CodeHolder& code);

 private:
  asmjit::x86::Assembler& a_;
  TranslationBlock& tb_;
  const Stubs& stubs_;
  uint32_t key_flags_;
  asmjit::Label exit_labels_[2];

  /// The table lookup of an indirect exit, the table in r11 and the target in r9d: jumps to the
  /// slot's block, recording the lookup (from `lookup_start`) for BtEngine::kick.
  void probe_table(uint32_t lookup_start);
};

}  // namespace vmbt::bt
