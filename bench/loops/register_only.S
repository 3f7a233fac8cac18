/* Register-only integer loop: ALU, shifts, multiply, a conditional branch per iteration. */
.code32
.text
  mov $200000000, %ecx
  xor %eax, %eax
  mov $0x12345678, %ebx
1:
  add %ecx, %eax
  xor %eax, %edx
  rol $3, %eax
  imul $7, %ebx, %ebx
  lea 1(%eax,%ebx,2), %esi
  sub %esi, %edx
  dec %ecx
  jnz 1b
