/*
 * vm86.S - virtual-8086 mode (Intel SDM Vol. 3A ch. 20, §20.2-20.3): a small monitor at CPL 0
 * enters VM86 by IRET (RETURN-TO-VIRTUAL-8086-MODE), and the 8086 code at 0x7000 does 16-bit
 * arithmetic, a far call, port I/O the TSS's I/O permission bitmap allows (the UART's scratch
 * register, 0x3FF), then CLI, INT 0x21 and IN from a port the bitmap denies (0x3FE): with IOPL 0
 * each is a #GP(0) to the monitor, which records the frame (error code, EIP, CS, EFLAGS, ESP,
 * SS, ES, DS, FS, GS; SDM Figure 20-5) and DS as its handler finds it (null), and emulates the
 * instruction. INT3 is not IOPL-sensitive: it goes through its DPL-3 gate. INT 0x30 ends the run
 * (the monitor does not go back). A second entry with IOPL 3 runs CLI/PUSHF/STI without traps,
 * still traps the denied IN (the bitmap decides in VM86 whatever IOPL), and its INT 0x30 goes
 * straight to the DPL-3 gate's protected-mode handler. Expected values: the SDM; QEMU TCG prints
 * the same.
 */
#include "guest.inc"

#define LOW_BASE 0x7000          /* where the 8086 code is copied */
#define LOW_SEG (LOW_BASE >> 4)  /* its segment: CS, SS, DS, FS, GS */
#define ES_SEG 0x0800            /* ES, told apart from the others in the frame */
#define VM_SP 0x0ff0
#define VM_TSS_SEL 0x18
#define IOMAP_SIZE 8192
#define TSS_LIMIT (104 + IOMAP_SIZE)  /* the bitmap and its trailing 0xFF byte */
#define MAX_TRAPS 8
#define TRAP_WORDS 12
#define RM(label) ((label) - low_start)
#define RESULT(n) (RM(results) + 4 * (n))
#define R(n) (LOW_BASE + RESULT(n))
/* A recorded trap's field: 0 vector, 1 error code, 2 EIP, 3 CS, 4 EFLAGS, 5 ESP, 6 SS, 7 ES,
 * 8 DS, 9 FS, 10 GS, 11 DS in the handler. */
