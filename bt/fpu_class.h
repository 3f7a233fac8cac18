// Which floating-point/SIMD rules an instruction follows (Intel SDM Vol. 3A Table 2-2, §13.1).
#pragma once

#include <Zydis/Zydis.h>

namespace vmbt::bt {

/// How CR0.EM/TS/MP and CR4.OSFXSR affect an instruction.
enum class FpuClass {
  kNone,  ///< not affected (integer, fences, prefetches, CLFLUSH, MOVNTI)
  kX87,   ///< x87: #NM when EM=1 or TS=1
  kWait,  ///< WAIT/FWAIT: #NM when TS=1 and MP=1
  kMmx,   ///< MMX: #UD when EM=1, #NM when TS=1
  kSse,   ///< SSE/SSE2: #UD when EM=1 or OSFXSR=0, #NM when TS=1
  kFxsr,  ///< FXSAVE/FXRSTOR: #NM when EM=1 or TS=1
};

inline FpuClass fpu_class(const ZydisDecodedInstruction& in) {
  switch (in.mnemonic) {
    case ZYDIS_MNEMONIC_FWAIT:
      return FpuClass::kWait;
    case ZYDIS_MNEMONIC_FXSAVE:
    case ZYDIS_MNEMONIC_FXRSTOR:
      return FpuClass::kFxsr;
    case ZYDIS_MNEMONIC_SFENCE:
    case ZYDIS_MNEMONIC_LFENCE:
    case ZYDIS_MNEMONIC_MFENCE:
    case ZYDIS_MNEMONIC_PREFETCHNTA:
    case ZYDIS_MNEMONIC_PREFETCHT0:
    case ZYDIS_MNEMONIC_PREFETCHT1:
    case ZYDIS_MNEMONIC_PREFETCHT2:
    case ZYDIS_MNEMONIC_CLFLUSH:
    case ZYDIS_MNEMONIC_MOVNTI:
    case ZYDIS_MNEMONIC_PAUSE:
      return FpuClass::kNone;
    default:
      break;
  }
  switch (in.meta.isa_ext) {
    case ZYDIS_ISA_EXT_X87:
      return FpuClass::kX87;
    case ZYDIS_ISA_EXT_MMX:
      return FpuClass::kMmx;
    case ZYDIS_ISA_EXT_SSE:
    case ZYDIS_ISA_EXT_SSE2:
      return FpuClass::kSse;
    default:
      return FpuClass::kNone;
  }
}

}  // namespace vmbt::bt
