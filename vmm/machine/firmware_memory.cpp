// The BIOS ROM and the PAM-controlled BIOS area (Intel 82441FX datasheet §3.2.18; QEMU's pc
// machine layout: the ROM at the top of 4 GiB, its last 128 KiB at 0xE0000).
#include "vmm/machine/firmware_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "vmm/devices/i440fx.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {

namespace {
constexpr uint64_t k4GiB = 1ull << 32;
constexpr uint32_t kMinRom = 64 * 1024, kMaxRom = 16 * 1024 * 1024;
}  // namespace

std::vector<uint8_t> FirmwareMemory::load_rom(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw Error(
        fmt::format("cannot read the BIOS image {}: {} (a firmware boot, without "
                    "--kernel, needs one: install Debian's package 'seabios' or give "
                    "--bios FILE)",
                    path, std::strerror(errno)));
  }
  std::vector<uint8_t> rom((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (rom.size() < kMinRom || rom.size() > kMaxRom || rom.size() % kMinRom != 0) {
    throw Error(
        fmt::format("the BIOS image {} is {} bytes: a ROM image is 64 KiB to 16 MiB, a "
                    "multiple of 64 KiB (SeaBIOS's bios.bin is 128 KiB, bios-256k.bin "
                    "256 KiB)",
                    path, rom.size()));
  }
  return rom;
}

namespace {
uint32_t checked_rom_size(const std::vector<uint8_t>& rom) {
  if (rom.size() < kMinRom || rom.size() > kMaxRom || rom.size() % kMinRom != 0) {
    throw Error("internal: a ROM image is 64 KiB to 16 MiB, a multiple of 64 KiB");
  }
  return static_cast<uint32_t>(rom.size());
}
}  // namespace

FirmwareMemory::FirmwareMemory(GuestMemory& ram, const std::vector<uint8_t>& rom,
                               const I440fxHostBridge& pam)
    : ram_(ram),
      pam_(pam),
      rom_size_(checked_rom_size(rom)),
      rom_base_(static_cast<uint32_t>(k4GiB - rom_size_)),
      area_window_(*this, kBiosAreaBase),
      rom_window_(*this, rom_base_) {
  // In a memfd, so that an engine mapping guest memory by file (bt) can map the ROM too.
  rom_fd_ = memfd_create("vmbt-bios-rom", MFD_CLOEXEC);
  if (rom_fd_ < 0 || ftruncate(rom_fd_, rom_size_) != 0 ||
      pwrite(rom_fd_, rom.data(), rom_size_, 0) != static_cast<ssize_t>(rom_size_)) {
    if (rom_fd_ >= 0) close(rom_fd_);
    throw Error("cannot allocate host memory for the BIOS ROM");
  }
  void* p = mmap(nullptr, rom_size_, PROT_READ, MAP_SHARED, rom_fd_, 0);  // nothing writes a ROM
  if (p == MAP_FAILED) {
    close(rom_fd_);
    throw Error("cannot allocate host memory for the BIOS ROM");
  }
  rom_ = static_cast<uint8_t*>(p);
}

FirmwareMemory::~FirmwareMemory() {
  if (rom_) munmap(rom_, rom_size_);
  if (rom_fd_ >= 0) close(rom_fd_);
}

void FirmwareMemory::attach(MmioBus& bus) {
  bus.add(kBiosAreaBase, kBiosAreaSize, &area_window_, "bios-area");
  bus.add(rom_base_, rom_size_, &rom_window_, "bios-rom");
}

uint8_t FirmwareMemory::attributes(uint32_t gpa) const {
  const unsigned segment = gpa >= 0xf0000 ? 0 : 1 + (gpa - kBiosAreaBase) / 0x4000;
  return pam_.pam_attributes(segment);
}

const uint8_t* FirmwareMemory::rom_alias(uint32_t gpa) const {
  const uint32_t alias = std::min(rom_size_, kIsaBiosSize);
  const uint32_t alias_base = 0x100000 - alias;
  if (gpa < alias_base || gpa >= 0x100000) return nullptr;
  return rom_ + (rom_size_ - alias) + (gpa - alias_base);
}

std::vector<MemoryWindow> FirmwareMemory::windows() const {
  std::vector<MemoryWindow> out;
  // The segments in address order: 1-12 (0xC0000-0xEFFFF), then 0 (0xF0000-0xFFFFF).
  for (unsigned i = 1; i <= I440fxHostBridge::kPamSegments; ++i) {
    const unsigned segment = i % I440fxHostBridge::kPamSegments;
    const uint32_t base = I440fxHostBridge::pam_segment_base(segment);
    const uint32_t size = I440fxHostBridge::pam_segment_size(segment);
    const uint8_t a = pam_.pam_attributes(segment);
    const uint8_t rw = I440fxHostBridge::kReadEnable | I440fxHostBridge::kWriteEnable;
    if ((a & rw) == rw) continue;  // plain RAM
    MemoryWindow w{base, size, nullptr, true};
    if (a & I440fxHostBridge::kReadEnable) {
      w.host = ram_.host_base() + base;
    } else if (const uint8_t* alias = rom_alias(base)) {
      w.host = const_cast<uint8_t*>(alias);  // (mapped read-only: never written)
      w.fd = rom_fd_;
      w.fd_offset = static_cast<uint64_t>(alias - rom_);
    }
    if (!out.empty()) {
      MemoryWindow& last = out.back();
      const bool contiguous_host = (last.host == nullptr && w.host == nullptr) ||
                                   (last.host != nullptr && w.host != nullptr &&
                                    last.host + last.size == w.host && last.fd == w.fd);
      if (last.gpa + last.size == w.gpa && contiguous_host) {
        last.size += w.size;
        continue;
      }
    }
    out.push_back(w);
  }
  out.push_back({rom_base_, rom_size_, rom_, true, rom_fd_, 0});
  return out;
}

uint8_t FirmwareMemory::read_byte(uint32_t gpa) const {
  if (gpa >= rom_base_) return rom_[gpa - rom_base_];
  if (gpa < kBiosAreaBase || gpa >= kBiosAreaBase + kBiosAreaSize) return 0xff;
  if (attributes(gpa) & I440fxHostBridge::kReadEnable) {
    uint8_t b = 0xff;
    ram_.read(gpa, &b, 1);
    return b;
  }
  const uint8_t* r = rom_alias(gpa);
  return r ? *r : 0xff;
}

void FirmwareMemory::write_byte(uint32_t gpa, uint8_t value) {
  if (gpa < kBiosAreaBase || gpa >= kBiosAreaBase + kBiosAreaSize) return;  // the ROM: dropped
  if (attributes(gpa) & I440fxHostBridge::kWriteEnable) ram_.write(gpa, &value, 1);
}

uint64_t FirmwareMemory::Window::mmio_read(uint64_t offset, unsigned size) {
  uint64_t v = 0;
  for (unsigned i = 0; i < size && i < 8; ++i) {
    v |= uint64_t{owner_.read_byte(static_cast<uint32_t>(base_ + offset + i))} << (8 * i);
  }
  return v;
}

void FirmwareMemory::Window::mmio_write(uint64_t offset, unsigned size, uint64_t value) {
  for (unsigned i = 0; i < size && i < 8; ++i) {
    owner_.write_byte(static_cast<uint32_t>(base_ + offset + i),
                      static_cast<uint8_t>(value >> (8 * i)));
  }
}

}  // namespace vmbt
