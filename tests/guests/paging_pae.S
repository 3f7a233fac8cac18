/* paging_pae: PAE paging with 4 KiB and 2 MiB pages, accessed/dirty flags, reserved bits,
 * execute-disable and 8-byte PTE stores (Intel SDM Vol. 3A §4.4-§4.8). Memory plan: pae.inc.
 *
 * - 4 KiB pages (§4.4.2, Figure 4-5): a read reaches the frame and sets A in the PDE and the PTE,
 *   not D; a write sets D; the high dword of each entry is left as it was (§4.8: A and D are
 *   bits 5 and 6).
 * - 2 MiB pages (PDE.PS = 1, Figure 4-6, whatever CR4.PSE says): reads and writes reach the
 *   2 MiB frame, at its start and its last 4 KiB; A and D are set in the PDE.
 * - A PTE written by two 32-bit stores, high dword then low dword, as Linux's set_pte does for
 *   PAE, by one store instruction pair run again and again (each change followed by INVLPG and
 *   a read of the new frame); by LOCK CMPXCHG8B (set_pte_atomic); and cleared by XCHG of the
 *   low dword (ptep_get_and_clear): a read then faults with error code 0 (not present).
 * - Reserved bits (Table 4-11, §4.7): with IA32_EFER.NXE = 0 bit 63 of a PTE is reserved, and
 *   bits 62:MAXPHYADDR always are (bit 40 here; MAXPHYADDR is 36): a read faults with P=1
 *   RSVD=1 (error code 9), a write with 0xb.
 * - Execute-disable (§4.6.1, §4.7) with NXE = 1: a read of an XD=1 page works; a fetch from it
 *   (JMP) faults with P=1 I/D=1 (0x11), CR2 and the saved EIP the target; a fetch from a
 *   not-present page faults with I/D=1 (0x10); XD in the PDE forbids fetches as XD in the PTE
 *   does; after XD is cleared (INVLPG, CR3 reload) a CALL there runs the code; a fetch through a
 *   PTE with reserved bit 40 faults with P=1 RSVD=1 I/D=1 (0x19); with NXE = 1 bit 63 is no
 *   longer reserved.
 * QEMU 7.2 (qemu-system-i386 -cpu qemu32,+pae,+nx) prints exactly this except for the three
 * reserved-bit error codes, where it leaves P clear (8, 0xa, 0x18): §4.7 says RSVD "can be set
 * only if bit 0 is also set", as tests/guests/paging_protect.S expects for 32-bit paging too. */
#include "guest.inc"
#include "pae.inc"

MULTIBOOT_HEADER

