#include "cli/sensitive_kinds.h"

#include <set>

namespace vmbt {

namespace {

bool is_sreg(const std::string& r) {
  return r == "cs" || r == "ds" || r == "es" || r == "fs" || r == "gs" || r == "ss";
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

const char* class_name(SensitiveClass c) {
  switch (c) {
    case SensitiveClass::kSensitiveUnprivileged:
      return "sensitive, unprivileged";
    case SensitiveClass::kIoplSensitive:
      return "IOPL-sensitive";
    case SensitiveClass::kPrivileged:
      return "privileged";
    case SensitiveClass::kVirtualized:
      return "virtualized (CPUID/TSC/SYSENTER)";
    case SensitiveClass::kEmulated:
      return "emulated (not sensitive)";
  }
  return "?";
}

CalloutKind classify_instruction(const DecodedInstruction& d) {
  using C = SensitiveClass;
  if (!d.valid) return {"(invalid)", C::kEmulated};
  std::string m = d.mnemonic;
  for (const char* prefix : {"lock ", "rep ", "repe ", "repne ", "repz ", "repnz "}) {
    if (starts_with(m, prefix)) m = m.substr(std::string(prefix).size());
  }
  const std::string r0 = d.registers.size() > 0 ? d.registers[0] : "";
  const std::string r1 = d.registers.size() > 1 ? d.registers[1] : "";

  if (m == "mov") {
    if (starts_with(r0, "cr")) return {"mov to " + r0, C::kPrivileged};
    if (starts_with(r1, "cr")) return {"mov from " + r1, C::kPrivileged};
    if (starts_with(r0, "dr")) return {"mov to " + r0, C::kPrivileged};
    if (starts_with(r1, "dr")) return {"mov from " + r1, C::kPrivileged};
    if (is_sreg(r0)) return {"mov to sreg", C::kSensitiveUnprivileged};
    if (is_sreg(r1)) return {"mov from sreg", C::kSensitiveUnprivileged};
    return {"mov", C::kEmulated};
  }
  if ((m == "push" || m == "pop") && is_sreg(r0)) return {m + " sreg", C::kSensitiveUnprivileged};
  if (m == "ljmp") return {"jmp far", C::kSensitiveUnprivileged};
  if (m == "lcall") return {"call far", C::kSensitiveUnprivileged};
  if (m == "retf") return {"ret far", C::kSensitiveUnprivileged};
  if (m == "pushfd" || m == "pushf") return {"pushf", C::kSensitiveUnprivileged};
  if (m == "popfd" || m == "popf") return {"popf", C::kSensitiveUnprivileged};
  if (m == "iretd" || m == "iret") return {"iret", C::kSensitiveUnprivileged};

  static const std::set<std::string> sensitive = {"sgdt", "sidt", "sldt", "smsw", "str",  "lar",
                                                  "lsl",  "verr", "verw", "int",  "int3", "into",
                                                  "int1", "lds",  "les",  "lfs",  "lgs",  "lss"};
  static const std::set<std::string> iopl = {"cli",  "sti",  "in",    "out",   "insb",
                                             "insw", "insd", "outsb", "outsw", "outsd"};
  static const std::set<std::string> privileged = {"hlt",   "lgdt",  "lidt",  "lldt",   "ltr",
                                                   "lmsw",  "clts",  "invd",  "wbinvd", "invlpg",
                                                   "rdmsr", "wrmsr", "rdpmc", "sysexit"};
  static const std::set<std::string> virtualized = {"cpuid", "rdtsc", "rdtscp", "sysenter"};
  if (sensitive.count(m)) return {d.mnemonic, C::kSensitiveUnprivileged};
  if (iopl.count(m)) return {d.mnemonic, C::kIoplSensitive};
  if (privileged.count(m)) return {d.mnemonic, C::kPrivileged};
  if (virtualized.count(m)) return {d.mnemonic, C::kVirtualized};
  return {d.mnemonic, C::kEmulated};
}

}  // namespace vmbt
