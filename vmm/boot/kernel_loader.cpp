#include "vmm/boot/kernel_loader.h"

#include <fmt/format.h>

#include <fstream>

#include "vmm/boot/linux_loader.h"
#include "vmm/error.h"

namespace vmbt {

BootImage load_kernel(GuestMemory& mem, const MemoryMap& map, const std::string& kernel_path,
                      const std::string& append, const std::string& initrd_path) {
  std::ifstream probe(kernel_path, std::ios::binary);
  if (!probe) throw Error(fmt::format("cannot open kernel '{}'", kernel_path));
  if (!initrd_path.empty() && !std::ifstream(initrd_path, std::ios::binary)) {
    throw Error(fmt::format("cannot open initrd '{}'", initrd_path));
  }
  if (is_linux_bzimage(kernel_path)) {
    return load_linux(mem, map, kernel_path, append.empty() ? kDefaultLinuxCmdline : append,
                      initrd_path);
  }
  // Multiboot's own checks give the most specific message for ELF files and unknown formats.
  return load_multiboot(mem, map, kernel_path, append, initrd_path);
}

}  // namespace vmbt
