#include "bt/stubs.h"

#include <asmjit/x86.h>
#include <fmt/format.h>

#include <cstddef>
#include <cstring>

#include "bt/block_emitter.h"
#include "bt/code_cache.h"
#include "bt/host_registers.h"
#include "vmm/error.h"

namespace vmbt::bt {

namespace x86 = asmjit::x86;

Stubs Stubs::generate(CodeCache& cache) {
  using asmjit::CodeHolder;
  using asmjit::Environment;
  CodeHolder code;
  uint64_t base = reinterpret_cast<uint64_t>(cache.stub_area());
  ThrowingErrorHandler errors;
  code.init(Environment::host(), base);
  code.setErrorHandler(&errors);
  x86::Assembler a(&code);

  asmjit::Label enter = a.newLabel(), exit = a.newLabel(), tail = a.newLabel(), miss = a.newLabel(),
                no_fpu_in = a.newLabel(), no_fpu_out = a.newLabel();

  // enter(BtContext* ctx /*rdi*/, const void* code /*rsi*/)
  a.bind(enter);
  a.push(x86::rbx);
  a.push(x86::rbp);
  a.push(x86::r12);
  a.push(x86::r13);
  a.push(x86::r14);
  a.push(x86::r15);
  a.sub(x86::rsp, 8);  // keep the host stack 16-byte aligned for the fault handler's benefit
  a.mov(x86::r14, x86::rdi);
  a.mov(x86::r11, x86::rsi);
  a.mov(ctx_field(offsetof(BtContext, host_rsp), 8), x86::rsp);
  a.cmp(ctx_field(offsetof(BtContext, fpu_active), 4), 0);
  a.je(no_fpu_in);
  a.fxsave(ctx_field(offsetof(BtContext, host_fx), 512));
  a.fxrstor(ctx_field(offsetof(BtContext, guest_fx), 512));
  a.bind(no_fpu_in);
  a.mov(x86::r15, ctx_field(offsetof(BtContext, window_base), 8));
  a.mov(x86::r13, ctx_field(offsetof(BtContext, window_neg), 8));
  a.mov(x86::r12, ctx_field(offsetof(BtContext, window_high), 8));
  a.mov(x86::eax, ctx_field(offsetof(BtContext, host_flags), 4));
  a.push(x86::rax);
  a.popfq();
  for (unsigned i = 0; i < 8; ++i) {
    if (i == 4) continue;
    a.mov(kGuestGpr32[i], ctx_field(offsetof(BtContext, gpr) + 4 * i, 4));
  }
  a.mov(x86::esp, ctx_field(offsetof(BtContext, gpr) + 4 * 4, 4));
  a.jmp(x86::r11);

  // Common exit: translated code has stored eip/exit_kind; save the guest GPRs and flags.
  a.bind(exit);
  for (unsigned i = 0; i < 8; ++i) {
    a.mov(ctx_field(offsetof(BtContext, gpr) + 4 * i, 4), kGuestGpr32[i]);
  }
  a.mov(x86::rsp, ctx_field(offsetof(BtContext, host_rsp), 8));
  a.pushfq();
  a.pop(x86::r10);
  a.mov(ctx_field(offsetof(BtContext, host_flags), 4), x86::r10d);
  // Tail shared with the fault handler (which saved the guest state itself).
  a.bind(tail);
  a.mov(x86::rsp, ctx_field(offsetof(BtContext, host_rsp), 8));
  // The monitor runs with clean flags: DF=0 for the ABI, AC=0 (the guest's alignment checking).
  a.push(2);
  a.popfq();
  a.cmp(ctx_field(offsetof(BtContext, fpu_active), 4), 0);
  a.je(no_fpu_out);
  a.fxsave(ctx_field(offsetof(BtContext, guest_fx), 512));
  a.fxrstor(ctx_field(offsetof(BtContext, host_fx), 512));
  a.bind(no_fpu_out);
  a.add(x86::rsp, 8);
  a.pop(x86::r15);
  a.pop(x86::r14);
  a.pop(x86::r13);
  a.pop(x86::r12);
  a.pop(x86::rbp);
  a.pop(x86::rbx);
  a.ret();

  // Indirect-branch miss (R11 = the table probed, at slot i or, R11 + 8, at its victim slot
  // i + 1): the probes go first[i], first[i + 1], second[i], second[i + 1], then the dispatcher.
  // Flag-free: the guest's flags live in RFLAGS; guest RCX waits in R10 while RCX takes the
  // difference between R11 and each table's address for JRCXZ.
  asmjit::Label true_miss = a.newLabel(), victim = a.newLabel(), second = a.newLabel();
  auto when_r11_is = [&](size_t table_neg_field, int32_t plus, asmjit::Label to) {
    a.mov(x86::rcx, ctx_field(table_neg_field, 8));
    a.lea(x86::rcx, x86::ptr(x86::rcx, x86::r11, 0, -plus));
    a.jecxz(x86::rcx, to);
  };
  a.bind(miss);
  a.mov(x86::r10, x86::rcx);
  when_r11_is(offsetof(BtContext, indirect_table_neg), 0, victim);
  when_r11_is(offsetof(BtContext, second_table_neg), 0, victim);
  when_r11_is(offsetof(BtContext, indirect_table_neg), 8, second);
  a.mov(x86::rcx, x86::r10);
  a.jmp(true_miss);  // R11 was the second table's victim slot: not in either table
  a.bind(victim);
  a.mov(x86::rcx, x86::r10);
  a.lea(x86::r11, x86::ptr(x86::r11, 8));
  a.movzx(x86::r10d, x86::r9w);
  a.jmp(x86::ptr(x86::r11, x86::r10, 3, 0, 8));
  a.bind(second);
  a.mov(x86::rcx, x86::r10);
  a.mov(x86::r11, ctx_field(offsetof(BtContext, second_table), 8));
  a.movzx(x86::r10d, x86::r9w);
  a.jmp(x86::ptr(x86::r11, x86::r10, 3, 0, 8));
  // Not in either table: the target EIP is in r9d.
  a.bind(true_miss);
  a.mov(ctx_field(offsetof(BtContext, eip), 4), x86::r9d);
  a.mov(ctx_field(offsetof(BtContext, exit_kind), 4), static_cast<uint32_t>(ExitKind::kIndirect));
  a.jmp(exit);

  // Direct call: r10 = site, r11 = resume address (translated code has no host stack: guest
  // ESP is in rsp, so no CALL). The guest state goes into the context first.
  asmjit::Label direct = a.newLabel(), no_xmm_save = a.newLabel(), leave = a.newLabel(),
                no_xmm_load = a.newLabel(), no_xmm_leave = a.newLabel();
  a.bind(direct);
  for (unsigned i = 0; i < 8; ++i) {
    a.mov(ctx_field(offsetof(BtContext, gpr) + 4 * i, 4), kGuestGpr32[i]);
  }
  a.mov(ctx_field(offsetof(BtContext, resume), 8), x86::r11);
  a.mov(x86::rsp, ctx_field(offsetof(BtContext, host_rsp), 8));  // 16-byte aligned
  a.pushfq();
  a.pop(x86::rax);
  a.mov(ctx_field(offsetof(BtContext, host_flags), 4), x86::eax);
  a.push(2);  // DF=0 for the ABI, AC=0
  a.popfq();
  a.mov(x86::eax, ctx_field(offsetof(BtContext, fpu_active), 4));
  a.mov(ctx_field(offsetof(BtContext, fpu_live), 4), x86::eax);
  a.test(x86::eax, x86::eax);
  a.jz(no_xmm_save);
  for (unsigned i = 0; i < 8; ++i) {
    a.movdqa(ctx_field(offsetof(BtContext, guest_xmm) + 16 * i, 16), x86::xmm(i));
  }
  a.stmxcsr(ctx_field(offsetof(BtContext, guest_mxcsr), 4));
  a.ldmxcsr(ctx_field(offsetof(BtContext, monitor_mxcsr), 4));
  a.bind(no_xmm_save);
  a.mov(x86::rdi, x86::r14);
  a.mov(x86::rsi, x86::r10);
  a.call(ctx_field(offsetof(BtContext, direct_call), 8));
  a.test(x86::rax, x86::rax);
  a.jz(leave);
  a.mov(x86::r11, x86::rax);
  a.cmp(ctx_field(offsetof(BtContext, fpu_live), 4), 0);
  a.je(no_xmm_load);
  for (unsigned i = 0; i < 8; ++i) {
    a.movdqa(x86::xmm(i), ctx_field(offsetof(BtContext, guest_xmm) + 16 * i, 16));
  }
  a.ldmxcsr(ctx_field(offsetof(BtContext, guest_mxcsr), 4));
  a.bind(no_xmm_load);
  a.mov(x86::r15, ctx_field(offsetof(BtContext, window_base), 8));
  a.mov(x86::r13, ctx_field(offsetof(BtContext, window_neg), 8));
  a.mov(x86::r12, ctx_field(offsetof(BtContext, window_high), 8));
  a.mov(x86::eax, ctx_field(offsetof(BtContext, host_flags), 4));
  a.push(x86::rax);
  a.popfq();
  for (unsigned i = 0; i < 8; ++i) {
    if (i == 4) continue;
    a.mov(kGuestGpr32[i], ctx_field(offsetof(BtContext, gpr) + 4 * i, 4));
  }
  a.mov(x86::esp, ctx_field(offsetof(BtContext, gpr) + 4 * 4, 4));
  a.jmp(x86::r11);
  // Leaving: the guest's XMM state goes back into the units, where the tail saves it from.
  a.bind(leave);
  a.cmp(ctx_field(offsetof(BtContext, fpu_live), 4), 0);
  a.je(no_xmm_leave);
  for (unsigned i = 0; i < 8; ++i) {
    a.movdqa(x86::xmm(i), ctx_field(offsetof(BtContext, guest_xmm) + 16 * i, 16));
  }
  a.ldmxcsr(ctx_field(offsetof(BtContext, guest_mxcsr), 4));
  a.bind(no_xmm_leave);
  a.jmp(tail);

  ThrowingErrorHandler::check(code.flatten(), "lay out the stubs");
  ThrowingErrorHandler::check(code.resolveUnresolvedLinks(), "resolve the stubs' jumps");
  ThrowingErrorHandler::check(code.relocateToBase(base), "place the stubs");
  size_t size = code.codeSize();
  if (size > CodeCache::kStubBytes) throw Error("internal: bt stubs do not fit the stub area");
  code.copyFlattenedData(cache.stub_area(), CodeCache::kStubBytes);

  Stubs s;
  auto at = [&](asmjit::Label l) { return cache.stub_area() + code.labelOffset(l); };
  s.enter = reinterpret_cast<EnterFn>(at(enter));
  s.exit = at(exit);
  s.exit_after_fault = at(tail);
  s.indirect_miss = at(miss);
  s.indirect_exit = at(true_miss);
  s.direct_call = at(direct);
  s.begin = cache.stub_area();
  s.end = cache.stub_area() + size;
  return s;
}

}  // namespace vmbt::bt
