// What the virtio fuzz targets share: a disk image in a memfd, a backend and an interrupt sink
// that take whatever the device gives them.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/devices/net_backend.h"
#include "vmm/machine/irq.h"

namespace vmbt::fuzzing {

/// A 64-sector image in a memfd, made once (a virtio-blk device's backing file).
inline const std::string& image_path() {
  static const std::string path = [] {
    const int fd = memfd_create("vmbt-fuzz-disk", 0);
    if (fd < 0 || ftruncate(fd, 64 * 512) != 0) __builtin_trap();
    return "/proc/self/fd/" + std::to_string(fd);
  }();
  return path;
}

/// A NetBackend that reads every byte it is sent and delivers the frames it is given.
class NullBackend final : public NetBackend {
 public:
  void send(const uint8_t* frame, size_t len) override {
    // Touch every byte: the sanitizers check the device handed over what it said.
    for (size_t i = 0; i < len; ++i) sum += frame[i];
  }
  void poll(uint64_t) override {}
  void wait_until(uint64_t) override {}
  void inject(const std::vector<uint8_t>& frame) { deliver(frame.data(), frame.size()); }
  unsigned sum = 0;
};

/// An interrupt sink that ignores the lines.
class NullIrq final : public IrqSink {
 public:
  void set_irq(unsigned, bool) override {}
};

}  // namespace vmbt::fuzzing
