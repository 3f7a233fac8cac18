/* exceptions_cpl0: processor exceptions raised at CPL 0 and delivered through an IDT of DPL-0
 * interrupt gates (Intel SDM Vol. 3A §6.15 "Exception and Interrupt Reference"; the instruction
 * pages of Vol. 2 for which operand raises what). For each case the handler (EXCEPTION_SUPPORT
 * in guest.inc) records the vector, the error code (vectors 8, 10-14, 17 push one), the saved
 * EIP and CS, and resumes after the faulting instruction; the guest then prints one line per
 * check: "ok <what>" or "FAIL <what> got 0x.. want 0x..". Faults save the EIP of the faulting
 * instruction, traps the EIP of the next one. Exits with 0 when every check passed (status 1).
 *
 * Covered: #DE (DIV by zero, IDIV 0x80000000 / -1, 8-bit quotient overflow, AAM 0), #DB
 * (single step after POPF sets TF: a trap after the instruction that follows POPF, DR6.BS),
 * #UD (UD2, LOCK NOP, LOCK with a register destination, MOV to CS), #NP (not-present data
 * segment into DS, far JMP to a not-present code segment), #SS (not-present segment into SS, an
 * SS-relative access beyond the SS limit: #SS(0)), #GP (selector beyond the GDT
 * limit, RPL bits not in the error code, execute-only code / system segment into DS, writes
 * through a read-only data segment, a code segment and a null DS, DS limit and expand-down
 * limit violations, SS loads of read-only, null, RPL!=CPL and DPL!=CPL selectors, far JMP/CALL
 * to a data segment or null selector, MOV to CR4 with a reserved bit, CR0 with NW=1 CD=0), #DF
 * (#GP whose IDT gate is not present: contributory during contributory).
 * INT n/INT3/INTO/INT1/BOUND, UD1, LEA and CMPXCHG8B with register operands and a #UD through
 * a not-present gate are in exceptions_int.S, x87/SSE exceptions in exceptions_fpu.S (kvm-pvm
 * cannot emulate those).
 *
 * The handler returns with POPF+RET (exc_no_iret) instead of IRET, so kvm-pvm, which cannot
 * emulate IRET, can run this guest too. */
#include "guest.inc"

#define RO_DATA_SEL 0x30     /* read-only data, DPL 0 */
#define NP_DATA_SEL 0x38     /* writable data, not present */
#define XO_CODE_SEL 0x40     /* execute-only code */
#define SMALL_DATA_SEL 0x48  /* data, base 0, limit 0xfff bytes */
#define EXPDOWN_SEL 0x50     /* expand-down data, limit 0xfff, B=1: offsets 0x1000-0xffffffff */
#define NP_CODE_SEL 0x58     /* code, not present */
#define SS16M_SEL 0x60       /* writable data, base 0, limit 16 MiB - 1 */
#define BEYOND_SEL 0x100     /* beyond the GDT limit */
#define DPL3_DATA_SEL 0x20   /* GDT_STANDARD_ENTRIES' DPL-3 data segment */

/* Reloads DS and ES with the flat data selector (after a test that may have changed them). */
.macro FLAT_DS_ES
  mov $DATA_SEL, %ax
  mov %ax, %ds
  mov %ax, %es
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  LOAD_GDT
  call exc_init
  movl $1, exc_no_iret

  call test_de
  call test_ud
  call test_np
  call test_ss
  call test_gp_segments
  call test_gp_memory
  call test_gp_far
  call test_gp_cr
  call test_df
  call test_gp_rep
  call test_db                      /* last: a late single-step trap would end the run */

  CHECKS_DONE "exceptions_cpl0"

/* #DE: DIV/IDIV whose quotient does not fit, division by 0, AAM 0 (Vol. 2A DIV, IDIV, AAM).
 * A fault: EAX and EDX keep their values. */
test_de:
  mov $1, %eax
  xor %edx, %edx
  xor %ecx, %ecx
  EXC_ARM 1f
0:
  div %ecx
1:
  EXC_CHECK "#DE div by zero", 0, NOERR, 0b
  CHECK_EQ $1, "#DE div by zero eax unchanged"

  mov $0x80000000, %eax
  cdq
  mov $-1, %ecx
  EXC_ARM 1f
0:
  idiv %ecx
1:
  EXC_CHECK "#DE idiv 0x80000000/-1", 0, NOERR, 0b
  push %eax
  mov %edx, %eax
  CHECK_EQ $0xffffffff, "#DE idiv edx unchanged"
  pop %eax
  CHECK_EQ $0x80000000, "#DE idiv eax unchanged"

  mov $0x1000, %eax
  mov $0x10, %cl
  EXC_ARM 1f
0:
  div %cl                           /* 0x1000 / 0x10 = 0x100: does not fit in AL */