GUEST_ENTRY
  call pae_build_tables
  /* Data: F1 and F2 tagged at +0x10, the 2 MiB frame at its start and its last page. */
  movl $0x11111111, PAE_F1 + 0x10
  movl $0x22222222, PAE_F2 + 0x10
  movl $0x2b2b2b2b, PAE_BIG_FRAME + 0x1234
  movl $0x5f5f5f5f, PAE_BIG_FRAME + 0x1ff010
  /* Code: mov $0xc0dec0de, %eax; ret */
  movb $0xb8, PAE_CODE
  movl $0xc0dec0de, PAE_CODE + 1
  movb $0xc3, PAE_CODE + 5
  /* Mappings. */
  movl $(PAE_F1 | E_P | E_RW), PAE_PT_A                   /* 0x40000000 -> F1 */
  movl $(PAE_BIG_FRAME | E_P | E_RW | E_PS), PAE_PD1 + 8  /* 0x40200000: 2 MiB */
  call pae_enable
  call exc_init                     /* after CR0.PG: see paging.inc on kvm-pvm */

  /* ---- 4 KiB page ---- */
  mov PAE_LIN_A + 0x10, %eax
  CHECK_EQ $0x11111111, "4 KiB page: read"
  mov PAE_PT_A, %eax
  and $(E_A | E_D), %eax
  CHECK_EQ $E_A, "4 KiB page: PTE A set, D clear after a read"
  mov PAE_PD1, %eax
  and $E_A, %eax
  CHECK_EQ $E_A, "4 KiB page: PDE A set"
  movl $0x33333333, PAE_LIN_A + 0x10
  mov PAE_F1 + 0x10, %eax
  CHECK_EQ $0x33333333, "4 KiB page: write reached the frame"
  mov PAE_PT_A, %eax
  and $(E_A | E_D), %eax
  CHECK_EQ $(E_A | E_D), "4 KiB page: PTE A and D set after a write"
  mov PAE_PT_A + 4, %eax
  CHECK_EQ $0, "4 KiB page: PTE high dword unchanged"
  mov PAE_PD1 + 4, %eax
  CHECK_EQ $0, "4 KiB page: PDE high dword unchanged"

  /* ---- 2 MiB page ---- */
  mov PAE_LIN_BIG + 0x1234, %eax
  CHECK_EQ $0x2b2b2b2b, "2 MiB page: read at its start"
  mov PAE_LIN_BIG + 0x1ff010, %eax
  CHECK_EQ $0x5f5f5f5f, "2 MiB page: read in its last 4 KiB"
  mov PAE_PD1 + 8, %eax
  and $(E_A | E_D), %eax
  CHECK_EQ $E_A, "2 MiB page: PDE A set, D clear after reads"
  movl $0x2c2c2c2c, PAE_LIN_BIG + 0x100000
  mov PAE_BIG_FRAME + 0x100000, %eax
  CHECK_EQ $0x2c2c2c2c, "2 MiB page: write reached the frame"
  mov PAE_PD1 + 8, %eax
  and $(E_A | E_D), %eax
  CHECK_EQ $(E_A | E_D), "2 MiB page: PDE A and D set after a write"

  /* ---- 8-byte PTE stores ---- */
  /* PTE 1 (0x40001000) alternates between F2 and F1, 64 times, set by one pair of stores. */
  xor %esi, %esi                    /* mismatches */
  xor %ecx, %ecx
1:
  mov $(PAE_F2 | E_P | E_RW), %eax
  test $1, %ecx
  jz 2f
  mov $(PAE_F1 | E_P | E_RW), %eax
2:
  xor %edx, %edx
  mov $(PAE_PT_A + 8), %edi
  call set_pte
  invlpg PAE_LIN_A + 0x1000
  mov PAE_LIN_A + 0x1010, %eax
  mov $0x22222222, %edx
  test $1, %ecx
  jz 3f
  mov $0x33333333, %edx
3:
  cmp %edx, %eax
  je 4f
  inc %esi
4:
  inc %ecx
  cmp $64, %ecx
  jb 1b
  mov %esi, %eax
  CHECK_EQ $0, "two 32-bit stores: every PTE change seen (mismatches)"
  /* set_pte_atomic: LOCK CMPXCHG8B replaces the F1 PTE by one to F2. */
  mov $(PAE_PT_A + 8), %edi
  mov (%edi), %eax
  mov 4(%edi), %edx
  mov $(PAE_F2 | E_P | E_RW), %ebx
  xor %ecx, %ecx
  lock cmpxchg8b (%edi)
  invlpg PAE_LIN_A + 0x1000
  mov PAE_LIN_A + 0x1010, %eax
  CHECK_EQ $0x22222222, "cmpxchg8b PTE: the new frame"
  /* ptep_get_and_clear: XCHG of the low dword, then the high dword cleared. */
  xor %eax, %eax
  xchg %eax, PAE_PT_A + 8
  movl $0, PAE_PT_A + 12
  and $(E_P | E_A), %eax
  CHECK_EQ $(E_P | E_A), "xchg PTE: the old entry was present and accessed"
  invlpg PAE_LIN_A + 0x1000
  EXC_ARM 5f
6:
  mov PAE_LIN_A + 0x1010, %eax
