// Picks the boot protocol for a kernel image and loads it.
#pragma once

#include <string>

#include "vmm/boot/multiboot.h"

namespace vmbt {

/// The command line a bzImage gets when the user gives none (--append ""): the kernel's console
/// on COM1, vmbt's serial console.
inline constexpr const char* kDefaultLinuxCmdline = "console=ttyS0";

/// Loads `kernel_path` into `mem` by its format: a Linux bzImage (boot_flag 0xAA55 and "HdrS" in
/// its setup header) with the 32-bit Linux boot protocol (load_linux; an empty `append` becomes
/// kDefaultLinuxCmdline), anything else as a Multiboot v1 kernel (Multiboot spec 0.6.96). Throws
/// vmbt::Error naming the file and what is wrong with it for anything neither loader accepts.
BootImage load_kernel(GuestMemory& mem, const MemoryMap& map, const std::string& kernel_path,
                      const std::string& append, const std::string& initrd_path);

}  // namespace vmbt
