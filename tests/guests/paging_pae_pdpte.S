/* paging_pae_pdpte: the PDPTE registers of PAE paging and switches between 32-bit and PAE paging
 * (Intel SDM Vol. 3A §4.1.2, §4.4.1). Memory plan: pae.inc.
 *
 * - Switches: 32-bit paging (4 MiB pages, CR4.PSE) -> paging off, CR4.PAE = 1, CR3 = a PDPT ->
 *   PAE paging, and back; each mode reads its own frame through 0x40000000.
 * - The PDPTEs are registers (§4.4.1): after the guest rewrites PDPTE 1 in memory (and INVLPG)
 *   the old one is still used; a MOV CR3 (same value) loads the new one; so does a MOV CR4 that
 *   modifies CR4.PGE while PAE paging is on.
 * - CR3 bits 31:5 locate the PDPT (Table 4-7): two PDPTs in one page map 0x40000000 differently.
 * - Loading a present PDPTE with a reserved bit set (Table 4-8: bits 2:1, 8:5, 63:MAXPHYADDR) is a
 *   #GP(0) and changes nothing (Vol. 2B MOV CR: "#GP(0) if ... PAE paging ... any of the PDPTEs
 *   has a reserved bit set"): MOV CR3 (bit 1; bit 36), MOV CR0 setting PG (bit 2), MOV CR4
 *   changing PGE (bit 5), and MOV CR4 setting PAE while 32-bit paging is on with CR3 naming a
 *   32-bit page directory (whose 4 MiB PDEs have PS, bit 7, set). A not-present PDPTE's other
 *   bits are ignored: the load succeeds and an access there is a #PF (error code 0).
 * The expected output is the SDM's. QEMU 7.2 (-cpu qemu32,+pae,+nx) has no PDPTE registers (its
 * walk reads the PDPT each time) and checks no PDPTE at the load: it prints FAIL for the checks
 * of "the PDPTE register still used" and for every "#GP" check (and their follow-ups), and
 * triple-faults at the last one, switching to PAE paging through the 32-bit directory. */
#include "guest.inc"
#include "pae.inc"

#define PDPT2 (PAE_PDPT + 0x20)

/* EXC_ARM / the instruction / EXC_CHECK "name", #GP(0); `insn` is a MOV to a control register. */
.macro GP_EXPECT name, reg, cr
  EXC_ARM 7771f
7770:
  mov \reg, \cr
7771:
  EXC_CHECK "\name", 13, 0, 7770b
.endm

MULTIBOOT_HEADER

GUEST_ENTRY
  call pae_build_tables
  movl $0x11111111, PAE_F1 + 0x10
  movl $0x22222222, PAE_F2 + 0x10
  movl $0x33333333, PAE_F3 + 0x10
  movl $(PAE_F1 | E_P | E_RW), PAE_PT_A         /* PD1:  0x40000000 -> F1 */
  movl $(PAE_PT_B | E_P | E_RW), PAE_PD1B       /* PD1B: 0x40000000 -> F2 */
  movl $(PAE_F2 | E_P | E_RW), PAE_PT_B
  movl $(PAE_PD0 | E_P), PDPT2                  /* the second PDPT: PDPTE 1 -> PD1B */
  movl $(PAE_PD1B | E_P), PDPT2 + 8
  /* 32-bit paging: 4 MiB identity pages 0-16 MiB, 0x40000000 -> F3. */
  xor %ecx, %ecx
1:
  mov %ecx, %eax
  shl $22, %eax
  or $(E_P | E_RW | E_PS), %eax
  mov %eax, PAE_PD32(,%ecx,4)
  inc %ecx
  cmp $4, %ecx
  jb 1b
  movl $(PAE_PT32 | E_P | E_RW), PAE_PD32 + (0x40000000 >> 22) * 4
  movl $(PAE_F3 | E_P | E_RW), PAE_PT32

  mov $CR4_PSE, %eax
  mov %eax, %cr4
  mov $PAE_PD32, %eax
  mov %eax, %cr3
  mov %cr0, %eax
  or $CR0_PG, %eax
  mov %eax, %cr0
  jmp 1f
