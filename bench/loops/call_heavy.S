/* Call-heavy loop: a near call and return per iteration, with a stack argument. */
.code32
.text
  mov $80000000, %ecx
  xor %eax, %eax
1:
  push %ecx
  call 2f
  add $4, %esp
  dec %ecx
  jnz 1b
  jmp 3f
2:
  mov 4(%esp), %edx
  add %edx, %eax
  ret
3:
