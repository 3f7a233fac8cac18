/* Recursive calls: fib(24) by the naive recursion, repeated; returns unwind a deep stack. */
.code32
.text
  mov $600, %esi
  xor %edi, %edi
0:
  mov $24, %ecx
  call fib
  add %eax, %edi
  dec %esi
  jnz 0b
  jmp 9f
fib:                            /* ECX = n -> EAX = fib(n) */
  cmp $2, %ecx
  jae 1f
  mov %ecx, %eax
  ret
1:
  push %ecx
  dec %ecx
  call fib
  push %eax
  mov 4(%esp), %ecx
  sub $2, %ecx
  call fib
  pop %edx
  add %edx, %eax
  pop %ecx
  ret
9:
