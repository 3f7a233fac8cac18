// Tests of the Linux i386 boot protocol loader (vmm/boot/linux_loader.h) with bzImage-like files
// built byte by byte (Documentation/arch/x86/boot.rst), and of Debian's real kernel when
// scripts/get-debian-guest has fetched it.
#include "vmm/boot/linux_loader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "vmm/boot/boot_state.h"
#include "vmm/boot/kernel_loader.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/memory_map.h"

namespace vmbt {
namespace {

namespace fs = std::filesystem;
using namespace linux_boot;

constexpr uint64_t kRamBytes = 64ull << 20;

/// A bzImage-like file: boot sector + setup header, setup sectors, protected-mode payload.
struct BzSpec {
  uint8_t setup_sects = 2;
  uint16_t boot_flag = 0xaa55;
  uint32_t magic = 0x53726448;  // "HdrS"
  uint16_t version = 0x020f;
  uint8_t header_len = 0x66;  // byte at 0x201: header ends at 0x268
  uint8_t loadflags = 0x01;   // LOADED_HIGH
  uint32_t code32_start = 0x100000;
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t kernel_alignment = 0x200000;
  uint8_t relocatable = 1;
  uint32_t cmdline_size = 2047;
  uint64_t pref_address = 0x1000000;
  uint32_t init_size = 0x800000;
  uint32_t payload_bytes = 0x3000;
  std::optional<uint32_t> syssize;  ///< default payload_bytes / 16
  std::optional<size_t> truncate_to;
};

void put16(std::vector<uint8_t>& b, size_t off, uint16_t v) {
  std::memcpy(&b[off], &v, 2);
}
void put32(std::vector<uint8_t>& b, size_t off, uint32_t v) {
  std::memcpy(&b[off], &v, 4);
}
void put64(std::vector<uint8_t>& b, size_t off, uint64_t v) {
  std::memcpy(&b[off], &v, 8);
}

/// The payload byte at offset i (recognizable, not constant).
uint8_t payload_byte(size_t i) {
  return static_cast<uint8_t>(i * 7 + (i >> 8) + 1);
}

std::vector<uint8_t> build_bzimage(const BzSpec& s) {
  size_t setup = (size_t{s.setup_sects ? s.setup_sects : 4u} + 1) * 512;
  std::vector<uint8_t> f(setup + s.payload_bytes, 0);
  f[0x1f1] = s.setup_sects;
  put32(f, 0x1f4, s.syssize.value_or(s.payload_bytes / 16));
  put16(f, 0x1fe, s.boot_flag);
  f[0x200] = 0xeb;
  f[0x201] = s.header_len;
  put32(f, 0x202, s.magic);
  put16(f, 0x206, s.version);
  f[0x211] = s.loadflags;
  put32(f, 0x214, s.code32_start);
  put32(f, 0x22c, s.initrd_addr_max);
  put32(f, 0x230, s.kernel_alignment);
  f[0x234] = s.relocatable;
  put32(f, 0x238, s.cmdline_size);
  put64(f, 0x258, s.pref_address);
  put32(f, 0x260, s.init_size);
  // Something recognizable in the rest of the header and the setup code.
  for (size_t i = 0x268; i < setup; ++i) f[i] = static_cast<uint8_t>(0xc3 ^ i);
  for (size_t i = 0; i < s.payload_bytes; ++i) f[setup + i] = payload_byte(i);
  if (s.truncate_to) f.resize(*s.truncate_to);
  return f;
}

class LinuxLoaderTest : public ::testing::Test {
 protected:
  explicit LinuxLoaderTest(uint64_t ram = kRamBytes) : mem_(ram), map_(MemoryMap::pc_layout(ram)) {
    std::memset(mem_.host_base(), 0xaa, mem_.size());
    dir_ = fs::temp_directory_path() /
           ("vmbt-linux-loader-test-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  ~LinuxLoaderTest() override {
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

  std::vector<uint8_t> initrd_bytes(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(0x5a ^ (i * 13));
    return v;
  }

  BootImage load(const BzSpec& spec, const std::string& append = "console=ttyS0",
                 const std::string& initrd = "") {
    return load_linux(mem_, map_, write_file("bzImage", build_bzimage(spec)), append, initrd);
  }

  /// Expects load() to throw vmbt::Error whose message contains `needle`.
  void expect_error(const BzSpec& spec, const std::string& needle, const std::string& append = "",
                    const std::string& initrd = "") {
    try {
      load(spec, append, initrd);
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
  uint8_t u8(uint64_t gpa) { return mem_.host_base()[gpa]; }
  uint16_t u16(uint64_t gpa) {
    uint16_t v;
    EXPECT_TRUE(mem_.read(gpa, &v, 2));
    return v;
  }
  uint32_t u32(uint64_t gpa) { return mem_.read32(gpa); }
  uint64_t u64(uint64_t gpa) {
    uint64_t v;
    EXPECT_TRUE(mem_.read(gpa, &v, 8));
    return v;
  }

  GuestMemory mem_;
  MemoryMap map_;
  fs::path dir_;
};

TEST_F(LinuxLoaderTest, LoadsPayloadAtOneMegabyte) {
  BzSpec spec;
  BootImage img = load(spec);
  for (size_t i = 0; i < spec.payload_bytes; ++i) {
    ASSERT_EQ(u8(0x100000 + i), payload_byte(i)) << i;
  }
  EXPECT_EQ(u8(0x100000 + spec.payload_bytes), 0xaa);  // nothing past the payload
  // The kernel's footprint includes where it decompresses: pref_address + init_size.
  EXPECT_EQ(img.kernel_end, spec.pref_address + spec.init_size);
  EXPECT_NE(img.summary.find("bzImage"), std::string::npos) << img.summary;
  EXPECT_NE(img.summary.find("2.15"), std::string::npos) << img.summary;
}

TEST_F(LinuxLoaderTest, EntryStateFollowsThe32BitBootProtocol) {
  BootImage img = load(BzSpec{});
  const VcpuState& s = img.entry;
  EXPECT_EQ(s.eip, 0x100000u);
  EXPECT_EQ(s.gpr[kEsi], kBootParamsAddr);
  EXPECT_EQ(s.gpr[kEbx], 0u);
  EXPECT_EQ(s.gpr[kEbp], 0u);
  EXPECT_EQ(s.gpr[kEdi], 0u);
  EXPECT_EQ(s.eflags & eflags::kIf, 0u);
  EXPECT_EQ(s.cr0 & cr0::kPg, 0u);
  EXPECT_NE(s.cr0 & cr0::kPe, 0u);
  EXPECT_EQ(s.seg[kCs].selector, 0x10);
  for (SegIndex i : {kDs, kEs, kSs}) EXPECT_EQ(s.seg[i].selector, 0x18) << i;

  // The GDT the selectors name: entries 2 and 3 are 4 GiB flat code (execute/read) and data
  // (read/write), matching the hidden parts of CS and DS.
  ASSERT_GE(s.gdtr.limit, 0x1fu);
  uint64_t code = u64(s.gdtr.base + 0x10), data = u64(s.gdtr.base + 0x18);
  auto base = [](uint64_t d) {
    return static_cast<uint32_t>(((d >> 16) & 0xffffff) | ((d >> 56) << 24));
  };
  auto limit = [](uint64_t d) {
    uint32_t l = static_cast<uint32_t>((d & 0xffff) | ((d >> 32) & 0xf0000));
    return (d >> 55) & 1 ? (l << 12) | 0xfff : l;
  };
  auto access = [](uint64_t d) { return static_cast<uint8_t>(d >> 40); };
  EXPECT_EQ(base(code), 0u);
  EXPECT_EQ(limit(code), 0xffffffffu);
  EXPECT_EQ(access(code) & 0x9a, 0x9a);  // present, DPL 0, code, readable
  EXPECT_EQ(access(code) & 0x0f, s.seg[kCs].type);
  EXPECT_TRUE((code >> 54) & 1);  // D: 32-bit
  EXPECT_EQ(base(data), 0u);
  EXPECT_EQ(limit(data), 0xffffffffu);
  EXPECT_EQ(access(data) & 0x9a, 0x92);  // present, DPL 0, data, writable
  EXPECT_EQ(access(data) & 0x0f, s.seg[kDs].type);
  EXPECT_EQ(u64(s.gdtr.base), 0u);
  EXPECT_EQ(u64(s.gdtr.base + 8), 0u);
}

TEST_F(LinuxLoaderTest, BootParamsHoldHeaderCommandLineAndE820) {
  BzSpec spec;
  std::vector<uint8_t> file = build_bzimage(spec);
  load(spec, "console=ttyS0 root=/dev/ram0 quiet");
  const uint64_t bp = kBootParamsAddr;
  // The setup header, copied from the file at 0x1f1 up to 0x202 + byte at 0x201; the loader's
  // own fields checked below.
  for (uint32_t off = 0x1f1; off < 0x268; ++off) {
    bool loader_field = off == kTypeOfLoader || (off >= kRamdiskImage && off < kRamdiskSize + 4) ||
                        (off >= kCmdLinePtr && off < kCmdLinePtr + 4);
    if (!loader_field) {
      EXPECT_EQ(u8(bp + off), file[off]) << std::hex << off;
    }
  }
  EXPECT_EQ(u16(bp + kBootFlag), 0xaa55);
  EXPECT_EQ(u32(bp + kHeaderMagic), 0x53726448u);
  EXPECT_EQ(u16(bp + kVersion), 0x020f);
  EXPECT_EQ(u8(bp + kTypeOfLoader), 0xff);
  EXPECT_EQ(u32(bp + kCode32Start), 0x100000u);
  EXPECT_EQ(u32(bp + kRamdiskImage), 0u);
  EXPECT_EQ(u32(bp + kRamdiskSize), 0u);
  // Everything outside the header and the fields the loader fills is zero.
  EXPECT_EQ(u8(bp + kSentinel), 0);
  for (uint32_t off = 0x268; off < kE820Table; ++off) ASSERT_EQ(u8(bp + off), 0) << off;
  for (uint32_t off = 0x10; off < 0x40; ++off) ASSERT_EQ(u8(bp + off), 0) << off;  // screen_info

  uint32_t cmdline = u32(bp + kCmdLinePtr);
  EXPECT_EQ(cmdline, kCmdlineAddr);
  EXPECT_EQ(guest_string(cmdline), "console=ttyS0 root=/dev/ram0 quiet");

  const auto& regions = map_.regions();
  ASSERT_EQ(u8(bp + kE820Entries), regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    uint64_t e = bp + kE820Table + i * kE820EntrySize;
    EXPECT_EQ(u64(e), regions[i].base) << i;
    EXPECT_EQ(u64(e + 8), regions[i].length) << i;
    EXPECT_EQ(u32(e + 16), regions[i].kind == RegionKind::kRam ? 1u : 2u) << i;
  }
  // Memory above 1 MiB in KiB (ext_mem_k in screen_info, alt_mem_k).
  EXPECT_EQ(u16(bp + kExtMemK), (kRamBytes - 0x100000) / 1024);
  EXPECT_EQ(u32(bp + kAltMemK), (kRamBytes - 0x100000) / 1024);
}

TEST_F(LinuxLoaderTest, InitrdGoesHighAndPageAligned) {
  std::vector<uint8_t> initrd = initrd_bytes(10000);
  load(BzSpec{}, "console=ttyS0", write_file("initrd.img", initrd));
  uint32_t image = u32(kBootParamsAddr + kRamdiskImage);
  uint32_t size = u32(kBootParamsAddr + kRamdiskSize);
  EXPECT_EQ(size, initrd.size());
  EXPECT_EQ(image % 4096, 0u);
  EXPECT_LE(image + size, kRamBytes);
  EXPECT_GT(image + size + 4096, kRamBytes);  // as high as it goes
  for (size_t i = 0; i < initrd.size(); ++i) ASSERT_EQ(u8(image + i), initrd[i]) << i;
}

TEST_F(LinuxLoaderTest, InitrdStaysBelowInitrdAddrMax) {
  BzSpec spec;
  spec.initrd_addr_max = 0x1ffffff;  // the initrd may occupy bytes up to 32 MiB - 1
  std::vector<uint8_t> initrd = initrd_bytes(0x5000);
  load(spec, "console=ttyS0", write_file("initrd.img", initrd));
  uint32_t image = u32(kBootParamsAddr + kRamdiskImage);
  EXPECT_EQ(image, 0x2000000u - 0x5000u);
  EXPECT_GE(image, spec.pref_address + spec.init_size);  // clear of the decompressed kernel
  for (size_t i = 0; i < initrd.size(); ++i) ASSERT_EQ(u8(image + i), initrd[i]) << i;
}

TEST_F(LinuxLoaderTest, SetupSectsZeroMeansFour) {
  BzSpec spec;
  spec.setup_sects = 0;
  load(spec);
  for (size_t i = 0; i < 64; ++i) ASSERT_EQ(u8(0x100000 + i), payload_byte(i)) << i;
}

TEST_F(LinuxLoaderTest, NonRelocatableKernelRunsAtPrefAddress) {
  BzSpec spec;
  spec.relocatable = 0;
  spec.pref_address = 0x400000;
  BootImage img = load(spec);
  EXPECT_EQ(img.kernel_end, 0x400000u + spec.init_size);
}

TEST_F(LinuxLoaderTest, RejectsFilesThatAreNotBzImages) {
  BzSpec spec;
  spec.boot_flag = 0x1234;
  expect_error(spec, "not a Linux bzImage");
  spec = BzSpec{};
  spec.magic = 0x12345678;
  expect_error(spec, "not a Linux bzImage");
  std::vector<uint8_t> tiny(100, 0x90);
  try {
    load_linux(mem_, map_, write_file("tiny", tiny), "", "");
    ADD_FAILURE() << "no error for a 100-byte file";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a Linux bzImage"), std::string::npos) << e.what();
  }
}

TEST_F(LinuxLoaderTest, RejectsOldProtocolsAndZImages) {
  BzSpec spec;
  spec.version = 0x0205;
  expect_error(spec, "too old");
  spec = BzSpec{};
  spec.loadflags = 0;
  expect_error(spec, "zImage");
}

TEST_F(LinuxLoaderTest, RejectsTruncatedFiles) {
  BzSpec spec;
  spec.truncate_to = 3 * 512;  // the setup sectors and nothing else
  expect_error(spec, "truncated");
  spec.truncate_to = 0x220;  // inside the setup header
  expect_error(spec, "truncated");
  spec = BzSpec{};
  spec.syssize = spec.payload_bytes / 16 + 1;  // the header promises more than the file has
  expect_error(spec, "truncated");
}

TEST_F(LinuxLoaderTest, AcceptsAShortLastParagraph) {
  // syssize rounds the protected-mode part up to whole 16-byte paragraphs (boot protocol,
  // "syssize"); an image not padded by Linux's tools/build.c (memtest86+'s) ends a few bytes
  // into its last one. It loads, every byte of it, and nothing is read past the file.
  BzSpec spec;
  spec.payload_bytes = 0x3000 - 5;
  spec.syssize = 0x300;
  load(spec);
  for (size_t i = 0; i < spec.payload_bytes; ++i) {
    ASSERT_EQ(u8(0x100000 + i), payload_byte(i)) << i;
  }
  EXPECT_EQ(u8(0x100000 + spec.payload_bytes), 0xaa);
}

TEST_F(LinuxLoaderTest, RejectsTooLongCommandLines) {
  BzSpec spec;
  spec.cmdline_size = 16;
  expect_error(spec, "cmdline_size", std::string(17, 'x'));
  EXPECT_NO_THROW(load(spec, std::string(16, 'x')));
}

TEST_F(LinuxLoaderTest, RejectsInitrdsThatDoNotFitOrCannotBeRead) {
  expect_error(BzSpec{}, "cannot open initrd", "", (dir_ / "missing.img").string());
  // 64 MiB of RAM, the kernel decompresses up to 24 MiB: a 48 MiB initrd cannot fit.
  std::string big = (dir_ / "big.img").string();
  {
    std::ofstream out(big, std::ios::binary);
    out.seekp((48 << 20) - 1);
    out.put(0);
  }
  expect_error(BzSpec{}, "--memory", "", big);
}

class SmallRamLinuxLoaderTest : public LinuxLoaderTest {
 protected:
  SmallRamLinuxLoaderTest() : LinuxLoaderTest(16ull << 20) {}
};

TEST_F(SmallRamLinuxLoaderTest, RejectsKernelsThatDoNotFit) {
  // pref_address 16 MiB + init_size 8 MiB does not fit in 16 MiB of RAM.
  expect_error(BzSpec{}, "--memory");
}

TEST_F(LinuxLoaderTest, RecognizesBzImages) {
  EXPECT_TRUE(is_linux_bzimage(write_file("bz", build_bzimage(BzSpec{}))));
  BzSpec old;
  old.version = 0x0200;  // still a bzImage; load_linux says why it cannot load it
  EXPECT_TRUE(is_linux_bzimage(write_file("old", build_bzimage(old))));
  BzSpec bad;
  bad.magic = 0;
  EXPECT_FALSE(is_linux_bzimage(write_file("bad", build_bzimage(bad))));
  EXPECT_FALSE(is_linux_bzimage(write_file("empty", {})));
  EXPECT_FALSE(is_linux_bzimage((dir_ / "missing").string()));
}

TEST_F(LinuxLoaderTest, KernelLoaderDispatchesBzImagesWithADefaultCommandLine) {
  std::string path = write_file("bzImage", build_bzimage(BzSpec{}));
  BootImage img = load_kernel(mem_, map_, path, "", "");
  EXPECT_EQ(img.entry.gpr[kEsi], kBootParamsAddr);
  EXPECT_EQ(guest_string(u32(kBootParamsAddr + kCmdLinePtr)), kDefaultLinuxCmdline);
  load_kernel(mem_, map_, path, "console=ttyS0 quiet", "");
  EXPECT_EQ(guest_string(u32(kBootParamsAddr + kCmdLinePtr)), "console=ttyS0 quiet");
}

/// guest-cache/ at the repository root (this file is tests/unit/linux_loader_test.cpp).
fs::path guest_cache() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "guest-cache";
}

class DebianKernelTest : public LinuxLoaderTest {
 protected:
  DebianKernelTest() : LinuxLoaderTest(256ull << 20) {}
};

TEST_F(DebianKernelTest, LoadsDebiansI386Kernel) {
  fs::path kernel = guest_cache() / "vmlinuz-686";
  if (!fs::exists(kernel)) {
    GTEST_SKIP() << kernel << " is missing: run scripts/get-debian-guest (as root) to fetch it";
  }
  fs::path initrd = guest_cache() / "initramfs.cpio.gz";
  std::string initrd_path = fs::exists(initrd) ? initrd.string() : "";
  ASSERT_TRUE(is_linux_bzimage(kernel.string()));
  BootImage img = load_linux(mem_, map_, kernel.string(), "console=ttyS0", initrd_path);

  std::ifstream in(kernel, std::ios::binary);
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  uint32_t setup = (uint32_t{file[0x1f1] ? file[0x1f1] : uint8_t{4}} + 1) * 512;
  uint32_t syssize;
  std::memcpy(&syssize, &file[0x1f4], 4);
  // tools/build.c pads the code to syssize; a signed (Secure Boot) image has its signature after.
  EXPECT_LE(uint64_t{syssize} * 16, file.size() - setup);
  EXPECT_GT(uint64_t{syssize} * 16 + 4096, file.size() - setup);
  for (size_t i = 0; i < file.size() - setup; i += 4099) {
    ASSERT_EQ(u8(0x100000 + i), file[setup + i]) << i;
  }
  EXPECT_GE(u16(kBootParamsAddr + kVersion), 0x0206);
  EXPECT_TRUE(u8(kBootParamsAddr + kLoadFlags) & kLoadedHigh);
  EXPECT_EQ(u8(kBootParamsAddr + kTypeOfLoader), 0xff);
  EXPECT_EQ(guest_string(u32(kBootParamsAddr + kCmdLinePtr)), "console=ttyS0");
  EXPECT_EQ(img.entry.eip, 0x100000u);
  if (!initrd_path.empty()) {
    uint32_t image = u32(kBootParamsAddr + kRamdiskImage);
    EXPECT_EQ(u32(kBootParamsAddr + kRamdiskSize), fs::file_size(initrd));
    EXPECT_GE(image, img.kernel_end);
    EXPECT_LE(image + fs::file_size(initrd), 256u << 20);
  }
  std::cerr << "[          ] " << img.summary << "\n";
}

}  // namespace
}  // namespace vmbt
