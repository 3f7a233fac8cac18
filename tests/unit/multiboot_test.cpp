// Tests of the Multiboot v1 loader (vmm/boot/multiboot.h) and the boot vCPU state
// (vmm/boot/boot_state.h), with ELF images built byte by byte in the test.
#include "vmm/boot/multiboot.h"

#include <elf.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vmm/boot/boot_state.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/memory_map.h"

namespace vmbt {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kRamBytes = 16ull << 20;
constexpr uint32_t kSegOffset = 0x1000;

/// What to put in a one-segment ELF32 image: a multiboot header at the start of the segment,
/// then `payload`, then `bss` zero bytes. Every field can be broken on purpose.
struct ImageSpec {
  uint32_t paddr = 0x100000;
  uint32_t vaddr = 0x100000;
  std::vector<uint8_t> payload = {0x90, 0x90, 0xf4, 0x11, 0x22, 0x33, 0x44, 0x55};
  uint32_t bss = 0x2345;
  std::optional<uint32_t> entry;  ///< default: first payload byte
  uint16_t machine = EM_386;
  uint8_t elf_class = ELFCLASS32;
  bool multiboot = true;
  uint32_t mb_flags = 0x3;
  bool bad_checksum = false;
  std::optional<uint32_t> p_offset, p_filesz, p_memsz, e_phoff;
  uint16_t e_phnum = 1;
};

void put32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  std::memcpy(&b[off], &v, 4);
}

std::vector<uint8_t> multiboot_header(uint32_t flags, bool bad_checksum) {
  std::vector<uint8_t> h(12);
  put32(h, 0, multiboot::kHeaderMagic);
  put32(h, 4, flags);
  put32(h, 8, -(multiboot::kHeaderMagic + flags) + (bad_checksum ? 1 : 0));
  return h;
}

std::vector<uint8_t> build_elf(const ImageSpec& s) {
  std::vector<uint8_t> seg;
  if (s.multiboot) seg = multiboot_header(s.mb_flags, s.bad_checksum);
  uint32_t header_len = static_cast<uint32_t>(seg.size());
  seg.insert(seg.end(), s.payload.begin(), s.payload.end());

  std::vector<uint8_t> f(kSegOffset + seg.size(), 0);
  Elf32_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = s.elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_ident[EI_VERSION] = EV_CURRENT;
  eh.e_type = ET_EXEC;
  eh.e_machine = s.machine;
  eh.e_version = EV_CURRENT;
  eh.e_entry = s.entry.value_or(s.vaddr + header_len);
  eh.e_phoff = s.e_phoff.value_or(sizeof(Elf32_Ehdr));
  eh.e_ehsize = sizeof(Elf32_Ehdr);
  eh.e_phentsize = sizeof(Elf32_Phdr);
  eh.e_phnum = s.e_phnum;
  std::memcpy(f.data(), &eh, sizeof eh);

  Elf32_Phdr ph{};
  ph.p_type = PT_LOAD;
  ph.p_offset = s.p_offset.value_or(kSegOffset);
  ph.p_vaddr = s.vaddr;
  ph.p_paddr = s.paddr;
  ph.p_filesz = s.p_filesz.value_or(static_cast<uint32_t>(seg.size()));
  ph.p_memsz = s.p_memsz.value_or(static_cast<uint32_t>(seg.size()) + s.bss);
  ph.p_flags = PF_R | PF_W | PF_X;
  ph.p_align = 0x1000;
  std::memcpy(f.data() + sizeof(Elf32_Ehdr), &ph, sizeof ph);

  std::memcpy(f.data() + kSegOffset, seg.data(), seg.size());
  return f;
}

class MultibootTest : public ::testing::Test {
 protected:
  MultibootTest() : mem_(kRamBytes), map_(MemoryMap::pc_layout(kRamBytes)) {
    std::memset(mem_.host_base(), 0xaa, mem_.size());
    dir_ = fs::temp_directory_path() /
           ("vmbt-multiboot-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  ~MultibootTest() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string write_file(const std::string& name, const std::vector<uint8_t>& bytes) {
    std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()),
              static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  BootImage load(const std::vector<uint8_t>& bytes, const std::string& append = "",
                 const std::string& initrd = "") {
    return load_multiboot(mem_, map_, write_file("kernel.elf", bytes), append, initrd);
  }

  /// Expects load() to throw vmbt::Error whose message contains `needle`.
  void expect_error(const std::vector<uint8_t>& bytes, const std::string& needle,
                    const std::string& initrd = "") {
    try {
      load(bytes, "", initrd);
      ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos)
          << "message: " << e.what() << "\nexpected to contain: " << needle;
    }
  }

