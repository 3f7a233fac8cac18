#include "vmm/machine/guest_memory.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "vmm/error.h"

namespace vmbt {

GuestMemory::GuestMemory(uint64_t bytes) : size_(bytes) {
  if (bytes < kMinBytes || bytes > kMaxBytes) {
    throw Error(
        fmt::format("guest memory of {} bytes is out of range: use between 2M and 3G", bytes));
  }
  if (bytes % 4096 != 0) throw Error("guest memory size must be a multiple of 4 KiB");
  fd_ = memfd_create("vmbt-guest-ram", MFD_CLOEXEC);
  if (fd_ < 0) throw Error(fmt::format("memfd_create failed: {}", std::strerror(errno)));
  if (ftruncate(fd_, static_cast<off_t>(bytes)) != 0) {
    int e = errno;
    close(fd_);
    throw Error(fmt::format("cannot size guest RAM to {} bytes: {}", bytes, std::strerror(e)));
  }
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd_, 0);
  if (p == MAP_FAILED) {
    int e = errno;
    close(fd_);
    throw Error(fmt::format("cannot map {} bytes of guest RAM: {}", bytes, std::strerror(e)));
  }
  base_ = static_cast<uint8_t*>(p);
}

GuestMemory::~GuestMemory() {
  if (base_) munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
}

bool GuestMemory::read(uint64_t gpa, void* dst, uint64_t len) const {
  if (!contains(gpa, len)) return false;
  if (len != 0) std::memcpy(dst, base_ + gpa, len);  // (dst may be null for an empty read)
  return true;
}

bool GuestMemory::copy_linear(uint32_t linear, uint8_t* data, size_t size, bool write,
                              const std::function<std::optional<uint64_t>(uint32_t)>& translate,
                              const std::function<void(uint64_t, size_t)>& before_write) {
  std::vector<std::pair<uint64_t, size_t>> pieces;  // (guest-physical address, bytes)
  for (size_t done = 0; done < size;) {
    const uint32_t at = linear + static_cast<uint32_t>(done);
    const size_t chunk = std::min<size_t>(size - done, 0x1000 - (at & 0xfff));
    const std::optional<uint64_t> gpa = translate(at);
    if (!gpa || !contains(*gpa, chunk)) return false;
    pieces.push_back({*gpa, chunk});
    done += chunk;
  }
  size_t offset = 0;
  for (const auto& [gpa, chunk] : pieces) {
    if (write) {
      if (before_write) before_write(gpa, chunk);
      std::memcpy(base_ + gpa, data + offset, chunk);
    } else {
      std::memcpy(data + offset, base_ + gpa, chunk);
    }
    offset += chunk;
  }
  return true;
}

bool GuestMemory::write(uint64_t gpa, const void* src, uint64_t len) {
  if (!contains(gpa, len)) return false;
  if (len != 0) std::memcpy(base_ + gpa, src, len);  // (src may be null for an empty write)
  return true;
}

bool GuestMemory::dma_write(uint64_t gpa, const void* src, uint64_t len) {
  if (!write(gpa, src, len)) return false;
  if (len != 0 && dma_observer_) dma_observer_(gpa, len);
  return true;
}

uint32_t GuestMemory::read32(uint64_t gpa) const {
  uint32_t v;
  if (!read(gpa, &v, 4)) throw Error(fmt::format("guest address {:#x} is outside RAM", gpa));
  return v;
}

void GuestMemory::write32(uint64_t gpa, uint32_t value) {
  if (!write(gpa, &value, 4)) throw Error(fmt::format("guest address {:#x} is outside RAM", gpa));
}

}  // namespace vmbt
