#include "vmm/boot/multiboot.h"

#include <elf.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "vmm/boot/boot_state.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/memory_map.h"

namespace vmbt {

namespace {

using namespace multiboot;

constexpr uint64_t k4GiB = 1ull << 32;
constexpr uint64_t kPage = 4096;

uint64_t align_up(uint64_t v, uint64_t a) {
  return (v + a - 1) / a * a;
}

uint32_t le32(std::span<const uint8_t> d, uint64_t off) {
  return static_cast<uint32_t>(d[off]) | static_cast<uint32_t>(d[off + 1]) << 8 |
         static_cast<uint32_t>(d[off + 2]) << 16 | static_cast<uint32_t>(d[off + 3]) << 24;
}

/// An open file descriptor closed on scope exit.
struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

/// Reads at most `limit` bytes of `path` (`what` names it in messages). With `whole` set, a file
/// larger than `limit` is an error rather than truncated.
std::vector<uint8_t> read_file(const std::string& path, const char* what, uint64_t limit,
                               bool whole) {
  if (path.empty()) throw Error(fmt::format("no {} file given", what));
  Fd f{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) {
    throw Error(fmt::format("cannot open {} '{}': {}; check the path and its permissions", what,
                            path, std::strerror(errno)));
  }
  struct stat st;
  if (fstat(f.fd, &st) != 0) {
    throw Error(fmt::format("cannot stat {} '{}': {}", what, path, std::strerror(errno)));
  }
  if (!S_ISREG(st.st_mode)) {
    throw Error(fmt::format("{} '{}' is not a regular file", what, path));
  }
  uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > limit) {
    if (whole) {
      throw Error(
          fmt::format("{} '{}' is too large ({} bytes, at most {} fit)", what, path, size, limit));
    }
    size = limit;
  }
  std::vector<uint8_t> data(size);
  uint64_t done = 0;
  while (done < size) {
    ssize_t n = read(f.fd, data.data() + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw Error(fmt::format("cannot read {} '{}': {}", what, path, std::strerror(errno)));
    }
    if (n == 0) break;  // the file shrank while we read it
    done += static_cast<uint64_t>(n);
  }
  data.resize(done);
  return data;
}

/// A Multiboot header found in an image (spec §3.1.1).
struct Header {
  uint64_t offset = 0;  ///< file offset of the magic
  uint32_t flags = 0;
  // Address fields, valid with kHeaderAoutKludge (§3.1.3).
  uint32_t header_addr = 0, load_addr = 0, load_end_addr = 0, bss_end_addr = 0, entry_addr = 0;
};

/// Finds the first valid header (magic, 4-byte aligned, checksum) in the first kSearchBytes.
/// When none is valid, `why` says what was seen.
std::optional<Header> find_header(std::span<const uint8_t> d, std::string* why) {
  uint64_t limit = std::min<uint64_t>(d.size(), kSearchBytes);
  std::optional<uint64_t> bad_checksum_at;
  for (uint64_t off = 0; off + 12 <= limit; off += 4) {
    if (le32(d, off) != kHeaderMagic) continue;
    uint32_t flags = le32(d, off + 4);
    uint32_t checksum = le32(d, off + 8);
    if (static_cast<uint32_t>(kHeaderMagic + flags + checksum) != 0) {
      if (!bad_checksum_at) bad_checksum_at = off;
      continue;
    }
    Header h;
    h.offset = off;
    h.flags = flags;
    if (flags & kHeaderAoutKludge) {
      if (off + 32 > limit) {
        if (why) {
          *why = fmt::format(
              "the multiboot header at offset {:#x} sets flag bit 16 (load addresses) but its "
              "address fields do not fit in the first {} bytes of the file",
              off, kSearchBytes);
        }
        return std::nullopt;
      }
      h.header_addr = le32(d, off + 12);
      h.load_addr = le32(d, off + 16);
      h.load_end_addr = le32(d, off + 20);
      h.bss_end_addr = le32(d, off + 24);
      h.entry_addr = le32(d, off + 28);
    }
    return h;
  }
  if (why) {
    *why = bad_checksum_at
               ? fmt::format(
                     "the multiboot magic {:#x} at offset {:#x} has a bad checksum "
                     "(magic + flags + checksum must be 0 mod 2^32)",
                     kHeaderMagic, *bad_checksum_at)
               : fmt::format(
                     "there is no multiboot header (magic {:#x}, 4-byte aligned) in the "
                     "first {} bytes",
                     kHeaderMagic, kSearchBytes);
  }
  return std::nullopt;
}

/// What an ELF identification check found.
enum class ElfKind { kElf32I386, kNotElf, kTruncated, kElf64, kOtherClass, kBigEndian, kOther };

ElfKind identify_elf(std::span<const uint8_t> d, uint16_t* machine) {
  if (d.size() < SELFMAG || std::memcmp(d.data(), ELFMAG, SELFMAG) != 0) return ElfKind::kNotElf;
  if (d.size() < EI_NIDENT) return ElfKind::kTruncated;
  if (d[EI_CLASS] == ELFCLASS64) return ElfKind::kElf64;
  if (d[EI_CLASS] != ELFCLASS32) return ElfKind::kOtherClass;
  if (d[EI_DATA] != ELFDATA2LSB) return ElfKind::kBigEndian;
  if (d.size() < sizeof(Elf32_Ehdr)) return ElfKind::kTruncated;
  uint16_t m = static_cast<uint16_t>(d[18] | d[19] << 8);  // e_machine
  if (machine) *machine = m;
  return m == EM_386 ? ElfKind::kElf32I386 : ElfKind::kOther;
}

/// Throws the user-facing error for an ELF identification other than kElf32I386.
[[noreturn]] void throw_elf_error(ElfKind kind, uint16_t machine, const std::string& path,
                                  bool has_header) {
  switch (kind) {
    case ElfKind::kNotElf:
      if (has_header) {
        throw Error(fmt::format(
            "kernel '{}' has a multiboot header but is not an ELF file, and its header does not "
            "give load addresses (flag bit 16): vmbt cannot tell where to load it; link it as an "
            "ELF32 i386 executable",
            path));
      }
      throw Error(fmt::format(
          "kernel '{}' is not an ELF file and has no multiboot header, nor is it a Linux bzImage "
          "(no 'HdrS' setup header): vmbt boots i386 bzImages and Multiboot ELF32 kernels",
          path));
    case ElfKind::kTruncated:
      throw Error(fmt::format("kernel '{}' is truncated: its ELF header is incomplete", path));
    case ElfKind::kElf64:
      throw Error(fmt::format(
          "kernel '{}' is a 64-bit ELF file: 64-bit kernels are not supported: vmbt runs 32-bit "
          "x86 guests (link the kernel with -m elf_i386)",
          path));
    case ElfKind::kOtherClass:
      throw Error(fmt::format("kernel '{}' has an invalid ELF class; expected ELF32", path));
    case ElfKind::kBigEndian:
      throw Error(
          fmt::format("kernel '{}' is a big-endian ELF file; i386 kernels are "
                      "little-endian",
                      path));
    case ElfKind::kOther:
      throw Error(fmt::format(
          "kernel '{}' is an ELF32 file for machine {}{}, not i386 (EM_386 = 3): vmbt runs 32-bit "
          "x86 guests",
          path, machine, machine == EM_X86_64 ? " (x86-64)" : ""));
    case ElfKind::kElf32I386:
      break;
  }
  throw Error(fmt::format("kernel '{}' is not a loadable ELF32 i386 file", path));
}

/// Guest-physical ranges the loader has used so far.
struct Range {
  uint64_t start, end;
};

bool overlaps(const std::vector<Range>& used, uint64_t start, uint64_t end) {
  for (const auto& r : used) {
    if (start < r.end && r.start < end) return true;
  }
  return false;
}

/// Empty when [start, start + len) lies in RAM (kRam regions of `map`, inside `mem`, below
/// 4 GiB); otherwise why not.
std::string ram_problem(const GuestMemory& mem, const MemoryMap& map, uint64_t start,
                        uint64_t len) {
  if (len > k4GiB || start > k4GiB - len) return "it extends beyond 4 GiB";
  uint64_t end = start + len;
  for (uint64_t cur = start; cur < end;) {
    const MemoryRegion* r = map.find(cur);
    if (!r) {
      return fmt::format("{:#x} is beyond the top of guest RAM ({} MiB)", cur, mem.size() >> 20);
    }
    if (r->kind != RegionKind::kRam) {
      return fmt::format("{:#x} is in the non-RAM region '{}' [{:#x}, {:#x})", cur, r->name,
                         r->base, r->end());
    }
    cur = r->end();
  }
  if (!mem.contains(start, len)) {
    return fmt::format("it is beyond the top of guest RAM ({} MiB)", mem.size() >> 20);
  }
  return {};
}

/// Throws unless [start, start + len) lies in RAM; `what` names the range.
void require_ram(const GuestMemory& mem, const MemoryMap& map, uint64_t start, uint64_t len,
                 const std::string& what) {
  std::string problem = ram_problem(mem, map, start, len);
  if (problem.empty()) return;
  bool too_high = start + len > mem.size() && start + len <= GuestMemory::kMaxBytes;
  throw Error(fmt::format("{} [{:#x}, {:#x}) does not fit in guest RAM: {}{}", what, start,
                          start + len, problem,
                          too_high ? "; give the guest more memory with --memory"
                                   : "; load it at RAM addresses (e.g. from 1 MiB = 0x100000 up)"));
}

/// Copies `file_bytes` to `paddr` and zeroes the following `zero_bytes`.
void copy_and_zero(GuestMemory& mem, uint64_t paddr, std::span<const uint8_t> file_bytes,
                   uint64_t zero_bytes) {
  uint8_t* dst = mem.host_ptr(paddr, file_bytes.size() + zero_bytes);
  if (!dst) throw Error(fmt::format("internal error: {:#x} is outside guest RAM", paddr));
  if (!file_bytes.empty()) std::memcpy(dst, file_bytes.data(), file_bytes.size());
  std::memset(dst + file_bytes.size(), 0, zero_bytes);
}

/// The loaded kernel: entry point, used ranges and a description.
struct LoadedKernel {
  uint32_t entry = 0;
  std::vector<Range> used;
  std::string description;
};

/// Loads an image from the header's address fields (§3.1.3).
LoadedKernel load_aout_kludge(GuestMemory& mem, const MemoryMap& map, std::span<const uint8_t> file,
                              const Header& h, const std::string& path) {
  auto bad = [&](const std::string& what) {
    return Error(
        fmt::format("kernel '{}': invalid multiboot header address fields: {}", path, what));
  };
  if (h.load_addr > h.header_addr) {
    throw bad(
        fmt::format("load_addr {:#x} is above header_addr {:#x}", h.load_addr, h.header_addr));
  }
  uint64_t lead = h.header_addr - h.load_addr;
  if (lead > h.offset) {
    throw bad(fmt::format("header_addr - load_addr = {:#x} exceeds the header's file offset {:#x}",
                          lead, h.offset));
  }
  uint64_t file_start = h.offset - lead;
  uint64_t file_len;
  if (h.load_end_addr == 0) {
    file_len = file.size() - file_start;
  } else {
    if (h.load_end_addr < h.load_addr) {
      throw bad(fmt::format("load_end_addr {:#x} is below load_addr {:#x}", h.load_end_addr,
                            h.load_addr));
    }
    file_len = h.load_end_addr - h.load_addr;
    if (file_len > file.size() - file_start) {
      throw Error(fmt::format(
          "kernel '{}' is truncated: its multiboot header asks for {:#x} bytes from file offset "
          "{:#x}, but the file has {} bytes",
          path, file_len, file_start, file.size()));
    }
  }
  uint64_t mem_end = uint64_t{h.load_addr} + file_len;
  if (h.bss_end_addr != 0) {
    if (h.bss_end_addr < mem_end) {
      throw bad(fmt::format("bss_end_addr {:#x} is below the end of the loaded image {:#x}",
                            h.bss_end_addr, mem_end));
    }
    mem_end = h.bss_end_addr;
  }
  require_ram(mem, map, h.load_addr, mem_end - h.load_addr,
              fmt::format("kernel '{}' image (multiboot header addresses)", path));
  if (h.entry_addr < h.load_addr || h.entry_addr >= mem_end) {
    throw bad(fmt::format("entry_addr {:#x} is outside the loaded image [{:#x}, {:#x})",
                          h.entry_addr, h.load_addr, mem_end));
  }
  copy_and_zero(mem, h.load_addr, file.subspan(file_start, file_len),
                mem_end - h.load_addr - file_len);
  LoadedKernel k;
  k.entry = h.entry_addr;
  if (mem_end > h.load_addr) k.used.push_back({h.load_addr, mem_end});
  k.description =
      fmt::format("multiboot image (header load addresses) [{:#x}, {:#x})", h.load_addr, mem_end);
  return k;
}

struct ElfDeleter {
  void operator()(Elf* e) const { elf_end(e); }
};

/// Loads every PT_LOAD segment of an ELF32 i386 file at its p_paddr.
LoadedKernel load_elf32(GuestMemory& mem, const MemoryMap& map, std::vector<uint8_t>& file,
                        const std::string& path) {
  if (elf_version(EV_CURRENT) == EV_NONE) {
    throw Error(fmt::format("libelf is unusable: {}", elf_errmsg(-1)));
  }
  std::unique_ptr<Elf, ElfDeleter> elf(
      elf_memory(reinterpret_cast<char*>(file.data()), file.size()));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) {
    throw Error(fmt::format("kernel '{}' is not a valid ELF file: {}", path, elf_errmsg(-1)));
  }
  Elf32_Ehdr* eh = elf32_getehdr(elf.get());
  if (!eh) {
    throw Error(fmt::format("kernel '{}' has an invalid ELF header: {}", path, elf_errmsg(-1)));
  }
  if (eh->e_type != ET_EXEC && eh->e_type != ET_DYN) {
    throw Error(
        fmt::format("kernel '{}' is an ELF file of type {}, not an executable; link it "
                    "into an executable (ET_EXEC)",
                    path, eh->e_type));
  }
  const uint32_t e_entry = eh->e_entry;
  size_t phnum = 0;
  if (elf_getphdrnum(elf.get(), &phnum) != 0) {
    throw Error(
        fmt::format("kernel '{}' has an invalid program header table: {}", path, elf_errmsg(-1)));
  }
  if (phnum == 0) {
    throw Error(
        fmt::format("kernel '{}' has no program headers: it is not a loadable executable", path));
  }
  if (eh->e_phentsize != sizeof(Elf32_Phdr)) {
    throw Error(fmt::format("kernel '{}' has program headers of {} bytes, expected {}", path,
                            eh->e_phentsize, sizeof(Elf32_Phdr)));
  }
  Elf32_Phdr* ph = elf32_getphdr(elf.get());
  if (!ph) {
    throw Error(fmt::format("kernel '{}' has a truncated or invalid program header table: {}", path,
                            elf_errmsg(-1)));
  }
  std::vector<Elf32_Phdr> phdrs(ph, ph + phnum);
  elf.reset();

