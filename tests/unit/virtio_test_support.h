// What the virtio device tests share: a disk image with known sectors, a network backend that
// records and injects frames, and the transport's counters.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "vmm/devices/net_backend.h"
#include "vmm/devices/virtio/virtio_pci.h"
#include "vmm/stats.h"

namespace vmbt::testing {

/// A temporary 64-sector image whose sector n holds the byte n everywhere; removed at the end.
class TempDiskImage {
 public:
  TempDiskImage() {
    char name[] = "/tmp/vmbt-blk-test-XXXXXX";
    const int fd = mkstemp(name);
    path = name;
    std::vector<uint8_t> data(64 * 512);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i / 512);
    EXPECT_EQ(write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    close(fd);
  }
  ~TempDiskImage() { unlink(path.c_str()); }
  TempDiskImage(const TempDiskImage&) = delete;
  TempDiskImage& operator=(const TempDiskImage&) = delete;
  std::string path;
};

/// A backend that records what the device sends and injects frames for the guest.
class FakeNetBackend final : public NetBackend {
 public:
  void send(const uint8_t* frame, size_t len) override { sent.emplace_back(frame, frame + len); }
  void poll(uint64_t) override {}
  void wait_until(uint64_t) override {}
  void inject(const std::vector<uint8_t>& frame) { deliver(frame.data(), frame.size()); }
  std::vector<std::vector<uint8_t>> sent;
};

/// The counter "virtio.DEVICE.NAME" of transport `pci` named `device`.
inline uint64_t transport_stat(const VirtioPci& pci, const std::string& device,
                               const std::string& name) {
  Stats s;
  pci.collect_stats(s);
  return s.get("virtio." + device + "." + name);
}

}  // namespace vmbt::testing
