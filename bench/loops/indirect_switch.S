/* Switch loop: an interpreter-style dispatch through a jump table, eight targets in turn. */
.code32
.text
  mov $40000000, %ecx
  xor %eax, %eax
  call 0f
0:
  pop %ebx                      /* position-independent: the table is found from here */
1:
  mov %ecx, %edx
  and $7, %edx
  mov (table - 0b)(%ebx,%edx,4), %edx
  add %ebx, %edx
  jmp *%edx
c0:
  add $1, %eax
  jmp 2f
c1:
  xor $0x55, %eax
  jmp 2f
c2:
  add %ecx, %eax
  jmp 2f
c3:
  rol $3, %eax
  jmp 2f
c4:
  sub $7, %eax
  jmp 2f
c5:
  lea 1(%eax,%eax,2), %eax
  jmp 2f
c6:
  not %eax
  jmp 2f
c7:
  xor %ecx, %eax
2:
  dec %ecx
  jnz 1b
  jmp 3f
  .p2align 2
table:
  .long c0 - 0b, c1 - 0b, c2 - 0b, c3 - 0b, c4 - 0b, c5 - 0b, c6 - 0b, c7 - 0b
3:
