/* gdb_target: the guest the GDB stub tests debug (tests/gdb/gdb_session_test.sh); on its own it
 * is an ordinary guest whose output the .expect file checks.
 *
 * It turns on 32-bit paging with a page ALIAS mapped onto the frame of gdb_data (so a debugger
 * reads gdb_data's words at a linear address only the page tables explain), loads known values
 * into the general registers and calls gdb_break_here, which prints them as the guest sees them
 * (the oracle for the debugger's `info registers` there), after checking that it reads its own
 * code there, not a debugger's 0xcc. Then it enters ring 3 with the IRET at
 * iret_to_user (a debugger single-steps it to user_entry at CPL 3), reads the alias from ring 3,
 * comes back with INT 0x81 and spins in gdb_spin until spin_limit iterations ran or a debugger
 * set spin_done; it prints which, and exits.
 *
 * With "flat" on its command line (for a KVM that runs neither paging nor IRET, kvm-pvm) it
 * leaves paging off, reads gdb_data itself instead of an alias, and skips ring 3. */
#include "guest.inc"
#include "paging.inc"

#define K_CS 0x08
#define K_DS 0x10
#define U_CS 0x1b
#define U_DS 0x23
#define TSS 0x28
#define ALIAS 0x40000000
#define MARKER 0x6d6d6462 /* "bdmm" */

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT K_CS
  mov $K_DS, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov %ax, %fs
  mov %ax, %gs
  mov $tss, %eax                    /* TSS descriptor base */
  mov %ax, gdt + TSS + 2
  shr $16, %eax
  mov %al, gdt + TSS + 4
  mov %ah, gdt + TSS + 7
  mov $TSS, %ax
  ltr %ax
  mov $0x81, %eax
  mov $user_ret_entry, %ebx
  mov $PG_GATE_INTR_DPL3, %ecx
  call pg_set_gate

  mov mb_info, %eax                 /* " flat" on the Multiboot command line (after the path)? */
  testl $4, (%eax)
  jz 1f
  mov 16(%eax), %eax
3:
  cmpb $0, (%eax)
  je 1f
  inc %eax
  cmpl $0x616c6620, -1(%eax)        /* " fla" */
  jne 3b
  cmpb $0x74, 3(%eax)               /* "t" */
  jne 3b
  movl $1, flat
  movl $gdb_data, alias_addr
  call pg_idt_init
  jmp 2f
1:
  movl $(PTE_P | PTE_RW | PTE_US), pg_ident_pte_flags
  movl $(PTE_P | PTE_RW | PTE_US), pg_ident_pde_flags
  call pg_build_identity
  call pg_new_pd
  mov %eax, %ebx
  mov $ALIAS, %eax
  mov $gdb_data + (PTE_P | PTE_RW | PTE_US), %edx
  call pg_map
  call pg_enable
  call pg_idt_init
2:
  movl $MARKER, gdb_data            /* written through the identity map ... */
gdb_data_stored:                    /* (a debugger's write watchpoint on gdb_data stops here) */
  mov alias_addr, %eax              /* ... read back through the alias */
  mov (%eax), %eax
gdb_alias_read:                     /* (a read watchpoint on the alias stops here) */
  CHECK_EQ $MARKER, "alias reads gdb_data"

  movzbl gdb_break_here, %eax       /* its own code, as a debugger's breakpoint there leaves it */
  CHECK_EQ $0x60, "gdb_break_here starts with pusha (0x60), not a breakpoint's 0xcc"

  mov $0x600d0001, %eax
  mov $0x600d0003, %ebx
  mov $0x600d0002, %ecx
  mov $0x600d0004, %edx
  mov $0x600d0005, %ebp
  mov $0x600d0006, %esi
  mov $0x600d0007, %edi
  call gdb_break_here

  cmpl $0, flat
  jne 1f
  mov $user_entry, %ebx
  call run_user
  mov user_eax, %eax
  CHECK_EQ $MARKER, "ring 3 reads the alias"
1:

  xor %ecx, %ecx
gdb_spin:
  cmpl $0, spin_done
  jne gdb_spin_end
  inc %ecx
  cmp spin_limit, %ecx
  jb gdb_spin
gdb_spin_end:
  mov $msg_by_limit, %esi
  cmpl $0, spin_done
  je 1f
  mov $msg_by_debugger, %esi
1:
  call puts
  CHECKS_DONE "gdb_target"

/* The debugger's breakpoint: prints the registers it was called with. */
gdb_break_here:
  pusha
  mov $msg_regs, %esi
  call puts
  mov $reg_names, %esi
  mov $7, %ebx                      /* pusha frame, from the top: eax ecx edx ebx (esp) ebp esi edi */
1:
  cmp $3, %ebx                      /* skip the saved ESP */
  je 2f
  call puts                         /* " eax=" ... */
  mov (%esp,%ebx,4), %eax
  call print_hex32
2:
  add $6, %esi
  dec %ebx
  jns 1b
  call newline
  popa
  ret

PG_RING3_SUPPORT                    /* run_user (its IRET at iret_to_user), user_ret_entry */

/* ---- ring 3 ---- */
user_entry:
  mov ALIAS, %eax
  int $0x81

.section .rodata
msg_regs: .asciz "registers at gdb_break_here:"
/* Six bytes a name, in the order the loop prints them (pusha frame from the top down). */
reg_names:
  .asciz " eax="
  .asciz " ecx="
  .asciz " edx="
  .asciz " ebx="
  .asciz " esp="
  .asciz " ebp="
  .asciz " esi="
  .asciz " edi="
msg_by_limit: .asciz "spin ended by its limit\n"
msg_by_debugger: .asciz "spin ended by the debugger\n"

.data
  .p2align 3
gdt:
  GDT_STANDARD_ENTRIES              /* 0x08/0x10 ring 0, 0x18/0x20 ring 3, 0x28 TSS */
  GDT_END
  .p2align 4
tss:
  .long 0                           /* previous task link */
  .long tss_kstack_top              /* ESP0 */
  .long K_DS                        /* SS0 */
  .skip 0x66 - 12
  .word 104                         /* I/O map base beyond the limit: no bitmap */
  .p2align 2
spin_done: .long 0                  /* a debugger sets it */
flat: .long 0                       /* 1: no paging, no ring 3 */
alias_addr: .long ALIAS             /* where the guest (and the debugger) read gdb_data */
spin_limit: .long 100000            /* a debugger raises it to spin until interrupted */
  .p2align 12
gdb_data: .long 0
  .p2align 12

.bss
  .p2align 12
  .skip 4096
tss_kstack_top:
  .skip 4096
user_stack_top:
