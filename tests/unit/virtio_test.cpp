// The split virtqueue and virtio-blk against virtio 1.2 (§2.7 split virtqueues in the legacy
// layout, §2.7.5.3 indirect descriptors, §5.2.6 block requests), with a driver written here from
// the spec: descriptor chains, indirect tables, ring wrap-around, and bad guest input.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "tests/unit/virtio_driver_ring.h"
#include "tests/unit/virtio_test_support.h"
#include "vmm/devices/virtio/virtio_blk.h"
#include "vmm/devices/virtio/virtqueue.h"
#include "vmm/machine/disk_image.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {
namespace {

constexpr uint16_t kNext = testing::kDescNext, kWrite = testing::kDescWrite,
                   kIndirect = testing::kDescIndirect;
/// The queue's guest page (0x10000).
constexpr uint32_t kPfn = 0x10;

class VirtqueueTest : public ::testing::Test {
 protected:
  VirtqueueTest() : mem(4u << 20), q(mem), drv(mem, kPfn, 8) { q.set_legacy(kPfn, 8); }
  GuestMemory mem;
  SplitVirtqueue q;
  testing::DriverRing drv;
};

TEST_F(VirtqueueTest, ChainsInAvailableOrderReadableBeforeWritable) {
  EXPECT_FALSE(q.pop());  // nothing available yet
  drv.desc(2, 0x20000, 16, kNext, 5);
  drv.desc(5, 0x21000, 512, kNext | kWrite, 7);
  drv.desc(7, 0x22000, 1, kWrite);
  drv.offer(2);
  auto c = q.pop();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->head, 2);
  ASSERT_EQ(c->segments.size(), 3u);
  EXPECT_EQ(c->readable, 16u);
  EXPECT_EQ(c->writable, 513u);
  EXPECT_FALSE(c->segments[0].writable);
  EXPECT_EQ(c->segments[2].gpa, 0x22000u);
  EXPECT_FALSE(q.pop());
  q.push(c->head, 513);
  EXPECT_EQ(drv.used_idx(), 1);
  EXPECT_EQ(drv.used(0), std::make_pair(2u, 513u));
}

TEST_F(VirtqueueTest, IndirectTableAndRingWrapAround) {
  // An indirect table of three descriptors (§2.7.5.3): one chain.
  drv.put_desc(0x30000, 0, 0x20000, 16, kNext, 1);
  drv.put_desc(0x30000, 1, 0x21000, 8, kNext | kWrite, 2);
  drv.put_desc(0x30000, 2, 0x22000, 1, kWrite, 0);
  drv.desc(0, 0x30000, 48, kIndirect);
  // Twenty chains through an 8-entry ring: indices wrap, the device follows.
  for (int i = 0; i < 20; ++i) {
    drv.offer(0);
    auto c = q.pop();
    ASSERT_TRUE(c) << i;
    EXPECT_EQ(c->segments.size(), 3u);
    EXPECT_EQ(c->writable, 9u);
    q.push(c->head, 9);
  }
  EXPECT_EQ(drv.used_idx(), 20);
  // The 16-bit indices wrap too.
  GuestMemory mem2(4u << 20);
  SplitVirtqueue q2(mem2);
  testing::DriverRing d2(mem2, kPfn, 8);
  q2.set_legacy(kPfn, 8);
  d2.desc(1, 0x20000, 4, 0);
  for (int i = 0; i < 65540; ++i) {
    d2.offer(1);
    ASSERT_TRUE(q2.pop()) << i;
    q2.push(1, 0);
  }
  EXPECT_EQ(d2.used_idx(), static_cast<uint16_t>(65540));
}

