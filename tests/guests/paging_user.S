/* paging_user: user/supervisor protection under 32-bit paging, from ring 3 (Intel SDM Vol. 3A
 * §4.6, §4.7, ch. 6).
 *
 * Ring 3 is entered with IRET (CS 0x1b, SS 0x23, DPL-3 flat segments) and left with INT 0x81 (a
 * DPL-3 interrupt gate); the TSS gives SS0:ESP0 for every ring-3 -> ring-0 transition (§6.12.1,
 * §7.2.1). CR0.WP=1 throughout. The identity map (code, data, stacks) is user-accessible; the
 * test pages are:
 *   SUP_PAGE   PTE U/S=0 R/W=1      user read -> #PF 5 (P U), user write -> #PF 7 (P W U),
 *                                   user jump to code there -> #PF 5 with CR2 = EIP = the target,
 *                                   also after the kernel ran that code through the same kind of
 *                                   indirect call (bt's indirect-branch table must not hand the
 *                                   kernel's block to ring 3)
 *   URO_PAGE   PTE U/S=1 R/W=0      user read works, user write -> #PF 7, user code there runs,
 *                                   a supervisor write (WP=1) -> #PF 3
 *   URW_PAGE   PTE U/S=1 R/W=1      user write works and the kernel sees it
 *   NP_PAGE    not present          user read -> #PF 4 (U), user write -> #PF 6 (W U)
 *   KPDE_PAGE  PDE U/S=0, PTE U/S=1 user read -> #PF 5, user write -> #PF 7 (rights are the AND
 *                                   of both levels, §4.6.1); the kernel reads it
 * A #PF from ring 3 pushes SS:ESP of ring 3 (§6.12.1): the saved CS is 0x1b, SS 0x23, ESP the
 * ring-3 ESP at the faulting instruction. INT 0x80 through a DPL-3 gate runs system calls that
 * return values, read and write user pages for the caller. */
#include "guest.inc"
#include "paging.inc"

#define K_CS 0x08
#define K_DS 0x10
#define U_CS 0x1b
#define U_DS 0x23
#define TSS 0x28

#define SUP_PAGE 0x40000000
#define URO_PAGE 0x40001000
#define URW_PAGE 0x40002000
#define NP_PAGE 0x40003000
#define KPDE_PAGE 0x40400000

/* USER_RET: back to the kernel from ring 3 (EAX is passed on in user_eax). */
#define USER_RET int $0x81

