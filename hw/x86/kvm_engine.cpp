#include "hw/x86/kvm_engine.h"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "vmm/cpu_model.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/irq.h"
#include "vmm/msr_model.h"

namespace vmbt {

namespace {

// Where KVM on VT-x keeps its real-mode TSS and identity page table: three pages just below the
// 4 GiB BIOS area, outside guest RAM (which ends at 3 GiB at most).
constexpr uint64_t kTssAddr = 0xfffbd000;
constexpr uint64_t kIdentityMapAddr = 0xfffbc000;

constexpr uint32_t kMsrSysenterCs = 0x174, kMsrSysenterEsp = 0x175, kMsrSysenterEip = 0x176,
                   kMsrTsc = 0x10;

void check(int rc, const char* what) {
  if (rc < 0) throw Error(fmt::format("KVM {} failed: {}", what, std::strerror(errno)));
}

/// A kvm_msrs block with its flexible array of entries (KVM API doc §4.18 KVM_GET_MSRS).
class MsrList {
 public:
  explicit MsrList(std::initializer_list<uint32_t> indices)
      : buf_((sizeof(kvm_msrs) + indices.size() * sizeof(kvm_msr_entry) + 7) / 8) {
    get()->nmsrs = static_cast<uint32_t>(indices.size());
    uint32_t i = 0;
    for (uint32_t index : indices) entry(i++).index = index;
  }
  kvm_msrs* get() { return reinterpret_cast<kvm_msrs*>(buf_.data()); }
  kvm_msr_entry& entry(uint32_t i) { return get()->entries[i]; }

