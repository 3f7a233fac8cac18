// Multiboot v1 loader for ELF32 i386 kernels (https://www.gnu.org/software/grub/manual/multiboot/).
#pragma once

#include <cstdint>
#include <string>

#include "vmm/cpu_state.h"

namespace vmbt {

class GuestMemory;
class MemoryMap;

/// What a boot loader produced.
struct BootImage {
  VcpuState entry;          ///< the vCPU state at the kernel's entry point
  uint64_t kernel_end = 0;  ///< one past the highest guest-physical byte of the kernel (incl. BSS)
  std::string summary;      ///< one line for the user: what was loaded where
  /// The kernel is known to turn on paging (Linux always does); a Multiboot ELF may or may not.
  bool enables_paging = false;
};

/// Multiboot v1 constants (spec §3.1 "OS image format", §3.2 "Machine state", §3.3 "Boot
/// information format").
namespace multiboot {
constexpr uint32_t kHeaderMagic = 0x1BADB002;  ///< in the OS image's header
constexpr uint32_t kBootMagic = 0x2BADB002;    ///< in EAX at the kernel's entry
constexpr uint32_t kSearchBytes = 8192;        ///< the header lies within the first 8 KiB

/// Header flags (§3.1.2). Bits 0-15 are requirements the boot loader must meet or refuse.
constexpr uint32_t kHeaderPageAlign = 1u << 0;    ///< modules page-aligned (vmbt always does)
constexpr uint32_t kHeaderMemoryInfo = 1u << 1;   ///< mem_* and mmap_* wanted (always given)
constexpr uint32_t kHeaderVideoMode = 1u << 2;    ///< video mode wanted (ignored: serial only)
constexpr uint32_t kHeaderAoutKludge = 1u << 16;  ///< load addresses in the header (§3.1.3)

/// Boot information flags (§3.3), the ones vmbt sets.
constexpr uint32_t kInfoMemory = 1u << 0;
constexpr uint32_t kInfoCmdline = 1u << 2;
constexpr uint32_t kInfoMods = 1u << 3;
constexpr uint32_t kInfoMemMap = 1u << 6;
constexpr uint32_t kInfoBootLoaderName = 1u << 9;

/// Byte offsets in the boot information structure (§3.3).
constexpr uint32_t kInfoFlags = 0, kInfoMemLower = 4, kInfoMemUpper = 8, kInfoCmdlineAddr = 16,
                   kInfoModsCount = 20, kInfoModsAddr = 24, kInfoMmapLength = 44,
                   kInfoMmapAddr = 48, kInfoBootLoaderNameAddr = 64;
constexpr uint32_t kInfoSize = 116;        ///< through the framebuffer fields
constexpr uint32_t kMmapEntrySize = 24;    ///< size field (4) + base (8) + length (8) + type (4)
constexpr uint32_t kModuleEntrySize = 16;  ///< mod_start, mod_end, string, reserved

/// Preferred guest-physical address of the boot information area (moved if the kernel is there).
constexpr uint64_t kInfoBase = 0x9000;
}  // namespace multiboot

/// Loads the Multiboot v1 kernel `kernel_path` into `mem` and builds the boot information.
///
/// ELF32 i386 kernels are loaded segment by segment (PT_LOAD at p_paddr, BSS zeroed); a kernel
/// whose header sets flag bit 16 is loaded from the header's addresses instead (§3.1.3, as GRUB and
/// QEMU do). Every byte must land in RAM of `map`. The command line is built as QEMU builds it: the
/// kernel path, then a space and `append` when `append` is not empty. When `initrd_path` is not
/// empty it becomes module 0, page-aligned after the kernel, with its path as the module string.
/// The boot information (memory sizes, memory map, command line, loader name "vmbt", modules)
/// is placed at multiboot::kInfoBase, or the first free page of RAM if the kernel occupies it.
/// The entry state is flat_protected_mode_state() with EAX = kBootMagic, EBX = info address.
/// Throws vmbt::Error (saying what to do) for unreadable, malformed or unsupported kernels and for
/// images that do not fit in guest RAM.
BootImage load_multiboot(GuestMemory& mem, const MemoryMap& map, const std::string& kernel_path,
                         const std::string& append, const std::string& initrd_path);

/// True when `path` is an ELF32 i386 file with a valid Multiboot v1 header (magic, checksum) in
/// its first 8192 bytes. Never throws.
bool is_multiboot_elf(const std::string& path);

/// True when `path` has a valid Multiboot v1 header in its first 8192 bytes, whatever its format
/// (load_multiboot also accepts non-ELF images that use the header's load addresses, bit 16).
/// Never throws.
bool has_multiboot_header(const std::string& path);

}  // namespace vmbt