  std::string guest_string(uint32_t gpa) {
    std::string s;
    for (uint32_t a = gpa; a < mem_.size() && mem_.host_base()[a] != 0; ++a) {
      s.push_back(static_cast<char>(mem_.host_base()[a]));
    }
    return s;
  }
  uint64_t read64(uint64_t gpa) {
    uint64_t v;
    EXPECT_TRUE(mem_.read(gpa, &v, 8));
    return v;
  }

  GuestMemory mem_;
  MemoryMap map_;
  fs::path dir_;
};

TEST(BootStateTest, FlatProtectedModeMatchesMultibootMachineState) {
  VcpuState s = flat_protected_mode_state(0x123456);
  EXPECT_EQ(s.eip, 0x123456u);
  EXPECT_EQ(s.eflags, 0x2u);  // IF = 0, VM = 0
  EXPECT_EQ(s.cr0, cr0::kPe | cr0::kEt);
  EXPECT_EQ(s.cr0 & cr0::kPg, 0u);
  EXPECT_EQ(s.cr3, 0u);
  EXPECT_EQ(s.cr4, 0u);
  EXPECT_EQ(s.efer, 0u);
  const SegmentReg& cs = s.seg[kCs];
  EXPECT_EQ(cs.selector, 0x10);
  EXPECT_EQ(cs.base, 0u);
  EXPECT_EQ(cs.limit, 0xffffffffu);
  EXPECT_EQ(cs.type, 0xb);
  EXPECT_TRUE(cs.s);
  EXPECT_EQ(cs.dpl, 0);
  EXPECT_TRUE(cs.present);
  EXPECT_TRUE(cs.db);
  EXPECT_TRUE(cs.g);
  EXPECT_FALSE(cs.unusable);
  for (SegIndex i : {kDs, kEs, kFs, kGs, kSs}) {
    const SegmentReg& d = s.seg[i];
    EXPECT_EQ(d.selector, 0x18) << i;
    EXPECT_EQ(d.base, 0u) << i;
    EXPECT_EQ(d.limit, 0xffffffffu) << i;
    EXPECT_EQ(d.type, 0x3) << i;
    EXPECT_TRUE(d.s && d.present && d.db && d.g) << i;
    EXPECT_EQ(d.dpl, 0) << i;
    EXPECT_FALSE(d.unusable) << i;
  }
  EXPECT_EQ(s.tr.type, 0xb);
  EXPECT_FALSE(s.tr.s);
  EXPECT_TRUE(s.tr.present);
  EXPECT_EQ(s.tr.base, 0u);
  EXPECT_EQ(s.tr.limit, 0x67u);
  EXPECT_EQ(s.tr.selector, 0);
  EXPECT_TRUE(s.ldtr.unusable);
  EXPECT_FALSE(s.ldtr.present);
  EXPECT_EQ(s.cpl(), 0u);
  for (uint32_t r : s.gpr) EXPECT_EQ(r, 0u);
}

TEST_F(MultibootTest, LoadsSegmentAtPaddrAndZeroesBss) {
  ImageSpec spec;
  auto elf = build_elf(spec);
  BootImage img = load(elf);
  const uint8_t* ram = mem_.host_base();
  size_t filesz = 12 + spec.payload.size();
  EXPECT_EQ(0, std::memcmp(ram + spec.paddr, elf.data() + kSegOffset, filesz));
  for (size_t i = filesz; i < filesz + spec.bss; ++i) {
    ASSERT_EQ(ram[spec.paddr + i], 0) << "BSS byte " << i;
  }
  EXPECT_EQ(ram[spec.paddr + filesz + spec.bss], 0xaa);  // nothing past p_memsz
  EXPECT_EQ(ram[spec.paddr - 1], 0xaa);
  EXPECT_EQ(img.kernel_end, spec.paddr + filesz + spec.bss);
  EXPECT_NE(img.summary.find("kernel.elf"), std::string::npos) << img.summary;
}

