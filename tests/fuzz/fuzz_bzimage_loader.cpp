// libFuzzer target: the Linux bzImage loader (32-bit boot protocol, Linux's
// Documentation/arch/x86/boot.rst) on arbitrary kernel images, with a small initrd. Bad images
// must end in a vmbt::Error with a message, never a crash or an out-of-bounds access.
#include <cstddef>
#include <cstdint>

#include "tests/fuzz/fuzz_input_file.h"
#include "vmm/boot/linux_loader.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/memory_map.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static vmbt::fuzz::InputFile kernel, initrd;
  static vmbt::GuestMemory ram(64u << 20);
  static const vmbt::MemoryMap map = vmbt::MemoryMap::pc_layout(ram.size());
  static const uint8_t kInitrd[64] = {'0', '7', '0', '7', '0', '1'};
  static const std::string initrd_path = initrd.set(kInitrd, sizeof kInitrd);
  const std::string path = kernel.set(data, size);
  try {
    vmbt::load_linux(ram, map, path, "console=ttyS0", size % 2 ? initrd_path : "");
  } catch (const vmbt::Error&) {
    // a refused image: what the loader must do with bad input
  }
  return 0;
}
