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
  const uint8_t* indirect_miss = nullptr;  ///< target EIP in r9d
  const uint8_t* begin = nullptr;          ///< [begin, end): the stub code, for fault attribution
  const uint8_t* end = nullptr;

  /// Emits the stubs into `cache`'s stub area.
  static Stubs generate(CodeCache& cache);
};

}  // namespace vmbt::bt