TEST_F(MultibootTest, EntryStateFollowsTheSpec) {
  BootImage img = load(build_elf({}));
  const VcpuState& s = img.entry;
  EXPECT_EQ(s.gpr[kEax], 0x2BADB002u);
  EXPECT_EQ(s.gpr[kEbx], multiboot::kInfoBase);
  EXPECT_EQ(s.eip, 0x100000u + 12);
  EXPECT_EQ(s.seg[kCs].selector, 0x10);
  EXPECT_EQ(s.seg[kCs].limit, 0xffffffffu);
  EXPECT_TRUE(s.seg[kCs].db);
  EXPECT_EQ(s.cr0, cr0::kPe | cr0::kEt);
  EXPECT_EQ(s.eflags & (eflags::kIf | eflags::kVm), 0u);
}

TEST_F(MultibootTest, InfoStructureDescribesMachine) {
  BootImage img = load(build_elf({}), "console=ttyS0 quiet");
  uint32_t info = img.entry.gpr[kEbx];
  uint32_t flags = mem_.read32(info + multiboot::kInfoFlags);
  EXPECT_TRUE(flags & multiboot::kInfoMemory);
  EXPECT_TRUE(flags & multiboot::kInfoCmdline);
  EXPECT_TRUE(flags & multiboot::kInfoMemMap);
  EXPECT_TRUE(flags & multiboot::kInfoBootLoaderName);
  EXPECT_EQ(flags & (1u << 1), 0u);  // no boot device
  EXPECT_EQ(mem_.read32(info + multiboot::kInfoMemLower), 639u);
  EXPECT_EQ(mem_.read32(info + multiboot::kInfoMemUpper), (kRamBytes - (1u << 20)) / 1024);
  EXPECT_EQ(guest_string(mem_.read32(info + multiboot::kInfoCmdlineAddr)),
            (dir_ / "kernel.elf").string() + " console=ttyS0 quiet");
  EXPECT_EQ(guest_string(mem_.read32(info + multiboot::kInfoBootLoaderNameAddr)), "vmbt");
  EXPECT_EQ(mem_.read32(info + multiboot::kInfoModsCount), 0u);

  const auto& regions = map_.regions();
  ASSERT_EQ(regions.size(), 3u);
  uint32_t mmap_len = mem_.read32(info + multiboot::kInfoMmapLength);
  uint32_t mmap = mem_.read32(info + multiboot::kInfoMmapAddr);
  ASSERT_EQ(mmap_len, regions.size() * 24);
  uint32_t entry = mmap;
  for (const auto& r : regions) {
    ASSERT_LT(entry, mmap + mmap_len);
    EXPECT_EQ(mem_.read32(entry), 20u);
    EXPECT_EQ(read64(entry + 4), r.base);
    EXPECT_EQ(read64(entry + 12), r.length);
    EXPECT_EQ(mem_.read32(entry + 20), r.kind == RegionKind::kRam ? 1u : 2u);
    entry += mem_.read32(entry) + 4;
  }
  EXPECT_EQ(read64(mmap + 4), 0u);
  EXPECT_EQ(read64(mmap + 24 + 4), 0x9fc00u);
  EXPECT_EQ(mem_.read32(mmap + 24 + 20), 2u);
  EXPECT_EQ(read64(mmap + 48 + 4), 0x100000u);
  EXPECT_EQ(read64(mmap + 48 + 12), kRamBytes - 0x100000);
  // The information area lies in low RAM and does not overlap the kernel.
  EXPECT_LT(info, MemoryMap::kLowRamEnd);
}

TEST_F(MultibootTest, CmdlineIsJustThePathWithoutAppend) {
  BootImage img = load(build_elf({}));
  uint32_t info = img.entry.gpr[kEbx];
  EXPECT_EQ(guest_string(mem_.read32(info + multiboot::kInfoCmdlineAddr)),
            (dir_ / "kernel.elf").string());
}

