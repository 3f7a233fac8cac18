#include "tests/difftest/bt_snippet_runner.h"

#include <cstdio>

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

#include "bt/bt_engine.h"
#include "vmm/boot/boot_state.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/irq.h"
#include "vmm/signal_stack.h"

namespace vmbt::difftest {

namespace {

constexpr uint32_t kRamBytes = 4u << 20;
constexpr uint32_t kGdtBase = 0x300000;
constexpr uint32_t kIdtBase = 0x301000;
constexpr uint32_t kHandlerBase = 0x302000;  ///< handler for vector v: a HLT at base + 16 * v
constexpr uint32_t kTssBase = 0x303000;
constexpr uint32_t kRing0Stack = 0x310000;  ///< ESP0: exceptions from CPL 3 push their frame here
constexpr uint16_t kCodeSel = 0x08, kDataSel = 0x10, kUserCodeSel = 0x1b, kUserDataSel = 0x23;
constexpr uint16_t kTssSel = 0x28;
/// Real mode (NativeCase::code16): the handler for vector v is a HLT at kRealHandlerSeg:16 * v;
/// the snippet runs at FFFF:(kSnippetBase - 0xffff0), the data segments are the arena's.
constexpr uint16_t kRealHandlerSeg = 0x2000;
constexpr uint16_t kRealCodeSeg = 0xffff;
constexpr uint16_t kRealDataSeg = NativeRunner::kDataBase >> 4;
static_assert(NativeRunner::kDataBase % 16 == 0 && NativeRunner::kDataSize == 0x10000);

std::atomic<bt::BtEngine*> g_engine{nullptr};

void on_timeout(int, siginfo_t*, void* uc) {
  if (bt::BtEngine* e = g_engine.load()) e->kick(uc);
}

/// A real-mode segment register: base = selector * 16, 64 KiB, as a real-mode load leaves it.
SegmentReg real_mode_segment(uint16_t selector, uint8_t type) {
  SegmentReg s;
  s.selector = selector;
  s.base = uint32_t{selector} << 4;
  s.limit = 0xffff;
  s.type = type;
  s.s = s.present = true;
  return s;
}

SegmentReg flat(bool code) {
  return SegmentReg::flat(code ? kCodeSel : kDataSel, code ? 0xb : 0x3);
}

bool has_error_code(int vector) {
  return vector == 8 || (vector >= 10 && vector <= 14) || vector == 17;
}

/// The real-mode exception frame at SS:SP (IP, CS, FLAGS; Intel SDM Vol. 3A §20.1.4): the
/// faulting instruction's linear address, its FLAGS and SP.
void read_real_mode_frame(const GuestMemory& ram, const VcpuState& out, BtResult* r) {
  const uint32_t sp = out.gpr[kEsp] & 0xffff;
  auto word = [&](uint32_t i) {  // the i-th word of the frame, SP wrapping at 64 KiB
    uint16_t v = 0xffff;
    ram.read(out.seg[kSs].base + ((sp + 2 * i) & 0xffff), &v, 2);
    return uint32_t{v};
  };
  r->fault_eip = (word(1) << 4) + word(0);
  r->out.eflags = (out.eflags & 0xffff0000u) | word(2);
  r->out.gpr[kEsp] = (out.gpr[kEsp] & 0xffff0000u) | ((sp + 6) & 0xffff);
  r->frame_offset = out.seg[kSs].base + sp - NativeRunner::kDataBase;
  r->frame_size = 6;
}

/// The 32-bit exception frame at the handler's ESP (error code where the vector has one, EIP,
/// CS, EFLAGS, and ESP/SS from CPL 3; Intel SDM Vol. 3A §6.12.1).
void read_protected_mode_frame(const GuestMemory& ram, const VcpuState& out, BtResult* r) {
  uint32_t sp = out.gpr[kEsp];
  // The frame is where the handler's ESP says; a snippet that moved ESP out of RAM left it
  // there (reads outside RAM give all ones, as the guest's own would).
  auto frame32 = [&](uint32_t at) {
    uint32_t v = 0xffffffff;
    ram.read(at, &v, 4);
    return v;
  };
  if (has_error_code(r->vector)) {
    r->error_code = frame32(sp);
    sp += 4;
  }
  r->fault_eip = frame32(sp);
  r->out.eflags = frame32(sp + 8);  // the EFLAGS of the faulting context
  // ESP before the frame: the one pushed with it from CPL 3, else just above it.
  const bool from_user = (frame32(sp + 4) & 3) != 0;
  r->out.gpr[kEsp] = from_user ? frame32(sp + 12) : sp + 12;
  if (!from_user) {  // the frame (at most 16 bytes) just below that ESP, where in the arena
    const int64_t top = int64_t{r->out.gpr[kEsp]} - NativeRunner::kDataBase;
    const int64_t lo = std::max<int64_t>(top - 16, 0),
                  hi = std::min<int64_t>(top, NativeRunner::kDataSize);
    if (hi > lo) {
      r->frame_offset = static_cast<uint32_t>(lo);
      r->frame_size = static_cast<uint32_t>(hi - lo);
    }
  }
}

}  // namespace

std::string compare_registers(const NativeResult& n, const BtResult& b, uint32_t flag_mask) {
  static const char* const kRegNames[8] = {"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"};
  if (n.faulted != b.faulted) {
    return n.faulted ? "native raised vector " + std::to_string(n.vector) + ", bt did not"
                     : "bt raised vector " + std::to_string(b.vector) + ", native did not";
  }
  std::string why;
  char buf[96];
  if (n.faulted) {
    if (n.vector != b.vector) {
      why += "vector native " + std::to_string(n.vector) + " bt " + std::to_string(b.vector) + "; ";
    }
    if (n.fault_eip != b.fault_eip) {
      snprintf(buf, sizeof buf, "fault EIP native %#x bt %#x; ", n.fault_eip, b.fault_eip);
      why += buf;
    }
  }
  for (unsigned i = 0; i < 8; ++i) {
    if (n.out.gpr[i] != b.out.gpr[i]) {
      snprintf(buf, sizeof buf, "%s native %#x bt %#x; ", kRegNames[i], n.out.gpr[i], b.out.gpr[i]);
      why += buf;
    }
  }
  if ((n.out.eflags & flag_mask) != (b.out.eflags & flag_mask)) {
    snprintf(buf, sizeof buf, "eflags native %#x bt %#x (mask %#x); ", n.out.eflags, b.out.eflags,
             flag_mask);
    why += buf;
  }
  return why;
}

BtSnippetRunner::BtSnippetRunner() : ram_(std::make_unique<GuestMemory>(kRamBytes)) {}
BtSnippetRunner::~BtSnippetRunner() = default;

BtResult BtSnippetRunner::run(const NativeCase& c, const uint8_t* arena, unsigned timeout_ms,
                              bool user) {
  GuestMemory& ram = *ram_;
  std::memset(ram.host_base(), 0, ram.size());
  ram.write(NativeRunner::kDataBase, arena, NativeRunner::kDataSize);
  ram.write(NativeRunner::kSnippetBase, c.code.data(), c.code.size());
  const uint8_t hlt = 0xf4;
  const uint32_t end = NativeRunner::kSnippetBase + static_cast<uint32_t>(c.code.size());
  ram.write(end, &hlt, 1);

  // GDT: null, flat code 0x08, flat data 0x10. IDT: 32 interrupt gates to halting handlers.
  // Null, ring-0 code and data, ring-3 code and data (0x1b, 0x23), a 32-bit TSS at kTssBase
  // (busy) whose SS0:ESP0 is the ring-0 stack exceptions from CPL 3 switch to.
  const uint64_t tss_desc = 0x00008b0000000067ull | (uint64_t{kTssBase & 0xffffff} << 16) |
                            (uint64_t{kTssBase >> 24} << 56);
  const uint64_t gdt[6] = {0,
                           0x00cf9b000000ffffull,
                           0x00cf93000000ffffull,
                           0x00cffb000000ffffull,
                           0x00cff3000000ffffull,
                           tss_desc};
  ram.write(kGdtBase, gdt, sizeof gdt);
  ram.write32(kTssBase + 4, kRing0Stack);  // ESP0
  ram.write32(kTssBase + 8, kDataSel);     // SS0
  for (uint32_t v = 0; v < 32; ++v) {
    uint32_t handler = kHandlerBase + 16 * v;
    ram.write(handler, &hlt, 1);
    uint32_t lo = (uint32_t{kCodeSel} << 16) | (handler & 0xffff);
    uint32_t hi = (handler & 0xffff0000u) | 0x8e00;  // present, DPL0, 32-bit interrupt gate
    ram.write32(kIdtBase + 8 * v, lo);
    ram.write32(kIdtBase + 8 * v + 4, hi);
  }

  // IVT: vector v -> kRealHandlerSeg:16 * v, a HLT (real mode only; RAM there is unused else).
  for (uint32_t v = 0; v < 32; ++v) {
    ram.write(uint32_t{kRealHandlerSeg} * 16 + 16 * v, &hlt, 1);
    ram.write32(4 * v, (uint32_t{kRealHandlerSeg} << 16) | (16 * v));
  }

  NoInterrupts none;
  bt::BtEngine engine(ram, none);
  VcpuState s;
  if (c.code16) {
    s = reset_state(0);
    s.seg[kCs] = real_mode_segment(kRealCodeSeg, 0xb);
    s.eip = NativeRunner::kSnippetBase - s.seg[kCs].base;
    for (unsigned i : {kDs, kEs, kSs, kFs, kGs}) s.seg[i] = real_mode_segment(kRealDataSeg, 0x3);
    s.idtr = {0, 32 * 4 - 1};
  } else {
    s = flat_protected_mode_state(NativeRunner::kSnippetBase);
    s.seg[kCs] = user ? SegmentReg::flat(kUserCodeSel, 0xb, 3) : flat(true);
    for (unsigned i : {kDs, kEs, kSs, kFs, kGs}) {
      s.seg[i] = user ? SegmentReg::flat(kUserDataSel, 0x3, 3) : flat(false);
    }
    s.tr.selector = kTssSel;
    s.tr.base = kTssBase;
    s.gdtr = {kGdtBase, sizeof gdt - 1};
    s.idtr = {kIdtBase, 32 * 8 - 1};
  }
  for (unsigned i = 0; i < 8; ++i) s.gpr[i] = c.in.gpr[i];
  s.eflags = (c.in.eflags & flag::kCompared) | flag::kFixed1;
  // As an OS that uses SSE sets them up (Intel SDM Vol. 3A §13.1): native Linux processes run so.
  s.cr0 |= cr0::kNe | cr0::kMp;
  s.cr4 |= cr4::kOsfxsr | cr4::kOsxmmexcpt;
  engine.set_state(s);

  // A watchdog: a timer signal to this thread kicks the engine out of a runaway loop.
  ensure_signal_alt_stack();
  struct sigaction sa {
  }, old{};
  sa.sa_sigaction = on_timeout;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGRTMIN + 5, &sa, &old);
  g_engine = &engine;
  timer_t timer{};
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = SIGRTMIN + 5;
  sev._sigev_un._tid = gettid();
  bool have_timer = timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0;
  if (have_timer) {
    itimerspec its{};
    its.it_value.tv_sec = timeout_ms / 1000;
    its.it_value.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1'000'000;
    timer_settime(timer, 0, &its, nullptr);
  }