TEST_F(VirtqueueTest, BadGuestInputBreaksTheQueueNeverTheHost) {
  auto expect_error = [&](const char* what) {
    EXPECT_THROW(q.pop(), VirtqueueError) << what;
    EXPECT_THROW(q.pop(), VirtqueueError) << what << " (stays broken)";
    q.set_legacy(kPfn, 8);  // the guest resets the queue
  };
  // A buffer outside RAM.
  drv.desc(0, (4u << 20) - 8, 16, 0);
  drv.offer(0);
  expect_error("buffer past the end of RAM");
  // A loop in a chain.
  drv.set_avail_idx(0);
  drv.desc(0, 0x20000, 4, kNext, 1);
  drv.desc(1, 0x20000, 4, kNext, 0);
  drv.offer(0);
  expect_error("a loop");
  // A next index past the queue.
  drv.set_avail_idx(0);
  drv.desc(0, 0x20000, 4, kNext, 9);
  drv.offer(0);
  expect_error("next past the queue");
  // The available index running more than a queue ahead.
  drv.set_avail_idx(9);
  expect_error("avail idx ahead");
  // A readable descriptor after a writable one.
  drv.set_avail_idx(0);
  drv.desc(0, 0x20000, 4, kNext | kWrite, 1);
  drv.desc(1, 0x20000, 4, 0);
  drv.offer(0);
  expect_error("readable after writable");
  // Indirect: nested, with F_NEXT, a length that is not whole descriptors.
  drv.set_avail_idx(0);
  drv.put_desc(0x30000, 0, 0x30000, 16, kIndirect, 0);
  drv.desc(0, 0x30000, 16, kIndirect);
  drv.offer(0);
  expect_error("nested indirect");
  drv.set_avail_idx(0);
  drv.desc(0, 0x30000, 16, kIndirect | kNext, 1);
  drv.offer(0);
  expect_error("indirect with next");
  drv.set_avail_idx(0);
  drv.desc(0, 0x30000, 20, kIndirect);
  drv.offer(0);
  expect_error("indirect length");
  // Rings placed past the end of RAM.
  SplitVirtqueue far(mem);
  far.set_legacy((4u << 20) >> 12, 8);
  EXPECT_THROW(far.pop(), VirtqueueError);
}

/// A 64-sector image whose sector n holds the byte n everywhere.
class VirtioBlkTest : public ::testing::Test {
 protected:
  VirtioBlkTest() : path(image_file.path), mem(4u << 20), q(mem), drv(mem, kPfn, 8) {
    q.set_legacy(kPfn, 8);
  }
  /// A request: header at 0x20000, data at 0x21000 (`len`, `data_flags`), status at 0x22000.
  uint8_t request(VirtioBlk& blk, uint32_t type, uint64_t sector, uint32_t len, bool write_data) {
    uint8_t header[16] = {};
    std::memcpy(header, &type, 4);
    std::memcpy(header + 8, &sector, 8);
    mem.write(0x20000, header, 16);
    uint8_t status = 0xee;
    mem.write(0x22000, &status, 1);
    if (len) {
      drv.desc(0, 0x20000, 16, kNext, 1);
      drv.desc(1, 0x21000, len, kNext | (write_data ? 0 : kWrite), 2);
    } else {
      drv.desc(0, 0x20000, 16, kNext, 2);
    }
    drv.desc(2, 0x22000, 1, kWrite);
    drv.offer(0);
    EXPECT_TRUE(blk.process(0, q));
    mem.read(0x22000, &status, 1);
    return status;
  }
  testing::TempDiskImage image_file;
  std::string path;
  GuestMemory mem;
  SplitVirtqueue q;
  testing::DriverRing drv;
};