1:
  call exc_init                     /* after CR0.PG: see paging.inc on kvm-pvm */
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x33333333, "32-bit paging: read"

  /* 32-bit -> PAE with paging off. */
  call paging_off
  mov $(CR4_PSE | CR4_PAE), %eax
  mov %eax, %cr4
  mov $PAE_PDPT, %eax
  mov %eax, %cr3
  call paging_on
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x11111111, "PAE paging: read"

  /* The PDPTE registers. */
  movl $(PAE_PD1B | E_P), PAE_PDPT + 8
  invlpg PAE_LIN_A
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x11111111, "PDPTE 1 rewritten: the PDPTE register still used"
  mov %cr3, %eax
  mov %eax, %cr3
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x22222222, "PDPTE 1 rewritten: the new one after MOV CR3"
  movl $(PAE_PD1 | E_P), PAE_PDPT + 8
  invlpg PAE_LIN_A
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x22222222, "PDPTE 1 restored: the PDPTE register still used"
  mov %cr4, %eax
  or $CR4_PGE, %eax
  mov %eax, %cr4
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x11111111, "PDPTE 1 restored: the old one after MOV CR4 set PGE"

  /* Two PDPTs in one page. */
  mov $PDPT2, %eax
  mov %eax, %cr3
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x22222222, "the second PDPT of the page"
  mov $PAE_PDPT, %eax
  mov %eax, %cr3
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x11111111, "the first PDPT of the page again"

  /* Reserved bits at MOV CR3. */
  movl $(PAE_PD1B | E_P | 0x2), PDPT2 + 8
  mov $PDPT2, %eax
  GP_EXPECT "MOV CR3, PDPTE 1 with bit 1", %eax, %cr3
  mov %cr3, %eax
  CHECK_EQ $PAE_PDPT, "CR3 unchanged after the #GP"
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x11111111, "the old PDPTEs still used"
  movl $(PAE_PD1B | E_P), PDPT2 + 8
  movl $0x10, PDPT2 + 12            /* bit 36 */
  mov $PDPT2, %eax
  GP_EXPECT "MOV CR3, PDPTE 1 with bit 36", %eax, %cr3
  movl $0x2, PDPT2 + 8              /* not present: the other bits are ignored */
  mov $PDPT2, %eax
  mov %eax, %cr3
  EXC_ARM 5f
6:
  mov PAE_LIN_A + 0x10, %eax
5:
  EXC_CHECK "PDPTE 1 not present (bits 1 and 36 set)", 14, 0, 6b
  CR2_CHECK PAE_LIN_A + 0x10, "PDPTE 1 not present (bits 1 and 36 set)"
  movl $(PAE_PD1B | E_P), PDPT2 + 8
  movl $0, PDPT2 + 12
  mov $PAE_PDPT, %eax
  mov %eax, %cr3

  /* Reserved bits at MOV CR0 setting PG. */
  call paging_off
  movl $(PAE_PD1 | E_P | 0x4), PAE_PDPT + 8
  mov %cr0, %eax
  or $CR0_PG, %eax
  GP_EXPECT "MOV CR0 setting PG, PDPTE 1 with bit 2", %eax, %cr0
  mov %cr0, %eax
  and $CR0_PG, %eax
  CHECK_EQ $0, "CR0.PG still 0 after the #GP"
  movl $(PAE_PD1 | E_P), PAE_PDPT + 8
  call paging_on
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x11111111, "PAE paging on again"

  /* Reserved bits at MOV CR4 changing PGE. */
  movl $(PAE_PD1 | E_P | 0x20), PAE_PDPT + 8
  mov %cr4, %eax
  xor $CR4_PGE, %eax
  GP_EXPECT "MOV CR4 clearing PGE, PDPTE 1 with bit 5", %eax, %cr4
  mov %cr4, %eax
  CHECK_EQ $(CR4_PSE | CR4_PAE | CR4_PGE), "CR4 unchanged after the #GP"
  movl $(PAE_PD1 | E_P), PAE_PDPT + 8

  /* PAE -> 32-bit with paging off. */
  call paging_off
  mov $CR4_PSE, %eax
  mov %eax, %cr4
  mov $PAE_PD32, %eax
  mov %eax, %cr3
  call paging_on
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x33333333, "32-bit paging again: read"
  /* CR4.PAE set with 32-bit paging on: the PDPTEs come from the 32-bit directory: #GP. (Last:
   * QEMU switches to PAE paging through that directory and triple-faults.) */
  mov $(CR4_PSE | CR4_PAE), %eax
  GP_EXPECT "MOV CR4 setting PAE with CR3 at a 32-bit directory", %eax, %cr4
  mov %cr4, %eax
  CHECK_EQ $CR4_PSE, "CR4 unchanged after the #GP"
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x33333333, "still 32-bit paging"
  CHECKS_DONE "paging_pae_pdpte"

paging_off:
  push %eax
  mov %cr0, %eax
  and $~CR0_PG, %eax
  mov %eax, %cr0
  jmp 1f
1:
  pop %eax
  ret

paging_on:
  push %eax
  mov %cr0, %eax
  or $CR0_PG, %eax
  mov %eax, %cr0
  jmp 1f
1:
  pop %eax
  ret

EXCEPTION_SUPPORT
