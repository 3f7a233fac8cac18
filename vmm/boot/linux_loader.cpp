// Linux i386 boot protocol (Documentation/arch/x86/boot.rst, "32-bit Boot Protocol"; the zero
// page is Documentation/arch/x86/zero-page.rst).
#include "vmm/boot/linux_loader.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <span>
#include <vector>

#include "vmm/boot/boot_state.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/memory_map.h"

namespace vmbt {

namespace {

using namespace linux_boot;

constexpr uint64_t kPage = 4096;
constexpr uint64_t k4GiB = 1ull << 32;
/// The setup header ends before boot_params.edd_mbr_sig_buffer (struct boot_params, 0x290).
constexpr uint32_t kHeaderLimit = 0x290;
/// boot.rst "Details of header fields", initrd_addr_max: "For boot protocols 2.02 or earlier,
/// this field is not present, and the maximum address is 0x37FFFFFF".
constexpr uint32_t kDefaultInitrdAddrMax = 0x37ffffff;

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

uint16_t le16(std::span<const uint8_t> d, uint64_t off) {
  return static_cast<uint16_t>(d[off] | d[off + 1] << 8);
}
uint32_t le32(std::span<const uint8_t> d, uint64_t off) {
  return static_cast<uint32_t>(le16(d, off)) | static_cast<uint32_t>(le16(d, off + 2)) << 16;
}
uint64_t le64(std::span<const uint8_t> d, uint64_t off) {
  return le32(d, off) | uint64_t{le32(d, off + 4)} << 32;
}
void put16(std::span<uint8_t> d, uint64_t off, uint16_t v) {
  d[off] = static_cast<uint8_t>(v);
  d[off + 1] = static_cast<uint8_t>(v >> 8);
}
void put32(std::span<uint8_t> d, uint64_t off, uint32_t v) {
  put16(d, off, static_cast<uint16_t>(v));
  put16(d, off + 2, static_cast<uint16_t>(v >> 16));
}
void put64(std::span<uint8_t> d, uint64_t off, uint64_t v) {
  put32(d, off, static_cast<uint32_t>(v));
  put32(d, off + 4, static_cast<uint32_t>(v >> 32));
}

/// An open file, closed on scope exit.
class File {
 public:
  /// Opens `path` (`what` names it in messages: "kernel", "initrd"); throws vmbt::Error.
  File(const std::string& path, const char* what) : path_(path), what_(what) {
    if (path.empty()) throw Error(fmt::format("no {} file given", what));
    fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      throw Error(fmt::format("cannot open {} '{}': {}; check the path and its permissions", what,
                              path, std::strerror(errno)));
    }
    struct stat st;
    if (fstat(fd_, &st) != 0) {
      int err = errno;
      close(fd_);
      throw Error(fmt::format("cannot stat {} '{}': {}", what, path, std::strerror(err)));
    }
    if (!S_ISREG(st.st_mode)) {
      close(fd_);
      throw Error(fmt::format("{} '{}' is not a regular file", what, path));
    }
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~File() { close(fd_); }
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  uint64_t size() const { return size_; }

  /// Reads exactly `len` bytes at `offset` into `dst`; throws vmbt::Error on a short read.
  void read_at(uint64_t offset, uint8_t* dst, uint64_t len) const {
    uint64_t done = 0;
    while (done < len) {
      ssize_t n = pread(fd_, dst + done, len - done, static_cast<off_t>(offset + done));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        throw Error(fmt::format("cannot read {} '{}': {}", what_, path_, std::strerror(errno)));
      }
      if (n == 0) {
        throw Error(fmt::format("{} '{}' is truncated: it ended after {} bytes while reading",
                                what_, path_, offset + done));
      }
      done += static_cast<uint64_t>(n);
    }
  }

