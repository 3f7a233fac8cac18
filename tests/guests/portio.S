/* portio: port I/O against the PC devices without timers or interrupts. One line per check:
 *   "ok <what>"  or  "FAIL <what> got <hex> want <hex>"
 * then exits with code 0 when every check passed (vmbt status 1), code 1 otherwise (status 3).
 * Checks: 16550 scratch register, 16550 divisor latch (DLAB), 8259 master IMR, CMOS RAM byte 0x0e
 * through the index/data ports, an unclaimed port (reads all ones at every width), fw_cfg
 * signature ("QEMU" from selector 0 through ports 0x510/0x511). */
#include "guest.inc"

#define UART_SCR (COM1 + 7)
#define UART_LCR (COM1 + 3)
#define UART_DLL (COM1 + 0)
#define UART_DLM (COM1 + 1)
#define PIC1_IMR 0x21
#define CMOS_INDEX 0x70
#define CMOS_DATA 0x71
#define UNCLAIMED_PORT 0x2e0
#define FW_CFG_SEL 0x510
#define FW_CFG_DATA 0x511

MULTIBOOT_HEADER

GUEST_ENTRY
  call check_scratch
  call check_divisor
  call check_imr
  call check_cmos
  call check_unclaimed
  call check_fw_cfg

  cmpl $0, failures
  jne 1f
  mov $msg_pass, %esi
  call puts
  EXIT(0)
1:
  mov $msg_fail, %esi
  call puts
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

/* Writes each byte of [EBX, EBP) to port DX and reads it back; reports under ESI.
 * Stops at the first mismatch. Clobbers EAX, EBX, EDX, EDI. */
write_read_bytes:
  push %esi
1:
  movzbl (%ebx), %edi
  mov %edi, %eax
  outb %al, %dx
  xor %eax, %eax
  inb %dx, %al
  cmp %edi, %eax
  jne 2f
  inc %ebx
  cmp %ebp, %ebx
  jne 1b
2:
  mov %edi, %edx
  pop %esi
  jmp report

check_scratch:
  mov $byte_values, %ebx
  mov $byte_values_end, %ebp
  mov $UART_SCR, %dx
  mov $name_scratch, %esi
  jmp write_read_bytes

check_imr:
  mov $byte_values, %ebx
  mov $byte_values_end, %ebp
  mov $PIC1_IMR, %dx
  mov $name_imr, %esi
  call write_read_bytes
  mov $0xff, %al                    /* leave every IRQ masked */
  outb %al, $PIC1_IMR
  ret

/* Divisor latch: LCR = 0x83 (DLAB, 8N1), DLL = 0x34, DLM = 0x12, read back LCR:DLM:DLL. */
check_divisor:
  mov $UART_LCR, %dx
  mov $0x83, %al
  outb %al, %dx
  mov $UART_DLL, %dx
  mov $0x34, %al
  outb %al, %dx
  mov $UART_DLM, %dx
  mov $0x12, %al
  outb %al, %dx
  xor %ebx, %ebx
  mov $UART_LCR, %dx
  inb %dx, %al
  mov %al, %bl
  shl $8, %ebx
  mov $UART_DLM, %dx
  inb %dx, %al
  mov %al, %bl
  shl $8, %ebx
  mov $UART_DLL, %dx
  inb %dx, %al
  mov %al, %bl
  /* Back to 115200 baud (divisor 1), 8N1, DLAB off, before printing anything. */
  mov $0x01, %al
  outb %al, %dx
  mov $UART_DLM, %dx
  mov $0x00, %al
  outb %al, %dx
  mov $UART_LCR, %dx
  mov $0x03, %al
  outb %al, %dx
  mov %ebx, %eax
  mov $0x831234, %edx
  mov $name_divisor, %esi
  jmp report

/* CMOS RAM byte 0x0e (POST diagnostic status): write, then select it again and read back. */
check_cmos:
  mov $byte_values, %ebx
1:
  movzbl (%ebx), %edi
  mov $0x0e, %al
  outb %al, $CMOS_INDEX
  mov %edi, %eax
  outb %al, $CMOS_DATA
  mov $0x0e, %al
  outb %al, $CMOS_INDEX
  xor %eax, %eax
  inb $CMOS_DATA, %al
  cmp %edi, %eax
  jne 2f
  inc %ebx
  cmp $byte_values_end, %ebx
  jne 1b
2:
  mov %edi, %edx
  mov $name_cmos, %esi
  call report
  mov $0x0e, %al                    /* leave the byte cleared */
  outb %al, $CMOS_INDEX
  xor %al, %al
  outb %al, $CMOS_DATA
  ret

/* Nothing decodes UNCLAIMED_PORT: reads float to all ones at every width. */
check_unclaimed:
  mov $UNCLAIMED_PORT, %dx
  mov $0x12345678, %eax
  inb %dx, %al
  movzbl %al, %eax
  mov $0xff, %edx
  mov $name_inb, %esi
  call report
  mov $UNCLAIMED_PORT, %dx
  mov $0x12345678, %eax
  inw %dx, %ax
  movzwl %ax, %eax
  mov $0xffff, %edx
  mov $name_inw, %esi
  call report
  mov $UNCLAIMED_PORT, %dx
  xor %eax, %eax
  inl %dx, %eax
  mov $0xffffffff, %edx
  mov $name_inl, %esi
  jmp report

/* fw_cfg: select FW_CFG_SIGNATURE (0x0000) with a 16-bit write, read 4 bytes: "QEMU". */
check_fw_cfg:
  mov $FW_CFG_SEL, %dx
  xor %ax, %ax
  outw %ax, %dx
  mov $FW_CFG_DATA, %dx
  xor %ebx, %ebx
  mov $4, %ecx
1:
  inb %dx, %al
  ror $8, %ebx                      /* the first byte ends up in bits 7:0 */
  mov %al, %bl
  loop 1b
  ror $8, %ebx
  mov %ebx, %eax
  mov $0x554d4551, %edx             /* "QEMU" as a little-endian dword */
  mov $name_fw_cfg, %esi
  jmp report

.data
  .p2align 2
failures:
  .long 0

.section .rodata
byte_values:
  .byte 0x00, 0x55, 0xaa, 0xff, 0x3c, 0xc3, 0x01, 0x80
byte_values_end:
msg_ok: .asciz "ok "
msg_failed: .asciz "FAIL "
msg_got: .asciz " got "
msg_want: .asciz " want "
msg_pass: .asciz "portio: all checks passed\n"
msg_fail: .asciz "portio: some checks FAILED\n"
name_scratch: .asciz "uart scratch register"
name_divisor: .asciz "uart divisor latch"
name_imr: .asciz "pic imr"
name_cmos: .asciz "cmos register 0x0e"
name_inb: .asciz "unclaimed port inb"
name_inw: .asciz "unclaimed port inw"
name_inl: .asciz "unclaimed port inl"
name_fw_cfg: .asciz "fw_cfg signature"
