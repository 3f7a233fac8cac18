// Native execution oracle: a far-return trampoline into CS=0x23 (compatibility mode) and back
// to CS=0x33, with faults caught on an alternate signal stack (Intel SDM Vol. 3A §5.8.6 for the
// far returns, AMD APM Vol. 2 §1.2.4 for compatibility mode).
#include "tests/difftest/native_runner.h"

#include <asm/ldt.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <csetjmp>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

// Fixed addresses, spelled as literals so that the trampoline assembly below can use them.
#define VMBT_DT_CODE_BASE 0x100000
#define VMBT_DT_SAVE_BASE 0x110000
#define VMBT_DT_STR2(x) #x
#define VMBT_DT_STR(x) VMBT_DT_STR2(x)

// The trampoline and the trailer, assembled here and copied into the low code region (they are
// never executed in place). Absolute addresses refer to the save area:
//   +0x00 in GPRs[8]   +0x20 in EFLAGS   +0x24 snippet entry   +0x40 out GPRs[8]
//   +0x60 out EFLAGS   +0x80 64-bit RSP  +0x88 DS  +0x8a ES  +0x8c SS
//   +0x90 far pointer (offset, selector) to a 16-bit snippet  +0x96 16-bit data selector
//   stack top at +0xff0
// enter64 (64-bit, SysV-callable): saves callee-saved registers on the 64-bit stack and RSP in
// the save area (r8-r15 do not survive compatibility mode), loads DS/ES/SS=0x2b (SS also to
// refresh a possibly stale SS cache after SYSRET on AMD), switches to the private low stack and
// far-returns to entry32 in CS=0x23. entry32 loads EFLAGS with popfd, then all GPRs, ESP last,
// and jumps to the snippet. The trailer (copied right after the snippet) stores all GPRs with
// absolute moves (no flags touched), switches to the private stack, stores EFLAGS with pushfd,
// and far-returns to exit64 in CS=0x33, which restores RSP, DS, ES, clears DF and returns.
// A 16-bit snippet is entered through to16 instead of directly: still in CS=0x23, it loads DS,
// ES and SS with the 16-bit data selector and far-jumps to the snippet in the 16-bit code
// segment (no GPR or flag touched: the selectors are read through CS, which is readable). Its
// trailer (trailer16, 16-bit code) reloads DS and SS with the flat 0x2b it reads at CS:0xff0
// (a word the runner keeps in the trampoline page) and then does what the 32-bit trailer does;
// its stores to the save area (above 64 KiB) are spelled as bytes, 66h 67h and a 32-bit
// absolute address, which GNU as and LLVM's assembler then both take.
asm(".pushsection .rodata.vmbt_difftest_tramp,\"a\"\n"
    ".equ VD_CODE, " VMBT_DT_STR(VMBT_DT_CODE_BASE) "\n"
    ".equ VD_SAVE, " VMBT_DT_STR(VMBT_DT_SAVE_BASE) "\n"
    R"(
  .equ VD_IN, VD_SAVE
  .equ VD_IN_EFL, VD_SAVE + 0x20
  .equ VD_ENTRY, VD_SAVE + 0x24
  .equ VD_OUT, VD_SAVE + 0x40
  .equ VD_OUT_EFL, VD_SAVE + 0x60
  .equ VD_RSP64, VD_SAVE + 0x80
  .equ VD_DS, VD_SAVE + 0x88
  .equ VD_ES, VD_SAVE + 0x8a
  .equ VD_SS, VD_SAVE + 0x8c
  .equ VD_FAR16, VD_SAVE + 0x90
  .equ VD_DATA16, VD_SAVE + 0x96
  .equ VD_FLAT_AT_CS16, 0xff0
  .equ VD_STACK_TOP, VD_SAVE + 0xff0
  .globl vmbt_difftest_tramp_begin, vmbt_difftest_tramp_end
  .globl vmbt_difftest_trailer_begin, vmbt_difftest_trailer_end
  .globl vmbt_difftest_trailer16_begin, vmbt_difftest_trailer16_end, vmbt_difftest_to16
  .hidden vmbt_difftest_tramp_begin, vmbt_difftest_tramp_end
  .hidden vmbt_difftest_trailer_begin, vmbt_difftest_trailer_end
  .hidden vmbt_difftest_trailer16_begin, vmbt_difftest_trailer16_end, vmbt_difftest_to16
  .code64
vmbt_difftest_tramp_begin:
  pushq %rbx
  pushq %rbp
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, VD_RSP64
  movw %ds, VD_DS
  movw %es, VD_ES
  movw %ss, VD_SS
  movl $0x2b, %eax
  movl %eax, %ds
  movl %eax, %es
  movl %eax, %ss
  movl $VD_STACK_TOP, %esp
  pushq $0x23
  pushq $(VD_CODE + (vmbt_difftest_entry32 - vmbt_difftest_tramp_begin))
  lretq
  .code32
vmbt_difftest_entry32:
  pushl VD_IN_EFL
  popfl
  movl VD_IN + 0, %eax
  movl VD_IN + 4, %ecx
  movl VD_IN + 8, %edx
  movl VD_IN + 12, %ebx
  movl VD_IN + 20, %ebp
  movl VD_IN + 24, %esi
  movl VD_IN + 28, %edi
  movl VD_IN + 16, %esp
  jmp *VD_ENTRY
vmbt_difftest_to16:
  movw %cs:VD_DATA16, %ds
  movw %cs:VD_DATA16, %es
  movw %cs:VD_DATA16, %ss
  ljmpl *%cs:VD_FAR16
  .code64
vmbt_difftest_exit64:
  movq VD_RSP64, %rsp
  movw VD_DS, %ds
  movw VD_ES, %es
  cld
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbp
  popq %rbx
  ret
vmbt_difftest_tramp_end:
  .code32
vmbt_difftest_trailer_begin:
  movl %eax, VD_OUT + 0
  movl %ecx, VD_OUT + 4
  movl %edx, VD_OUT + 8
  movl %ebx, VD_OUT + 12
  movl %esp, VD_OUT + 16
  movl %ebp, VD_OUT + 20
  movl %esi, VD_OUT + 24
  movl %edi, VD_OUT + 28
  movl $VD_STACK_TOP, %esp
  pushfl
  popl VD_OUT_EFL
  pushl $0x33
  pushl $(VD_CODE + (vmbt_difftest_exit64 - vmbt_difftest_tramp_begin))
  lret
vmbt_difftest_trailer_end:
  .code16
  # MOV [VD_OUT + offset], r32 from 16-bit code: 66h 67h 89 /r with a 32-bit absolute address.
  .macro vd_store_out modrm, offset
  .byte 0x66, 0x67, 0x89, \modrm
  .long VD_OUT + \offset
  .endm
vmbt_difftest_trailer16_begin:
  movw %cs:VD_FLAT_AT_CS16, %ds
  vd_store_out 0x05, 0  # eax
  vd_store_out 0x0d, 4  # ecx
  vd_store_out 0x15, 8  # edx
  vd_store_out 0x1d, 12  # ebx
  vd_store_out 0x25, 16  # esp
  vd_store_out 0x2d, 20  # ebp
  vd_store_out 0x35, 24  # esi
  vd_store_out 0x3d, 28  # edi
  movw %cs:VD_FLAT_AT_CS16, %ss
  movl $VD_STACK_TOP, %esp
  pushfl
  .byte 0x66, 0x67, 0x8f, 0x05
  .long VD_OUT_EFL
  pushl $0x33
  pushl $(VD_CODE + (vmbt_difftest_exit64 - vmbt_difftest_tramp_begin))
  lretl
vmbt_difftest_trailer16_end:
  .code64
  .popsection
)");

