#include "vmm/cpu_state_format.h"

#include <fmt/format.h>

namespace vmbt {

std::string format_vcpu_state(const VcpuState& s) {
  static const char* kGpr[8] = {"EAX", "ECX", "EDX", "EBX", "ESP", "EBP", "ESI", "EDI"};
  static const char* kSeg[6] = {"ES", "CS", "SS", "DS", "FS", "GS"};
  std::string out;
  for (unsigned i = 0; i < 8; ++i) {
    out += fmt::format("{}={:08x}{}", kGpr[i], s.gpr[i], i % 4 == 3 ? "\n" : " ");
  }
  std::string flags;
  const std::pair<uint32_t, char> bits[] = {
      {eflags::kOf, 'O'}, {eflags::kDf, 'D'}, {eflags::kIf, 'I'},
      {eflags::kTf, 'T'}, {eflags::kSf, 'S'}, {eflags::kZf, 'Z'},
      {eflags::kAf, 'A'}, {eflags::kPf, 'P'}, {eflags::kCf, 'C'}};
  for (auto [bit, letter] : bits) flags += (s.eflags & bit) ? letter : '-';
  out += fmt::format("EIP={:08x} EFL={:08x} [{}] IOPL={} CPL={}\n", s.eip, s.eflags, flags,
                     (s.eflags >> 12) & 3, s.seg[kSs].dpl);
  auto seg = [&](const char* name, const SegmentReg& r) {
    out += fmt::format("{:<4}{:04x} {:08x} {:08x} type={:x} dpl={} {}{}{}\n", name, r.selector,
                       r.base, r.limit, r.type, r.dpl, r.present ? "P" : "-", r.db ? " D/B" : "",
                       r.unusable ? " unusable" : "");
  };
  for (unsigned i = 0; i < 6; ++i) seg(kSeg[i], s.seg[i]);
  seg("LDT", s.ldtr);
  seg("TR", s.tr);
  out += fmt::format("GDT=    {:08x} {:04x}\nIDT=    {:08x} {:04x}\n", s.gdtr.base, s.gdtr.limit,
                     s.idtr.base, s.idtr.limit);
  out += fmt::format("CR0={:08x} CR2={:08x} CR3={:08x} CR4={:08x} EFER={:x}\n", s.cr0, s.cr2, s.cr3,
                     s.cr4, s.efer);
  return out;
}

}  // namespace vmbt
