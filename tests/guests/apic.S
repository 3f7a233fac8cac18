/*
 * apic.S - the local APIC and the I/O APIC as the Intel SDM (Vol. 3A ch. 11) and the 82093AA
 * datasheet describe them: register reset values, self-IPIs with TPR masking, priority order and
 * EOI, an interrupt arriving after STI;HLT, the APIC timer in one-shot, periodic and TSC-deadline
 * modes, ESR, the I/O APIC routing the PIT's IRQ0 (pin 2) while the 8259 is masked, and the
 * HPET's comparators (IA-PC HPET 1.0a): a one-shot routed to I/O APIC pin 20 and timer 0 periodic
 * through the legacy replacement route (ISA IRQ0, pin 2); NMIs by self-IPI, taken with IF=0 and
 * blocked until the handler's IRET (SDM Vol. 3A §6.7.1). Unpaged.
 */
#include "guest.inc"

#define APIC 0xfee00000
#define APIC_ID (APIC + 0x20)
#define APIC_VERSION (APIC + 0x30)
#define APIC_TPR (APIC + 0x80)
#define APIC_PPR (APIC + 0xa0)
#define APIC_EOI (APIC + 0xb0)
#define APIC_SPIV (APIC + 0xf0)
#define APIC_ISR (APIC + 0x100)
#define APIC_IRR (APIC + 0x200)
#define APIC_ESR (APIC + 0x280)
#define APIC_ICR (APIC + 0x300)
#define APIC_ICR2 (APIC + 0x310)
#define APIC_LVT_TIMER (APIC + 0x320)
#define APIC_LVT_LINT0 (APIC + 0x350)
#define APIC_LVT_ERROR (APIC + 0x370)
#define APIC_TMICT (APIC + 0x380)
#define APIC_TMCCT (APIC + 0x390)
#define APIC_TDCR (APIC + 0x3e0)
#define IOAPIC 0xfec00000
#define HPET 0xfed00000
#define MASKED 0x10000
#define PERIODIC (1 << 17)
#define TSC_DEADLINE (2 << 17)
#define ICR_SELF (1 << 18)
#define ICR_ALL_BUT_SELF (3 << 18)

MULTIBOOT_HEADER
EXCEPTION_SUPPORT

/* A handler for `vec`: appends the vector to irq_log, counts it, EOI, IRET. */
.macro IRQ_HANDLER vec
irq_\vec:
  push %eax
  mov irq_log_len, %eax
  and $15, %eax
  movb $\vec, irq_log(%eax)
  incl irq_log_len
  movl $0, APIC_EOI
  pop %eax
  iret
.endm

/* Points IDT vector `vec` at irq_<vec>. */
.macro IRQ_GATE vec
  mov $\vec, %eax
  mov $irq_\vec, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
.endm

/* Waits with STI;HLT until irq_log_len reaches `n` (the run's timeout ends a hang). */
.macro WAIT_IRQS n
8770:
  cmpl $\n, irq_log_len
  jae 8771f
  sti
  hlt
  cli
  jmp 8770b
8771:
.endm

