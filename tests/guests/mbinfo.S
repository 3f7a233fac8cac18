/* mbinfo: checks the Multiboot v1 boot information vmbt hands over (spec §3.2, §3.3): EAX magic,
 * info flags, mem_lower, boot loader name, the memory map (base and type of each entry), that
 * mem_upper agrees with the RAM entry at 1 MiB, and that the command line starts with the kernel's
 * path (it ends in "mbinfo.elf" when no --append is given). Sizes that depend on --memory are not
 * printed. Exits with 0 when every check passed (status 1), 1 otherwise. */
#include "guest.inc"

#define INFO_FLAGS 0
#define INFO_MEM_LOWER 4
#define INFO_MEM_UPPER 8
#define INFO_CMDLINE 16
#define INFO_MMAP_LENGTH 44
#define INFO_MMAP_ADDR 48
#define INFO_LOADER_NAME 64

MULTIBOOT_HEADER

GUEST_ENTRY
  mov mb_magic, %eax
  mov $MB_BOOT_MAGIC, %edx
  mov $name_magic, %esi
  call report
  mov mb_info, %ebx

  mov $msg_flags, %esi
  call puts
  mov INFO_FLAGS(%ebx), %eax
  call print_hex32
  call newline

  mov $msg_mem_lower, %esi
  call puts
  mov INFO_MEM_LOWER(%ebx), %eax
  call print_hex32
  call newline

  mov $msg_loader, %esi
  call puts
  mov INFO_LOADER_NAME(%ebx), %esi
  call puts
  call newline

  /* Memory map: entries of `size` + 4 bytes: size, base (64), length (64), type. */
  mov INFO_MMAP_ADDR(%ebx), %edi
  mov %edi, %ebp
  add INFO_MMAP_LENGTH(%ebx), %ebp
  xor %ecx, %ecx                    /* length/1024 of the RAM entry at 1 MiB */
1:
  cmp %ebp, %edi
  jae 3f
  mov $msg_mmap, %esi
  call puts
  mov 4(%edi), %eax
  call print_hex32
  mov $msg_type, %esi
  call puts
  mov 20(%edi), %eax
  call print_hex32
  call newline
  cmpl $0x100000, 4(%edi)
  jne 2f
  cmpl $1, 20(%edi)
  jne 2f
  mov 12(%edi), %ecx
  shr $10, %ecx
2:
  add (%edi), %edi
  add $4, %edi
  jmp 1b
3:
  mov INFO_MEM_UPPER(%ebx), %eax
  mov %ecx, %edx
  mov $name_mem_upper, %esi
  call report

  /* Command line: the kernel path comes first; without --append it ends in "mbinfo.elf". */
  mov INFO_CMDLINE(%ebx), %esi
  mov %esi, %edi
4:
  cmpb $0, (%edi)
  je 5f
  inc %edi
  jmp 4b
5:
  sub $10, %edi                     /* strlen("mbinfo.elf") */
  xor %eax, %eax                    /* 0: matched */
  cmp %esi, %edi
  jb 7f
  mov $suffix, %esi
  mov $10, %ecx
  repe cmpsb
  je 6f
7:
  mov $1, %eax
6:
  xor %edx, %edx
  mov $name_cmdline, %esi
  call report

  cmpl $0, failures
  jne 8f
  EXIT(0)
8:
  EXIT(1)

/* report: EAX = value read, EDX = value wanted, ESI = name of the check. */
report:
  push %esi
  cmp %edx, %eax
  jne 1f
  mov $msg_ok, %esi
  call puts
  pop %esi
  call puts
  call newline
  ret
1:
  incl failures
  mov $msg_failed, %esi
  call puts
  pop %esi
  call puts
  mov $msg_got, %esi
  call puts
  call print_hex32
  mov $msg_want, %esi
  call puts
  mov %edx, %eax
  call print_hex32
  call newline
  ret

.data
  .p2align 2
failures:
  .long 0

.section .rodata
suffix: .ascii "mbinfo.elf"
msg_ok: .asciz "ok "
msg_failed: .asciz "FAIL "
msg_got: .asciz " got "
msg_want: .asciz " want "
msg_flags: .asciz "flags "
msg_mem_lower: .asciz "mem_lower "
msg_loader: .asciz "boot loader "
msg_mmap: .asciz "mmap base "
msg_type: .asciz " type "
name_magic: .asciz "multiboot magic in eax"
name_mem_upper: .asciz "mem_upper matches the memory map"
name_cmdline: .asciz "cmdline is the kernel path"
