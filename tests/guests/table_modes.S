/* table_modes: code first run in one mode, then reached through an indirect branch in another,
 * must get the other mode's checks (issue 17, defect 1). bt finds the target of an indirect
 * branch in a table of translated blocks; a block translated for CPL 0 or for flat segments must
 * not be reused where the CPU state asks for more checks.
 *
 *   - CLI at CPL 3 with IOPL = 0 raises #GP(0) (Intel SDM Vol. 2A CLI, Vol. 3A §18.2), also when
 *     the same CLI already ran at CPL 0, reached the same way (CALL through a register), and
 *     when it is one direct jump after the IRET that entered ring 3 (the jump's target looked up
 *     for ring 3, not for the mode the IRET ran in).
 *   - A load beyond the DS limit raises #GP(0) (Vol. 3A §5.3, Vol. 2A MOV), also when the same
 *     load already ran with a flat DS, reached the same way.
 *   - A store through a read-only DS raises #GP(0) (Vol. 3A §5.5), also after the same store ran
 *     with a writable DS.
 * Each case runs the shared code once in the permissive mode (it must work), then in the strict
 * one (it must fault, with the saved EIP at the instruction), then once more permissively.
 * One line per check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Exits with 0 when every
 * check passed (status 1). kvm-pvm cannot emulate IRET or INT n, hence the skip there. QEMU TCG
 * matches the CLI lines but checks no data-segment limits or rights (a known QEMU shortcut), so
 * the SDM, not QEMU, is the oracle for the DS lines. */
#include "guest.inc"

#define EFL_USER 0x202 /* IF = 1, IOPL = 0 */
#define SMALL_DS 0x30  /* data, DPL 0, base 0, limit 0xfff (byte granular) */
#define RO_DS 0x38     /* data, DPL 0, base 0, limit 4 GiB, read-only */
#define FAR_DATA 0x2000

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  call ring3_init

  /* ---- CLI: CPL 0, then CPL 3, then CPL 0 again ---- */
  EXC_ARM 2f
  mov $shared_cli, %ecx
  call *%ecx
2:
  EXC_NONE "cli at cpl 0 through call *reg"
  sti
  movl $USER_CS, exc_want_cs
  EXC_ARM u_recover
  mov $EFL_USER, %eax
  mov $u_call_cli, %ebx
  call run_user
  EXC_CHECK "cli at cpl 3 through call *reg", 13, 0, shared_cli
  mov ring3_eax, %eax
  CHECK_EQ $0xdead, "that fault: resumed in ring 3"
  movl $CODE_SEL, exc_want_cs
  EXC_ARM 2f
  sti
  mov $shared_cli, %ecx
  call *%ecx
2:
  EXC_NONE "cli at cpl 0 again"
  pushf
  pop %eax
  and $0x200, %eax
  CHECK_EQ $0, "cli at cpl 0 cleared IF"

  /* ---- CLI at CPL 3 one direct branch after the IRET that entered ring 3 (the branch's target
   * must be looked up in ring 3's mode, not in the mode the IRET's block was entered in) ---- */
  movl $USER_CS, exc_want_cs
  EXC_ARM u_recover
  mov $EFL_USER, %eax
  mov $u_jump_cli, %ebx
  call run_user
  EXC_CHECK "cli at cpl 3 after a direct jump", 13, 0, u_jump_cli_insn
  movl $CODE_SEL, exc_want_cs
  sti

  /* ---- DS limit ---- */
  movl $0x11223344, FAR_DATA
  EXC_ARM 2f
  mov $FAR_DATA, %ebx
  mov $shared_load, %ecx
  call *%ecx
2:
  EXC_NONE "load through a flat ds"
  CHECK_EQ $0x11223344, "load through a flat ds: value"
  EXC_ARM 2f
  mov $SMALL_DS, %ax
  mov %ax, %ds
  mov $0x5a5a5a5a, %eax
  mov $FAR_DATA, %ebx
  call *%ecx
2:
  mov $DATA_SEL, %dx
  mov %dx, %ds
  EXC_CHECK "load beyond the ds limit", 13, 0, shared_load
  CHECK_EQ $0x5a5a5a5a, "the faulting load left eax"
  EXC_ARM 2f
  mov $FAR_DATA, %ebx
  call *%ecx
2:
  EXC_NONE "load through a flat ds again"
  CHECK_EQ $0x11223344, "load through a flat ds again: value"

  /* The same load one direct jump after the MOV to DS, in the same block: the jump's target must
   * be looked up for the limited DS, not for the mode the block was entered in. */
  EXC_ARM 2f
  mov $0x5a5a5a5a, %eax
  mov $FAR_DATA, %ebx
  mov $SMALL_DS, %dx
  mov %dx, %ds
  jmp 1f
  .p2align 4
1:
load_after_jump:
  mov (%ebx), %eax
2:
  mov $DATA_SEL, %dx
  mov %dx, %ds
  EXC_CHECK "load beyond the ds limit after a direct jump", 13, 0, load_after_jump
  CHECK_EQ $0x5a5a5a5a, "that load left eax"

  /* ---- read-only DS ---- */
  EXC_ARM 2f
  mov $0x01020304, %eax
  mov $FAR_DATA, %ebx
  mov $shared_store, %ecx
  call *%ecx
2:
  EXC_NONE "store through a writable ds"
  mov FAR_DATA, %eax
  CHECK_EQ $0x01020304, "store through a writable ds: value"
  EXC_ARM 2f
  mov $RO_DS, %ax
  mov %ax, %ds
  mov $0x0a0b0c0d, %eax
  mov $FAR_DATA, %ebx
  call *%ecx
2:
  mov $DATA_SEL, %dx
  mov %dx, %ds
  EXC_CHECK "store through a read-only ds", 13, 0, shared_store
  mov FAR_DATA, %eax
  CHECK_EQ $0x01020304, "the faulting store changed nothing"

  CHECKS_DONE "table_modes"

/* Shared code, always reached with CALL through ECX. */
shared_cli:
  cli
  ret
shared_load:
  mov (%ebx), %eax
  ret
shared_store:
  mov %eax, (%ebx)
  ret

/* ---- ring-3 code ---- */
u_call_cli:
  mov $shared_cli, %ecx
  call *%ecx
  mov $0x600d, %eax
  USER_RETURN
u_recover:
  mov $0xdead, %eax
  USER_RETURN
u_jump_cli:
  nop
  jmp 1f
  .p2align 4
1:
u_jump_cli_insn:
  cli
  mov $0x600d, %eax
  USER_RETURN

.data
  .p2align 3
gdt:
  GDT_STANDARD_ENTRIES
  SEG_DESC 0, 0xfff, 0x93, 0x4      /* 0x30: data, limit 0xfff bytes */
  SEG_DESC 0, 0xfffff, 0x91, 0xc    /* 0x38: data, read-only, accessed */
  GDT_END

EXCEPTION_SUPPORT

RING3_SUPPORT