GUEST_ENTRY
  call exc_init
  IRQ_GATE 0x45
  IRQ_GATE 0x61
  mov $0x52, %eax
  mov $irq_0x52, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  IRQ_GATE 0x92
  IRQ_GATE 0xe0
  IRQ_GATE 0xe3
  IRQ_GATE 0xee
  IRQ_GATE 0xef
  IRQ_GATE 0x68
  IRQ_GATE 0x69

  /* The 8259 pair stays quiet: mask every line (OCW1). */
  mov $0xff, %al
  outb %al, $0x21
  outb %al, $0xa1

  /* Reset values (SDM Table 11-1, §11.4.7.1). */
  mov $1, %eax
  cpuid
  mov %edx, %eax
  and $(1 << 9), %eax
  CHECK_EQ $(1 << 9), "cpuid.1 edx.apic"
  mov APIC_ID, %eax
  CHECK_EQ $0, "apic id"
  mov APIC_VERSION, %eax
  and $0xff, %eax
  CHECK_EQ $0x14, "apic version"
  mov APIC_SPIV, %eax
  CHECK_EQ $0xff, "spiv at reset"
  mov APIC_LVT_TIMER, %eax
  CHECK_EQ $MASKED, "lvt timer masked at reset"
  mov APIC_LVT_LINT0, %eax
  CHECK_EQ $0x700, "lint0 virtual wire"
  movl $0x1ff, APIC_SPIV
  movl $(0x700 | MASKED), APIC_LVT_LINT0

  /* INIT and SIPI to all excluding self: nobody else, the delivery status never stays busy. */
  movl $0, APIC_ICR2
  movl $(ICR_ALL_BUT_SELF | 0x4500), APIC_ICR
  mov APIC_ICR, %eax
  and $(1 << 12), %eax
  CHECK_EQ $0, "icr idle after init to all-but-self"
  movl $(ICR_ALL_BUT_SELF | 0x0600), APIC_ICR
  mov APIC_ICR, %eax
  and $(1 << 12), %eax
  CHECK_EQ $0, "icr idle after sipi to all-but-self"

  /* NMI to self: taken with IF=0. The handler sends a second one, which waits for its IRET. */
  mov $2, %eax
  mov $nmi_handler, %ebx
  mov $GATE_INTR32, %ecx
  mov $CODE_SEL, %edx
  call exc_set_gate
  movl $(ICR_SELF | 0x400), APIC_ICR
  nop
  nop
  mov nmi_count, %eax
  CHECK_EQ $2, "nmi taken with if=0, the second after the first's iret"
  mov nmi_nested, %eax
  CHECK_EQ $0, "no nmi inside the nmi handler"

  /* A self-IPI below the TPR's class waits in IRR; lowering the TPR delivers it. */
  movl $0x50, APIC_TPR
  movl $(ICR_SELF | 0x45), APIC_ICR
  sti
  nop
  nop
  cli
  mov irq_log_len, %eax
  CHECK_EQ $0, "ipi 0x45 held by tpr 0x50"
  mov APIC_IRR + 0x20, %eax
  CHECK_EQ $(1 << 5), "irr bit 0x45"
  movl $0, APIC_TPR
  sti
  nop
  cli
  mov irq_log_len, %eax
  CHECK_EQ $1, "ipi 0x45 delivered after tpr 0"
  mov APIC_ISR + 0x20, %eax
  CHECK_EQ $0, "isr clear after eoi"

  /* MOV SS holds an interrupt for one more instruction (SDM Vol. 3A §6.8.3): with a 100 us
   * periodic timer firing into a loop of MOV SS / MOV ESP,ESP, the timer interrupts the loop
   * (counted) but never between the two (saved EIP = mov_ss_next). (After STI, MOV SS "may" not
   * extend the shadow, so the loop runs with IF=1 throughout.) */
  movl $0xb, APIC_TDCR
  movl $(0x52 | PERIODIC), APIC_LVT_TIMER
  movl $100000, APIC_TMICT
  mov %ss, %ax
  mov $200000, %ecx
  sti
1:
  mov %ax, %ss
