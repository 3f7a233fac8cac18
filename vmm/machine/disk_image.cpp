#include "vmm/machine/disk_image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <fmt/format.h>

#include "vmm/error.h"

namespace vmbt {

namespace {
bool full_pread(int fd, void* dst, uint64_t bytes, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(dst);
  while (bytes) {
    const ssize_t n = pread(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {  // past the end of a sparse overlay or a shrunk file: zeros
      std::memset(p, 0, bytes);
      return true;
    }
    p += n;
    bytes -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}

bool full_pwrite(int fd, const void* src, uint64_t bytes, uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(src);
  while (bytes) {
    const ssize_t n = pwrite(fd, p, bytes, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    bytes -= static_cast<uint64_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return true;
}
}  // namespace

DiskImage::DiskImage(const std::string& path, bool read_only, bool snapshot)
    : path_(path), read_only_(read_only) {
  const bool want_write = !read_only && !snapshot;
  fd_ = open(path.c_str(), (want_write ? O_RDWR : O_RDONLY) | O_CLOEXEC);
  if (fd_ < 0 && want_write && (errno == EACCES || errno == EROFS)) {
    throw Error(
        fmt::format("--drive {}: the file is not writable ({}); add readonly=on or "
                    "--snapshot",
                    path, std::strerror(errno)));
  }
  if (fd_ < 0) throw Error(fmt::format("--drive {}: {}", path, std::strerror(errno)));
  struct stat st {};
  if (fstat(fd_, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
    close(fd_);
    throw Error(fmt::format("--drive {}: not a regular file or block device", path));
  }
  uint64_t bytes = static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    const off_t end = lseek(fd_, 0, SEEK_END);
    bytes = end > 0 ? static_cast<uint64_t>(end) : 0;
  }
  sectors_ = bytes / kSector;
  if (sectors_ == 0) {
    close(fd_);
    throw Error(fmt::format("--drive {}: the image is smaller than one 512-byte sector", path));
  }
  if (snapshot && !read_only) {
    const char* tmp = std::getenv("TMPDIR");
    std::string name = std::string(tmp && *tmp ? tmp : "/tmp") + "/vmbt-snapshot-XXXXXX";
    overlay_fd_ = mkstemp(name.data());
    if (overlay_fd_ < 0) {
      close(fd_);
      throw Error(fmt::format("--snapshot: cannot create an overlay in {}: {}", tmp ? tmp : "/tmp",
                              std::strerror(errno)));
    }
    unlink(name.c_str());  // gone at exit, whatever happens
    overlay_sectors_.assign(sectors_, false);
  }
}

DiskImage::~DiskImage() {
  if (overlay_fd_ >= 0) close(overlay_fd_);
  if (fd_ >= 0) close(fd_);
}

bool DiskImage::in_range(uint64_t sector, uint64_t bytes) const {
  return bytes % kSector == 0 && sector <= sectors_ && bytes / kSector <= sectors_ - sector;
}

bool DiskImage::read(uint64_t sector, void* dst, uint64_t bytes) {
  if (!in_range(sector, bytes)) return false;
  auto* p = static_cast<uint8_t*>(dst);
  for (uint64_t done = 0; done < bytes;) {
    // A run of sectors from the same file.
    const uint64_t s = sector + done / kSector;
    const bool from_overlay = overlay_fd_ >= 0 && overlay_sectors_[s];
    uint64_t run = kSector;
    while (done + run < bytes &&
           (overlay_fd_ >= 0 && overlay_sectors_[s + run / kSector]) == from_overlay) {
      run += kSector;
    }
    if (!full_pread(from_overlay ? overlay_fd_ : fd_, p + done, run, s * kSector)) return false;
    done += run;
  }
  bytes_read_ += bytes;
  return true;
}

bool DiskImage::write(uint64_t sector, const void* src, uint64_t bytes) {
  if (read_only_ || !in_range(sector, bytes)) return false;
  if (overlay_fd_ >= 0) {
    if (!full_pwrite(overlay_fd_, src, bytes, sector * kSector)) return false;
    for (uint64_t i = 0; i < bytes / kSector; ++i) overlay_sectors_[sector + i] = true;
  } else if (!full_pwrite(fd_, src, bytes, sector * kSector)) {
    return false;
  }
  bytes_written_ += bytes;
  return true;
}

bool DiskImage::flush() {
  ++flushes_;
  if (overlay_fd_ >= 0 || read_only_) return true;
  return fdatasync(fd_) == 0;
}

}  // namespace vmbt