TEST_F(MultibootTest, InitrdBecomesPageAlignedModuleZero) {
  std::vector<uint8_t> initrd(10000);
  for (size_t i = 0; i < initrd.size(); ++i) initrd[i] = static_cast<uint8_t>(i * 7 + 1);
  std::string initrd_path = write_file("initrd.img", initrd);
  BootImage img = load(build_elf({}), "", initrd_path);
  uint32_t info = img.entry.gpr[kEbx];
  EXPECT_TRUE(mem_.read32(info + multiboot::kInfoFlags) & multiboot::kInfoMods);
  ASSERT_EQ(mem_.read32(info + multiboot::kInfoModsCount), 1u);
  uint32_t mods = mem_.read32(info + multiboot::kInfoModsAddr);
  uint32_t start = mem_.read32(mods), end = mem_.read32(mods + 4);
  EXPECT_EQ(start % 4096, 0u);
  EXPECT_GE(start, img.kernel_end);
  EXPECT_LT(start, img.kernel_end + 4096);
  EXPECT_EQ(end - start, initrd.size());
  EXPECT_EQ(0, std::memcmp(mem_.host_base() + start, initrd.data(), initrd.size()));
  EXPECT_EQ(guest_string(mem_.read32(mods + 8)), initrd_path);
  EXPECT_NE(img.summary.find("initrd.img"), std::string::npos);
}

TEST_F(MultibootTest, EmptyInitrdIsAnEmptyModule) {
  std::string initrd_path = write_file("empty.img", {});
  BootImage img = load(build_elf({}), "", initrd_path);
  uint32_t mods = mem_.read32(img.entry.gpr[kEbx] + multiboot::kInfoModsAddr);
  EXPECT_EQ(mem_.read32(mods), mem_.read32(mods + 4));
}

TEST_F(MultibootTest, HigherHalfEntryIsTranslatedToPhysical) {
  ImageSpec spec;
  spec.vaddr = 0xc0100000;
  BootImage img = load(build_elf(spec));
  EXPECT_EQ(img.entry.eip, 0x100000u + 12);
  EXPECT_EQ(mem_.host_base()[0x100000], 0x02);  // magic's low byte landed at p_paddr
}

TEST_F(MultibootTest, InfoMovesWhenKernelOccupiesItsUsualPlace) {
  ImageSpec spec;
  spec.paddr = spec.vaddr = 0x8000;
  spec.bss = 0x4000;
  BootImage img = load(build_elf(spec));
  uint32_t info = img.entry.gpr[kEbx];
  EXPECT_NE(info, multiboot::kInfoBase);
  uint32_t kernel_end = static_cast<uint32_t>(img.kernel_end);
  EXPECT_TRUE(info + multiboot::kInfoSize <= 0x8000 || info >= kernel_end) << std::hex << info;
  EXPECT_EQ(mem_.read32(info + multiboot::kInfoMemLower), 639u);
  // The kernel's BSS was not overwritten by the information.
  for (uint32_t a = 0x8000 + 12 + 8; a < kernel_end; ++a) ASSERT_EQ(mem_.host_base()[a], 0) << a;
}

TEST_F(MultibootTest, VideoModeRequestIsIgnoredWithANote) {
  ImageSpec spec;
  spec.mb_flags = 0x7;
  BootImage img = load(build_elf(spec));
  EXPECT_NE(img.summary.find("video mode"), std::string::npos) << img.summary;
}

TEST_F(MultibootTest, AoutKludgeImageLoadsFromHeaderAddresses) {
  // A flat binary: 16 bytes of code, then the header at file offset 16, then more bytes.
  std::vector<uint8_t> bin(64, 0x90);
  uint32_t flags = multiboot::kHeaderAoutKludge | 0x2;
  const uint32_t base = 0x200000;
  put32(bin, 16, multiboot::kHeaderMagic);
  put32(bin, 20, flags);
  put32(bin, 24, -(multiboot::kHeaderMagic + flags));
  put32(bin, 28, base + 16);      // header_addr
  put32(bin, 32, base);           // load_addr
  put32(bin, 36, 0);              // load_end_addr: whole file
  put32(bin, 40, base + 0x1000);  // bss_end_addr
  put32(bin, 44, base + 4);       // entry_addr
  BootImage img = load(bin);
  EXPECT_EQ(img.entry.eip, base + 4);
  EXPECT_EQ(img.kernel_end, base + 0x1000u);
  EXPECT_EQ(0, std::memcmp(mem_.host_base() + base, bin.data(), bin.size()));
  EXPECT_EQ(mem_.host_base()[base + bin.size()], 0);
  EXPECT_EQ(mem_.host_base()[base + 0xfff], 0);
  EXPECT_EQ(mem_.host_base()[base + 0x1000], 0xaa);
  EXPECT_TRUE(has_multiboot_header(write_file("flat.bin", bin)));
  EXPECT_FALSE(is_multiboot_elf(write_file("flat.bin", bin)));
}

