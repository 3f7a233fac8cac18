#include "cli/micro_benchmarks.h"

#include <cstdlib>
#include <sstream>

namespace vmbt {

namespace {

constexpr const char* kAA = "Adams & Agesen 2006";
constexpr const char* kKvmArm = "KVM/ARM 2014 Table 3";
constexpr const char* kVmbt = "vmbt";
constexpr const char* kHost = "host floors (native, this machine)";

}  // namespace

const char* const kPaperCaveat =
    "paper: published cycle counts from other machines, not ours: Adams & Agesen, ASPLOS 2006 "
    "(3.8 GHz Pentium 4 672; native, VMware's BT VMM, VT-x VMM) and Dall & Nieh, KVM/ARM, ASPLOS "
    "2014, Table 3 (KVM on an x86 laptop and server; KVM/ARM). Read from secondary sources and "
    "unconfirmed against the papers: see docs/reference-figures.md.";

const std::vector<MicroBenchmark>& micro_benchmarks() {
  static const std::vector<MicroBenchmark> list = {
      {"syscall_int80", kAA, "INT 0x80 + IRET from CPL 3", "", "BT ≈ native + 2000, VT-x ≈ native"},
      {"syscall_sysenter", kAA, "SYSENTER + SYSEXIT from CPL 3", "",
       "(syscall) BT ≈ native + 2000, VT-x ≈ native"},
      {"in", kAA, "IN AL, 0x80 (POST port)", "", "native 3209, BT 214, VT-x 15826"},
      {"cr8wr", kAA, "write CR8 (task priority)",
       "no IA-32 equivalent: CR8 exists only in 64-bit mode (cr3_write is the nearest IA-32 "
       "control-register write)",
       "native ≈ 140, BT 35, VT-x ≈ native"},
      {"cr3_write", kAA, "MOV to CR3, paging on", "", ""},
      {"cr0_wp", kAA, "clear + set CR0.WP, then a store", "", ""},
      {"call_ret", kAA, "near CALL + RET", "", "native 11, BT 51, VT-x 11"},
      {"pgfault", kAA, "unmap + INVLPG + #PF, handler maps page", "",
       "native 1093, BT 3927, VT-x 11242"},
      {"pgfault_skip", kAA, "#PF on an unmapped page, handler skips the read", "", ""},
      {"hidden_fault", kAA, "clear PTE.A + INVLPG + read: a fault the guest never sees", "", ""},
      {"divzero", kAA, "#DE, guest handler", "", "native 889, BT 3223, VT-x 1014"},
      {"ptemod", kAA, "PTE write + INVLPG", "", "native ≈ 1, BT 391, VT-x 12733"},
      {"hypercall", kKvmArm, "CPUID leaf 0 (trap to monitor)", "",
       "x86 laptop 1336, server 1638; ARM 5326"},
      {"trap", kKvmArm, "INT3 + IRET, in the guest", "", "x86 laptop 632, server 821; ARM 27"},
      {"io_monitor", kKvmArm, "IN, unclaimed port (bus)", "",
       "(I/O Kernel) x86 laptop 3190, server 3291; ARM 5990"},
      {"io_device", kKvmArm, "IN, UART scratch register", "",
       "(I/O User) x86 laptop 10985 or 10955, server 12218; ARM 10119"},
      {"eoi_ack", kKvmArm, "PIC EOI + OCW3 + read ISR", "",
       "x86 laptop 2043, server 2305; ARM 427"},
      {"ipi", kKvmArm, "IPI to another vCPU", "not applicable: vmbt has one vCPU (no SMP yet)",
       "x86 laptop 17138, server 21177; ARM 14366"},
      {"cpuid", kVmbt, "CPUID leaf 1", "", ""},
      {"rdtsc", kVmbt, "RDTSC", "", ""},
      {"pushf_popf", kVmbt, "PUSHF + POPF", "", ""},
      {"cli_sti", kVmbt, "CLI + STI", "", ""},
      {"realmode_loop", kVmbt, "real mode: load [bx+si], add, inc, and (4 instructions)", "", ""},
      {"host_sigsegv", kHost, "SIGSEGV, handler mprotects, + re-protect", "",
       "(the floor of a shadow fill by host fault)", true},
      {"host_mprotect", kHost, "mprotect of one page", "", "", true},
      {"host_syscall", kHost, "trivial syscall (getppid)", "", "", true},
      {"host_map_page", kHost, "map a RAM page, store, unmap", "",
       "(the floor of a page mapped into a window and dropped)", true},
  };
  return list;
}

double MicroSample::cycles_per_op() const {
  if (operations() == 0) return 0;
  return (static_cast<double>(op_cycles) - static_cast<double>(base_cycles)) /
         static_cast<double>(operations());
}

std::optional<MicroSample> parse_micro_output(const std::string& serial, std::string* failure) {
  if (failure) failure->clear();
  std::istringstream in(serial);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    // Firmware may leave text before it on the same line (QEMU's "Booting from ROM..").
    if (size_t at = line.find("VMBT-BENCH"); at != std::string::npos) line.erase(0, at);
    if (line.rfind("VMBT-BENCH-FAIL ", 0) == 0) {
      if (failure) *failure = line;
      continue;
    }
    if (line.rfind("VMBT-BENCH ", 0) != 0) continue;
    MicroSample s;
    bool have[5] = {};
    std::istringstream fields(line.substr(11));
    std::string field;
    while (fields >> field) {
      size_t eq = field.find('=');
      if (eq == std::string::npos) continue;
      std::string key = field.substr(0, eq), value = field.substr(eq + 1);
      char* end = nullptr;
      uint64_t v = std::strtoull(value.c_str(), &end, 0);  // decimal or 0x hex
      bool numeric = !value.empty() && end && *end == '\0';
      if (key == "name") {
        s.name = value;
        have[0] = true;
      } else if (key == "iters" && numeric) {
        s.iters = v;
        have[1] = true;
      } else if (key == "unroll" && numeric) {
        s.unroll = v;
        have[2] = true;
      } else if (key == "base" && numeric) {
        s.base_cycles = v;
        have[3] = true;
      } else if (key == "op" && numeric) {
        s.op_cycles = v;
        have[4] = true;
      }
    }
    if (have[0] && have[1] && have[2] && have[3] && have[4] && s.operations() > 0) return s;
  }
  return std::nullopt;
}

}  // namespace vmbt