5:
  EXC_CHECK "read after xchg cleared the PTE", 14, 0, 6b
  CR2_CHECK PAE_LIN_A + 0x1010, "read after xchg cleared the PTE"

  /* ---- reserved bits, NXE = 0 ---- */
  movl $XD_HIGH, PAE_PT_A + 20      /* PTE 2 (0x40002000): bit 63 */
  movl $(PAE_F3 | E_P | E_RW), PAE_PT_A + 16
  EXC_ARM 5f
6:
  mov PAE_LIN_A + 0x2000, %eax
5:
  EXC_CHECK "NXE=0: read through a PTE with bit 63", 14, PFE_P | PFE_RSVD, 6b
  CR2_CHECK PAE_LIN_A + 0x2000, "NXE=0: read through a PTE with bit 63"
  movl $0x00000100, PAE_PT_A + 20   /* bit 40 */
  EXC_ARM 5f
6:
  movl $1, PAE_LIN_A + 0x2008
5:
  EXC_CHECK "write through a PTE with bit 40", 14, PFE_P | PFE_RSVD | PFE_W, 6b
  CR2_CHECK PAE_LIN_A + 0x2008, "write through a PTE with bit 40"

  /* ---- execute-disable ---- */
  call pae_set_nxe
  movl $XD_HIGH, PAE_PT_B + 4       /* 0x40400000 -> code, XD */
  movl $(PAE_CODE | E_P | E_RW), PAE_PT_B
  mov PAE_LIN_B, %eax
  CHECK_EQ $0xdec0deb8, "XD page: read"
  EXC_ARM 5f
  mov $PAE_LIN_B, %eax
  jmp *%eax
5:
  EXC_CHECK "XD page: fetch", 14, PFE_P | PFE_ID, PAE_LIN_B
  CR2_CHECK PAE_LIN_B, "XD page: fetch"
  EXC_ARM 5f
  mov $(PAE_LIN_B + 0x1000), %eax
  jmp *%eax
5:
  EXC_CHECK "not-present page: fetch", 14, PFE_ID, PAE_LIN_B + 0x1000
  CR2_CHECK PAE_LIN_B + 0x1000, "not-present page: fetch"
  movl $0, PAE_PT_B + 4             /* XD cleared */
  invlpg PAE_LIN_B
  xor %eax, %eax
  mov $PAE_LIN_B, %ebx
  call *%ebx
  CHECK_EQ $0xc0dec0de, "XD cleared: the code ran"
  movl $XD_HIGH, PAE_PD1 + 20       /* XD in the PDE */
  invlpg PAE_LIN_B
  EXC_ARM 5f
  mov $PAE_LIN_B, %eax
  jmp *%eax
5:
  EXC_CHECK "XD in the PDE: fetch", 14, PFE_P | PFE_ID, PAE_LIN_B
  movl $0, PAE_PD1 + 20
  mov %cr3, %eax
  mov %eax, %cr3
  xor %eax, %eax
  mov $PAE_LIN_B, %ebx
  call *%ebx
  CHECK_EQ $0xc0dec0de, "XD cleared in the PDE: the code ran"
  /* Bit 40 in the code page's PTE: reserved, the fetch says so. */
  movl $0x00000100, PAE_PT_B + 4
  invlpg PAE_LIN_B
  EXC_ARM 5f
  mov $PAE_LIN_B, %eax
  jmp *%eax
5:
  EXC_CHECK "fetch through a PTE with bit 40", 14, PFE_P | PFE_RSVD | PFE_ID, PAE_LIN_B
  /* NXE = 1: bit 63 of PTE 2 is XD now, not reserved: the data page reads. */
  movl $XD_HIGH, PAE_PT_A + 20
  movl $0x44444444, PAE_F3
  invlpg PAE_LIN_A + 0x2000
  mov PAE_LIN_A + 0x2000, %eax
  CHECK_EQ $0x44444444, "NXE=1: read through a PTE with bit 63"
  CHECKS_DONE "paging_pae"

/* EDI = PTE address, EDX:EAX = new value: the high dword first, then the low one (Linux's
 * native_set_pte for PAE). */
set_pte:
  mov %edx, 4(%edi)
  mov %eax, (%edi)
  ret

EXCEPTION_SUPPORT