mov_ss_next:
  mov %esp, %esp
  dec %ecx
  jnz 1b
  cli
  movl $MASKED, APIC_LVT_TIMER
  movl $0, APIC_TMICT
  xor %eax, %eax
  cmpl $0, ticks_0x52
  setne %al
  CHECK_EQ $1, "timer interrupts taken in the mov ss loop"
  mov shadow_broken, %eax
  CHECK_EQ $0, "no interrupt between mov ss and the next instruction"

  /* Two pending vectors: the higher class first (§11.8.3). */
  movl $0, irq_log_len
  movl $(ICR_SELF | 0x61), APIC_ICR
  movl $(ICR_SELF | 0x92), APIC_ICR
  sti
  nop
  cli
  movzwl irq_log, %eax
  CHECK_EQ $0x6192, "0x92 before 0x61"

  /* A vector below 16 is illegal: ESR bit 5 (send illegal vector), latched by a write, and the
   * LVT error interrupt. */
  movl $0, irq_log_len
  movl $0xe3, APIC_LVT_ERROR
  movl $0, APIC_ESR
  movl $(ICR_SELF | 0x05), APIC_ICR
  movl $0, APIC_ESR
  mov APIC_ESR, %eax
  CHECK_EQ $(1 << 5), "esr send illegal vector"
  sti
  nop
  cli
  movzbl irq_log, %eax
  CHECK_EQ $0xe3, "lvt error interrupt"
  movl $MASKED, APIC_LVT_ERROR

  /* One-shot timer: the current count falls; the interrupt wakes HLT (after STI's shadow). */
  movl $0, irq_log_len
  movl $0xb, APIC_TDCR           /* divide by 1 */
  movl $0xee, APIC_LVT_TIMER
  movl $2000000, APIC_TMICT      /* 2 ms at the model's 1 GHz */
  mov APIC_TMCCT, %eax
  cmp $2000000, %eax
  setb %al
  movzbl %al, %eax
  CHECK_EQ $1, "one-shot current count below initial"
  WAIT_IRQS 1
  movzbl irq_log, %eax
  CHECK_EQ $0xee, "one-shot timer interrupt"
  mov APIC_TMCCT, %eax
  CHECK_EQ $0, "one-shot current count 0 after expiry"

  /* Periodic: three interrupts from one initial count, then masked. */
  movl $0, irq_log_len
  movl $(0xef | PERIODIC), APIC_LVT_TIMER
  movl $1000000, APIC_TMICT
  WAIT_IRQS 3
  movl $(0xef | PERIODIC | MASKED), APIC_LVT_TIMER
  mov irq_log, %eax
  and $0xffffff, %eax
  CHECK_EQ $0xefefef, "three periodic interrupts"
  movl $0, APIC_TMICT

  /* TSC-deadline: IA32_TSC_DEADLINE = now + 20M cycles (several ms) fires once, reads 0 after. */
  movl $0, irq_log_len
  movl $(0xe0 | TSC_DEADLINE), APIC_LVT_TIMER
  rdtsc
  add $20000000, %eax
  adc $0, %edx
  mov $0x6e0, %ecx
  wrmsr
  rdmsr
  or %edx, %eax
  setnz %al
  movzbl %al, %eax
  CHECK_EQ $1, "tsc deadline armed"
  WAIT_IRQS 1
  movzbl irq_log, %eax
  CHECK_EQ $0xe0, "tsc deadline interrupt"
  mov $0x6e0, %ecx
  rdmsr
  or %edx, %eax
  CHECK_EQ $0, "tsc deadline 0 after firing"
  movl $MASKED, APIC_LVT_TIMER

  /* The I/O APIC: version, then the PIT's IRQ0 on pin 2 to vector 0x68 (edge, physical 0). */
  movl $1, IOAPIC
  mov IOAPIC + 0x10, %eax
  CHECK_EQ $0x00170011, "ioapic version"
  movl $0x14, IOAPIC             /* pin 2, low dword */
  mov IOAPIC + 0x10, %eax
  CHECK_EQ $MASKED, "ioapic pin 2 masked at reset"
  movl $0x68, IOAPIC + 0x10
  movl $0x15, IOAPIC
  movl $0, IOAPIC + 0x10
  movl $0, irq_log_len
  mov $0x34, %al                 /* PIT channel 0, LSB then MSB, mode 2 */
  outb %al, $0x43
  mov $(1193 & 0xff), %al        /* 1 ms */
  outb %al, $0x40
  mov $(1193 >> 8), %al
  outb %al, $0x40
  WAIT_IRQS 3
  mov irq_log, %eax
  and $0xffffff, %eax
  CHECK_EQ $0x686868, "pit irq0 through ioapic pin 2"
  mov $0x30, %al                 /* channel 0 mode 0, no count: the PIT stops */
  outb %al, $0x43
  /* A tick raised before the stop may still be on its way (a loaded host runs the guest late):
   * pin 2 masked, and an interrupt window for one already accepted, before the HPET's checks. */
  movl $0x14, IOAPIC
  movl $(0x68 | MASKED), IOAPIC + 0x10
  sti
  nop
  cli

  /* HPET: capabilities, then timer 2 one-shot 1 ms ahead, routed to I/O APIC pin 20 (0x69). */
  mov HPET, %eax
  CHECK_EQ $0x8086a201, "hpet capabilities"
  movl $0x38, IOAPIC             /* pin 20, low dword: vector 0x69, edge, physical 0 */
  movl $0x69, IOAPIC + 0x10
  movl $0x39, IOAPIC
  movl $0, IOAPIC + 0x10
  movl $1, HPET + 0x10           /* ENABLE_CNF */
  movl $0, irq_log_len
  movl $((20 << 9) | (1 << 2)), HPET + 0x140
  /* 100 ms ahead (14.318 MHz): a comparator already passed when written would never fire, and a
   * loaded host may stop the guest for milliseconds between the read and the write. */
  mov HPET + 0xf0, %eax
  mov HPET + 0xf4, %edx
  add $1431818, %eax
  adc $0, %edx
  mov %eax, HPET + 0x148
  mov %edx, HPET + 0x14c
  WAIT_IRQS 1
  movzbl irq_log, %eax
  CHECK_EQ $0x69, "hpet one-shot through ioapic pin 20"
  movl $0, HPET + 0x140

  /* Timer 0 periodic (14 ms, the first 100 ms ahead) through the legacy replacement route: ISA
   * IRQ0, pin 2 (0x68, unmasked again). */
  movl $0x14, IOAPIC
  movl $0x68, IOAPIC + 0x10
  movl $0, irq_log_len
  movl $3, HPET + 0x10           /* ENABLE_CNF | LEG_RT_CNF */
  /* As Linux programs it: 32-bit mode, VAL_SET, the comparator, then the period. */
  movl $((1 << 2) | (1 << 3) | (1 << 6) | (1 << 8)), HPET + 0x100
  mov HPET + 0xf0, %eax
  add $1431818, %eax
  mov %eax, HPET + 0x108         /* VAL_SET: the comparator */
  movl $200000, HPET + 0x108     /* then the period */
  WAIT_IRQS 3
  movl $0, HPET + 0x100
  movl $0, HPET + 0x10
  mov irq_log, %eax
  and $0xffffff, %eax
  CHECK_EQ $0x686868, "hpet periodic legacy route to irq0"
  movl $0x14, IOAPIC
  movl $(0x68 | MASKED), IOAPIC + 0x10

  CHECKS_DONE "apic"