1:
  EXC_CHECK "#DE div 8-bit overflow", 0, NOERR, 0b
  CHECK_EQ $0x1000, "#DE div 8-bit ax unchanged"

  mov $0x3f, %eax
  EXC_ARM 1f
0:
  aam $0
1:
  EXC_CHECK "#DE aam 0", 0, NOERR, 0b
  ret

/* #DB single step (Vol. 3A §17.3.1.4): POPF setting TF traps only after the instruction that
 * follows it; the saved EIP is the next instruction and DR6.BS (bit 14) is set. */
test_db:
  xor %eax, %eax
  mov %eax, %dr6
  EXC_ARM 1f
  pushf
  orl $0x100, (%esp)
  popf
  nop                               /* the trap comes after this instruction */
0:
  nop
1:
  EXC_CHECK "#DB single step", 1, NOERR, 0b
  mov %dr6, %eax
  and $0x4000, %eax
  CHECK_EQ $0x4000, "#DB single step dr6.bs"
  pushf
  pop %eax
  and $0x100, %eax
  CHECK_EQ $0, "#DB tf clear after return"
  ret

/* #UD (Vol. 2: UD; LOCK: "#UD if the LOCK prefix is used with an instruction not listed" or
 * when the destination is not memory; MOV: "#UD if attempt is made to load the CS register";
 * LEA and CMPXCHG8B: "#UD if the source/destination operand is a register"). */
test_ud:
  EXC_ARM 1f
0:
  ud2
1:
  EXC_CHECK "#UD ud2", 6, NOERR, 0b

  EXC_ARM 1f
0:
  .byte 0xf0, 0x90                  /* lock nop */
1:
  EXC_CHECK "#UD lock nop", 6, NOERR, 0b

  mov $5, %ebx
  EXC_ARM 1f
0:
  .byte 0xf0, 0x01, 0xc3            /* lock add %eax, %ebx */
1:
  EXC_CHECK "#UD lock add to a register", 6, NOERR, 0b
  mov %ebx, %eax
  CHECK_EQ $5, "#UD lock add ebx unchanged"

  EXC_ARM 1f
0:
  .byte 0x8e, 0xc8                  /* mov %eax, %cs */
1:
  EXC_CHECK "#UD mov to cs", 6, NOERR, 0b

  ret

/* #NP (Vol. 2A MOV, JMP; Vol. 3A §6.13: the error code of a fault during delivery through the
 * IDT has IDT = 1 (bit 1) and EXT = 1 (bit 0) when the event was not INT n). */
test_np:
  mov $NP_DATA_SEL, %ax
  EXC_ARM 1f
0:
  mov %ax, %ds
1:
  EXC_CHECK "#NP not-present data into ds", 11, NP_DATA_SEL, 0b
  mov %ds, %eax
  CHECK_EQ $DATA_SEL, "#NP ds unchanged"

  EXC_ARM 1f
0:
  ljmp $NP_CODE_SEL, $2f
2:
  nop
1:
  EXC_CHECK "#NP far jmp to not-present code", 11, NP_CODE_SEL, 0b
  ret

/* #SS (Vol. 2A MOV: "#SS(selector) if the SS register is being loaded and the segment pointed
 * to is marked not present"; Vol. 3A §6.15: #SS(0) for a limit violation by an SS-relative
 * operand). */
test_ss:
  mov $NP_DATA_SEL, %ax
  EXC_ARM 1f
0:
  mov %ax, %ss
1:
  EXC_CHECK "#SS not-present segment into ss", 12, NP_DATA_SEL, 0b

  mov $SS16M_SEL, %ax               /* limit 0xffffff; the stack itself is below 2 MiB */
  mov %ax, %ss
  mov $0x2000000, %ebp
  EXC_ARM 1f
0:
  mov (%ebp), %eax                  /* EBP-based: SS-relative, 32 MiB > the limit */
1:
  mov $DATA_SEL, %ax
  mov %ax, %ss
  EXC_CHECK "#SS ss limit violation", 12, 0, 0b

  mov $SS16M_SEL, %ax
  mov %ax, %ss
  xor %ebp, %ebp
  EXC_ARM 1f
0:
  mov 0xfffffe(%ebp), %eax          /* EBP = 0: bytes 0xfffffe..0x1000001 cross the limit */
1:
  mov $DATA_SEL, %ax
  mov %ax, %ss
  EXC_CHECK "#SS dword across ss limit", 12, 0, 0b
  ret

/* #GP from segment register loads (Vol. 2A MOV/POP Sreg: "#GP(selector) if segment selector
 * index is outside descriptor table limits ... if the SS register is being loaded and the
 * segment selector's RPL and the segment descriptor's DPL are not equal to the CPL, or the
 * segment is a non-writable data segment ... if the DS, ES, FS, or GS register is being loaded
 * and the segment pointed to is not a data or readable code segment"; "#GP(0) if attempt to
 * load SS register with NULL segment selector"). The error code is the selector with bits 1:0
 * (IDT, EXT) clear (Vol. 3A §6.13). */