TEST_F(VirtioBlkTest, ReadWriteFlushAndTheirErrors) {
  DiskImage image(path, false, false);
  VirtioBlk blk(mem, image, 0);
  EXPECT_EQ(blk.config_byte(0), 64);  // capacity in sectors, little-endian
  EXPECT_TRUE(blk.features() & VirtioBlk::kFeatureFlush);
  EXPECT_FALSE(blk.features() & VirtioBlk::kFeatureRo);
  // IN: sectors 5-6 into guest RAM; used length = data + status.
  EXPECT_EQ(request(blk, VirtioBlk::kTypeIn, 5, 1024, false), VirtioBlk::kStatusOk);
  uint8_t got[1024];
  mem.read(0x21000, got, sizeof got);
  EXPECT_EQ(got[0], 5);
  EXPECT_EQ(got[1023], 6);
  EXPECT_EQ(drv.used(0).second, 1025u);
  // OUT: sector 9 from guest RAM, then read back from the file.
  std::vector<uint8_t> pattern(512, 0xa5);
  mem.write(0x21000, pattern.data(), 512);
  EXPECT_EQ(request(blk, VirtioBlk::kTypeOut, 9, 512, true), VirtioBlk::kStatusOk);
  EXPECT_EQ(request(blk, VirtioBlk::kTypeFlush, 0, 0, false), VirtioBlk::kStatusOk);
  std::ifstream f(path, std::ios::binary);
  f.seekg(9 * 512);
  char c = 0;
  f.read(&c, 1);
  EXPECT_EQ(static_cast<uint8_t>(c), 0xa5);
  // Past the end, a partial sector, an unknown type: errors the guest sees.
  EXPECT_EQ(request(blk, VirtioBlk::kTypeIn, 63, 1024, false), VirtioBlk::kStatusIoErr);
  EXPECT_EQ(request(blk, VirtioBlk::kTypeIn, ~0ull, 512, false), VirtioBlk::kStatusIoErr);
  EXPECT_EQ(request(blk, VirtioBlk::kTypeIn, 0, 100, false), VirtioBlk::kStatusIoErr);
  EXPECT_EQ(request(blk, 77, 0, 0, false), VirtioBlk::kStatusUnsupported);
  // GET_ID: "vmbt-0".
  EXPECT_EQ(request(blk, VirtioBlk::kTypeGetId, 0, 20, false), VirtioBlk::kStatusOk);
  char id[21] = {};
  mem.read(0x21000, id, 20);
  EXPECT_STREQ(id, "vmbt-0");
}

TEST_F(VirtioBlkTest, ReadOnlyRefusesWritesAndSnapshotKeepsTheImage) {
  {
    DiskImage image(path, true, false);
    VirtioBlk blk(mem, image, 1);
    EXPECT_TRUE(blk.features() & VirtioBlk::kFeatureRo);
    EXPECT_EQ(request(blk, VirtioBlk::kTypeOut, 1, 512, true), VirtioBlk::kStatusIoErr);
  }
  std::vector<uint8_t> pattern(512, 0x5a);
  {
    DiskImage image(path, false, true);  // --snapshot
    VirtioBlk blk(mem, image, 2);
    mem.write(0x21000, pattern.data(), 512);
    EXPECT_EQ(request(blk, VirtioBlk::kTypeOut, 3, 512, true), VirtioBlk::kStatusOk);
    // The guest reads its write back (sectors 2-4: image, overlay, image).
    EXPECT_EQ(request(blk, VirtioBlk::kTypeIn, 2, 1536, false), VirtioBlk::kStatusOk);
    uint8_t got[1536];
    mem.read(0x21000, got, sizeof got);
    EXPECT_EQ(got[0], 2);
    EXPECT_EQ(got[512], 0x5a);
    EXPECT_EQ(got[1024], 4);
  }
  std::ifstream f(path, std::ios::binary);
  f.seekg(3 * 512);
  char c = 0;
  f.read(&c, 1);
  EXPECT_EQ(c, 3);  // the image never saw the write
}

TEST_F(VirtioBlkTest, RequestsWithoutHeaderOrStatusAreDriverErrors) {
  DiskImage image(path, false, false);
  VirtioBlk blk(mem, image, 0);
  drv.desc(0, 0x20000, 8, kNext, 1);  // an 8-byte header
  drv.desc(1, 0x22000, 1, kWrite);
  drv.offer(0);
  EXPECT_THROW(blk.process(0, q), VirtqueueError);
  q.set_legacy(kPfn, 8);
  drv.set_avail_idx(0);
  drv.desc(0, 0x20000, 16, 0);  // no writable byte for the status
  drv.offer(0);
  EXPECT_THROW(blk.process(0, q), VirtqueueError);
}

}  // namespace
}  // namespace vmbt