extern "C" {
extern const uint8_t vmbt_difftest_tramp_begin[], vmbt_difftest_tramp_end[];
extern const uint8_t vmbt_difftest_trailer_begin[], vmbt_difftest_trailer_end[];
extern const uint8_t vmbt_difftest_trailer16_begin[], vmbt_difftest_trailer16_end[];
extern const uint8_t vmbt_difftest_to16[];
}

namespace vmbt::difftest {
namespace {

static_assert(NativeRunner::kCodeBase == VMBT_DT_CODE_BASE);
static_assert(NativeRunner::kSaveBase == VMBT_DT_SAVE_BASE);
static_assert(NativeRunner::kGuardBase + NativeRunner::kGuardSize <= NativeRunner::kCodeBase);

/// Layout of the save area (must match the VD_* offsets above).
struct SaveArea {
  uint32_t in_gpr[8];
  uint32_t in_eflags;
  uint32_t entry;
  uint32_t pad0[6];
  uint32_t out_gpr[8];
  uint32_t out_eflags;
  uint32_t pad1[7];
  uint64_t rsp64;
  uint16_t ds, es, ss, pad2;
  uint32_t far16_offset;  ///< ljmp target: the snippet's offset in the 16-bit code segment
  uint16_t far16_selector;
  uint16_t data16_selector;
};
static_assert(offsetof(SaveArea, in_eflags) == 0x20 && offsetof(SaveArea, entry) == 0x24);
static_assert(offsetof(SaveArea, out_gpr) == 0x40 && offsetof(SaveArea, out_eflags) == 0x60);
static_assert(offsetof(SaveArea, rsp64) == 0x80 && offsetof(SaveArea, ds) == 0x88);
static_assert(offsetof(SaveArea, es) == 0x8a && offsetof(SaveArea, ss) == 0x8c);
static_assert(offsetof(SaveArea, far16_offset) == 0x90 &&
              offsetof(SaveArea, far16_selector) == 0x94);
static_assert(offsetof(SaveArea, data16_selector) == 0x96);

/// Where the trailer of a 16-bit snippet finds the flat data selector (CS:0xff0, VD_FLAT_AT_CS16).
constexpr uint32_t kFlatSelectorAtCs16 = 0xff0;
/// Linux's flat 32-bit user data selector (__USER_DS, the one compatibility mode uses).
constexpr uint16_t kUserDs = 0x2b;
/// LDT entries of the 16-bit segments (selector = index * 8 | TI | RPL 3).
constexpr unsigned kLdtCode16 = 0, kLdtData16 = 1;
constexpr uint16_t ldt_selector(unsigned index) {
  return static_cast<uint16_t>(index * 8 | 4 | 3);
}

constexpr int kSignals[] = {SIGSEGV, SIGFPE, SIGILL, SIGTRAP, SIGBUS, SIGALRM};
constexpr size_t kAltStackSize = 256 * 1024;  // large: AVX-512 signal frames
constexpr uint8_t kFillByte = 0xcc;           // INT3 around the snippet: stray jumps trap

/// The run in progress, shared with the signal handler.
struct ActiveRun {
  sigjmp_buf env;
  volatile sig_atomic_t in_code = 0;
  volatile int signo = 0;
  volatile uint64_t rip = 0, trapno = 0, err = 0, addr = 0, eflags = 0;
  volatile uint16_t cs = 0;
  volatile uint64_t gpr[8] = {};
};

ActiveRun* g_run = nullptr;
struct sigaction g_old_actions[NSIG];  // dispositions replaced for the duration of one run
bool g_instance = false;

SaveArea* save_area() {
  return reinterpret_cast<SaveArea*>(uintptr_t{NativeRunner::kSaveBase});
}

void on_signal(int sig, siginfo_t* info, void* ctx) {
  auto* uc = static_cast<ucontext_t*>(ctx);
  const greg_t* g = uc->uc_mcontext.gregs;
  const uint64_t rip = static_cast<uint64_t>(g[REG_RIP]);
  ActiveRun* run = g_run;
  const uint16_t cs = static_cast<uint16_t>(g[REG_CSGSFS] & 0xffff);
  // In the 16-bit code segment the kernel reports IP, the offset from its base kCodeBase.
  const bool in_code16 = cs == ldt_selector(kLdtCode16) && rip <= 0xffff;
  const bool ours = run != nullptr && run->in_code &&
                    (in_code16 || (rip >= NativeRunner::kCodeBase &&
                                   rip < NativeRunner::kCodeBase + NativeRunner::kCodeSize));
  if (!ours) {
    if (sig == SIGALRM) return;  // our timer, firing just after the snippet ended
    // Not from the snippet: chain to the disposition the run replaced.
    const struct sigaction& old = g_old_actions[sig];
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction) {
      old.sa_sigaction(sig, info, ctx);
      return;
    }
    if (old.sa_handler == SIG_IGN) return;
    if (old.sa_handler != SIG_DFL) {
      old.sa_handler(sig);
      return;
    }
    sigaction(sig, &old, nullptr);  // default action: die of it
    if (sig == SIGTRAP || info->si_code <= 0) raise(sig);
    return;  // a fault re-executes and is delivered again
  }
  run->signo = sig;
  run->rip = in_code16 ? NativeRunner::kCodeBase + rip : rip;
  run->cs = cs;
  run->trapno = static_cast<uint64_t>(g[REG_TRAPNO]);
  run->err = static_cast<uint64_t>(g[REG_ERR]);
  run->addr = reinterpret_cast<uint64_t>(info->si_addr);
  run->eflags = static_cast<uint64_t>(g[REG_EFL]);
  static constexpr int kRegs[8] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX,
                                   REG_RSP, REG_RBP, REG_RSI, REG_RDI};
  for (int i = 0; i < 8; ++i) run->gpr[i] = static_cast<uint64_t>(g[kRegs[i]]);
  run->in_code = 0;
  siglongjmp(run->env, 1);
}