/* RUN_USER label: runs `label` at CPL 3 until it executes USER_RET. */
.macro RUN_USER fn
  mov $\fn, %ebx
  call run_user
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT K_CS
  mov $K_DS, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov %ax, %fs
  mov %ax, %gs
  /* TSS descriptor base. */
  mov $tss, %eax
  mov %ax, gdt + TSS + 2
  shr $16, %eax
  mov %al, gdt + TSS + 4
  mov %ah, gdt + TSS + 7
  mov $TSS, %ax
  ltr %ax

  mov $0x80, %eax
  mov $sys_entry, %ebx
  mov $PG_GATE_INTR_DPL3, %ecx
  call pg_set_gate
  mov $0x81, %eax
  mov $user_ret_entry, %ebx
  call pg_set_gate

  movl $(PTE_P | PTE_RW | PTE_US), pg_ident_pte_flags
  movl $(PTE_P | PTE_RW | PTE_US), pg_ident_pde_flags
  call pg_build_identity
  call pg_new_pd
  mov %eax, kernel_pd
  mov %eax, %ebx

  call pg_alloc
  mov %eax, f_sup
  movl $0x50505050, 0x10(%eax)
  movw $0x81cd, 0x800(%eax)         /* int $0x81 (never reached from ring 3) */
  movb $0xb8, 0x900(%eax)           /* mov $0x5a5a5a5a, %eax; ret (kernel code) */
  movl $0x5a5a5a5a, 0x901(%eax)
  movb $0xc3, 0x905(%eax)
  lea PTE_P | PTE_RW(%eax), %edx
  mov $SUP_PAGE, %eax
  call pg_map
  call pg_alloc
  mov %eax, f_uro
  movl $0x0e0e0e0e, 0x20(%eax)
  movb $0xb8, 0x800(%eax)           /* mov $0x600dc0de, %eax; int $0x81 */
  movl $0x600dc0de, 0x801(%eax)
  movw $0x81cd, 0x805(%eax)
  lea PTE_P | PTE_US(%eax), %edx
  mov $URO_PAGE, %eax
  call pg_map
  call pg_alloc
  mov %eax, f_urw
  lea PTE_P | PTE_RW | PTE_US(%eax), %edx
  mov $URW_PAGE, %eax
  call pg_map
  movl $(PTE_P | PTE_RW), pg_pde_flags   /* KPDE_PAGE's page table: PDE U/S=0 */
  call pg_alloc
  mov %eax, f_kpde
  movl $0x4d4d4d4d, 0x40(%eax)
  lea PTE_P | PTE_RW | PTE_US(%eax), %edx
  mov $KPDE_PAGE, %eax
  call pg_map

  mov %cr0, %eax
  or $CR0_WP, %eax
  mov %eax, %cr0
  call pg_enable
  call pg_idt_init                  /* after CR0.PG: see paging.inc on kvm-pvm */

  /* ---- ring 3 runs at all ---- */
  RUN_USER u_hello
  mov user_eax, %eax
  CHECK_EQ $0x12345678, "ring 3 runs and returns"

  /* ---- supervisor page ---- */
  PF_ARM u_recover
  RUN_USER u_read_sup
  PF_CHECK "user read of a supervisor page", SUP_PAGE + 0x10, PF_P | PF_U, u_read_sup_insn
  mov pg_pf_cs, %eax
  CHECK_EQ $U_CS, "that fault: saved cs"
  mov pg_pf_ss3, %eax
  CHECK_EQ $U_DS, "that fault: saved ss"
  mov pg_pf_esp3, %eax
  CHECK_EQ $user_stack_top, "that fault: saved esp"
  mov user_eax, %eax
  CHECK_EQ $0xdead, "that fault: resumed in ring 3"
  PF_ARM u_recover
  RUN_USER u_write_sup
  PF_CHECK "user write of a supervisor page", SUP_PAGE + 0x14, PF_P | PF_W | PF_U, u_write_sup_insn
  mov f_sup, %eax
  mov 0x14(%eax), %eax
  CHECK_EQ $0, "the faulting user write changed nothing"
  PF_ARM u_recover
  RUN_USER u_jump_sup
  PF_CHECK "user jump into a supervisor page", SUP_PAGE + 0x800, PF_P | PF_U, SUP_PAGE + 0x800
  mov SUP_PAGE + 0x10, %eax
  CHECK_EQ $0x50505050, "kernel read of the supervisor page"
  mov $SUP_PAGE + 0x900, %ecx
  call *%ecx
  CHECK_EQ $0x5a5a5a5a, "kernel call into the supervisor page"
  PF_ARM u_recover
  RUN_USER u_call_sup
  PF_CHECK "user call into the kernel's code there", SUP_PAGE + 0x900, PF_P | PF_U, SUP_PAGE + 0x900

  /* ---- read-only user page ---- */
  PF_ARM u_recover
  RUN_USER u_read_uro
  PF_NONE "user read of a read-only user page"
  mov user_eax, %eax
  CHECK_EQ $0x0e0e0e0e, "user read of a read-only user page: value"
  PF_ARM u_recover
  RUN_USER u_write_uro
  PF_CHECK "user write to a read-only user page", URO_PAGE + 0x20, PF_P | PF_W | PF_U, u_write_uro_insn
  mov f_uro, %eax
  mov 0x20(%eax), %eax
  CHECK_EQ $0x0e0e0e0e, "the faulting user write changed nothing"
  PF_ARM u_recover
  RUN_USER u_call_uro
  PF_NONE "user code in a read-only user page"
  mov user_eax, %eax
  CHECK_EQ $0x600dc0de, "user code in a read-only user page: result"
  mov URO_PAGE + 0x20, %eax
  CHECK_EQ $0x0e0e0e0e, "kernel read of a user page"
  PF_ARM 1f