TEST_F(MultibootTest, AoutKludgeRejectsBadAddresses) {
  std::vector<uint8_t> bin(64, 0x90);
  uint32_t flags = multiboot::kHeaderAoutKludge;
  put32(bin, 0, multiboot::kHeaderMagic);
  put32(bin, 4, flags);
  put32(bin, 8, -(multiboot::kHeaderMagic + flags));
  put32(bin, 12, 0x100000);            // header_addr
  put32(bin, 16, 0x100000);            // load_addr
  put32(bin, 20, 0x100000 + 0x10000);  // load_end_addr: past the end of the file
  put32(bin, 24, 0);
  put32(bin, 28, 0x100000);
  expect_error(bin, "truncated");
  put32(bin, 16, 0x0ff000);  // load_addr 4 KiB before the header: more than its file offset
  expect_error(bin, "exceeds the header's file offset");
}

TEST_F(MultibootTest, IsMultibootElf) {
  EXPECT_TRUE(is_multiboot_elf(write_file("good.elf", build_elf({}))));
  EXPECT_TRUE(has_multiboot_header(write_file("good.elf", build_elf({}))));
  ImageSpec no_header;
  no_header.multiboot = false;
  EXPECT_FALSE(is_multiboot_elf(write_file("plain.elf", build_elf(no_header))));
  ImageSpec elf64;
  elf64.elf_class = ELFCLASS64;
  EXPECT_FALSE(is_multiboot_elf(write_file("k64.elf", build_elf(elf64))));
  ImageSpec bad;
  bad.bad_checksum = true;
  EXPECT_FALSE(is_multiboot_elf(write_file("bad.elf", build_elf(bad))));
  EXPECT_FALSE(is_multiboot_elf((dir_ / "missing").string()));
  EXPECT_FALSE(is_multiboot_elf(dir_.string()));
}

// --- Broken inputs: each must give vmbt::Error with a useful message, never a crash. ---