#define TRAP(n, f) (vm_traps + 4 * (TRAP_WORDS * (n) + (f)))
#define EFLAGS_VM_IOPL_IF 0x23200

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  /* The TSS: base filled in, loaded; every PIC IRQ masked. */
  mov $gdt + VM_TSS_SEL, %edi
  mov $vm_tss, %eax
  call set_desc_base
  mov $VM_TSS_SEL, %ax
  ltr %ax
  mov $0xff, %al
  outb %al, $0x21
  outb %al, $0xa1
  /* The monitor's gates: #GP (DPL 0), INT3 and INT 0x30 (DPL 3, reachable from CPL 3). */
  mov $13, %eax
  mov $vm_gp_entry, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  mov $3, %eax
  mov $vm_bp_entry, %ebx
  mov $GATE_TRAP32_DPL3, %ecx
  call exc_set_gate
  mov $0x30, %eax
  mov $vm_int30_entry, %ebx
  mov $GATE_INTR32_DPL3, %ecx
  call exc_set_gate
  /* The 8086 code goes below 1 MiB. */
  mov $low_start, %esi
  mov $LOW_BASE, %edi
  mov $(low_end - low_start), %ecx
  rep movsb

  /* First run: IOPL 0, IF 1. */
  mov $0x20202, %eax
  mov $RM(vm_a), %ebx
  call enter_vm86
  mov %ds, %ax
  movzwl %ax, %eax
  CHECK_EQ $DATA_SEL, "vm86: back in protected mode (ds)"
  mov R(0), %eax
  CHECK_EQ $0x5555, "vm86: 16-bit arithmetic"
  mov R(1), %eax
  CHECK_EQ $0x0600, "vm86: far call loads cs = 0x0600"
  mov R(2), %eax
  CHECK_EQ $0x005a, "vm86: out/in to a port the bitmap allows"
  mov TRAP(0, 0), %eax
  CHECK_EQ $13, "vm86: cli at iopl 0 is #gp"
  mov TRAP(0, 1), %eax
  CHECK_EQ $0, "vm86: #gp error code"
  mov TRAP(0, 2), %eax
  CHECK_EQ $RM(a_cli), "vm86: #gp saved eip"
  mov TRAP(0, 3), %eax
  CHECK_EQ $LOW_SEG, "vm86: #gp saved cs"
  mov TRAP(0, 4), %eax
  and $EFLAGS_VM_IOPL_IF, %eax
  CHECK_EQ $0x20200, "vm86: #gp saved eflags (vm, iopl, if)"
  mov TRAP(0, 5), %eax
  CHECK_EQ $VM_SP, "vm86: #gp saved esp"
  mov TRAP(0, 6), %eax
  CHECK_EQ $LOW_SEG, "vm86: #gp saved ss"
  mov TRAP(0, 7), %eax
  CHECK_EQ $ES_SEG, "vm86: #gp saved es"
  mov TRAP(0, 8), %eax
  CHECK_EQ $LOW_SEG, "vm86: #gp saved ds"
  mov TRAP(0, 10), %eax
  CHECK_EQ $LOW_SEG, "vm86: #gp saved gs"
  mov TRAP(0, 11), %eax
  CHECK_EQ $0, "vm86: ds is null in the handler"
  mov TRAP(1, 0), %eax
  CHECK_EQ $13, "vm86: int 0x21 at iopl 0 is #gp"
  mov TRAP(1, 2), %eax
  CHECK_EQ $RM(a_int21), "vm86: int 0x21 #gp saved eip"
  mov R(3), %eax
  CHECK_EQ $0x2142, "vm86: int 0x21 emulated by the monitor"
  mov TRAP(2, 0), %eax
  CHECK_EQ $13, "vm86: in from a denied port is #gp"
  mov TRAP(2, 2), %eax
  CHECK_EQ $RM(a_in), "vm86: denied in #gp saved eip"
  mov R(4), %eax
  CHECK_EQ $0x0099, "vm86: denied in emulated by the monitor"
  mov TRAP(3, 0), %eax
  CHECK_EQ $3, "vm86: int3 goes to its dpl-3 gate"
  mov TRAP(3, 2), %eax
  CHECK_EQ $RM(a_int3) + 1, "vm86: int3 saved eip"
  mov TRAP(4, 0), %eax
  CHECK_EQ $13, "vm86: int 0x30 at iopl 0 is #gp"
  mov TRAP(4, 2), %eax
  CHECK_EQ $RM(a_int30), "vm86: int 0x30 #gp saved eip"

  /* Second run: IOPL 3, IF 1. */
  mov $0x23202, %eax
  mov $RM(vm_b), %ebx
  call enter_vm86
  mov R(5), %eax
  and $0x3200, %eax
  CHECK_EQ $0x3000, "vm86: cli and pushf run at iopl 3 (iopl 3, if 0)"
  mov TRAP(5, 0), %eax
  CHECK_EQ $13, "vm86: denied in at iopl 3 is still #gp"
  mov TRAP(5, 2), %eax
  CHECK_EQ $RM(b_in), "vm86: iopl 3 denied in saved eip"
  mov TRAP(6, 0), %eax
  CHECK_EQ $0x30, "vm86: int 0x30 at iopl 3 goes to the pm handler"
  mov TRAP(6, 2), %eax
  CHECK_EQ $RM(b_int30) + 2, "vm86: int 0x30 saved eip"
  mov TRAP(6, 4), %eax
  and $EFLAGS_VM_IOPL_IF, %eax
  CHECK_EQ $EFLAGS_VM_IOPL_IF, "vm86: int 0x30 saved eflags (vm, iopl, if)"
  mov TRAP(6, 9), %eax
  CHECK_EQ $LOW_SEG, "vm86: int 0x30 saved fs"
  mov vm_trap_count, %eax
  CHECK_EQ $7, "vm86: traps taken"
  CHECKS_DONE "vm86"

/* Runs 8086 code: EAX = its EFLAGS image (VM set), EBX = its IP. Returns, every register as
 * before, once the code's INT 0x30 reached the monitor. */
enter_vm86:
  pusha
  mov %esp, vm_saved_esp
  push $LOW_SEG  /* GS */
  push $LOW_SEG  /* FS */
  push $LOW_SEG  /* DS */
  push $ES_SEG   /* ES */
  push $LOW_SEG  /* SS */
  push $VM_SP    /* ESP */
  push %eax      /* EFLAGS */
  push $LOW_SEG  /* CS */
  push %ebx      /* EIP */
  iret

vm_gp_entry:  /* the CPU pushed an error code */
  push $13
  jmp vm_trap
vm_bp_entry:
  push $0
  push $3
  jmp vm_trap
vm_int30_entry:
  push $0
  push $0x30
/* Stack: vector, error code, then the frame from VM86 (EIP, CS, EFLAGS, ESP, SS, ES, DS, FS,
 * GS); after PUSHA these sit at 32(%esp) onwards, the VM86 code's EAX at 28(%esp). */