k_write_uro:
  movl $0x0e0e0e0f, URO_PAGE + 0x20
1:
  PF_CHECK "kernel write to a read-only user page (WP=1)", URO_PAGE + 0x20, PF_P | PF_W, k_write_uro

  /* ---- writable user page ---- */
  PF_ARM u_recover
  RUN_USER u_write_urw
  PF_NONE "user write to a writable user page"
  mov f_urw, %eax
  mov 0x30(%eax), %eax
  CHECK_EQ $0x0cafe0ff, "the kernel sees the user write"
  movl $0x0bebebeb, URW_PAGE + 0x34
  RUN_USER u_read_urw
  mov user_eax, %eax
  CHECK_EQ $0x0bebebeb, "the user sees the kernel write"

  /* ---- not present ---- */
  PF_ARM u_recover
  RUN_USER u_read_np
  PF_CHECK "user read of a not-present page", NP_PAGE + 0x44, PF_U, u_read_np_insn
  PF_ARM u_recover
  RUN_USER u_write_np
  PF_CHECK "user write to a not-present page", NP_PAGE + 0x48, PF_W | PF_U, u_write_np_insn

  /* ---- user PTE under a supervisor PDE ---- */
  PF_ARM u_recover
  RUN_USER u_read_kpde
  PF_CHECK "user read, U=1 PTE under a U=0 PDE", KPDE_PAGE + 0x40, PF_P | PF_U, u_read_kpde_insn
  PF_ARM u_recover
  RUN_USER u_write_kpde
  PF_CHECK "user write, U=1 PTE under a U=0 PDE", KPDE_PAGE + 0x40, PF_P | PF_W | PF_U, u_write_kpde_insn
  mov KPDE_PAGE + 0x40, %eax
  CHECK_EQ $0x4d4d4d4d, "kernel read, U=1 PTE under a U=0 PDE"

  /* ---- system calls ---- */
  RUN_USER u_sys_value
  mov user_eax, %eax
  CHECK_EQ $0x0000abcd, "int 0x80 from ring 3 returns a value"
  mov sys_cs, %eax
  CHECK_EQ $U_CS, "int 0x80 frame: saved cs"
  mov sys_ss, %eax
  CHECK_EQ $U_DS, "int 0x80 frame: saved ss"
  RUN_USER u_sys_read
  mov user_eax, %eax
  CHECK_EQ $0x0e0e0e0e, "int 0x80: the kernel reads a user page"
  RUN_USER u_sys_write
  mov user_eax, %eax
  CHECK_EQ $0x77665544, "int 0x80: the kernel writes a user page"
  RUN_USER u_sys_loop
  mov user_eax, %eax
  CHECK_EQ $(1000 * 1001), "1000 system calls: sum of results"

  mov pg_pf_count, %eax
  CHECK_EQ $10, "page faults in all"

  CHECKS_DONE "paging_user"

PG_RING3_SUPPORT                    /* run_user, user_ret_entry */

/* INT 0x80: EAX = 1: return EBX * 2 + 1; 2: return the word at user address EBX; 3: store ECX at
 * user address EBX, return 0. Frame: EIP 0, CS 4, EFLAGS 8, ESP 12, SS 16. */
sys_entry:
  movzwl 4(%esp), %edx
  mov %edx, sys_cs
  movzwl 16(%esp), %edx
  mov %edx, sys_ss
  cmp $1, %eax
  jne 1f
  lea 1(%ebx,%ebx), %eax
  iret
1:
  cmp $2, %eax
  jne 2f
  mov (%ebx), %eax
  iret
2:
  cmp $3, %eax
  jne 3f
  mov %ecx, (%ebx)
  xor %eax, %eax
  iret