  BtResult r;
  for (;;) {
    Exit e = engine.run();
    if (e.reason == ExitReason::kKicked) {
      r.timed_out = true;
      break;
    }
    if (e.reason == ExitReason::kHalt) break;
    if (e.reason == ExitReason::kIo) continue;  // snippets do no I/O; ignore it if they do
    r.engine_error = e.message.empty() ? "engine stopped" : e.message;
    break;
  }
  if (have_timer) timer_delete(timer);
  g_engine = nullptr;
  sigaction(SIGRTMIN + 5, &old, nullptr);

  VcpuState out = engine.state();
  for (unsigned i = 0; i < 8; ++i) r.out.gpr[i] = out.gpr[i];
  r.out.eflags = out.eflags;
  const uint32_t handlers = c.code16 ? uint32_t{kRealHandlerSeg} * 16 : kHandlerBase;
  const uint32_t linear_eip = out.seg[kCs].base + out.eip;
  if (linear_eip >= handlers + 1 && linear_eip <= handlers + 16 * 31 + 1 &&
      (linear_eip - handlers - 1) % 16 == 0) {
    r.faulted = true;
    r.vector = static_cast<int>((linear_eip - handlers - 1) / 16);
    if (c.code16) {
      read_real_mode_frame(ram, out, &r);
    } else {
      read_protected_mode_frame(ram, out, &r);
    }
  } else if (!r.timed_out && r.engine_error.empty() && linear_eip != end + 1) {
    r.engine_error = "the snippet ended at an unexpected EIP";
  }
  r.memory.resize(NativeRunner::kDataSize);
  ram.read(NativeRunner::kDataBase, r.memory.data(), NativeRunner::kDataSize);
  return r;
}

}  // namespace vmbt::difftest
