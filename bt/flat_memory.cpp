#include "bt/flat_memory.h"

#include <cstring>

#include "vmm/machine/guest_memory.h"

namespace vmbt::bt {

void FlatMemory::read(uint32_t linear, void* dst, unsigned size, bool) {
  auto* out = static_cast<uint8_t*>(dst);
  for (unsigned i = 0; i < size; ++i) {
    uint32_t a = linear + i;  // wraps at 4 GiB
    const uint8_t* p = ram_.host_ptr(a, 1);
    out[i] = p ? *p : 0xff;
  }
}

void FlatMemory::write(uint32_t linear, const void* src, unsigned size, bool) {
  const auto* in = static_cast<const uint8_t*>(src);
  uint32_t last_page = UINT32_MAX;
  for (unsigned i = 0; i < size; ++i) {
    uint32_t a = linear + i;
    uint8_t* p = ram_.host_ptr(a, 1);
    if (!p) continue;
    if ((a >> 12) != last_page) {
      last_page = a >> 12;
      on_write_(last_page);
    }
    *p = in[i];
  }
}

}  // namespace vmbt::bt
