#include "cli/x86_disassembler.h"

#include <capstone/capstone.h>

#include "vmm/error.h"

namespace vmbt {

std::string DecodedInstruction::text() const {
  if (!valid) return "(bad)";
  return operands.empty() ? mnemonic : mnemonic + " " + operands;
}

X86Disassembler::X86Disassembler() {
  csh h = 0;
  if (cs_open(CS_ARCH_X86, CS_MODE_32, &h) != CS_ERR_OK) {
    throw Error("cannot open the Capstone disassembler for 32-bit x86");
  }
  cs_option(h, CS_OPT_DETAIL, CS_OPT_ON);
  handle_ = h;
}

X86Disassembler::~X86Disassembler() {
  csh h = handle_;
  cs_close(&h);
}

DecodedInstruction X86Disassembler::decode(const uint8_t* bytes, size_t size,
                                           uint64_t address) const {
  DecodedInstruction d;
  cs_insn* insn = nullptr;
  size_t n = cs_disasm(handle_, bytes, size, address, 1, &insn);
  if (n == 0) return d;
  d.valid = true;
  d.length = insn->size;
  d.mnemonic = insn->mnemonic;
  d.operands = insn->op_str;
  if (insn->detail) {
    const cs_x86& x = insn->detail->x86;
    for (uint8_t i = 0; i < x.op_count; ++i) {
      const cs_x86_op& op = x.operands[i];
      const char* name = op.type == X86_OP_REG ? cs_reg_name(handle_, op.reg) : nullptr;
      d.registers.push_back(name ? name : "");
    }
  }
  cs_free(insn, n);
  return d;
}

}  // namespace vmbt
