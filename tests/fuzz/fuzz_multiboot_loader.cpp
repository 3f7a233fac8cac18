// libFuzzer target: the Multiboot v1 (ELF32 and a.out-kludge) loader on arbitrary kernel images
// (Multiboot spec §3.1). Bad images must end in a vmbt::Error with a message, never a crash, an
// out-of-bounds access or a write outside guest RAM.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_input_file.h"
#include "vmm/boot/multiboot.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/memory_map.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vmbt::fuzz::InputFile kernel;
  static vmbt::GuestMemory ram(16u << 20);
  static const vmbt::MemoryMap map = vmbt::MemoryMap::pc_layout(ram.size());
  const std::string path = kernel.set(data, size);
  try {
    vmbt::load_multiboot(ram, map, path, "console=ttyS0", "");
  } catch (const vmbt::Error&) {
    // a refused image: what the loader must do with bad input
  }
  return 0;
}