.macro GP_LOAD seg, sel, name, err
  mov $(\sel), %ax
  EXC_ARM 1f
0:
  mov %ax, \seg
1:
  FLAT_DS_ES
  mov $DATA_SEL, %ax
  mov %ax, %ss
  EXC_CHECK "\name", 13, \err, 0b
.endm

test_gp_segments:
  GP_LOAD %ds, BEYOND_SEL, "#GP ds selector beyond gdt limit", BEYOND_SEL
  GP_LOAD %es, BEYOND_SEL+3, "#GP es selector with rpl 3 beyond gdt limit", BEYOND_SEL
  GP_LOAD %fs, XO_CODE_SEL, "#GP execute-only code into fs", XO_CODE_SEL
  GP_LOAD %gs, TSS_SEL, "#GP tss descriptor into gs", TSS_SEL
  GP_LOAD %ss, RO_DATA_SEL, "#GP read-only data into ss", RO_DATA_SEL
  GP_LOAD %ss, CODE_SEL, "#GP code segment into ss", CODE_SEL
  GP_LOAD %ss, 0, "#GP null selector into ss", 0
  GP_LOAD %ss, DATA_SEL+3, "#GP ss rpl 3 at cpl 0", DATA_SEL
  GP_LOAD %ss, DPL3_DATA_SEL, "#GP ss dpl 3 at cpl 0", DPL3_DATA_SEL

  /* Loads that are allowed: readable code into DS, read-only data into ES, null into DS. */
  EXC_ARM 1f
  mov $CODE_SEL, %ax
  mov %ax, %ds
  mov probe_value, %ebx             /* reading through a readable code segment is allowed */
  mov $RO_DATA_SEL, %ax
  mov %ax, %es
  xor %eax, %eax
  mov %ax, %fs
1:
  FLAT_DS_ES
  EXC_NONE "readable code into ds, read-only data into es, null into fs"
  mov %ebx, %eax
  CHECK_EQ $0x600dcafe, "read through a code segment in ds"
  ret

/* #GP(0) from memory accesses (Vol. 3A §6.15 Interrupt 13: "exceeding the segment limit when
 * accessing the CS, DS, ES, FS, or GS segments; writing to a code segment or a read-only data
 * segment; loading ... or accessing memory through a null DS, ES, FS or GS"). */
test_gp_memory:
  EXC_ARM 1f                        /* before DS becomes unwritable */
  mov $CODE_SEL, %ax
  mov %ax, %ds
0:
  movl $1, probe_value
1:
  FLAT_DS_ES
  EXC_CHECK "#GP write through a code segment in ds", 13, 0, 0b

  EXC_ARM 1f
0:
  movl $2, %cs:probe_value
1:
  EXC_CHECK "#GP write with a cs override", 13, 0, 0b
  mov probe_value, %eax
  CHECK_EQ $0x600dcafe, "#GP code-segment writes left memory unchanged"

  mov $RO_DATA_SEL, %ax
  mov %ax, %es
  EXC_ARM 1f
0:
  movl $3, %es:probe_value
1:
  FLAT_DS_ES
  EXC_CHECK "#GP write through read-only es", 13, 0, 0b

  EXC_ARM 1f
  xor %eax, %eax
  mov %ax, %ds
0:
  mov probe_value, %ebx
1:
  FLAT_DS_ES
  EXC_CHECK "#GP read through null ds", 13, 0, 0b

  mov $SMALL_DATA_SEL, %ax
  mov %ax, %fs
  EXC_ARM 1f
  mov %fs:0xffc, %ebx               /* the last dword inside the limit */
1:
  EXC_NONE "fs dword at the limit"
  EXC_ARM 1f
0:
  mov %fs:0x1000, %bl
1:
  EXC_CHECK "#GP fs byte beyond limit", 13, 0, 0b
  EXC_ARM 1f
0:
  mov %fs:0xffd, %ebx
1:
  EXC_CHECK "#GP fs dword across limit", 13, 0, 0b

  mov $EXPDOWN_SEL, %ax
  mov %ax, %gs
  EXC_ARM 1f
0:
  mov %gs:0x800, %ebx
1:
  EXC_CHECK "#GP expand-down gs below the limit", 13, 0, 0b
  EXC_ARM 1f
  mov %gs:0x1000, %ebx              /* the lowest valid offset */
1:
  EXC_NONE "expand-down gs at limit + 1"
  xor %eax, %eax
  mov %ax, %fs
  mov %ax, %gs
  ret

/* A REP string instruction faulting in its fourth iteration (Vol. 2B REP: the registers show
 * the state at the faulting iteration, the saved EIP is the instruction, so it can restart). */