void* map_fixed(uint32_t addr, size_t size, int prot, const char* what) {
  void* p = mmap(reinterpret_cast<void*>(uintptr_t{addr}), size, prot,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED || p != reinterpret_cast<void*>(uintptr_t{addr})) {
    if (p != MAP_FAILED) munmap(p, size);
    throw std::runtime_error(std::string("NativeRunner: cannot map the ") + what + " at " +
                             std::to_string(addr) + " (in use, or below vm.mmap_min_addr)");
  }
  return p;
}

/// Writes one LDT entry of this process (modify_ldt(2), func 1): a byte-granular 16-bit segment
/// (D/B = 0) of `limit` + 1 bytes at `base`, DPL 3, code (execute/read) or data (read/write).
/// Returns errno, 0 on success.
int write_ldt_entry(unsigned index, uint32_t base, uint32_t limit, bool code) {
  user_desc d{};
  d.entry_number = index;
  d.base_addr = base;
  d.limit = limit;
  d.seg_32bit = 0;
  d.contents = code ? MODIFY_LDT_CONTENTS_CODE : MODIFY_LDT_CONTENTS_DATA;
  d.read_exec_only = 0;
  d.limit_in_pages = 0;
  d.seg_not_present = 0;
  d.useable = 1;
  return syscall(SYS_modify_ldt, 1, &d, sizeof d) == 0 ? 0 : errno;
}