/* The NMI handler: counts; the first sends another NMI and spins, which must not nest. */
nmi_handler:
  push %eax
  push %ecx
  incl nmi_depth
  cmpl $1, nmi_depth
  je 1f
  incl nmi_nested
1:
  incl nmi_count
  cmpl $1, nmi_count
  jne 2f
  movl $(ICR_SELF | 0x400), APIC_ICR
  mov $100, %ecx
3:
  mov APIC_ID, %eax              /* an MMIO exit: a chance to take the NMI, which must wait */
  loop 3b
2:
  decl nmi_depth
  pop %ecx
  pop %eax
  iret

/* Vector 0x52: counts, and whether it interrupted right after a MOV SS. */
irq_0x52:
  incl ticks_0x52
  cmpl $mov_ss_next, (%esp)
  jne 1f
  incl shadow_broken
1:
  movl $0, APIC_EOI
  iret

IRQ_HANDLER 0x45
IRQ_HANDLER 0x61
IRQ_HANDLER 0x92
IRQ_HANDLER 0xe0
IRQ_HANDLER 0xe3
IRQ_HANDLER 0xee
IRQ_HANDLER 0xef
IRQ_HANDLER 0x68
IRQ_HANDLER 0x69

.data
irq_log_len: .long 0
nmi_count: .long 0
ticks_0x52: .long 0
shadow_broken: .long 0
nmi_depth: .long 0
nmi_nested: .long 0
irq_log: .skip 16