TEST_F(MultibootTest, MissingFile) {
  try {
    load_multiboot(mem_, map_, (dir_ / "nope.elf").string(), "", "");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open kernel"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_multiboot(mem_, map_, dir_.string(), "", ""), Error);  // a directory
}

TEST_F(MultibootTest, EmptyFile) {
  expect_error({}, "is empty");
}

TEST_F(MultibootTest, TruncatedElfHeader) {
  auto elf = build_elf({});
  elf.resize(30);
  expect_error(elf, "truncated");
}

TEST_F(MultibootTest, NotElf) {
  expect_error(std::vector<uint8_t>(100, 'x'), "not an ELF file");
}

TEST_F(MultibootTest, Elf64IsRefused) {
  ImageSpec spec;
  spec.elf_class = ELFCLASS64;
  expect_error(build_elf(spec), "64-bit kernels are not supported: vmbt runs 32-bit x86 guests");
}

TEST_F(MultibootTest, WrongMachine) {
  ImageSpec spec;
  spec.machine = EM_ARM;
  expect_error(build_elf(spec), "not i386");
  spec.machine = EM_X86_64;
  expect_error(build_elf(spec), "x86-64");
}

TEST_F(MultibootTest, NoMultibootHeader) {
  ImageSpec spec;
  spec.multiboot = false;
  expect_error(build_elf(spec), "no multiboot header");
}

TEST_F(MultibootTest, HeaderBeyondFirst8KiBIsNotFound) {
  ImageSpec spec;
  spec.multiboot = false;
  auto elf = build_elf(spec);
  elf.resize(0x2100);
  auto h = multiboot_header(0x3, false);
  std::memcpy(elf.data() + 0x2000, h.data(), h.size());
  expect_error(elf, "no multiboot header");
}

TEST_F(MultibootTest, BadChecksum) {
  ImageSpec spec;
  spec.bad_checksum = true;
  expect_error(build_elf(spec), "bad checksum");
}

TEST_F(MultibootTest, UnknownRequiredFlag) {
  ImageSpec spec;
  spec.mb_flags = 0x3 | (1u << 5);
  expect_error(build_elf(spec), "does not provide");
}

TEST_F(MultibootTest, SegmentBeyondRam) {
  ImageSpec spec;
  spec.paddr = spec.vaddr = 0x2000000;  // 32 MiB in a 16 MiB guest
  expect_error(build_elf(spec), "--memory");
  spec.paddr = spec.vaddr = kRamBytes - 8;  // straddles the top of RAM
  expect_error(build_elf(spec), "segment 0");
}

TEST_F(MultibootTest, SegmentInReservedHole) {
  ImageSpec spec;
  spec.paddr = spec.vaddr = 0xa0000;
  expect_error(build_elf(spec), "EBDA, VGA and BIOS");
}

TEST_F(MultibootTest, SegmentOffsetBeyondFile) {
  ImageSpec spec;
  spec.p_offset = 0x100000;
  expect_error(build_elf(spec), "past the end of the file");
  spec.p_offset = 0xfffffff0;  // offset + filesz wraps 32 bits
  expect_error(build_elf(spec), "past the end of the file");
}

TEST_F(MultibootTest, HugeMemszOverflows) {
  ImageSpec spec;
  spec.p_memsz = 0xffffffff;
  expect_error(build_elf(spec), "does not fit in guest RAM");
  spec.paddr = spec.vaddr = 0xfffff000;
  spec.p_memsz = 0x2000;  // paddr + memsz wraps 32 bits
  expect_error(build_elf(spec), "4 GiB");
}

TEST_F(MultibootTest, FileszLargerThanMemsz) {
  ImageSpec spec;
  spec.p_memsz = 4;
  expect_error(build_elf(spec), "exceeds p_memsz");
}

TEST_F(MultibootTest, EntryOutsideSegments) {
  ImageSpec spec;
  spec.entry = 0x500000;
  expect_error(build_elf(spec), "entry point");
}

TEST_F(MultibootTest, ProgramHeadersBeyondFile) {
  ImageSpec spec;
  spec.e_phoff = 0x7ffffff0;
  expect_error(build_elf(spec), "program header");
  spec.e_phoff = std::nullopt;
  spec.e_phnum = 0;
  expect_error(build_elf(spec), "no program headers");
}

TEST_F(MultibootTest, InitrdProblems) {
  expect_error(build_elf({}), "cannot open initrd", (dir_ / "missing.img").string());
  // 15 MiB does not fit after a kernel at 1 MiB in 16 MiB of RAM.
  std::vector<uint8_t> big(15u << 20, 1);
  expect_error(build_elf({}), "--memory", write_file("big.img", big));
}

TEST_F(MultibootTest, MutatedImagesNeverCrash) {
  auto good = build_elf({});
  std::mt19937 rng(12345);
  int loaded = 0, refused = 0;
  for (int i = 0; i < 3000; ++i) {
    auto elf = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) {
      // Mostly the ELF and program headers, sometimes the multiboot header.
      size_t off = (rng() % 4 == 0) ? kSegOffset + rng() % 12 : rng() % 84;
      elf[off] = static_cast<uint8_t>(rng());
    }
    if (rng() % 8 == 0) elf.resize(rng() % elf.size());
    try {
      load(elf);
      ++loaded;
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 0);
  EXPECT_GT(loaded, 0);
}

#ifdef VMBT_GUEST_DIR
TEST_F(MultibootTest, TestGuestsAreMultibootElf) {
  int found = 0;
  for (const auto& e : fs::directory_iterator(VMBT_GUEST_DIR)) {
    if (e.path().extension() != ".elf") continue;
    ++found;
    std::string path = e.path().string();
    EXPECT_TRUE(is_multiboot_elf(path)) << path;
    BootImage img = load_multiboot(mem_, map_, path, "", "");
    EXPECT_GE(img.entry.eip, 0x100000u) << path;
    EXPECT_LT(img.entry.eip, img.kernel_end) << path;
    EXPECT_EQ(img.entry.gpr[kEbx], multiboot::kInfoBase) << path;
  }
  EXPECT_GT(found, 0) << "no guests in " << VMBT_GUEST_DIR;
}
#endif

}  // namespace
}  // namespace vmbt