/// The 16-bit segments a snippet with NativeCase::code16 runs in: code at kCodeBase and data at
/// kDataBase, both 64 KiB (real mode's segments, Intel SDM Vol. 3A §20.1.1). Installed once per
/// process; "" on success, else why not.
const std::string& install_segments16() {
  static const std::string why = [] {
    int err = write_ldt_entry(kLdtCode16, NativeRunner::kCodeBase, 0xffff, true);
    if (err == 0) err = write_ldt_entry(kLdtData16, NativeRunner::kDataBase, 0xffff, false);
    return err == 0 ? std::string()
                    : std::string("modify_ldt refused a 16-bit LDT segment: ") + strerror(err);
  }();
  return why;
}

void set_timer(timer_t timer, unsigned ms) {
  itimerspec t{};
  t.it_value.tv_sec = ms / 1000;
  t.it_value.tv_nsec = static_cast<long>(ms % 1000) * 1000000;
  timer_settime(timer, 0, &t, nullptr);
}

void restore_data_segments(const SaveArea* s) {
  const uint16_t ds = s->ds, es = s->es;
  asm volatile("movw %0, %%ds\n\tmovw %1, %%es" : : "rm"(ds), "rm"(es));
}

}  // namespace

namespace {

/// Outcome of probe_code_segment.
enum Probe { kProbeFailed = -1, kProbeRefused = 0, kProbeRan = 1, kProbeNoLdt = 2 };

/// In a child process, far-returns from 64-bit code to an INT3 in a compatibility-mode code
/// segment: Linux's 0x23, or (`ldt16`) a 16-bit LDT segment based at the INT3. SIGTRAP means
/// the code ran; SIGSEGV means the far return raised #GP.
Probe probe_code_segment(bool ldt16) {
  pid_t pid = fork();
  if (pid < 0) return kProbeFailed;
  if (pid == 0) {
    void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    if (page == MAP_FAILED) _exit(2);
    *static_cast<uint8_t*>(page) = 0xcc;  // INT3
    const uint64_t at = reinterpret_cast<uintptr_t>(page);
    if (ldt16 && write_ldt_entry(kLdtCode16, static_cast<uint32_t>(at), 0xfff, true) != 0) {
      _exit(4);
    }
    signal(SIGTRAP, SIG_DFL);
    signal(SIGSEGV, SIG_DFL);
    const uint64_t selector = ldt16 ? ldt_selector(kLdtCode16) : 0x23, offset = ldt16 ? 0 : at;
    asm volatile("pushq %0\n\tpushq %1\n\tlretq" : : "r"(selector), "r"(offset) : "memory");
    _exit(3);
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return kProbeFailed;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGTRAP) return kProbeRan;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 4) return kProbeNoLdt;
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV ? kProbeRefused : kProbeFailed;
}

}  // namespace