  LoadedKernel k;
  std::optional<uint32_t> entry;
  uint64_t low = UINT64_MAX, high = 0;
  unsigned loaded = 0;
  for (size_t i = 0; i < phdrs.size(); ++i) {
    const Elf32_Phdr& p = phdrs[i];
    if (p.p_type != PT_LOAD || p.p_memsz == 0) continue;
    std::string name = fmt::format("kernel '{}' segment {} (p_paddr {:#x}, p_memsz {:#x})", path, i,
                                   p.p_paddr, p.p_memsz);
    if (p.p_filesz > p.p_memsz) {
      throw Error(fmt::format("{} is invalid: p_filesz {:#x} exceeds p_memsz", name, p.p_filesz));
    }
    if (uint64_t{p.p_offset} + p.p_filesz > file.size()) {
      throw Error(fmt::format(
          "{}: its file bytes [{:#x}, {:#x}) extend past the end of the file ({} bytes); the "
          "kernel file is truncated or corrupt",
          name, p.p_offset, uint64_t{p.p_offset} + p.p_filesz, file.size()));
    }
    require_ram(mem, map, p.p_paddr, p.p_memsz, name);
    copy_and_zero(mem, p.p_paddr, std::span<const uint8_t>(file).subspan(p.p_offset, p.p_filesz),
                  p.p_memsz - p.p_filesz);
    uint64_t end = uint64_t{p.p_paddr} + p.p_memsz;
    k.used.push_back({p.p_paddr, end});
    low = std::min<uint64_t>(low, p.p_paddr);
    high = std::max(high, end);
    ++loaded;
    // The entry point is a virtual address; translate it through the segment that holds it, as
    // GRUB does for kernels linked at a higher virtual address than they are loaded at.
    if (!entry && e_entry >= p.p_vaddr && uint64_t{e_entry} < uint64_t{p.p_vaddr} + p.p_memsz) {
      entry = e_entry - p.p_vaddr + p.p_paddr;
    }
  }
  if (loaded == 0) {
    throw Error(fmt::format("kernel '{}' has no loadable (PT_LOAD) segments", path));
  }
  if (!entry) {
    throw Error(
        fmt::format("kernel '{}': its entry point {:#x} is not inside any loadable "
                    "segment",
                    path, e_entry));
  }
  k.entry = *entry;
  k.description = fmt::format("ELF32 kernel, {} segment{} in [{:#x}, {:#x})", loaded,
                              loaded == 1 ? "" : "s", low, high);
  return k;
}

