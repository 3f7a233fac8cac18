#include "cli/sensitive_kinds.h"

#include <Zydis/Zydis.h>

namespace vmbt {

namespace {

bool is_sreg(const std::string& r) {
  return r == "cs" || r == "ds" || r == "es" || r == "fs" || r == "gs" || r == "ss";
}

bool starts_with(const std::string& s, const char* prefix) {
  return s.rfind(prefix, 0) == 0;
}

/// The name: Capstone's mnemonic without its repeat or lock prefix, refined for the forms whose
/// mnemonic hides what they touch.
std::string kind_name(const DecodedInstruction& d) {
  if (!d.valid) return "(invalid)";
  std::string m = d.mnemonic;
  for (const char* prefix : {"lock ", "rep ", "repe ", "repne ", "repz ", "repnz "}) {
    if (starts_with(m, prefix)) m = m.substr(std::string(prefix).size());
  }
  const std::string r0 = d.registers.size() > 0 ? d.registers[0] : "";
  const std::string r1 = d.registers.size() > 1 ? d.registers[1] : "";
  if (m == "mov") {
    for (const char* special : {"cr", "dr"}) {
      if (starts_with(r0, special)) return "mov to " + r0;
      if (starts_with(r1, special)) return "mov from " + r1;
    }
    if (is_sreg(r0)) return "mov to sreg";
    if (is_sreg(r1)) return "mov from sreg";
    return "mov";
  }
  if ((m == "push" || m == "pop") && is_sreg(r0)) return m + " sreg";
  if (m == "ljmp") return "jmp far";
  if (m == "lcall") return "call far";
  if (m == "retf") return "ret far";
  if (m == "pushfd" || m == "pushf") return "pushf";
  if (m == "popfd" || m == "popf") return "popf";
  if (m == "iretd" || m == "iret") return "iret";
  return d.mnemonic;
}

}  // namespace

CalloutKind classify_instruction(const DecodedInstruction& d, const uint8_t* bytes, size_t size) {
  CalloutKind k{kind_name(d), SensitiveClass::kEmulated};
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes, size, &insn, ops))) {
    const SensitiveClass cls = bt::policy::sensitivity(insn, ops);
    if (cls != SensitiveClass::kNone) k.cls = cls;
  }
  return k;
}

}  // namespace vmbt