bool NativeRunner::host_runs_32bit_code(std::string* why) {
  static const Probe verdict = probe_code_segment(false);
  if (verdict != kProbeRan && why) {
    *why = verdict == kProbeRefused
               ? "this host's kernel does not run 32-bit code in a 64-bit process (a far return "
                 "into the compatibility-mode code segment 0x23 raised #GP: IA-32 emulation is "
                 "off), so the native-execution oracle is unavailable"
               : "could not probe whether this host runs 32-bit code (fork or mmap failed)";
  }
  return verdict == kProbeRan;
}

bool NativeRunner::host_runs_16bit_code(std::string* why) {
  if (!host_runs_32bit_code(why)) return false;
  static const Probe verdict = probe_code_segment(true);
  if (verdict != kProbeRan && why) {
    *why = verdict == kProbeNoLdt ? "this host's kernel refuses 16-bit LDT segments (modify_ldt), "
                                    "so the native oracle for 16-bit code is unavailable"
           : verdict == kProbeRefused
               ? "this host's kernel does not run code in a 16-bit LDT segment (#GP), so the "
                 "native oracle for 16-bit code is unavailable"
               : "could not probe whether this host runs 16-bit code (fork or mmap failed)";
  }
  return verdict == kProbeRan;
}

NativeRunner::NativeRunner() {
  if (g_instance) throw std::runtime_error("NativeRunner: only one instance at a time");
  const size_t tramp_len = vmbt_difftest_tramp_end - vmbt_difftest_tramp_begin;
  if (tramp_len > kFlatSelectorAtCs16) throw std::logic_error("trampoline too large");
  data_ = map_fixed(kDataBase, kDataSize, PROT_READ | PROT_WRITE, "data arena");
  try {
    guard_ = map_fixed(kGuardBase, kGuardSize, PROT_NONE, "arena guard page");
    code_ = map_fixed(kCodeBase, kCodeSize, PROT_READ | PROT_WRITE | PROT_EXEC, "code region");
    save_ = map_fixed(kSaveBase, kSaveSize, PROT_READ | PROT_WRITE, "save area");
    altstack_ =
        mmap(nullptr, kAltStackSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (altstack_ == MAP_FAILED) {
      altstack_ = nullptr;
      throw std::runtime_error("NativeRunner: cannot map the signal stack");
    }
  } catch (...) {
    if (save_) munmap(save_, kSaveSize);
    if (code_) munmap(code_, kCodeSize);
    if (guard_) munmap(guard_, kGuardSize);
    munmap(data_, kDataSize);
    throw;
  }
  auto* code = static_cast<uint8_t*>(code_);
  memset(code, kFillByte, kCodeSize);
  memcpy(code, vmbt_difftest_tramp_begin, tramp_len);
  memcpy(code + kFlatSelectorAtCs16, &kUserDs, sizeof kUserDs);

  g_instance = true;
}

NativeRunner::~NativeRunner() {
  if (has_timer_) timer_delete(static_cast<timer_t>(timer_));
  munmap(altstack_, kAltStackSize);
  munmap(save_, kSaveSize);
  munmap(code_, kCodeSize);
  munmap(guard_, kGuardSize);
  munmap(data_, kDataSize);
  g_instance = false;
}

/// The timeout timer signals one thread (a process-wide timer could hit another one): the one
/// that runs the snippet.
void NativeRunner::arm_timer_for_this_thread() {
  const int tid = gettid();
  if (has_timer_ && timer_tid_ == tid) return;
  if (has_timer_) timer_delete(static_cast<timer_t>(timer_));
  has_timer_ = false;
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGALRM;
  sev._sigev_un._tid = tid;  // sigev_notify_thread_id (glibc < 2.38 lacks the name)
  timer_t timer;
  if (timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0) {
    timer_ = timer;
    timer_tid_ = tid;
    has_timer_ = true;
  }
}

NativeResult NativeRunner::run(const NativeCase& c) {
  if (c.code.size() > kMaxCodeBytes) throw std::length_error("NativeRunner: snippet too long");
  if (c.code16 && !install_segments16().empty()) {
    throw std::runtime_error("NativeRunner: " + install_segments16());
  }
  auto* snippet = static_cast<uint8_t*>(code_) + (kSnippetBase - kCodeBase);
  const uint8_t* trailer = c.code16 ? vmbt_difftest_trailer16_begin : vmbt_difftest_trailer_begin;
  const size_t trailer_len = c.code16 ? vmbt_difftest_trailer16_end - vmbt_difftest_trailer16_begin
                                      : vmbt_difftest_trailer_end - vmbt_difftest_trailer_begin;
  memset(snippet, kFillByte, last_code_len_);
  if (!c.code.empty()) memcpy(snippet, c.code.data(), c.code.size());
  memcpy(snippet + c.code.size(), trailer, trailer_len);
  last_code_len_ = c.code.size() + trailer_len;

  SaveArea* s = save_area();
  for (int i = 0; i < 8; ++i) s->in_gpr[i] = c.in.gpr[i];
  s->in_eflags = (c.in.eflags & flag::kCompared) | flag::kFixed1;
  s->entry = c.code16
                 ? kCodeBase + static_cast<uint32_t>(vmbt_difftest_to16 - vmbt_difftest_tramp_begin)
                 : kSnippetBase;
  s->far16_offset = kSnippetBase - kCodeBase;
  s->far16_selector = ldt_selector(kLdtCode16);
  s->data16_selector = ldt_selector(kLdtData16);
  for (uint32_t& r : s->out_gpr) r = 0xdeadbeef;
  s->out_eflags = 0;

  // Our signal handlers and alternate stack are installed only while the snippet runs, so
  // handlers other components (the bt engine) install stay in force between runs.
  stack_t old_altstack;
  stack_t ss{};
  ss.ss_sp = altstack_;
  ss.ss_size = kAltStackSize;
  sigaltstack(&ss, &old_altstack);
  struct sigaction sa {};
  sa.sa_sigaction = on_signal;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  for (int sig : kSignals) sigaction(sig, &sa, &g_old_actions[sig]);

  NativeResult r;
  ActiveRun run;
  g_run = &run;
  using EntryFn = void (*)();
  auto enter = reinterpret_cast<EntryFn>(uintptr_t{kCodeBase});
  if (timeout_ms_ != 0) arm_timer_for_this_thread();
  const bool timed = has_timer_ && timeout_ms_ != 0;
  if (sigsetjmp(run.env, 1) == 0) {
    if (timed) set_timer(static_cast<timer_t>(timer_), timeout_ms_);
    run.in_code = 1;
    enter();
    run.in_code = 0;
    if (timed) set_timer(static_cast<timer_t>(timer_), 0);
    for (int i = 0; i < 8; ++i) r.out.gpr[i] = s->out_gpr[i];
    r.out.eflags = s->out_eflags;
  } else {
    if (timed) set_timer(static_cast<timer_t>(timer_), 0);
    restore_data_segments(s);
    r.faulted = true;
    r.signal = run.signo;
    r.fault_eip = static_cast<uint32_t>(run.rip);
    r.timed_out = run.signo == SIGALRM;
    r.vector = r.timed_out ? -1 : static_cast<int>(run.trapno);
    r.error_code = static_cast<uint32_t>(run.err);
    r.fault_addr = static_cast<uint32_t>(run.addr);
    for (int i = 0; i < 8; ++i) r.out.gpr[i] = static_cast<uint32_t>(run.gpr[i]);
    r.out.eflags = static_cast<uint32_t>(run.eflags);
  }
  g_run = nullptr;
  for (int sig : kSignals) sigaction(sig, &g_old_actions[sig], nullptr);
  sigaltstack(&old_altstack, nullptr);
  r.memory.assign(data(), data() + kDataSize);
  return r;
}

}  // namespace vmbt::difftest