 private:
  std::vector<uint64_t> buf_;  // 8-byte words, for the entries' alignment
};

kvm_segment to_kvm(const SegmentReg& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = 0;
  k.g = s.g;
  k.avl = s.avl;
  k.unusable = s.unusable;
  return k;
}

SegmentReg from_kvm(const kvm_segment& k) {
  SegmentReg s;
  s.base = static_cast<uint32_t>(k.base);
  s.limit = k.limit;
  s.selector = k.selector;
  s.type = k.type;
  s.present = k.present;
  s.dpl = k.dpl;
  s.db = k.db;
  s.s = k.s;
  s.g = k.g;
  s.avl = k.avl;
  s.unusable = k.unusable;
  return s;
}

const char* exit_reason_name(uint32_t r) {
  switch (r) {
    case KVM_EXIT_IO:
      return "io";
    case KVM_EXIT_MMIO:
      return "mmio";
    case KVM_EXIT_X86_RDMSR:
      return "rdmsr";
    case KVM_EXIT_X86_WRMSR:
      return "wrmsr";
    case KVM_EXIT_HLT:
      return "hlt";
    case KVM_EXIT_SHUTDOWN:
      return "shutdown";
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      return "irq_window_open";
    case KVM_EXIT_INTR:
      return "intr";
    case KVM_EXIT_INTERNAL_ERROR:
      return "internal_error";
    case KVM_EXIT_FAIL_ENTRY:
      return "fail_entry";
    case KVM_EXIT_DEBUG:
      return "debug";
    case KVM_EXIT_EXCEPTION:
      return "exception";
    case KVM_EXIT_UNKNOWN:
      return "unknown";
    case KVM_EXIT_SYSTEM_EVENT:
      return "system_event";
    default:
      return "other";
  }
}

}  // namespace

KvmEngine::KvmEngine(GuestMemory& memory, InterruptSource& interrupts)
    : facts_(KvmHostFacts::read()), memory_(memory), interrupts_(interrupts) {
  vm_fd_ = ioctl(kvm_.fd(), KVM_CREATE_VM, 0);
  check(vm_fd_, "KVM_CREATE_VM");
  sregs2_ = kvm_.check_extension(KVM_CAP_SREGS2) > 0;
  if (kvm_.check_extension(KVM_CAP_SET_TSS_ADDR) > 0) {
    check(ioctl(vm_fd_, KVM_SET_TSS_ADDR, kTssAddr), "KVM_SET_TSS_ADDR");
  }
  if (kvm_.check_extension(KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
    uint64_t addr = kIdentityMapAddr;
    ioctl(vm_fd_, KVM_SET_IDENTITY_MAP_ADDR, &addr);  // optional: only VT-x without URG uses it
  }
  kvm_userspace_memory_region region{};
  region.slot = 0;
  region.guest_phys_addr = 0;
  region.memory_size = memory.size();
  region.userspace_addr = reinterpret_cast<uint64_t>(memory.host_base());
  set_slots({region});

  vcpu_fd_ = ioctl(vm_fd_, KVM_CREATE_VCPU, 0);
  check(vcpu_fd_, "KVM_CREATE_VCPU");
  int size = kvm_.vcpu_mmap_size();
  check(size, "KVM_GET_VCPU_MMAP_SIZE");
  run_size_ = static_cast<size_t>(size);
  void* p = mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd_, 0);
  if (p == MAP_FAILED) throw Error("cannot map the KVM vCPU run structure");
  run_ = static_cast<kvm_run*>(p);

  auto leaves = CpuModel::leaves();
  std::vector<uint8_t> buf(sizeof(kvm_cpuid2) + leaves.size() * sizeof(kvm_cpuid_entry2));
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(buf.data());
  cpuid->nent = static_cast<uint32_t>(leaves.size());
  for (size_t i = 0; i < leaves.size(); ++i) {
    kvm_cpuid_entry2& e = cpuid->entries[i];
    e = {};
    e.function = leaves[i].function;
    e.index = leaves[i].index;
    e.eax = leaves[i].eax;
    e.ebx = leaves[i].ebx;
    e.ecx = leaves[i].ecx;
    e.edx = leaves[i].edx;
    // IA32_TSC_DEADLINE is KVM's, which ignores it without an in-kernel local APIC (vmbt's is in
    // user space, vmm/devices/local_apic.h): the guest is told there is no TSC-deadline mode
    // and uses the APIC timer's one-shot mode, whose registers reach vmbt's APIC as MMIO.
    if (e.function == 1) e.ecx &= ~CpuModel::kTscDeadlineFeature;
  }
  // kvm-pvm refuses KVM_SET_CPUID2 (EINVAL): the guest then sees that host's CPUID, and
  // `vmbt probe` and --stats say so.
  cpuid_model_set_ = ioctl(vcpu_fd_, KVM_SET_CPUID2, cpuid) == 0;
}

KvmEngine::~KvmEngine() {
  if (run_) munmap(run_, run_size_);
  if (vcpu_fd_ >= 0) close(vcpu_fd_);
  if (vm_fd_ >= 0) close(vm_fd_);
}

void KvmEngine::set_state(const VcpuState& s) {
  kvm_regs regs{};
  regs.rax = s.gpr[kEax];
  regs.rcx = s.gpr[kEcx];
  regs.rdx = s.gpr[kEdx];
  regs.rbx = s.gpr[kEbx];
  regs.rsp = s.gpr[kEsp];
  regs.rbp = s.gpr[kEbp];
  regs.rsi = s.gpr[kEsi];
  regs.rdi = s.gpr[kEdi];
  regs.rip = s.eip;
  regs.rflags = s.eflags | eflags::kFixed1;
  check(ioctl(vcpu_fd_, KVM_SET_REGS, &regs), "KVM_SET_REGS");

  kvm_sregs sregs{};
  check(ioctl(vcpu_fd_, KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
  sregs.es = to_kvm(s.seg[kEs]);
  sregs.cs = to_kvm(s.seg[kCs]);
  sregs.ss = to_kvm(s.seg[kSs]);
  sregs.ds = to_kvm(s.seg[kDs]);
  sregs.fs = to_kvm(s.seg[kFs]);
  sregs.gs = to_kvm(s.seg[kGs]);
  sregs.ldt = to_kvm(s.ldtr);
  sregs.tr = to_kvm(s.tr);
  sregs.gdt.base = s.gdtr.base;
  sregs.gdt.limit = s.gdtr.limit;
  sregs.idt.base = s.idtr.base;
  sregs.idt.limit = s.idtr.limit;
  sregs.cr0 = s.cr0;
  sregs.cr2 = s.cr2;
  sregs.cr3 = s.cr3;
  sregs.cr4 = s.cr4;
  sregs.efer = s.efer;
  check(ioctl(vcpu_fd_, KVM_SET_SREGS, &sregs), "KVM_SET_SREGS");
  // PAE paging's PDPTE registers (Intel SDM Vol. 3A §4.4.1), which a guest may have loaded from
  // a PDPT it has rewritten since: handed over as they are (KVM_SET_SREGS2), as a VM entry loads
  // them from the VMCS, not read again from memory. Best effort: without KVM_CAP_SREGS2, KVM
  // reads the PDPT at CR3.
  const bool pae_paging = (s.cr0 & cr0::kPg) && (s.cr4 & cr4::kPae);
  if (pae_paging && s.pdpte != std::array<uint64_t, 4>{} && sregs2_) {
    kvm_sregs2 sregs2{};
    if (ioctl(vcpu_fd_, KVM_GET_SREGS2, &sregs2) == 0) {
      for (int i = 0; i < 4; ++i) sregs2.pdptrs[i] = s.pdpte[i];
      sregs2.flags |= KVM_SREGS2_FLAGS_PDPTRS_VALID;
      ioctl(vcpu_fd_, KVM_SET_SREGS2, &sregs2);
    }
  }

  MsrList msrs({kMsrSysenterCs, kMsrSysenterEsp, kMsrSysenterEip, kMsrTsc});
  msrs.entry(0).data = s.sysenter_cs;
  msrs.entry(1).data = s.sysenter_esp;
  msrs.entry(2).data = s.sysenter_eip;
  msrs.entry(3).data = s.tsc;
  ioctl(vcpu_fd_, KVM_SET_MSRS, msrs.get());  // best effort: kvm-pvm may not model every MSR

  kvm_debugregs debugregs{};  // DR0-3, DR6, DR7 (Intel SDM Vol. 3B §18.2)
  for (int i = 0; i < 4; ++i) debugregs.db[i] = s.dr[i];
  debugregs.dr6 = s.dr[6];
  debugregs.dr7 = s.dr[7];
  ioctl(vcpu_fd_, KVM_SET_DEBUGREGS, &debugregs);  // best effort: kvm-pvm keeps none

  kvm_fpu fpu{};
  const uint8_t* fx = s.fxsave.data();
  std::memcpy(&fpu.fcw, fx + 0, 2);
  std::memcpy(&fpu.fsw, fx + 2, 2);
  fpu.ftwx = fx[4];
  std::memcpy(&fpu.last_opcode, fx + 6, 2);
  std::memcpy(&fpu.last_ip, fx + 8, 4);
  std::memcpy(&fpu.last_dp, fx + 16, 4);
  std::memcpy(&fpu.mxcsr, fx + 24, 4);
  for (int i = 0; i < 8; ++i) std::memcpy(fpu.fpr[i], fx + 32 + 16 * i, 16);
  for (int i = 0; i < 8; ++i) std::memcpy(fpu.xmm[i], fx + 160 + 16 * i, 16);
  if (fpu.fcw == 0) fpu.fcw = 0x37f;  // FNINIT state when the caller gave none
  if (fpu.mxcsr == 0) fpu.mxcsr = 0x1f80;
  ioctl(vcpu_fd_, KVM_SET_FPU, &fpu);
}

VcpuState KvmEngine::state() {
  VcpuState s;
  kvm_regs regs{};
  check(ioctl(vcpu_fd_, KVM_GET_REGS, &regs), "KVM_GET_REGS");
  s.gpr[kEax] = static_cast<uint32_t>(regs.rax);
  s.gpr[kEcx] = static_cast<uint32_t>(regs.rcx);
  s.gpr[kEdx] = static_cast<uint32_t>(regs.rdx);
  s.gpr[kEbx] = static_cast<uint32_t>(regs.rbx);
  s.gpr[kEsp] = static_cast<uint32_t>(regs.rsp);
  s.gpr[kEbp] = static_cast<uint32_t>(regs.rbp);
  s.gpr[kEsi] = static_cast<uint32_t>(regs.rsi);
  s.gpr[kEdi] = static_cast<uint32_t>(regs.rdi);
  s.eip = static_cast<uint32_t>(regs.rip);
  s.eflags = static_cast<uint32_t>(regs.rflags);

  kvm_sregs sregs{};
  check(ioctl(vcpu_fd_, KVM_GET_SREGS, &sregs), "KVM_GET_SREGS");
  s.seg[kEs] = from_kvm(sregs.es);
  s.seg[kCs] = from_kvm(sregs.cs);
  s.seg[kSs] = from_kvm(sregs.ss);
  s.seg[kDs] = from_kvm(sregs.ds);
  s.seg[kFs] = from_kvm(sregs.fs);
  s.seg[kGs] = from_kvm(sregs.gs);
  s.ldtr = from_kvm(sregs.ldt);
  s.tr = from_kvm(sregs.tr);
  s.gdtr = {static_cast<uint32_t>(sregs.gdt.base), sregs.gdt.limit};
  s.idtr = {static_cast<uint32_t>(sregs.idt.base), sregs.idt.limit};
  s.cr0 = static_cast<uint32_t>(sregs.cr0);
  s.cr2 = static_cast<uint32_t>(sregs.cr2);
  s.cr3 = static_cast<uint32_t>(sregs.cr3);
  s.cr4 = static_cast<uint32_t>(sregs.cr4);
  s.efer = sregs.efer;
  // The PDPTE registers KVM holds for PAE paging (KVM_GET_SREGS2), so that bt goes on with them
  // rather than with what the PDPT in memory says now.
  s.pdpte = {};
  if ((s.cr0 & cr0::kPg) && (s.cr4 & cr4::kPae) && sregs2_) {
    kvm_sregs2 sregs2{};
    if (ioctl(vcpu_fd_, KVM_GET_SREGS2, &sregs2) == 0 &&
        (sregs2.flags & KVM_SREGS2_FLAGS_PDPTRS_VALID)) {
      for (int i = 0; i < 4; ++i) s.pdpte[i] = sregs2.pdptrs[i];
    }
  }

  MsrList msrs({kMsrSysenterCs, kMsrSysenterEsp, kMsrSysenterEip, kMsrTsc});
  if (ioctl(vcpu_fd_, KVM_GET_MSRS, msrs.get()) == 4) {
    s.sysenter_cs = static_cast<uint32_t>(msrs.entry(0).data);
    s.sysenter_esp = static_cast<uint32_t>(msrs.entry(1).data);
    s.sysenter_eip = static_cast<uint32_t>(msrs.entry(2).data);
    s.tsc = msrs.entry(3).data;
  }

  kvm_debugregs debugregs{};
  if (ioctl(vcpu_fd_, KVM_GET_DEBUGREGS, &debugregs) == 0) {
    for (int i = 0; i < 4; ++i) s.dr[i] = static_cast<uint32_t>(debugregs.db[i]);
    s.dr[6] = static_cast<uint32_t>(debugregs.dr6);
    s.dr[7] = static_cast<uint32_t>(debugregs.dr7);
  }

  kvm_fpu fpu{};
  if (ioctl(vcpu_fd_, KVM_GET_FPU, &fpu) == 0) {
    uint8_t* fx = s.fxsave.data();
    std::memcpy(fx + 0, &fpu.fcw, 2);
    std::memcpy(fx + 2, &fpu.fsw, 2);
    fx[4] = fpu.ftwx;
    std::memcpy(fx + 6, &fpu.last_opcode, 2);
    std::memcpy(fx + 8, &fpu.last_ip, 4);
    std::memcpy(fx + 16, &fpu.last_dp, 4);
    // kvm-pvm reads MXCSR as 0 whatever was set (it keeps none; cannot_run() refuses a guest
    // whose MXCSR is not the power-up value): that value, then.
    if (fpu.mxcsr == 0 && kvm_pvm()) fpu.mxcsr = 0x1f80;
    std::memcpy(fx + 24, &fpu.mxcsr, 4);
    for (int i = 0; i < 8; ++i) std::memcpy(fx + 32 + 16 * i, fpu.fpr[i], 16);
    for (int i = 0; i < 8; ++i) std::memcpy(fx + 160 + 16 * i, fpu.xmm[i], 16);
  }
  return s;
}

std::string KvmEngine::set_debug(const DebugSettings& settings) {
  const size_t used = settings.breakpoints.size() + settings.watchpoints.size();
  if (used > 4) {
    return fmt::format(
        "the kvm engine has 4 debug registers for breakpoints and watchpoints; {} asked", used);
  }
  if (!settings.watchpoints.empty() && kvm_pvm()) {
    // Measured: its software emulation honours instruction breakpoints and single steps, but
    // never triggers a data breakpoint.
    return "this host's KVM (kvm-pvm, no VT-x/AMD-V) does not trigger data breakpoints: use "
           "--engine bt to watch memory";
  }
  kvm_guest_debug debug{};
  if (settings.single_step || used > 0) {
    debug.control = KVM_GUESTDBG_ENABLE;
    if (settings.single_step) debug.control |= KVM_GUESTDBG_SINGLESTEP;
    if (used > 0) debug.control |= KVM_GUESTDBG_USE_HW_BP;
  }
  // DR7 (Intel SDM Vol. 3A §18.2.4): Ln enables DRn; R/W = 00 with LEN = 00 is an instruction
  // breakpoint, R/W = 01 a data write and 11 a data read-or-write breakpoint of LEN 00/01/11 =
  // 1/2/4 aligned bytes.
  watch_registers_.clear();
  size_t n = 0;
  for (uint32_t address : settings.breakpoints) {
    debug.arch.debugreg[n] = address;
    debug.arch.debugreg[7] |= 1ull << (2 * n);
    ++n;
  }
  for (const DebugSettings::Watch& w : settings.watchpoints) {
    if (w.kind == DebugSettings::Watch::Kind::kRead) {
      return "debug registers cannot watch reads alone (R/W = 10 is I/O): use awatch, which "
             "stops on reads and writes, or --engine bt";
    }
    const uint64_t len = w.length == 1 ? 0 : w.length == 2 ? 1 : w.length == 4 ? 3 : 4;
    if (len == 4 || (w.linear & (w.length - 1))) {
      return fmt::format(
          "the kvm engine watches 1, 2 or 4 aligned bytes (a debug register); "
          "{} bytes at {:#x} asked",
          w.length, w.linear);
    }
    debug.arch.debugreg[n] = w.linear;
    const uint64_t rw = w.kind == DebugSettings::Watch::Kind::kWrite ? 1 : 3;  // 01 w, 11 r/w
    debug.arch.debugreg[7] |= (1ull << (2 * n)) | (rw << (16 + 4 * n)) | (len << (18 + 4 * n));
    watch_registers_.push_back({n, w});
    ++n;
  }
  if (ioctl(vcpu_fd_, KVM_SET_GUEST_DEBUG, &debug) != 0) {
    return fmt::format(
        "this host's KVM refuses guest debugging (KVM_SET_GUEST_DEBUG: {}); use "
        "--engine bt to debug",
        std::strerror(errno));
  }
  // Resuming at a breakpoint: EFLAGS.RF lets its instruction run once (SDM Vol. 3A §17.3.1.1).
  VcpuState s = state();
  const uint32_t linear = s.seg[kCs].base + s.eip;
  if (std::binary_search(settings.breakpoints.begin(), settings.breakpoints.end(), linear)) {
    s.eflags |= eflags::kRf;
    set_state(s);
  }
  return {};
}

std::string KvmEngine::hand_over_blocker() {
  kvm_vcpu_events events{};
  if (ioctl(vcpu_fd_, KVM_GET_VCPU_EVENTS, &events) != 0) return {};  // nothing to tell
  if (events.exception.injected || events.interrupt.injected || events.nmi.injected) {
    return "an event is being delivered";
  }
  if (events.interrupt.shadow) return "in an interrupt shadow (after STI or MOV SS)";
  if (events.nmi.pending || events.nmi.masked) {
    return "in an NMI handler or with an NMI waiting (NMIs blocked until its IRET)";
  }
  return {};
}

bool KvmEngine::nmis_blocked() {
  kvm_vcpu_events events{};
  return ioctl(vcpu_fd_, KVM_GET_VCPU_EVENTS, &events) == 0 && events.nmi.masked;
}

void KvmEngine::set_slots(const std::vector<kvm_userspace_memory_region>& regions) {
  // A slot's address, size and flags cannot change in place: delete every slot first (size 0),
  // then register the new set. Only between KVM_RUNs.
  for (uint32_t slot = 0; slot < slots_in_use_; ++slot) {
    kvm_userspace_memory_region gone{};
    gone.slot = slot;
    check(ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &gone), "KVM_SET_USER_MEMORY_REGION");
  }
  slots_in_use_ = 0;
  for (kvm_userspace_memory_region r : regions) {
    r.slot = slots_in_use_;
    check(ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &r), "KVM_SET_USER_MEMORY_REGION");
    ++slots_in_use_;
  }
}

std::string KvmEngine::set_memory_windows(const std::vector<MemoryWindow>& windows) {
  const bool read_only = std::any_of(windows.begin(), windows.end(),
                                     [](const MemoryWindow& w) { return w.read_only; });
  if (read_only && kvm_.check_extension(KVM_CAP_READONLY_MEM) <= 0) {
    return "this host's KVM has no read-only memory slots (KVM_CAP_READONLY_MEM), which the "
           "BIOS ROM needs";
  }
  std::vector<kvm_userspace_memory_region> regions;
  auto add = [&](uint64_t gpa, uint64_t size, uint8_t* host, bool ro) {
    if (size == 0) return;
    kvm_userspace_memory_region r{};
    r.flags = ro ? KVM_MEM_READONLY : 0;
    r.guest_phys_addr = gpa;
    r.memory_size = size;
    r.userspace_addr = reinterpret_cast<uint64_t>(host);
    regions.push_back(r);
  };
  // RAM around the windows (sorted, disjoint), then the windows that have host memory.
  uint64_t ram_from = 0;
  const uint64_t ram_end = memory_.size();
  for (const MemoryWindow& w : windows) {
    if (w.gpa < ram_from || (w.gpa | w.size) & 0xfff) {
      throw Error("internal: memory windows must be sorted, disjoint and page aligned");
    }
    if (ram_from < ram_end) {
      add(ram_from, std::min(w.gpa, ram_end) - ram_from, memory_.host_base() + ram_from, false);
    }
    ram_from = std::max(ram_from, w.gpa + w.size);
    if (w.host) add(w.gpa, w.size, w.host, w.read_only);
  }
  if (ram_from < ram_end) add(ram_from, ram_end - ram_from, memory_.host_base() + ram_from, false);
  set_slots(regions);
  return {};
}

std::string KvmEngine::cannot_run(const VcpuState& state) {
  if (!kvm_pvm()) return {};
  // kvm-pvm (no VT-x/AMD-V), as measured: it refuses CR0.PG, and it keeps no MSRs, no debug
  // registers, no MXCSR and no x87/MMX/XMM registers (KVM_SET_MSRS fails; KVM_GET_DEBUGREGS and
  // KVM_GET_FPU read zeros).
  if (state.cr0 & cr0::kPg) {
    return "this host's KVM is kvm-pvm (no VT-x/AMD-V) and refuses 32-bit paging, which the "
           "guest has on";
  }
  if (state.sysenter_cs || state.sysenter_esp || state.sysenter_eip) {
    return "this host's KVM is kvm-pvm, which keeps no MSRs, and the guest set up SYSENTER";
  }
  if (state.dr[7] & 0xff) {
    return "this host's KVM is kvm-pvm, which keeps no debug registers, and the guest enabled "
           "some (DR7)";
  }
  uint32_t mxcsr = 0;
  std::memcpy(&mxcsr, state.fxsave.data() + 24, 4);
  if (mxcsr != 0x1f80 && mxcsr != 0) {
    return fmt::format(
        "this host's KVM is kvm-pvm, which keeps no MXCSR, and the guest's is "
        "{:#x} (not the power-up 0x1f80)",
        mxcsr);
  }
  // Nor the x87/MMX and XMM registers (KVM_GET_FPU reads them as zeros after a run): a guest
  // holding values there would come back without them (found by guest.switch.maskmov, one run
  // in ten under ASan). An x87/MMX register holds a value when its tag says so (the FXSAVE
  // image's abridged tag byte, Intel SDM Vol. 1 §10.5.1); XMM registers have no tags.
  const uint8_t* fx = state.fxsave.data();
  if (fx[4] != 0 || std::any_of(fx + 160, fx + 160 + 8 * 16, [](uint8_t b) { return b != 0; })) {
    return "this host's KVM is kvm-pvm, which keeps no x87, MMX or XMM registers, and the guest "
           "holds values in them";
  }
  return {};
}

void KvmEngine::set_tsc(uint64_t tsc) {
  MsrList msrs({kMsrTsc});
  msrs.entry(0).data = tsc;
  ioctl(vcpu_fd_, KVM_SET_MSRS, msrs.get());  // best effort, as in set_state
}

bool KvmEngine::debug_access(uint32_t linear, uint8_t* data, size_t size, bool write) {
  return memory_.copy_linear(linear, data, size, write,
                             [this](uint32_t at) -> std::optional<uint64_t> {
                               kvm_translation t{};
                               t.linear_address = at;
                               if (ioctl(vcpu_fd_, KVM_TRANSLATE, &t) != 0 || !t.valid) {
                                 return std::nullopt;
                               }
                               return t.physical_address;
                             });
}

void KvmEngine::set_platform_msrs(MsrModel* msrs) {
  msrs_ = msrs;
  if (!msrs || msr_routing_) return;
  if (kvm_.check_extension(KVM_CAP_X86_USER_SPACE_MSR) <= 0 ||
      kvm_.check_extension(KVM_CAP_X86_MSR_FILTER) <= 0) {
    return;  // KVM answers the guest's MSRs itself, as before these features
  }
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_X86_USER_SPACE_MSR;
  // Denied by the filter below, or unknown to KVM: to user space.
  cap.args[0] = KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_UNKNOWN;
  if (ioctl(vm_fd_, KVM_ENABLE_CAP, &cap) < 0) return;
  // Default deny: every MSR leaves KVM except the ones VcpuState keeps, which KVM holds while the
  // guest runs here (set_state/state move them): TSC, and SYSENTER_CS/ESP/EIP.
  static uint8_t allow_one = 0x1, allow_three = 0x7;
  kvm_msr_filter filter{};
  filter.flags = KVM_MSR_FILTER_DEFAULT_DENY;
  filter.ranges[0] = {KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, 1, kMsrTsc, &allow_one};
  filter.ranges[1] = {KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, 3, kMsrSysenterCs, &allow_three};
  msr_routing_ = ioctl(vm_fd_, KVM_X86_SET_MSR_FILTER, &filter) == 0;
}

void KvmEngine::answer_msr_exit() {
  const uint32_t index = run_->msr.index;
  const bool read = run_->exit_reason == KVM_EXIT_X86_RDMSR;
  // IA32_TSC_DEADLINE exists only where CPUID.1:ECX[24] says so (SDM Vol. 4 Table 2-2), and this
  // engine withholds that bit (the constructor says why): #GP here, as on such a CPU.
  if (!msrs_ || index == MsrModel::kTscDeadline) {
    run_->msr.error = 1;
    return;
  }
  if (read) {
    const std::optional<uint64_t> v = msrs_->read(index, 0);
    run_->msr.error = v ? 0 : 1;
    if (v) run_->msr.data = *v;
    return;
  }
  const bool ok = msrs_->write(index, run_->msr.data, 0);
  run_->msr.error = ok ? 0 : 1;
  if (ok && index == MsrModel::kApicBase) {
    // KVM's own copy decides CPUID.1:EDX.APIC (which follows IA32_APIC_BASE.EN, SDM Vol. 3A
    // §11.4.3); a host-initiated write passes the filter. Best effort: kvm-pvm keeps no MSRs.
    MsrList base({MsrModel::kApicBase});
    base.entry(0).data = run_->msr.data;
    ioctl(vcpu_fd_, KVM_SET_MSRS, base.get());
  }
}

void KvmEngine::kick(const void*) {
  // Async-signal-safe: the next (or current, via the signal's EINTR) KVM_RUN returns at once.
  __atomic_store_n(&run_->immediate_exit, 1, __ATOMIC_SEQ_CST);
}

void KvmEngine::inject_pending_interrupt() {
  if (interrupts_.nmi_pending()) {
    // KVM queues it and keeps the NMI blocking itself (KVM API doc §4.60 KVM_NMI).
    interrupts_.acknowledge_nmi();
    check(ioctl(vcpu_fd_, KVM_NMI), "KVM_NMI");
    ++nmis_injected_;
  }
  if (!interrupts_.interrupt_pending()) {
    run_->request_interrupt_window = 0;
    return;
  }
  if (run_->ready_for_interrupt_injection && run_->if_flag) {
    kvm_interrupt irq{};
    irq.irq = interrupts_.acknowledge_interrupt();
    check(ioctl(vcpu_fd_, KVM_INTERRUPT, &irq), "KVM_INTERRUPT");
    ++interrupts_injected_;
    run_->request_interrupt_window = 0;
  } else {
    run_->request_interrupt_window = 1;
  }
}

Exit KvmEngine::run() {
  for (;;) {
    inject_pending_interrupt();
    int rc = ioctl(vcpu_fd_, KVM_RUN, 0);
    if (rc < 0) {
      if (errno == EINTR || errno == EAGAIN) {
        __atomic_store_n(&run_->immediate_exit, 0, __ATOMIC_SEQ_CST);
        ++exit_counts_["intr"];
        return Exit(ExitReason::kKicked);
      }
      throw Error(fmt::format("KVM_RUN failed: {}", std::strerror(errno)));
    }
    ++exit_counts_[exit_reason_name(run_->exit_reason)];
    Exit exit;
    switch (run_->exit_reason) {
      case KVM_EXIT_IO:
        exit.reason = ExitReason::kIo;
        exit.io.port = run_->io.port;
        exit.io.size = run_->io.size;
        exit.io.write = run_->io.direction == KVM_EXIT_IO_OUT;
        exit.io.count = run_->io.count;
        exit.io.data = reinterpret_cast<uint8_t*>(run_) + run_->io.data_offset;
        return exit;
      case KVM_EXIT_MMIO: {
        exit.reason = ExitReason::kMmio;
        exit.mmio.gpa = run_->mmio.phys_addr;
        exit.mmio.size = static_cast<uint8_t>(run_->mmio.len);
        exit.mmio.write = run_->mmio.is_write;
        exit.mmio.data = run_->mmio.data;  // KVM completes a read from here at the next KVM_RUN
        return exit;
      }
      case KVM_EXIT_X86_RDMSR:
      case KVM_EXIT_X86_WRMSR:
        answer_msr_exit();
        continue;  // KVM completes the instruction (or raises #GP) at the next KVM_RUN
      case KVM_EXIT_HLT:
        exit.reason = ExitReason::kHalt;
        return exit;
      case KVM_EXIT_IRQ_WINDOW_OPEN:
      case KVM_EXIT_INTR:
        if (run_->exit_reason == KVM_EXIT_INTR) return Exit(ExitReason::kKicked);
        continue;
      case KVM_EXIT_SHUTDOWN:
        return shutdown_exit();
      case KVM_EXIT_DEBUG:
        // A debug-register breakpoint (DR6.B0-B3) or the single step (DR6.BS) asked for.
        exit.reason = ExitReason::kDebug;
        exit.debug = (run_->debug.arch.dr6 & 0xf) ? DebugStop::kBreakpoint : DebugStop::kStep;
        for (const auto& [reg, watch] : watch_registers_) {
          if (run_->debug.arch.dr6 & (1u << reg)) {
            exit.debug = DebugStop::kWatchpoint;
            exit.debug_address = watch.linear;
            exit.debug_watch = watch.kind;
          }
        }
        return exit;
      case KVM_EXIT_INTERNAL_ERROR:
        return internal_error_exit();
      case KVM_EXIT_FAIL_ENTRY:
        exit.reason = ExitReason::kInternalError;
        exit.message =
            fmt::format("KVM could not enter the guest (hardware entry failure reason {:#x}) {}",
                        static_cast<uint64_t>(run_->fail_entry.hardware_entry_failure_reason),
                        describe_guest_eip());
        return exit;
      default:
        exit.reason = ExitReason::kInternalError;
        exit.message = fmt::format("unexpected KVM exit reason {} ({}) {}", run_->exit_reason,
                                   exit_reason_name(run_->exit_reason), describe_guest_eip());
        return exit;
    }
  }
}

std::string KvmEngine::describe_guest_eip() {
  kvm_regs regs{};
  kvm_sregs sregs{};
  if (ioctl(vcpu_fd_, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu_fd_, KVM_GET_SREGS, &sregs) < 0) {
    return "(guest state unavailable)";
  }
  uint64_t linear = sregs.cs.base + regs.rip;
  std::string bytes;
  if (!(sregs.cr0 & cr0::kPg)) {
    uint8_t code[8];
    if (memory_.read(linear, code, sizeof code)) {
      for (uint8_t b : code) bytes += fmt::format(" {:02x}", b);
    }
  }
  return fmt::format("at EIP {:#010x} (CS {:#06x}, CR0 {:#x}{}{})", regs.rip, sregs.cs.selector,
                     sregs.cr0, bytes.empty() ? "" : ", code", bytes);
}

bool KvmEngine::shutdown_was_paging_refusal() {
  // kvm-pvm ends the run at the MOV CR0 that sets PG, leaving CR0 as it was: recognise the
  // instruction (0F 22 /0, register form) and the PG bit in its source register.
  kvm_regs regs{};
  kvm_sregs sregs{};
  if (ioctl(vcpu_fd_, KVM_GET_REGS, &regs) < 0 || ioctl(vcpu_fd_, KVM_GET_SREGS, &sregs) < 0) {
    return false;
  }
  if (sregs.cr0 & cr0::kPg) return !(sregs.efer & (1u << 8));  // PG committed without LME
  uint8_t code[3];
  if (!memory_.read(sregs.cs.base + static_cast<uint32_t>(regs.rip), code, sizeof code)) {
    return false;
  }
  if (code[0] != 0x0f || code[1] != 0x22 || (code[2] >> 6) != 3 || ((code[2] >> 3) & 7) != 0) {
    return false;
  }
  const uint64_t gprs[8] = {regs.rax, regs.rcx, regs.rdx, regs.rbx,
                            regs.rsp, regs.rbp, regs.rsi, regs.rdi};
  return gprs[code[2] & 7] & cr0::kPg;
}

Exit KvmEngine::shutdown_exit() {
  Exit exit;
  exit.reason = ExitReason::kShutdown;
  if (kvm_pvm() && shutdown_was_paging_refusal()) {
    exit.reason = ExitReason::kInternalError;
    exit.message =
        "this host's KVM cannot run 32-bit paged guests (it is kvm-pvm, without VT-x/AMD-V, and "
        "refuses CR0.PG without long mode); use --engine bt";
    exit.engine_limit = true;  // EIP is at the MOV to CR0, which did not happen
    return exit;
  }
  exit.message = fmt::format("guest shutdown (triple fault) {}", describe_guest_eip());
  return exit;
}

Exit KvmEngine::internal_error_exit() {
  Exit exit;
  exit.reason = ExitReason::kInternalError;
  uint32_t sub = run_->internal.suberror;
  std::string what;
  switch (sub) {
    case KVM_INTERNAL_ERROR_EMULATION:
      what = "KVM could not emulate an instruction";
      exit.engine_limit = true;  // EIP is at it: it did not run
      break;
    case KVM_INTERNAL_ERROR_SIMUL_EX:
      what = "KVM met an exception while delivering another";
      break;
    case KVM_INTERNAL_ERROR_DELIVERY_EV:
      what = "KVM could not deliver an event to the guest";
      break;
    default:
      what = fmt::format("KVM internal error (suberror {})", sub);
      break;
  }
  exit.message = fmt::format("{} {}", what, describe_guest_eip());
  if (kvm_pvm()) {
    exit.message +=
        "; this host's KVM (kvm-pvm, no VT-x/AMD-V) emulates guest code in software and does not "
        "support it: use --engine bt";
  }
  return exit;
}

void KvmEngine::collect_stats(Stats& stats) {
  for (const auto& [name, n] : exit_counts_) stats.add("kvm.exit_reasons." + name, n);
  stats.add("interrupts_injected", interrupts_injected_);
  stats.add("nmis_injected", nmis_injected_);
  stats.set_text("kvm.msrs", msr_routing_ ? "platform model (KVM_X86_SET_MSR_FILTER)"
                                          : "KVM's own (no MSR filter on this host)");
  stats.set_text("kvm.cpuid", cpuid_model_set_
                                  ? "vmbt CPU model"
                                  : "host KVM refused KVM_SET_CPUID2 (not the vmbt model)");
  stats.set_text("kvm.host", kvm_pvm()
                                 ? "kvm-pvm (software emulation, no VT-x/AMD-V)"
                                 : (facts_.vmx ? "VT-x" : (facts_.svm ? "AMD-V" : "unknown")));
}

}  // namespace vmbt
