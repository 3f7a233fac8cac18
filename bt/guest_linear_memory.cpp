#include "bt/guest_linear_memory.h"

#include <algorithm>
#include <cstring>

#include "shadow_mmu/shadow_mmu.h"
#include "vmm/cpu_state.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt::bt {

bool GuestLinearMemory::translate(uint32_t linear, bool write, bool user, uint64_t* phys) {
  uint64_t pa = 0;
  uint32_t error_code = 0;
  if (!mmu_.translate(linear, Access{write, user, false}, &pa, &error_code)) {
    state_.cr2 = linear;
    throw GuestFault{exc::kPf, true, error_code};
  }
  *phys = pa;
  return ram_.contains(pa, 1) && !mmu_.in_firmware_window(pa);
}

void GuestLinearMemory::read(uint32_t linear, void* dst, unsigned size, bool user) {
  if (const uint8_t* bytes = mmu_.mapped_ram(linear, size, false, user)) {
    std::memcpy(dst, bytes, size);  // no walk needed (the common case)
    return;
  }
  auto* out = static_cast<uint8_t*>(dst);
  // Translate every page first so a fault on the second page leaves nothing half-done.
  while (size > 0) {
    unsigned chunk = std::min<unsigned>(size, 0x1000 - (linear & 0xfff));
    uint64_t pa = 0;
    translate(linear, false, user, &pa);
    // RAM, or the ROM a firmware window shows there; all ones where nothing is.
    unsigned avail = 0;
    const uint8_t* bytes = mmu_.readable(pa, &avail);
    if (bytes && avail >= chunk) {
      std::memcpy(out, bytes, chunk);
    } else {
      std::memset(out, 0xff, chunk);
    }
    out += chunk;
    linear += chunk;
    size -= chunk;
  }
}

void GuestLinearMemory::write(uint32_t linear, const void* src, unsigned size, bool user) {
  if (uint8_t* bytes = mmu_.mapped_ram(linear, size, true, user)) {
    mmu_.note_phys_write(static_cast<uint32_t>(bytes - ram_.host_base()), size);
    std::memcpy(bytes, src, size);
    return;
  }
  const auto* in = static_cast<const uint8_t*>(src);
  uint64_t pas[2] = {};
  bool ram[2] = {};
  unsigned first = std::min<unsigned>(size, 0x1000 - (linear & 0xfff));
  ram[0] = translate(linear, true, user, &pas[0]);
  if (first < size) ram[1] = translate(linear + first, true, user, &pas[1]);
  for (int i = 0; i < 2; ++i) {
    unsigned n = i == 0 ? first : size - first;
    if (n == 0) break;
    if (ram[i]) {
      mmu_.note_phys_write(static_cast<uint32_t>(pas[i]), n);
      ram_.write(pas[i], in, n);
    }
    in += n;
  }
}

}  // namespace vmbt::bt