/// Lays out the boot information area (§3.3) in a host buffer, copied to guest RAM once placed.
class InfoBuilder {
 public:
  explicit InfoBuilder(std::vector<uint8_t>& buf) : buf_(buf) {}
  /// Reserves `n` zeroed bytes aligned to `align`; returns their offset.
  uint64_t reserve(uint64_t n, uint64_t align) {
    uint64_t off = align_up(buf_.size(), align);
    buf_.resize(off + n, 0);
    return off;
  }
  uint64_t add_string(const std::string& s) {
    uint64_t off = reserve(s.size() + 1, 1);
    std::memcpy(buf_.data() + off, s.data(), s.size());
    return off;
  }
  void put32(uint64_t off, uint32_t v) {
    for (int i = 0; i < 4; ++i) buf_[off + i] = static_cast<uint8_t>(v >> (8 * i));
  }
  void put64(uint64_t off, uint64_t v) {
    put32(off, static_cast<uint32_t>(v));
    put32(off + 4, static_cast<uint32_t>(v >> 32));
  }

 private:
  std::vector<uint8_t>& buf_;
};

/// KiB of RAM from `base` on, following contiguous RAM regions.
uint64_t contiguous_ram_from(const MemoryMap& map, uint64_t base) {
  uint64_t cur = base;
  while (const MemoryRegion* r = map.find(cur)) {
    if (r->kind != RegionKind::kRam) break;
    cur = r->end();
  }
  return cur - base;
}

}  // namespace

