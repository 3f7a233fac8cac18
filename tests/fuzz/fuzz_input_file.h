// A fuzz input as a file path for the loaders, which read kernels and initrds from files.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace vmbt::fuzz {

/// An in-memory file (memfd) whose contents are replaced for each input; path() names it.
class InputFile {
 public:
  InputFile() : fd_(memfd_create("vmbt-fuzz-input", MFD_CLOEXEC)) {}
  ~InputFile() { close(fd_); }
  /// Replaces the contents with [data, data + size) and returns the file's path.
  std::string set(const uint8_t* data, size_t size) {
    if (ftruncate(fd_, 0) != 0 || pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) {
      __builtin_trap();  // the harness itself failed
    }
    return "/proc/self/fd/" + std::to_string(fd_);
  }

 private:
  int fd_;
};

}  // namespace vmbt::fuzz
