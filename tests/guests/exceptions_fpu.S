/* exceptions_fpu: the x87 and SSE exceptions and the CR0/CR4 bits that control them, at CPL 0
 * (Intel SDM Vol. 3A §2.5 and Table 2-2 "Action Taken By x87 FPU Instructions for Different
 * Combinations of EM, MP, and TS", §6.15 for #NM, #MF, #XM; Vol. 1 §8.6, §11.5; Vol. 2 FWAIT,
 * DIVSS). One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when
 * every check passed (status 1).
 *
 *  - #NM (fault): x87 with CR0.TS = 1, FWAIT with TS = 1 and MP = 1 (none with MP = 0), SSE with
 *    TS = 1, x87 with CR0.EM = 1; nothing after CLTS.
 *  - #UD: SSE with CR0.EM = 1, SSE with CR4.OSFXSR = 0.
 *  - #MF: an unmasked x87 zero divide (CR0.NE = 1) is reported at the next waiting x87
 *    instruction, which is the saved EIP; FSW has ZE, ES and B set; FNSTENV's FPU instruction
 *    pointer is the guest address of the FDIV (not a host address).
 *  - masked x87 zero divide: +infinity, ZE set, ES clear, no exception.
 *  - #XM: an unmasked SSE zero divide with CR4.OSXMMEXCPT = 1 (a fault: saved EIP = DIVSS,
 *    MXCSR.ZE set, destination unchanged); #UD instead when OSXMMEXCPT = 0; masked: +infinity.
 * kvm-pvm cannot emulate x87 or SSE instructions at all, hence the skip on kvm. */
#include "guest.inc"

#define CR0_MP 0x02
#define CR0_EM 0x04
#define CR0_TS 0x08
#define CR0_NE 0x20
#define CR4_OSFXSR 0x200
#define CR4_OSXMMEXCPT 0x400

/* CR0 &= ~clear, CR0 |= set. Clobbers EAX. */
.macro CR0_SET clear, set
  mov %cr0, %eax
  and $~(\clear), %eax
  or $(\set), %eax
  mov %eax, %cr0
.endm

.macro CR4_SET clear, set
  mov %cr4, %eax
  and $~(\clear), %eax
  or $(\set), %eax
  mov %eax, %cr4
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  call exc_init
  CR0_SET CR0_EM|CR0_TS, CR0_MP|CR0_NE
  CR4_SET 0, CR4_OSFXSR|CR4_OSXMMEXCPT
  fninit

  call test_nm
  call test_ud
  call test_mf
  call test_xm

  CHECKS_DONE "exceptions_fpu"

test_nm:
  CR0_SET 0, CR0_TS
  EXC_ARM 1f
0:
  fninit
1:
  EXC_CHECK "#NM fninit with ts=1", 7, NOERR, 0b

  EXC_ARM 1f
0:
  fwait
1:
  EXC_CHECK "#NM fwait with ts=1 mp=1", 7, NOERR, 0b

  CR0_SET CR0_MP, 0
  EXC_ARM 1f
  fwait
1:
  EXC_NONE "fwait with ts=1 mp=0"
  CR0_SET 0, CR0_MP

  EXC_ARM 1f
0:
  addps %xmm1, %xmm0
1:
  EXC_CHECK "#NM sse with ts=1", 7, NOERR, 0b

  clts
  mov %cr0, %eax
  and $CR0_TS, %eax
  CHECK_EQ $0, "clts clears cr0.ts"
  EXC_ARM 1f
  fninit
  fld1
  fstp %st(0)
  addps %xmm1, %xmm0
1:
  EXC_NONE "x87 and sse after clts"

  CR0_SET 0, CR0_EM
  EXC_ARM 1f
0:
  fninit
1:
  EXC_CHECK "#NM fninit with em=1", 7, NOERR, 0b
  ret

test_ud:
  EXC_ARM 1f
0:
  addps %xmm1, %xmm0                /* CR0.EM is still 1 */