3:
  mov $-1, %eax
  iret

/* ---- ring-3 code ---- */
u_hello:
  mov $0x12345678, %eax
  USER_RET
u_recover:
  mov $0xdead, %eax
  USER_RET
u_read_sup:
u_read_sup_insn:
  mov SUP_PAGE + 0x10, %eax
  USER_RET
u_write_sup:
u_write_sup_insn:
  movl $0x11111111, SUP_PAGE + 0x14
  USER_RET
u_jump_sup:
  mov $SUP_PAGE + 0x800, %eax
  jmp *%eax
u_call_sup:
  mov $SUP_PAGE + 0x900, %ecx
  call *%ecx
  USER_RET
u_read_uro:
  mov URO_PAGE + 0x20, %eax
  USER_RET
u_write_uro:
u_write_uro_insn:
  movl $0x22222222, URO_PAGE + 0x20
  USER_RET
u_call_uro:
  mov $URO_PAGE + 0x800, %eax
  jmp *%eax
u_write_urw:
  movl $0x0cafe0ff, URW_PAGE + 0x30
  USER_RET
u_read_urw:
  mov URW_PAGE + 0x34, %eax
  USER_RET
u_read_np:
u_read_np_insn:
  mov NP_PAGE + 0x44, %eax
  USER_RET
u_write_np:
u_write_np_insn:
  movl $0x33333333, NP_PAGE + 0x48
  USER_RET
u_read_kpde:
u_read_kpde_insn:
  mov KPDE_PAGE + 0x40, %eax
  USER_RET
u_write_kpde:
u_write_kpde_insn:
  movl $0x44444444, KPDE_PAGE + 0x40
  USER_RET
u_sys_value:
  mov $1, %eax
  mov $0x55e6, %ebx
  int $0x80
  USER_RET
u_sys_read:
  mov $2, %eax
  mov $URO_PAGE + 0x20, %ebx
  int $0x80
  USER_RET
u_sys_write:
  mov $3, %eax
  mov $URW_PAGE + 0x38, %ebx
  mov $0x77665544, %ecx
  int $0x80
  test %eax, %eax
  jnz 1f
  mov URW_PAGE + 0x38, %eax
1:
  USER_RET
u_sys_loop:                          /* sum over i = 0..999 of (2 i + 1) + ... = 1000 * 1001 */
  xor %esi, %esi
  xor %edi, %edi
1:
  mov $1, %eax
  mov %edi, %ebx
  int $0x80
  add %eax, %esi
  inc %edi
  cmp $1000, %edi
  jb 1b
  lea 1000(%esi), %eax              /* sum (2i+1) = 1000^2; + 1000 = 1000 * 1001 */
  USER_RET

.data
  .p2align 3
gdt:
  .quad 0
  SEG_DESC 0, 0xfffff, 0x9b, 0xc    /* 0x08 ring-0 code */
  SEG_DESC 0, 0xfffff, 0x93, 0xc    /* 0x10 ring-0 data */
  SEG_DESC 0, 0xfffff, 0xfb, 0xc    /* 0x18 ring-3 code */
  SEG_DESC 0, 0xfffff, 0xf3, 0xc    /* 0x20 ring-3 data */
  SEG_DESC 0, 0x67, 0x89, 0x0       /* 0x28 32-bit TSS, available */
  GDT_END
  .p2align 4
tss:
  .long 0                           /* previous task link */
  .long tss_kstack_top              /* ESP0 */
  .long K_DS                        /* SS0 */
  .skip 0x66 - 12
  .word 104                         /* I/O map base beyond the limit: no bitmap */
  .p2align 2
kernel_pd: .long 0
sys_cs: .long 0
sys_ss: .long 0
f_sup: .long 0
f_uro: .long 0
f_urw: .long 0
f_kpde: .long 0

.bss
  .p2align 12
  .skip 4096
tss_kstack_top:
  .skip 4096
user_stack_top:
