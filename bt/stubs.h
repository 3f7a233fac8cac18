// Host code shared by all translation blocks: entering and leaving translated code.
#pragma once

#include <cstdint>

#include "bt/bt_context.h"

namespace vmbt::bt {

class CodeCache;

/// Generated once into the stub area of the translation cache.
///
/// enter(ctx, code): saves the monitor's callee-saved registers, records its RSP in
/// ctx->host_rsp, swaps in the guest FPU state when ctx->fpu_active, loads the guest flags and
/// GPRs (ESP last) and jumps to `code`. It returns when translated code reaches an exit.
///
/// exit: saves the guest GPRs and flags into ctx, restores the monitor's stack and returns from
/// enter(). exit_after_fault is the same tail for the fault handler, which has already saved the
/// guest state from the signal context.
struct Stubs {
  using EnterFn = void (*)(BtContext* ctx, const void* code);
  EnterFn enter = nullptr;
  const uint8_t* exit = nullptr;
  const uint8_t* exit_after_fault = nullptr;
  /// An empty indirect-table slot, or a block whose EIP check failed (target EIP in r9d, the
  /// table slot probed in r11): probes the first table's victim slot, then BtContext::second_table
  /// and its victim slot, then goes to indirect_exit.
  const uint8_t* indirect_miss = nullptr;
  /// Back to the dispatcher to look up the EIP in r9d.
  const uint8_t* indirect_exit = nullptr;
  /// Direct call into the monitor from translated code: r10 = the callout site, r11 = where to
  /// resume. Saves the guest GPRs and flags into the context, switches to the monitor's stack
  /// with clean flags (DF=0, AC=0) and, while the guest's FPU state is live, the guest's XMM0-7
  /// and MXCSR saved (the monitor's code may use them), then calls ctx->direct_call. On a
  /// non-zero return it reloads the guest state and jumps there; on 0 it leaves translated code
  /// as an exit does (enter() returns).
  const uint8_t* direct_call = nullptr;
  const uint8_t* begin = nullptr;  ///< [begin, end): the stub code, for fault attribution
  const uint8_t* end = nullptr;

  /// Emits the stubs into `cache`'s stub area.
  static Stubs generate(CodeCache& cache);
};

}  // namespace vmbt::bt
