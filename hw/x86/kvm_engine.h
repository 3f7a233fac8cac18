// The hardware-assisted engine: one IA-32 vCPU on /dev/kvm (VT-x/EPT, AMD-V/NPT, or kvm-pvm).
#pragma once

#include <linux/kvm.h>

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "hw/kvm_system.h"
#include "vmm/engine.h"

namespace vmbt {

/// Runs the guest with KVM. Guest RAM is the machine's memfd mapping, registered as memory slot 0
/// (KVM API doc §4.35 KVM_SET_USER_MEMORY_REGION); CPUID is the vmbt CPU model (KVM_SET_CPUID2);
/// interrupts from the PIC model are injected with KVM_INTERRUPT when the guest opens an interrupt
/// window (no in-kernel irqchip, so both engines share the same PIC).
///
/// On hosts whose /dev/kvm is kvm-pvm (no VT-x/AMD-V) 32-bit paging is refused by the host kernel:
/// the resulting shutdown is reported as such, not as a guest triple fault.
class KvmEngine final : public Engine {
 public:
  /// Throws vmbt::Error when /dev/kvm cannot be used (the message says what to do).
  KvmEngine(GuestMemory& memory, InterruptSource& interrupts);
  ~KvmEngine() override;

  std::string_view name() const override { return "kvm"; }
  void set_state(const VcpuState& state) override;
  VcpuState state() override;
  Exit run() override;
  void kick(const void* signal_context) override;
  void collect_stats(Stats& stats) override;
  /// Breakpoints in the debug registers (at most 4) and single-stepping through
  /// KVM_SET_GUEST_DEBUG (KVM API §4.59); the host's refusal is reported, not thrown.
  std::string set_debug(const DebugSettings& settings) override;
  /// Through KVM_TRANSLATE (the vCPU's own page walk; KVM API §4.22).
  bool debug_access(uint32_t linear, uint8_t* data, size_t size, bool write) override;
  /// An event injected but not yet delivered, or an interrupt shadow (KVM_GET_VCPU_EVENTS).
  std::string hand_over_blocker() override;
  bool nmis_blocked() override;
  /// The guest's RDMSR/WRMSR of every MSR but those VcpuState keeps (TSC, SYSENTER_CS/ESP/EIP)
  /// leave KVM for user space, where `msrs` answers them as on bt (KVM API doc §4.126
  /// KVM_X86_SET_MSR_FILTER, §7.21 KVM_CAP_X86_USER_SPACE_MSR): the platform MSRs are the
  /// same on both engines and stay with the guest across a switch. Without those KVM features,
  /// KVM keeps answering them itself (`--stats`: kvm.msrs).
  void set_platform_msrs(MsrModel* msrs) override;
  /// kvm-pvm (no VT-x/AMD-V) runs no paged guest.
  std::string cannot_run(const VcpuState& state) override;
  void set_tsc(uint64_t tsc) override;
  /// Re-registers the memory slots: RAM outside the windows, and each window with host memory as
  /// a slot of its own, read-only ones with KVM_MEM_READONLY (KVM API doc §4.35: writes to them,
  /// and any access to a window without a slot, exit as KVM_EXIT_MMIO). Refused where the host's
  /// KVM has no read-only slots (KVM_CAP_READONLY_MEM).
  std::string set_memory_windows(const std::vector<MemoryWindow>& windows) override;

 private:
  void inject_pending_interrupt();
  /// Answers a KVM_EXIT_X86_RDMSR or _WRMSR from the platform's MSRs (run_->msr; error = #GP).
  void answer_msr_exit();
  Exit shutdown_exit();
  bool shutdown_was_paging_refusal();
  Exit internal_error_exit();
  std::string describe_guest_eip();

  KvmSystem kvm_;
  KvmHostFacts facts_;
  /// The host's KVM is kvm-pvm without VT-x/AMD-V: every guest instruction emulated in software,
  /// no paging, no MSRs, debug registers or MXCSR kept (README "On hosts without VT-x/AMD-V").
  bool kvm_pvm() const { return facts_.pvm && !facts_.vmx && !facts_.svm; }
  GuestMemory& memory_;
  /// (debug register, watchpoint) of the watchpoints set_debug() placed.
  std::vector<std::pair<size_t, DebugSettings::Watch>> watch_registers_;
  InterruptSource& interrupts_;
  /// Registers `count` memory slots from `regions` (slot numbers 0 up), deleting the ones in
  /// use beyond them.
  void set_slots(const std::vector<kvm_userspace_memory_region>& regions);
  uint32_t slots_in_use_ = 0;
  int vm_fd_ = -1;
  int vcpu_fd_ = -1;
  kvm_run* run_ = nullptr;
  size_t run_size_ = 0;
  std::map<std::string, uint64_t> exit_counts_;
  uint64_t interrupts_injected_ = 0;
  uint64_t nmis_injected_ = 0;
  bool cpuid_model_set_ = false;
  MsrModel* msrs_ = nullptr;
  bool msr_routing_ = false;
  /// KVM_GET/SET_SREGS2 are there (KVM_CAP_SREGS2): PAE's PDPTE registers cross a switch.
  bool sregs2_ = false;

 public:
  /// Whether KVM accepted the vmbt CPU model (KVM_SET_CPUID2); kvm-pvm refuses it.
  bool cpuid_model_set() const { return cpuid_model_set_; }
};

}  // namespace vmbt