 private:
  std::string path_;
  const char* what_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

/// The end of the RAM run that contains `gpa` (following adjacent RAM regions), or `gpa` itself
/// when it is not RAM.
uint64_t ram_run_end(const MemoryMap& map, uint64_t gpa) {
  uint64_t cur = gpa;
  while (const MemoryRegion* r = map.find(cur)) {
    if (r->kind != RegionKind::kRam) break;
    cur = r->end();
  }
  return cur;
}

/// True when [start, start + len) is RAM in `map` and backed by `mem`.
bool is_ram(const GuestMemory& mem, const MemoryMap& map, uint64_t start, uint64_t len) {
  return mem.contains(start, len) && ram_run_end(map, start) >= start + len;
}

/// The e820 type of a memory-map region (zero-page.rst e820_table; ACPI spec "E820" types).
uint32_t e820_type(RegionKind kind) {
  return kind == RegionKind::kRam ? 1 : 2;  // MMIO windows are reserved to the OS
}

/// The setup header fields vmbt uses, read from the start of a bzImage.
struct SetupHeader {
  uint32_t setup_sects = 0;  ///< with 0 already turned into 4
  uint32_t syssize = 0;
  uint16_t version = 0;
  uint8_t loadflags = 0;
  uint32_t code32_start = 0;
  uint32_t initrd_addr_max = 0;
  uint32_t kernel_alignment = 0;
  bool relocatable = false;
  uint32_t cmdline_size = 0;
  uint64_t pref_address = 0;
  uint32_t init_size = 0;
  uint32_t header_end = 0;  ///< one past the last setup header byte (0x202 + byte at 0x201)
};

std::string version_string(uint16_t v) {
  return fmt::format("{}.{:02}", v >> 8, v & 0xff);
}

/// Parses and validates the setup header in `head` (the first bytes of a `file_size`-byte file).
SetupHeader parse_header(std::span<const uint8_t> head, uint64_t file_size,
                         const std::string& path) {
  if (head.size() < kVersion + 2) {  // through the version field, read before anything else
    throw Error(fmt::format(
        "kernel '{}' is not a Linux bzImage: it is only {} bytes, too short for a boot sector "
        "and setup header (boot.rst: header at 0x1f1)",
        path, file_size));
  }
  uint16_t flag = le16(head, kBootFlag);
  uint32_t magic = le32(head, kHeaderMagic);
  if (flag != kBootFlagValue || magic != kHeaderMagicValue) {
    throw Error(fmt::format(
        "kernel '{}' is not a Linux bzImage: boot_flag at 0x1fe is {:#06x} (want 0xaa55) and the "
        "header signature at 0x202 is {:#010x} (want \"HdrS\" = 0x53726448)",
        path, flag, magic));
  }
  SetupHeader h;
  h.version = le16(head, kVersion);
  if (h.version < kMinVersion) {
    throw Error(fmt::format(
        "kernel '{}' uses Linux boot protocol {}, which is too old: vmbt's 32-bit boot protocol "
        "loader needs 2.06 or later (Linux 2.6.22 and newer)",
        path, version_string(h.version)));
  }
  h.header_end = std::min<uint32_t>(0x202 + head[kJump + 1], kHeaderLimit);
  if (head.size() < std::max<uint32_t>(h.header_end, kInitSize + 4)) {
    throw Error(fmt::format("kernel '{}' is truncated: it ends ({} bytes) inside its setup header",
                            path, file_size));
  }
  h.setup_sects = head[kSetupSects] ? head[kSetupSects] : 4;
  h.syssize = le32(head, kSysSize);
  h.loadflags = head[kLoadFlags];
  h.code32_start = le32(head, kCode32Start);
  h.initrd_addr_max = le32(head, kInitrdAddrMax);
  if (h.initrd_addr_max == 0) h.initrd_addr_max = kDefaultInitrdAddrMax;
  h.kernel_alignment = le32(head, kKernelAlignment);
  h.relocatable = head[kRelocatable] != 0;
  h.cmdline_size = le32(head, kCmdlineSize);
  if (h.version >= 0x020a && h.header_end >= kInitSize + 4) {
    h.pref_address = le64(head, kPrefAddress);
    h.init_size = le32(head, kInitSize);
  }
  if (!(h.loadflags & kLoadedHigh)) {
    throw Error(fmt::format(
        "kernel '{}' is a zImage (loadflags bit 0 LOADED_HIGH clear: its protected-mode code "
        "loads at 0x10000); vmbt loads bzImages only",
        path));
  }
  return h;
}

}  // namespace

BootImage load_linux(GuestMemory& mem, const MemoryMap& map, const std::string& kernel_path,
                     const std::string& append, const std::string& initrd_path) {
  File kernel(kernel_path, "kernel");
  std::vector<uint8_t> head(std::min<uint64_t>(kernel.size(), kHeaderLimit));
  kernel.read_at(0, head.data(), head.size());
  const SetupHeader h = parse_header(head, kernel.size(), kernel_path);

  // The protected-mode kernel follows the boot sector and the setup sectors (boot.rst "Loading
  // the rest of the kernel").
  const uint64_t setup_bytes = (uint64_t{h.setup_sects} + 1) * 512;
  if (kernel.size() <= setup_bytes) {
    throw Error(fmt::format(
        "kernel '{}' is truncated: its {} setup sectors end at {:#x} but the file has {} bytes "
        "and no protected-mode kernel after them",
        kernel_path, h.setup_sects, setup_bytes, kernel.size()));
  }
  const uint64_t payload = kernel.size() - setup_bytes;
  // syssize counts 16-byte paragraphs, the last of which may be short: an image built without
  // Linux's tools/build.c (memtest86+'s) ends mid-paragraph, and QEMU loads it. A whole
  // paragraph missing means the file was cut.
  if (uint64_t{h.syssize} * 16 >= payload + 16) {
    throw Error(fmt::format(
        "kernel '{}' is truncated: its header says the protected-mode kernel has {} bytes "
        "(syssize {:#x} x 16) but the file has only {} after the setup code",
        kernel_path, uint64_t{h.syssize} * 16, h.syssize, payload));
  }
  if (h.code32_start != kKernelAddr && !h.relocatable) {
    throw Error(fmt::format(
        "kernel '{}' is not relocatable and wants its protected-mode code at {:#x}; vmbt loads "
        "bzImages at 1 MiB (0x100000)",
        kernel_path, h.code32_start));
  }
  if (append.size() > h.cmdline_size) {
    throw Error(fmt::format(
        "the kernel command line is {} bytes but kernel '{}' accepts at most {} (cmdline_size); "
        "shorten --append",
        append.size(), kernel_path, h.cmdline_size));
  }
  if (kCmdlineAddr + append.size() + 1 > kCmdlineLimit) {
    throw Error(fmt::format("the kernel command line is {} bytes; vmbt has room for {}",
                            append.size(), kCmdlineLimit - kCmdlineAddr - 1));
  }

  // Where the kernel runs: a relocatable kernel decompresses itself to its runtime start address
  // (boot.rst, pref_address/init_size: the load address raised to pref_address and aligned to
  // kernel_alignment) and needs init_size bytes from there.
  const uint64_t load_end = kKernelAddr + payload;
  uint64_t runtime_start = kKernelAddr, runtime_end = load_end;
  if (h.init_size != 0) {
    if (h.relocatable) {
      uint64_t align = h.kernel_alignment ? h.kernel_alignment : 1;
      runtime_start = align_up(std::max<uint64_t>(kKernelAddr, h.pref_address), align);
    } else if (h.pref_address != 0) {
      runtime_start = h.pref_address;
    }
    runtime_end = runtime_start + h.init_size;
  }
  const uint64_t ram_top = ram_run_end(map, kKernelAddr);  // RAM contiguous from 1 MiB
  const uint64_t kernel_end = std::max(load_end, runtime_end);
  if (!is_ram(mem, map, kKernelAddr, payload) ||
      (h.init_size && !is_ram(mem, map, runtime_start, h.init_size))) {
    throw Error(fmt::format(
        "kernel '{}' does not fit in guest RAM ({} MiB): it loads at [{:#x}, {:#x}) and "
        "decompresses into [{:#x}, {:#x}) (pref_address, init_size); give the guest at least "
        "{} MiB with --memory",
        kernel_path, mem.size() >> 20, kKernelAddr, load_end, runtime_start, runtime_end,
        (align_up(kernel_end, 1 << 20) >> 20) + 16));
  }
  const uint64_t kernel_span_end = align_up(kernel_end, kPage);

  // The initrd: page-aligned, as high as it may go (boot.rst initrd_addr_max: the highest address
  // the initrd may occupy), below the top of RAM and lowmem, above everything the kernel uses.
  std::optional<File> initrd;
  uint64_t initrd_addr = 0, initrd_size = 0;
  if (!initrd_path.empty()) {
    initrd.emplace(initrd_path, "initrd");
    initrd_size = initrd->size();
    uint64_t ceiling =
        std::min<uint64_t>({uint64_t{h.initrd_addr_max} + 1, ram_top, kInitrdCeiling});
    if (initrd_size > 0) {
      if (initrd_size > ceiling || (ceiling - initrd_size) / kPage * kPage < kernel_span_end) {
        throw Error(fmt::format(
            "initrd '{}' ({} bytes) does not fit in guest RAM ({} MiB) between the kernel, which "
            "uses memory up to {:#x}, and {:#x}; give the guest more memory with --memory",
            initrd_path, initrd_size, mem.size() >> 20, kernel_span_end, ceiling));
      }
      initrd_addr = (ceiling - initrd_size) / kPage * kPage;
    }
  }

  // Load the kernel, then the initrd, straight into guest RAM.
  kernel.read_at(setup_bytes, mem.host_ptr(kKernelAddr, payload), payload);
  if (initrd && initrd_size > 0) {
    initrd->read_at(0, mem.host_ptr(initrd_addr, initrd_size), initrd_size);
  }

  // struct boot_params: zeroed, the setup header copied from the file at 0x1f1 (boot.rst
  // "32-bit Boot Protocol"), then the loader's fields. Leaving screen_info zero tells the kernel
  // there is no VGA text console (headless: the console is ttyS0).
  if (!is_ram(mem, map, kGdtAddr, kCmdlineLimit - kGdtAddr)) {
    throw Error("internal error: conventional memory below 0x9fc00 is not RAM");
  }
  std::vector<uint8_t> bp_buf(kBootParamsSize, 0);
  std::span<uint8_t> bp(bp_buf);
  std::memcpy(&bp[kSetupSects], &head[kSetupSects], h.header_end - kSetupSects);
  bp[kTypeOfLoader] = kUndefinedLoader;
  put32(bp, kCode32Start, static_cast<uint32_t>(kKernelAddr));
  put32(bp, kCmdLinePtr, static_cast<uint32_t>(kCmdlineAddr));
  put32(bp, kRamdiskImage, static_cast<uint32_t>(initrd_addr));
  put32(bp, kRamdiskSize, static_cast<uint32_t>(initrd_size));
  const uint64_t ext_k = (ram_top - kKernelAddr) / 1024;  // KiB above 1 MiB
  put16(bp, kExtMemK, static_cast<uint16_t>(std::min<uint64_t>(ext_k, 0xffff)));
  put32(bp, kAltMemK, static_cast<uint32_t>(ext_k));
  const auto& regions = map.regions();
  unsigned entries = 0;
  for (const auto& r : regions) {
    if (r.base >= k4GiB && r.kind != RegionKind::kRam) continue;
    if (entries == kE820MaxEntries) {
      throw Error(fmt::format("the memory map has more than {} regions, too many for boot_params",
                              kE820MaxEntries));
    }
    uint64_t e = kE820Table + uint64_t{entries} * kE820EntrySize;
    put64(bp, e, r.base);
    put64(bp, e + 8, r.length);
    put32(bp, e + 16, e820_type(r.kind));
    ++entries;
  }
  bp[kE820Entries] = static_cast<uint8_t>(entries);
  mem.write(kBootParamsAddr, bp_buf.data(), bp_buf.size());

  // The command line, NUL-terminated.
  std::vector<uint8_t> cmdline(append.begin(), append.end());
  cmdline.push_back(0);
  mem.write(kCmdlineAddr, cmdline.data(), cmdline.size());

  // The boot GDT: null, null, __BOOT_CS, __BOOT_DS.
  std::vector<uint8_t> gdt(kGdtEntries * 8, 0);
  put64(gdt, kBootCodeSelector, kGdtCode);
  put64(gdt, kBootDataSelector, kGdtData);
  mem.write(kGdtAddr, gdt.data(), gdt.size());

  BootImage image;
  image.enables_paging = true;  // arch/x86/kernel/head_32.S turns on paging before start_kernel
  image.entry = flat_protected_mode_state(static_cast<uint32_t>(kKernelAddr));
  image.entry.gdtr = {static_cast<uint32_t>(kGdtAddr), static_cast<uint16_t>(gdt.size() - 1)};
  image.entry.gpr[kEsi] = static_cast<uint32_t>(kBootParamsAddr);
  image.entry.gpr[kEbx] = image.entry.gpr[kEbp] = image.entry.gpr[kEdi] = 0;
  image.kernel_end = kernel_end;
  image.summary = fmt::format(
      "linux: '{}': bzImage, boot protocol {}, {} bytes at {:#x} (runs from [{:#x}, {:#x})), "
      "boot_params at {:#x}, command line \"{}\"",
      kernel_path, version_string(h.version), payload, kKernelAddr, runtime_start, runtime_end,
      kBootParamsAddr, append);
  if (initrd) {
    image.summary += fmt::format(", initrd '{}' at [{:#x}, {:#x})", initrd_path, initrd_addr,
                                 initrd_addr + initrd_size);
  }
  return image;
}

bool is_linux_bzimage(const std::string& path) {
  try {
    File f(path, "kernel");
    if (f.size() < kHeaderMagic + 4) return false;
    std::vector<uint8_t> head(kHeaderMagic + 4);
    f.read_at(0, head.data(), head.size());
    return le16(head, kBootFlag) == kBootFlagValue && le32(head, kHeaderMagic) == kHeaderMagicValue;
  } catch (...) {
    return false;
  }
}

}  // namespace vmbt
