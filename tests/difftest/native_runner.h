// Native execution oracle for differential tests: runs an IA-32 instruction sequence in a
// 32-bit (compatibility-mode) code segment of this 64-bit process and captures the registers,
// EFLAGS and data memory it leaves behind (Intel SDM Vol. 1 §3.2.1, Vol. 3A §5.2.1).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace vmbt::difftest {

/// GPR indices, in ModRM.reg encoding order (Intel SDM Vol. 2A §2.1.5).
namespace reg {
enum : unsigned { kEax, kEcx, kEdx, kEbx, kEsp, kEbp, kEsi, kEdi };
}  // namespace reg

/// EFLAGS bits (Intel SDM Vol. 1 §3.4.3).
namespace flag {
constexpr uint32_t kCf = 1u << 0, kFixed1 = 1u << 1, kPf = 1u << 2, kAf = 1u << 4, kZf = 1u << 6,
                   kSf = 1u << 7, kTf = 1u << 8, kIf = 1u << 9, kDf = 1u << 10, kOf = 1u << 11;
/// The six status flags.
constexpr uint32_t kArith = kCf | kPf | kAf | kZf | kSf | kOf;
/// What a user-mode snippet can set and what a comparison should look at: status flags + DF.
constexpr uint32_t kCompared = kArith | kDf;
}  // namespace flag

/// The architectural state the oracle sets and captures.
struct CpuSnapshot {
  std::array<uint32_t, 8> gpr{};  ///< EAX ECX EDX EBX ESP EBP ESI EDI
  uint32_t eflags = flag::kFixed1;
  bool operator==(const CpuSnapshot&) const = default;
};

/// One instruction sequence with its initial state. ESP must point into the data arena (or
/// nowhere the snippet touches); memory comes from whatever the caller left in the arena.
struct NativeCase {
  std::vector<uint8_t> code;
  CpuSnapshot in;
  /// Run in 16-bit segments, real mode's as protected mode can have them (Intel SDM Vol. 3A
  /// §20.1.1): CS a 16-bit (D = 0) code segment based at NativeRunner::kCodeBase, DS = ES = SS a
  /// 16-bit (B = 0) data segment based at kDataBase, each with limit 0xffff, so every 16-bit
  /// offset lands in the data arena and a larger one raises #GP (#SS for the stack). EIPs
  /// (fault_eip, kSnippetBase) stay linear: kCodeBase + IP.
  bool code16 = false;
};

/// Outcome of one native run.
struct NativeResult {
  /// Without a fault: the state after the last instruction. EFLAGS is raw (IF and bit 1 set);
  /// compare `eflags & flag::kCompared`. With a fault: the state the kernel reported at the
  /// fault, i.e. before the faulting instruction for faults (#DE #UD #GP #PF...), after the
  /// trapping instruction for traps (INT3, single step).
  CpuSnapshot out;
  bool faulted = false;
  int signal = 0;               ///< SIGSEGV SIGFPE SIGILL SIGTRAP SIGBUS, or SIGALRM on timeout
  uint32_t fault_eip = 0;       ///< EIP reported with the signal (absolute; see kSnippetBase)
  int vector = -1;              ///< CPU exception vector from the kernel (trapno), -1 on timeout
  uint32_t error_code = 0;      ///< exception error code from the kernel
  uint32_t fault_addr = 0;      ///< si_addr (meaningful for #PF)
  bool timed_out = false;       ///< the snippet ran longer than the timeout and was stopped
  std::vector<uint8_t> memory;  ///< the whole data arena after the run (or at the fault)
};

