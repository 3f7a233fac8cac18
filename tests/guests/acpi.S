/*
 * acpi.S - what a guest OS finds of the platform through ACPI (ACPI 6.5 ch. 5): the RSDP by the
 * legacy scan of 0xE0000-0xFFFFF, an RSDT whose tables (FACP, APIC, HPET) all checksum to 0, the
 * FADT's PM timer block with a PM timer that advances at 3.579545 MHz (checked against the HPET's
 * 100 MHz counter), and soft-off: PM1a_CNT = SLP_TYP 0 | SLP_EN ends the run with status 0.
 * No interrupts, unpaged: both engines run it.
 */
#include "guest.inc"

#define HPET 0xfed00000

MULTIBOOT_HEADER

/* EAX = 1 when the `len` bytes at ESI sum to 0 mod 256, else 0. Clobbers ECX, EDX. */
.macro SUMS_TO_ZERO len
  mov \len, %ecx
  xor %edx, %edx
8780:
  add (%esi), %dl
  inc %esi
  loop 8780b
  xor %eax, %eax
  test %dl, %dl
  sete %al
.endm

GUEST_ENTRY
  /* The RSDP: "RSD PTR " on a 16-byte boundary, 20 bytes summing to 0. */
  mov $0xe0000, %ebx
1:
  cmpl $0x20445352, (%ebx)       /* "RSD " */
  jne 2f
  cmpl $0x20525450, 4(%ebx)      /* "PTR " */
  jne 2f
  mov %ebx, %esi
  SUMS_TO_ZERO $20
  test %eax, %eax
  jnz 3f
2:
  add $16, %ebx
  cmp $0x100000, %ebx
  jb 1b
  xor %ebx, %ebx
3:
  xor %eax, %eax
  test %ebx, %ebx
  setnz %al
  CHECK_EQ $1, "rsdp found by the bios-area scan"
  mov 16(%ebx), %ebx             /* RSDT */
  mov %ebx, rsdt
  mov (%ebx), %eax
  CHECK_EQ $0x54445352, "rsdt signature"
  mov %ebx, %esi
  SUMS_TO_ZERO 4(%ebx)
  CHECK_EQ $1, "rsdt checksum"

  /* Every table the RSDT lists checksums to 0; remember the FADT and count the others. */
  mov rsdt, %ebx
  mov 4(%ebx), %edi
  sub $36, %edi
  shr $2, %edi                   /* entries */
  lea 36(%ebx), %ebp
4:
  mov (%ebp), %ebx
  mov %ebx, %esi
  SUMS_TO_ZERO 4(%ebx)
  add %eax, tables_ok
  mov (%ebx), %eax
  cmp $0x50434146, %eax          /* "FACP" */
  jne 5f
  mov %ebx, fadt
5:
  cmp $0x43495041, %eax          /* "APIC" */
  jne 6f
  incl seen_madt
6:
  cmp $0x54455048, %eax          /* "HPET" */
  jne 7f
  incl seen_hpet
7:
  add $4, %ebp
  dec %edi
  jnz 4b
  mov tables_ok, %eax
  CHECK_EQ $3, "fadt madt hpet checksums"
  mov seen_madt, %eax
  CHECK_EQ $1, "madt listed"
  mov seen_hpet, %eax
  CHECK_EQ $1, "hpet table listed"

  /* The PM timer from the FADT, against the HPET's 100 MHz counter over 100 ms. Each end is
   * bracketed (PM, HPET, PM), so slow accesses widen the window instead of skewing the
   * result: the PM ticks expected for the HPET interval (3.579545 MHz) must lie within
   * [p1 - p0b, p1b - p0], give or take 1%. */
  mov fadt, %ebx
  mov 76(%ebx), %eax
  mov %eax, pm_tmr
  CHECK_EQ $0x608, "fadt pm timer block"
  movl $1, HPET + 0x10           /* ENABLE_CNF */
  mov pm_tmr, %edx
  inl %dx, %eax
  mov %eax, p0
  mov HPET + 0xf0, %edi          /* h0 */
  inl %dx, %eax
  mov %eax, p0b
8:
  mov HPET + 0xf0, %eax
  sub %edi, %eax
  cmp $10000000, %eax
  jb 8b
  inl %dx, %eax
  mov %eax, p1
  mov HPET + 0xf0, %eax
  sub %edi, %eax                 /* h1 - h0 */
  mov %eax, %ecx
  inl %dx, %eax
  mov %eax, p1b
  /* expected = (h1 - h0) * 3579545 / 100000000 */
  mov %ecx, %eax
  mov $3579545, %ecx
  mul %ecx
  mov $100000000, %ecx
  div %ecx
  mov $100, %ecx
  mul %ecx
  mov %eax, %esi                 /* expected * 100 */
  mov p1, %eax
  sub p0b, %eax
  and $0xffffff, %eax
  mov $99, %ecx
  mul %ecx                       /* lo * 99 */
  cmp %eax, %esi
  setae %bl
  mov p1b, %eax
  sub p0, %eax
  and $0xffffff, %eax
  mov $101, %ecx
  mul %ecx                       /* hi * 101 */
  cmp %eax, %esi
  setbe %bh
  and %bh, %bl
  movzbl %bl, %eax
  CHECK_EQ $1, "pm timer at 3.579545 mhz"

  /* Soft-off through PM1a_CNT: SLP_TYP 0 (the DSDT's \_S5) with SLP_EN. */
  mov $.Lbye, %esi
  call puts
  mov fadt, %ebx
  mov 64(%ebx), %edx
  mov $(1 << 13), %eax
  outw %ax, %dx
  /* Not reached: an S5 that did nothing reports through the debug-exit port instead. */
  EXIT(5)

.section .rodata
.Lbye: .asciz "entering s5\n"
.data
rsdt: .long 0
fadt: .long 0
pm_tmr: .long 0
p0: .long 0
p0b: .long 0
p1: .long 0
p1b: .long 0
tables_ok: .long 0
seen_madt: .long 0
seen_hpet: .long 0