test_gp_rep:
  mov $SMALL_DATA_SEL, %ax
  mov %ax, %fs
  mov $0xffd, %esi
  mov $4, %ecx
  EXC_ARM 1f
0:
  rep lodsb %fs:(%esi), %al         /* three bytes fine, the fourth (0x1000) faults */
1:
  EXC_CHECK "#GP rep lodsb across fs limit", 13, 0, 0b
  mov %esi, %eax
  CHECK_EQ $0x1000, "#GP rep lodsb esi at the faulting byte"
  mov %ecx, %eax
  CHECK_EQ $1, "#GP rep lodsb ecx at the faulting byte"
  xor %eax, %eax
  mov %ax, %fs
  ret

/* #GP from far transfers (Vol. 2A JMP/CALL far: "#GP(0) if the segment selector in the
 * destination operand is NULL; #GP(selector) if the segment selector ... is not for a
 * conforming-code segment, nonconforming-code segment, call gate, task gate, or TSS"). */
test_gp_far:
  EXC_ARM 1f
0:
  ljmp $DATA_SEL, $2f
2:
  nop
1:
  EXC_CHECK "#GP far jmp to a data segment", 13, DATA_SEL, 0b

  EXC_ARM 1f
0:
  lcall $DATA_SEL, $2f
2:
  nop
1:
  EXC_CHECK "#GP far call to a data segment", 13, DATA_SEL, 0b

  EXC_ARM 1f
0:
  ljmp $0, $2f
2:
  nop
1:
  EXC_CHECK "#GP far jmp to the null selector", 13, 0, 0b

  EXC_ARM 1f
0:
  ljmp $BEYOND_SEL, $2f
2:
  nop
1:
  EXC_CHECK "#GP far jmp beyond the gdt limit", 13, BEYOND_SEL, 0b
  ret

/* #GP(0) from control-register writes (Vol. 2B MOV CR: "#GP(0) if an attempt is made to write
 * invalid bit combinations in CR0 (such as ... setting the CD flag to 0 when the NW flag is set
 * to 1)"; "if an attempt is made to write a 1 to any reserved bit in CR4"). */
test_gp_cr:
  mov %cr4, %ebx
  mov %ebx, %eax
  or $0x80000000, %eax              /* bit 31: reserved */
  EXC_ARM 1f
0:
  mov %eax, %cr4
1:
  EXC_CHECK "#GP mov cr4 reserved bit 31", 13, 0, 0b
  mov %cr4, %eax
  mov %ebx, %edx
  CHECK "#GP cr4 unchanged"

  mov %cr0, %ebx
  mov %ebx, %eax
  and $~0x40000000, %eax            /* CD = 0 */
  or $0x20000000, %eax              /* NW = 1 */
  EXC_ARM 1f
0:
  mov %eax, %cr0
1:
  EXC_CHECK "#GP mov cr0 nw=1 cd=0", 13, 0, 0b
  mov %cr0, %eax
  mov %ebx, %edx
  CHECK "#GP cr0 unchanged"
  ret

/* #DF (Vol. 3A §6.15 Interrupt 8, Table 6-5): a #GP whose gate is not present raises #NP during
 * delivery; contributory after contributory is a double fault, error code 0. The saved CS:EIP of
 * a #DF are undefined, so they are not checked. */
test_df:
  andb $0x7f, exc_idt + 13 * 8 + 5
  movl $ANY, exc_want_cs
  mov $BEYOND_SEL, %ax
  EXC_ARM 1f
0:
  mov %ax, %ds
1:
  orb $0x80, exc_idt + 13 * 8 + 5
  FLAT_DS_ES
  EXC_CHECK "#DF #GP through not-present gate", 8, 0, ANY
  movl $CODE_SEL, exc_want_cs
  ret

.data
  .p2align 2
probe_value:
  .long 0x600dcafe

  .p2align 3
gdt:
  GDT_STANDARD_ENTRIES
  SEG_DESC 0, 0xfffff, 0x91, 0xc    /* 0x30: read-only data */
  SEG_DESC 0, 0xfffff, 0x13, 0xc    /* 0x38: writable data, not present */
  SEG_DESC 0, 0xfffff, 0x99, 0xc    /* 0x40: execute-only code */
  SEG_DESC 0, 0x00fff, 0x93, 0x4    /* 0x48: data, limit 0xfff bytes */
  SEG_DESC 0, 0x00fff, 0x97, 0x4    /* 0x50: expand-down data, limit 0xfff, B = 1 */
  SEG_DESC 0, 0xfffff, 0x1b, 0xc    /* 0x58: code, not present */
  SEG_DESC 0, 0x00fff, 0x93, 0xc    /* 0x60: data, limit 0xfff pages = 16 MiB - 1 */
  GDT_END

EXCEPTION_SUPPORT
