// Picks the boot protocol for a kernel image and loads it.
#pragma once

#include <string>

#include "vmm/boot/multiboot.h"

namespace vmbt {

/// Loads `kernel_path` into `mem` by its format: a Multiboot v1 ELF32 kernel (Multiboot spec
/// 0.6.96). Throws vmbt::Error naming the file and what is wrong with it for anything else.
BootImage load_kernel(GuestMemory& mem, const MemoryMap& map, const std::string& kernel_path,
                      const std::string& append, const std::string& initrd_path);

}  // namespace vmbt