BootImage load_multiboot(GuestMemory& mem, const MemoryMap& map, const std::string& kernel_path,
                         const std::string& append, const std::string& initrd_path) {
  std::vector<uint8_t> file = read_file(kernel_path, "kernel", k4GiB, /*whole=*/true);
  if (file.empty()) {
    throw Error(fmt::format("kernel '{}' is empty; give a multiboot ELF32 kernel", kernel_path));
  }
  std::string why;
  std::optional<Header> header = find_header(file, &why);
  std::vector<std::string> notes;

  LoadedKernel kernel;
  if (header && (header->flags & kHeaderAoutKludge)) {
    uint32_t unknown =
        header->flags & 0xffff & ~(kHeaderPageAlign | kHeaderMemoryInfo | kHeaderVideoMode);
    if (unknown) {
      throw Error(fmt::format(
          "kernel '{}' requires multiboot features vmbt does not provide (header flags {:#x}, "
          "unsupported required bits {:#x})",
          kernel_path, header->flags, unknown));
    }
    kernel = load_aout_kludge(mem, map, file, *header, kernel_path);
  } else {
    uint16_t machine = 0;
    ElfKind kind = identify_elf(file, &machine);
    if (kind != ElfKind::kElf32I386)
      throw_elf_error(kind, machine, kernel_path, header.has_value());
    if (!header) {
      throw Error(
          fmt::format("kernel '{}' is not a multiboot kernel: {}; vmbt loads Multiboot v1 "
                      "ELF kernels (add a multiboot header to the start of .text)",
                      kernel_path, why));
    }
    uint32_t unknown =
        header->flags & 0xffff & ~(kHeaderPageAlign | kHeaderMemoryInfo | kHeaderVideoMode);
    if (unknown) {
      throw Error(fmt::format(
          "kernel '{}' requires multiboot features vmbt does not provide (header flags {:#x}, "
          "unsupported required bits {:#x})",
          kernel_path, header->flags, unknown));
    }
    kernel = load_elf32(mem, map, file, kernel_path);
  }
  if (header->flags & kHeaderVideoMode) {
    notes.push_back("video mode request ignored (serial console only)");
  }
  file.clear();
  file.shrink_to_fit();

  uint64_t kernel_end = 0;
  for (const auto& r : kernel.used) kernel_end = std::max(kernel_end, r.end);
  std::vector<Range> used = kernel.used;

  // Module 0: the initrd, page-aligned after the kernel (flag bit 0 asks for page alignment).
  struct Module {
    uint64_t start, end;
    std::string string;
  };
  std::optional<Module> module;
  if (!initrd_path.empty()) {
    std::vector<uint8_t> data = read_file(initrd_path, "initrd", mem.size(), /*whole=*/true);
    std::optional<uint64_t> at;
    for (const auto& r : map.regions()) {
      if (r.kind != RegionKind::kRam) continue;
      uint64_t start = align_up(std::max(kernel_end, r.base), kPage);
      if (start < r.end() && data.size() <= r.end() - start &&
          ram_problem(mem, map, start, data.size()).empty() &&
          !overlaps(used, start, start + data.size())) {
        at = start;
        break;
      }
    }
    if (!at) {
      throw Error(fmt::format(
          "initrd '{}' ({} bytes) does not fit in guest RAM after the kernel, which ends at "
          "{:#x}; give the guest more memory with --memory",
          initrd_path, data.size(), kernel_end));
    }
    copy_and_zero(mem, *at, data, 0);
    module = Module{*at, *at + data.size(), initrd_path};
    if (!data.empty()) used.push_back({module->start, module->end});
  }

  // The boot information area: info structure, memory map, module list, strings.
  std::vector<uint8_t> buf;
  InfoBuilder b(buf);
  b.reserve(kInfoSize, 8);
  const auto& regions = map.regions();
  uint64_t mmap_off = b.reserve(regions.size() * kMmapEntrySize, 8);
  uint64_t mods_off = b.reserve(module ? kModuleEntrySize : 0, 8);
  std::string cmdline = append.empty() ? kernel_path : kernel_path + " " + append;
  uint64_t cmdline_off = b.add_string(cmdline);
  uint64_t name_off = b.add_string("vmbt");
  uint64_t modstr_off = module ? b.add_string(module->string) : 0;

  std::vector<uint64_t> candidates{kInfoBase};
  for (uint64_t a = kPage; a < MemoryMap::kLowRamEnd; a += kPage) candidates.push_back(a);
  for (const auto& r : used) candidates.push_back(align_up(r.end, kPage));
  std::optional<uint64_t> info_at;
  for (uint64_t a : candidates) {
    if (ram_problem(mem, map, a, buf.size()).empty() && !overlaps(used, a, a + buf.size())) {
      info_at = a;
      break;
    }
  }
  if (!info_at) {
    throw Error(fmt::format(
        "no free guest RAM for the {}-byte multiboot information (command line of {} bytes); "
        "shorten --append or give the guest more memory with --memory",
        buf.size(), cmdline.size()));
  }
  const uint64_t base = *info_at;

  uint32_t flags = kInfoMemory | kInfoCmdline | kInfoMods | kInfoMemMap | kInfoBootLoaderName;
  uint64_t lower = std::min<uint64_t>(contiguous_ram_from(map, 0), 640 * 1024);
  uint64_t upper = contiguous_ram_from(map, MemoryMap::kHighRamBase);
  b.put32(kInfoFlags, flags);
  b.put32(kInfoMemLower, static_cast<uint32_t>(lower / 1024));
  b.put32(kInfoMemUpper, static_cast<uint32_t>(upper / 1024));
  b.put32(kInfoCmdlineAddr, static_cast<uint32_t>(base + cmdline_off));
  b.put32(kInfoModsCount, module ? 1 : 0);
  b.put32(kInfoModsAddr, static_cast<uint32_t>(base + mods_off));
  b.put32(kInfoMmapLength, static_cast<uint32_t>(regions.size() * kMmapEntrySize));
  b.put32(kInfoMmapAddr, static_cast<uint32_t>(base + mmap_off));
  b.put32(kInfoBootLoaderNameAddr, static_cast<uint32_t>(base + name_off));
  for (size_t i = 0; i < regions.size(); ++i) {
    uint64_t e = mmap_off + i * kMmapEntrySize;
    b.put32(e, kMmapEntrySize - 4);  // size of the entry, not counting this field
    b.put64(e + 4, regions[i].base);
    b.put64(e + 12, regions[i].length);
    b.put32(e + 20, regions[i].kind == RegionKind::kRam ? 1 : 2);
  }
  if (module) {
    b.put32(mods_off, static_cast<uint32_t>(module->start));
    b.put32(mods_off + 4, static_cast<uint32_t>(module->end));
    b.put32(mods_off + 8, static_cast<uint32_t>(base + modstr_off));
  }
  if (!mem.write(base, buf.data(), buf.size())) {
    throw Error(fmt::format("internal error: multiboot information at {:#x} is outside RAM", base));
  }

  BootImage image;
  image.entry = flat_protected_mode_state(kernel.entry);
  image.entry.gpr[kEax] = kBootMagic;
  image.entry.gpr[kEbx] = static_cast<uint32_t>(base);
  image.kernel_end = kernel_end;
  image.summary = fmt::format("multiboot: '{}': {}, entry {:#x}, boot information at {:#x}",
                              kernel_path, kernel.description, kernel.entry, base);
  if (module) {
    image.summary +=
        fmt::format(", module '{}' at [{:#x}, {:#x})", module->string, module->start, module->end);
  }
  for (const auto& n : notes) image.summary += "; " + n;
  return image;
}

bool has_multiboot_header(const std::string& path) {
  try {
    std::vector<uint8_t> head = read_file(path, "kernel", kSearchBytes, /*whole=*/false);
    return find_header(head, nullptr).has_value();
  } catch (...) {
    return false;
  }
}

bool is_multiboot_elf(const std::string& path) {
  try {
    std::vector<uint8_t> head = read_file(path, "kernel", kSearchBytes, /*whole=*/false);
    return identify_elf(head, nullptr) == ElfKind::kElf32I386 &&
           find_header(head, nullptr).has_value();
  } catch (...) {
    return false;
  }
}

}  // namespace vmbt