/// Runs snippets natively in compatibility mode. Maps, at fixed addresses below 4 GiB, a code
/// region (trampoline + snippet), a private save area and the data arena; only one instance can
/// exist at a time. During run() (only) it installs SA_ONSTACK handlers for SIGSEGV SIGFPE
/// SIGILL SIGTRAP SIGBUS SIGALRM and its own alternate signal stack, and restores the previous
/// ones afterwards; signals not caused by the snippet are chained to the previous handlers.
/// Not thread-safe: one run at a time, process-wide.
class NativeRunner {
 public:
  /// Data arena. It sits this low so that 16-bit (0x67) effective addresses, which are at most
  /// 0xffff with the flat 0x2b data segment, can reach it; it needs vm.mmap_min_addr <= 0x1000.
  static constexpr uint32_t kDataBase = 0x00001000;
  static constexpr uint32_t kDataSize = 64 * 1024;
  /// An inaccessible page right after the arena: overruns fault (#PF) instead of landing in
  /// whatever else is mapped there. (Below the arena lies page 0, never mappable.)
  static constexpr uint32_t kGuardBase = kDataBase + kDataSize;
  static constexpr uint32_t kGuardSize = 0x1000;
  /// Code region: the mode-switch trampoline, then the snippet at kSnippetBase.
  static constexpr uint32_t kCodeBase = 0x00100000;
  static constexpr uint32_t kCodeSize = 0x10000;
  static constexpr uint32_t kSnippetBase = kCodeBase + 0x1000;  ///< EIP of the first instruction
  /// Private save area and stack for the trampoline.
  static constexpr uint32_t kSaveBase = 0x00110000;
  static constexpr uint32_t kSaveSize = 0x1000;
  /// Largest snippet run() accepts.
  static constexpr uint32_t kMaxCodeBytes = kCodeSize - 0x1000 - 0x100;

  NativeRunner();  ///< throws std::runtime_error if a fixed mapping is unavailable

  /// Whether this host lets a 64-bit process run 32-bit code at all: a far return into the
  /// compatibility-mode code segment 0x23 (Intel SDM Vol. 3A §5.2.1), tried once in a child
  /// process. Kernels built or booted without IA-32 emulation (ia32_emulation=0, some hypervisor
  /// guest kernels) refuse it with #GP; `why` then says so, for a test's skip message.
  static bool host_runs_32bit_code(std::string* why);
  /// Whether this host also runs code in 16-bit LDT segments (modify_ldt(2)), which
  /// NativeCase::code16 needs; probed once in a child process like host_runs_32bit_code.
  static bool host_runs_16bit_code(std::string* why);
  ~NativeRunner();
  NativeRunner(const NativeRunner&) = delete;
  NativeRunner& operator=(const NativeRunner&) = delete;

  /// The data arena (kDataSize bytes at kDataBase), to pre-fill before run().
  uint8_t* data() { return reinterpret_cast<uint8_t*>(uintptr_t{kDataBase}); }

  /// Copies the snippet and a trailer to kSnippetBase, loads all 8 GPRs (ESP included) and the
  /// status flags + DF of `c.in.eflags` (other bits are ignored), runs it in CS=0x23 with
  /// DS=ES=SS=0x2b (or the 16-bit segments of NativeCase::code16), and captures the state after
  /// its last instruction (when execution reaches the end of the code) or at the first fault.
  /// Falling off the end is the only normal exit. Throws std::runtime_error for a code16 case on
  /// a host that refuses 16-bit segments (see host_runs_16bit_code).
  NativeResult run(const NativeCase& c);

  /// Wall-clock limit for one run; a snippet still running then is stopped (SIGALRM).
  void set_timeout_ms(unsigned ms) { timeout_ms_ = ms; }

 private:
  void arm_timer_for_this_thread();

  void* code_ = nullptr;
  void* save_ = nullptr;
  void* data_ = nullptr;
  void* guard_ = nullptr;
  void* altstack_ = nullptr;
  void* timer_ = nullptr;  ///< POSIX timer_t for the timeout, signalling this thread
  bool has_timer_ = false;
  int timer_tid_ = 0;
  size_t last_code_len_ = 0;
  unsigned timeout_ms_ = 2000;
};

/// Skips the current GoogleTest test, with the reason, where NativeRunner::`probe` (a
/// host_runs_*_code) says this host cannot run such code natively: the oracle does not exist.
#define VMBT_SKIP_UNLESS_HOST_RUNS(probe)                     \
  do {                                                        \
    std::string vmbt_why_;                                    \
    if (!::vmbt::difftest::NativeRunner::probe(&vmbt_why_)) { \
      GTEST_SKIP() << vmbt_why_;                              \
    }                                                         \
  } while (0)
/// 32-bit code (compatibility mode), what every differential test needs.
#define VMBT_SKIP_WITHOUT_NATIVE_32BIT() VMBT_SKIP_UNLESS_HOST_RUNS(host_runs_32bit_code)
/// 16-bit code (NativeCase::code16).
#define VMBT_SKIP_WITHOUT_NATIVE_16BIT() VMBT_SKIP_UNLESS_HOST_RUNS(host_runs_16bit_code)

}  // namespace vmbt::difftest