vm_trap:
  mov %ds, %ss:vm_handler_ds
  pusha
  mov $DATA_SEL, %eax
  mov %ax, %ds
  mov %ax, %es
  cld
  mov vm_trap_count, %eax
  cmp $MAX_TRAPS, %eax
  jae vm_fail
  imul $(4 * TRAP_WORDS), %eax, %edi
  add $vm_traps, %edi
  lea 32(%esp), %esi
  mov $11, %ecx
  rep movsl
  movzwl vm_handler_ds, %eax
  stosl
  incl vm_trap_count
  mov 32(%esp), %eax
  cmp $0x30, %eax
  je vm_exit
  cmp $3, %eax
  je vm_resume
  /* #GP: emulate the instruction at CS * 16 + IP. */
  movzwl 44(%esp), %esi
  shl $4, %esi
  add 40(%esp), %esi
  movzbl (%esi), %eax
  cmp $0xfa, %eax  /* cli */
  je 1f
  cmp $0xec, %eax  /* in al, dx */
  je 2f
  cmp $0xcd, %eax  /* int n */
  jne vm_fail
  movzbl 1(%esi), %eax
  cmp $0x30, %eax
  je vm_exit
  shl $8, %eax
  or $0x42, %eax
  mov %ax, 28(%esp)  /* AX = n:42 */
  addl $2, 40(%esp)
  jmp vm_resume
1:
  incl 40(%esp)
  jmp vm_resume
2:
  movb $0x99, 28(%esp)  /* AL */
  incl 40(%esp)
vm_resume:
  popa
  add $8, %esp
  iret
vm_exit:
  mov $DATA_SEL, %eax
  mov %ax, %fs
  mov %ax, %gs
  mov vm_saved_esp, %esp
  popa
  ret
vm_fail:
  mov $vm_msg_fail, %esi
  call puts
  mov 32(%esp), %eax
  call print_hex32
  mov 40(%esp), %eax
  call print_hex32
  mov 44(%esp), %eax
  call print_hex32
  mov 36(%esp), %eax
  call print_hex32
  call newline
  EXIT(1)

.section .rodata
vm_msg_fail: .asciz "FAIL unexpected trap from vm86: vector, eip, cs, error "

EXCEPTION_SUPPORT

.data
gdt:
  GDT_FLAT_ENTRIES
  SEG_DESC 0, TSS_LIMIT, 0x89, 0x0  /* 0x18: 32-bit TSS, base filled in at run time */
GDT_END

  .p2align 2
vm_saved_esp: .long 0
vm_handler_ds: .long 0
vm_trap_count: .long 0
vm_traps: .skip 4 * TRAP_WORDS * MAX_TRAPS

  .p2align 4
vm_tss:
  .long 0                 /* previous task link */
  .long vm_kstack_top     /* ESP0 */
  .long DATA_SEL          /* SS0 */
  .skip 0x66 - 12
  .word 104               /* I/O map base */
  .fill 0x3f8 / 8, 1, 0xff
  .byte 0x7f              /* ports 0x3f8-0x3ff: only 0x3ff allowed */
  .fill IOMAP_SIZE - 0x3f8 / 8 - 1, 1, 0xff
  .byte 0xff              /* the byte after the map (Intel SDM Vol. 1 §19.5.2) */

.bss
  .p2align 4
  .skip 4096
vm_kstack_top:

/* ---------------------------------------------------------------------------------------------
 * 8086 code, run at LOW_BASE in virtual-8086 mode. Labels are used through RM().
 * ------------------------------------------------------------------------------------------- */
.data
  .p2align 4
low_start:
  .code16
vm_a:
  mov $0x1234, %ax
  add $0x4321, %ax
  mov %ax, RESULT(0)
  lcall $0x0600, $(RM(far_func) + 0x1000)  /* the same linear address */
  mov %bx, RESULT(1)
  mov $0x3ff, %dx
  mov $0x5a, %al
  out %al, (%dx)
  xor %al, %al
  in (%dx), %al
  xor %ah, %ah
  mov %ax, RESULT(2)
a_cli:
  cli
  xor %ax, %ax
a_int21:
  int $0x21
  mov %ax, RESULT(3)
  mov $0x3fe, %dx
  xor %ax, %ax
a_in:
  in (%dx), %al
  mov %ax, RESULT(4)
a_int3:
  int3
a_int30:
  int $0x30
  hlt

vm_b:
  cli
  pushf
  pop %ax
  mov %ax, RESULT(5)
  sti
  mov $0x3fe, %dx
b_in:
  in (%dx), %al
b_int30:
  int $0x30
  hlt

far_func:
  mov %cs, %bx
  lret

  .p2align 2
results:
  .fill 8, 4, 0
low_end:
  .code32