1:
  EXC_CHECK "#UD sse with em=1", 6, NOERR, 0b
  CR0_SET CR0_EM, 0

  CR4_SET CR4_OSFXSR, 0
  EXC_ARM 1f
0:
  addps %xmm1, %xmm0
1:
  EXC_CHECK "#UD sse with cr4.osfxsr=0", 6, NOERR, 0b
  CR4_SET 0, CR4_OSFXSR
  ret

/* x87 zero divide, 1.0 / 0.0. */
test_mf:
  fninit                            /* FCW 0x037f: every exception masked */
  fldz
  fld1
  EXC_ARM 1f
  fdiv %st(1), %st                  /* ST0 = 1.0 / 0.0 = +inf */
  fwait
1:
  EXC_NONE "masked x87 zero divide"
  fstps result
  mov result, %eax
  CHECK_EQ $0x7f800000, "masked x87 zero divide gives +inf"
  fnstsw %ax
  and $0x00ff, %eax                 /* exception flags, SF, ES */
  CHECK_EQ $0x04, "masked x87 zero divide fsw: ze set, es clear"

  fninit
  fldcw fcw_zm_unmasked
  fldz
  fld1
  EXC_ARM 1f
fdiv_insn:
  fdiv %st(1), %st                  /* unmasked: the exception is pending, no fault here */
0:
  fwait
1:
  EXC_CHECK "#MF at the next waiting instruction", 16, NOERR, 0b
  fnstsw %ax
  and $0x80ff, %eax
  CHECK_EQ $0x8084, "#MF fsw: ze, es and b set"
  fnstenv fpu_env
  mov fpu_env + 12, %eax            /* FPU instruction pointer (32-bit protected-mode layout) */
  CHECK_EQ $fdiv_insn, "#MF fnstenv fip is the guest fdiv"
  fnclex
  fninit
  ret

/* SSE zero divide, 1.0f / 0.0f in DIVSS. */
test_xm:
  ldmxcsr mxcsr_default             /* 0x1f80: every exception masked */
  movss one, %xmm0
  movss zero, %xmm1
  EXC_ARM 1f
  divss %xmm1, %xmm0
1:
  EXC_NONE "masked sse zero divide"
  movd %xmm0, %eax
  CHECK_EQ $0x7f800000, "masked sse zero divide gives +inf"
  stmxcsr mxcsr_out
  mov mxcsr_out, %eax
  CHECK_EQ $0x1f84, "masked sse zero divide mxcsr.ze"

  ldmxcsr mxcsr_zm_unmasked         /* 0x1d80 */
  movss one, %xmm0
  EXC_ARM 1f
0:
  divss %xmm1, %xmm0
1:
  EXC_CHECK "#XM unmasked sse zero divide", 19, NOERR, 0b
  stmxcsr mxcsr_out
  mov mxcsr_out, %eax
  CHECK_EQ $0x1d84, "#XM mxcsr.ze set"
  movd %xmm0, %eax
  CHECK_EQ $0x3f800000, "#XM destination unchanged"

  ldmxcsr mxcsr_zm_unmasked
  CR4_SET CR4_OSXMMEXCPT, 0
  EXC_ARM 1f
0:
  divss %xmm1, %xmm0
1:
  EXC_CHECK "#UD unmasked sse zero divide with osxmmexcpt=0", 6, NOERR, 0b
  CR4_SET 0, CR4_OSXMMEXCPT
  ldmxcsr mxcsr_default
  ret

.data
  .p2align 2
fcw_zm_unmasked:
  .word 0x037b                      /* 0x037f without ZM (bit 2) */
  .p2align 2
mxcsr_default:
  .long 0x1f80
mxcsr_zm_unmasked:
  .long 0x1d80                      /* without ZM (bit 9) */
mxcsr_out:
  .long 0
one:
  .long 0x3f800000
zero:
  .long 0
result:
  .long 0
fpu_env:
  .skip 28

EXCEPTION_SUPPORT
