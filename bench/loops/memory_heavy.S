/* Memory-heavy loop: read-modify-write over a 32 KiB array in the data arena (base 0x1000),
 * plus a byte load and an indexed load per element. */
.code32
.text
  mov $6000, %edi
2:
  mov $0x1000, %esi
  mov $8192, %ecx
1:
  mov (%esi), %eax
  add %ebx, %eax
  mov %eax, (%esi)
  movzbl 3(%esi), %edx
  add 0x4000(%esi,%edx,1), %ebx
  add $4, %esi
  dec %ecx
  jnz 1b
  dec %edi
  jnz 2b
