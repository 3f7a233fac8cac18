// Linux i386 boot protocol loader for bzImage kernels (Documentation/arch/x86/boot.rst).
#pragma once

#include <cstdint>
#include <string>

#include "vmm/boot/multiboot.h"

namespace vmbt {

class GuestMemory;
class MemoryMap;

/// Constants of the x86 boot protocol: setup header fields (boot.rst "The real-mode kernel
/// header"), struct boot_params fields (Documentation/arch/x86/zero-page.rst) and where vmbt puts
/// things in guest-physical memory.
namespace linux_boot {
/// Setup header field offsets in the kernel file and in boot_params (the header lies at 0x1f1 in
/// both).
constexpr uint32_t kSetupSects = 0x1f1;     ///< u8: setup sectors; 0 means 4
constexpr uint32_t kSysSize = 0x1f4;        ///< u32: protected-mode code size in 16-byte units
constexpr uint32_t kBootFlag = 0x1fe;       ///< u16: 0xAA55
constexpr uint32_t kJump = 0x200;           ///< u16: short jump; byte 0x201 = header length
constexpr uint32_t kHeaderMagic = 0x202;    ///< u32: "HdrS"
constexpr uint32_t kVersion = 0x206;        ///< u16: boot protocol version
constexpr uint32_t kTypeOfLoader = 0x210;   ///< u8: 0xff = undefined boot loader
constexpr uint32_t kLoadFlags = 0x211;      ///< u8: bit 0 LOADED_HIGH
constexpr uint32_t kCode32Start = 0x214;    ///< u32: 32-bit entry (default 0x100000)
constexpr uint32_t kRamdiskImage = 0x218;   ///< u32: initrd address
constexpr uint32_t kRamdiskSize = 0x21c;    ///< u32: initrd size
constexpr uint32_t kCmdLinePtr = 0x228;     ///< u32: command line address (protocol 2.02+)
constexpr uint32_t kInitrdAddrMax = 0x22c;  ///< u32: highest address the initrd may occupy (2.03+)
constexpr uint32_t kKernelAlignment = 0x230;  ///< u32: alignment for a relocated kernel (2.05+)
constexpr uint32_t kRelocatable = 0x234;      ///< u8: kernel is relocatable (2.05+)
constexpr uint32_t kCmdlineSize = 0x238;      ///< u32: command line length limit, no NUL (2.06+)
constexpr uint32_t kPrefAddress = 0x258;      ///< u64: preferred load address (2.10+)
constexpr uint32_t kInitSize = 0x260;         ///< u32: memory needed from the runtime start (2.10+)

constexpr uint16_t kBootFlagValue = 0xaa55;
constexpr uint32_t kHeaderMagicValue = 0x53726448;  ///< "HdrS" little-endian
constexpr uint16_t kMinVersion = 0x0206;            ///< vmbt needs the 32-bit protocol of 2.06
constexpr uint8_t kLoadedHigh = 0x01;               ///< loadflags bit 0
constexpr uint8_t kUndefinedLoader = 0xff;          ///< type_of_loader for unregistered loaders

/// boot_params ("zero page") fields outside the setup header (zero-page.rst).
constexpr uint32_t kExtMemK = 0x002;        ///< u16: screen_info.ext_mem_k, KiB above 1 MiB
constexpr uint32_t kAltMemK = 0x1e0;        ///< u32: KiB above 1 MiB
constexpr uint32_t kE820Entries = 0x1e8;    ///< u8: number of e820_table entries
constexpr uint32_t kSentinel = 0x1ef;       ///< u8: must stay 0 (header copied from 0x1f1 only)
constexpr uint32_t kE820Table = 0x2d0;      ///< struct boot_e820_entry[128]
constexpr uint32_t kE820EntrySize = 20;     ///< u64 addr, u64 size, u32 type
constexpr uint32_t kE820MaxEntries = 128;   ///< E820_MAX_ENTRIES_ZEROPAGE
constexpr uint32_t kBootParamsSize = 4096;  ///< sizeof(struct boot_params)

/// Where vmbt puts the boot data: all in conventional memory below the EBDA (0x9fc00), away from
/// the kernel (loaded at 1 MiB) and the initrd (placed high).
constexpr uint64_t kGdtAddr = 0x8f000;         ///< 4-entry boot GDT
constexpr uint64_t kBootParamsAddr = 0x90000;  ///< struct boot_params (ESI at entry)
constexpr uint64_t kCmdlineAddr = 0x91000;     ///< NUL-terminated kernel command line
constexpr uint64_t kCmdlineLimit = 0x9fc00;    ///< the command line must end below this
constexpr uint64_t kKernelAddr = 0x100000;     ///< protected-mode kernel load address (1 MiB)
/// The initrd stays below this (lowmem of a 3G/1G-split i386 kernel is at most 896 MiB).
constexpr uint64_t kInitrdCeiling = 896ull << 20;

/// The boot GDT's descriptors (boot.rst "32-bit boot protocol": __BOOT_CS = 0x10 flat
/// execute/read code, __BOOT_DS = 0x18 flat read/write data). Entries 0 and 1 are null.
constexpr uint64_t kGdtCode = 0x00cf9b000000ffffull;  ///< base 0, limit 4 GiB, type 0xb, D, G
constexpr uint64_t kGdtData = 0x00cf93000000ffffull;  ///< base 0, limit 4 GiB, type 0x3, B, G
constexpr uint32_t kGdtEntries = 4;
}  // namespace linux_boot

/// Loads the bzImage `kernel_path` with the 32-bit boot protocol (boot.rst "32-bit Boot
/// Protocol"): validates the setup header (boot_flag 0xAA55, "HdrS", version >= 2.06,
/// LOADED_HIGH), loads the protected-mode kernel (the file after (setup_sects + 1) * 512 bytes) at
/// 1 MiB, builds struct boot_params at linux_boot::kBootParamsAddr (the setup header copied to
/// 0x1f1, type_of_loader 0xff, cmd_line_ptr, ramdisk_image/size, the e820 table from `map`,
/// ext_mem_k/alt_mem_k; screen_info zero: headless), the command line `append` at
/// linux_boot::kCmdlineAddr, the initrd `initrd_path` (if not empty) page-aligned as high as
/// possible below initrd_addr_max, the top of RAM and 896 MiB, clear of the kernel's load and
/// decompression ranges (pref_address/init_size), and a boot GDT at linux_boot::kGdtAddr.
/// The entry state is flat_protected_mode_state(0x100000) with GDTR on that GDT,
/// ESI = boot_params, EBX = EBP = EDI = 0, IF = 0.
/// Throws vmbt::Error for files that are not bzImages, protocols older than 2.06, truncated
/// files, kernels or initrds that do not fit in RAM (suggesting --memory), an unreadable initrd
/// and command lines longer than the kernel's cmdline_size.
BootImage load_linux(GuestMemory& mem, const MemoryMap& map, const std::string& kernel_path,
                     const std::string& append, const std::string& initrd_path);

/// True when `path` starts with a Linux x86 boot sector and setup header (boot_flag 0xAA55 at
/// 0x1fe, "HdrS" at 0x202), whatever its protocol version (load_linux says if it is too old).
/// Never throws.
bool is_linux_bzimage(const std::string& path);

}  // namespace vmbt
