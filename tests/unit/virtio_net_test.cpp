// virtio-net (virtio 1.2 §5.1) through the legacy virtio-pci transport (§4.1.4.8, §4.1.5.1.1),
// driven by a driver written here from the spec as Linux's virtio_net would drive it, and as a
// hostile one would: the 10-byte legacy header (§5.1.6), transmit (§5.1.6.2), receive
// (§5.1.6.3-§5.1.6.4), and bad descriptor chains (§2.1.2 DEVICE_NEEDS_RESET).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "tests/unit/fake_irq_sink.h"
#include "tests/unit/virtio_driver_ring.h"
#include "tests/unit/virtio_test_support.h"
#include "vmm/devices/net_backend.h"
#include "vmm/devices/virtio/virtio_net.h"
#include "vmm/devices/virtio/virtio_pci.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/stats.h"

namespace vmbt {
namespace {

constexpr uint16_t kNext = testing::kDescNext, kWrite = testing::kDescWrite;
constexpr uint16_t kBar = 0xc000;
constexpr unsigned kIrq = 6;
constexpr uint64_t kRam = 4u << 20;
// Legacy register offsets (§4.1.4.8) and status bits (§2.1).
constexpr uint16_t kHostFeatures = 0x00, kGuestFeatures = 0x04, kQueuePfn = 0x08, kQueueSize = 0x0c,
                   kQueueSelect = 0x0e, kQueueNotify = 0x10, kStatus = 0x12, kIsr = 0x13,
                   kConfig = 0x14;
constexpr uint8_t kAcknowledge = 1, kDriver = 2, kDriverOk = 4, kNeedsReset = 64;

using FakeBackend = testing::FakeNetBackend;
using Ring = testing::DriverRing;

class VirtioNetTest : public ::testing::Test {
 protected:
  VirtioNetTest()
      : mem(kRam),
        net(mem, backend),
        pci(mem, net, irq, kIrq, 0x020000, "net0"),
        rx(mem, 0x10, VirtioNet::kQueueSize),
        tx(mem, 0x20, VirtioNet::kQueueSize) {
    pci.assign_io_bar(0, kBar);
    // Garbage where the buffers go, so that what the device writes is told from what was there.
    std::vector<uint8_t> junk(0x100000, 0xAA);
    mem.write(0x100000, junk.data(), junk.size());
  }
  /// A port read of `size` bytes (the bus keeps the low `size` bytes of the device's answer).
  uint32_t in(uint16_t reg, unsigned size) {
    const uint32_t v = pci.io_read(kBar + reg, size);
    return size == 4 ? v : v & ((1u << (8 * size)) - 1);
  }
  void out(uint16_t reg, unsigned size, uint32_t v) { pci.io_write(kBar + reg, size, v); }
  /// The legacy driver's initialization (§3.1.2 "Legacy Interface: Device Initialization").
  void set_up() {
    out(kStatus, 1, 0);
    out(kStatus, 1, kAcknowledge);
    out(kStatus, 1, kAcknowledge | kDriver);
    out(kGuestFeatures, 4, in(kHostFeatures, 4));
    for (Ring* r : {&rx, &tx}) {
      out(kQueueSelect, 2, r == &rx ? 0 : 1);
      ASSERT_EQ(in(kQueueSize, 2), VirtioNet::kQueueSize);
      out(kQueuePfn, 4, r->pfn());
    }
    out(kStatus, 1, kAcknowledge | kDriver | kDriverOk);
  }
  void notify(uint16_t queue) { out(kQueueNotify, 2, queue); }
  std::vector<uint8_t> bytes(uint64_t gpa, size_t n) {
    std::vector<uint8_t> v(n);
    mem.read(gpa, v.data(), n);
    return v;
  }
  static std::vector<uint8_t> frame(size_t n, uint8_t seed) {
    std::vector<uint8_t> f(n);
    for (size_t i = 0; i < n; ++i) f[i] = static_cast<uint8_t>(seed + i * 7);
    return f;
  }
  uint64_t stat(const std::string& name) { return testing::transport_stat(pci, "net0", name); }

  GuestMemory mem;
  FakeBackend backend;
  testing::FakeIrqSink irq;
  VirtioNet net;
  VirtioPci pci;
  Ring rx, tx;
};

TEST_F(VirtioNetTest, IdentityFeaturesAndConfigurationAreQemus) {
  // PCI: vendor 0x1AF4, transitional network device 0x1000, subsystem ID 1 (§4.1.2.1), class
  // 0x020000 (Ethernet controller).
  EXPECT_EQ(pci.config_read(0x00, 4), 0x10001AF4u);
  EXPECT_EQ(pci.config_read(0x2c, 4), 0x00011AF4u);
  EXPECT_EQ(pci.config_read(0x08, 4) >> 8, 0x020000u);
  // Features: MAC (5), STATUS (16), INDIRECT_DESC (28); not CSUM (0), GUEST_CSUM (1), MRG_RXBUF
  // (15), CTRL_VQ (17), nor anything else.
  EXPECT_EQ(in(kHostFeatures, 4), (1u << 5) | (1u << 16) | (1u << 28));
  // Configuration (§5.1.4): mac, then status = VIRTIO_NET_S_LINK_UP.
  const uint8_t mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
  for (unsigned i = 0; i < 6; ++i) EXPECT_EQ(in(kConfig + i, 1), mac[i]) << i;
  EXPECT_EQ(in(kConfig + 6, 2), 1u);
  // Two queues, receiveq and transmitq; no control queue.
  out(kQueueSelect, 2, 2);
  EXPECT_EQ(in(kQueueSize, 2), 0u);
}

TEST_F(VirtioNetTest, TransmitSendsTheFrameWithoutTheHeader) {
  set_up();
  const std::vector<uint8_t> f = frame(98, 3);
  // Linux's legacy layout: the header in its own descriptor, the frame in two more.
  std::vector<uint8_t> header(10, 0x5C);  // a header the device must not pass on
  mem.write(0x100000, header.data(), 10);
  mem.write(0x101000, f.data(), 40);
  mem.write(0x102000, f.data() + 40, 58);
  tx.desc(0, 0x100000, 10, kNext, 1);
  tx.desc(1, 0x101000, 40, kNext, 2);
  tx.desc(2, 0x102000, 58, 0);
  // And a second packet with header and frame in one descriptor (§5.1.6.2: any layout).
  const std::vector<uint8_t> g = frame(60, 9);
  mem.write(0x103000, header.data(), 10);
  mem.write(0x10300a, g.data(), g.size());
  tx.desc(3, 0x103000, 70, 0);
  tx.offer(0);
  tx.offer(3);
  notify(1);
  ASSERT_EQ(backend.sent.size(), 2u);
  EXPECT_EQ(backend.sent[0], f);
  EXPECT_EQ(backend.sent[1], g);
  // Both chains used, nothing written into them (§2.7.8: len is bytes written).
  ASSERT_EQ(tx.used_idx(), 2);
  EXPECT_EQ(tx.used(0), std::make_pair(0u, 0u));
  EXPECT_EQ(tx.used(1), std::make_pair(3u, 0u));
  // Used buffers: ISR bit 0 and INTA# (§4.1.4.5); reading the ISR clears both.
  EXPECT_TRUE(irq.levels[kIrq]);
  EXPECT_EQ(in(kIsr, 1), 1u);
  EXPECT_FALSE(irq.levels[kIrq]);
  EXPECT_EQ(stat("tx_packets"), 2u);
  EXPECT_EQ(stat("tx_bytes"), 158u);
  EXPECT_EQ(stat("notifies"), 1u);
  EXPECT_EQ(stat("interrupts"), 1u);
}

TEST_F(VirtioNetTest, ReceivePutsAZeroedHeaderAndTheFrameInTheNextBuffer) {
  set_up();
  // Two receive buffers: one split header/data (as a legacy driver without ANY_LAYOUT), one whole.
  rx.desc(0, 0x100000, 10, kWrite | kNext, 1);
  rx.desc(1, 0x101000, 1514, kWrite);
  rx.desc(2, 0x102000, 1524, kWrite);
  rx.offer(0);
  rx.offer(2);
  notify(0);  // buffers added: nothing to use yet
  EXPECT_EQ(rx.used_idx(), 0);
  EXPECT_FALSE(irq.levels[kIrq]);

  const std::vector<uint8_t> f = frame(342, 1), g = frame(60, 100);
  backend.inject(f);
  ASSERT_EQ(rx.used_idx(), 1);
  // §5.1.6.4: flags 0, gso_type VIRTIO_NET_HDR_GSO_NONE (0), hdr_len, gso_size, csum_start,
  // csum_offset 0: ten zero bytes, then the frame; used len = header + frame.
  EXPECT_EQ(bytes(0x100000, 10), std::vector<uint8_t>(10, 0));
  EXPECT_EQ(bytes(0x101000, f.size()), f);
  EXPECT_EQ(bytes(0x101000 + f.size(), 1), std::vector<uint8_t>{0xAA});  // nothing beyond
  EXPECT_EQ(rx.used(0), std::make_pair(0u, uint32_t(10 + f.size())));
  EXPECT_TRUE(irq.levels[kIrq]);
  EXPECT_EQ(in(kIsr, 1), 1u);

  backend.inject(g);
  ASSERT_EQ(rx.used_idx(), 2);
  EXPECT_EQ(bytes(0x102000, 10), std::vector<uint8_t>(10, 0));
  EXPECT_EQ(bytes(0x10200a, g.size()), g);
  EXPECT_EQ(rx.used(1), std::make_pair(2u, 70u));
  EXPECT_EQ(stat("rx_packets"), 2u);
  EXPECT_EQ(stat("rx_bytes"), 402u);
}

TEST_F(VirtioNetTest, ReceiveWithoutABufferDropsAndCountsNeverQueues) {
  // Before the driver is ready: dropped.
  backend.inject(frame(60, 1));
  EXPECT_EQ(stat("rx_dropped_no_buffer"), 1u);
  set_up();
  // Ready, but no buffer: dropped, nothing used, no interrupt.
  backend.inject(frame(60, 2));
  EXPECT_EQ(stat("rx_dropped_no_buffer"), 2u);
  EXPECT_EQ(rx.used_idx(), 0);
  EXPECT_FALSE(irq.levels[kIrq]);
  // A buffer now: only the next frame lands in it (the device kept none of the dropped ones).
  rx.desc(0, 0x100000, 1524, kWrite);
  rx.offer(0);
  notify(0);
  EXPECT_EQ(rx.used_idx(), 0);
  const std::vector<uint8_t> f = frame(80, 3);
  backend.inject(f);
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(bytes(0x10000a, f.size()), f);
  EXPECT_EQ(stat("rx_packets"), 1u);
  // The ring is empty again.
  backend.inject(f);
  EXPECT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(stat("rx_dropped_no_buffer"), 3u);
}

TEST_F(VirtioNetTest, AFrameLargerThanTheBufferIsDroppedAndTheBufferGivenBackEmpty) {
  set_up();
  rx.desc(0, 0x100000, 100, kWrite);
  rx.desc(1, 0x101000, 100, kWrite);
  rx.offer(0);
  rx.offer(1);
  backend.inject(frame(91, 1));  // 10 + 91 > 100
  ASSERT_EQ(rx.used_idx(), 1);
  EXPECT_EQ(rx.used(0), std::make_pair(0u, 0u));
  EXPECT_EQ(bytes(0x100000, 100), std::vector<uint8_t>(100, 0xAA));  // not a byte written
  EXPECT_EQ(stat("rx_dropped_too_big"), 1u);
  EXPECT_EQ(stat("rx_packets"), 0u);
  // Exactly the buffer's size fits.
  const std::vector<uint8_t> f = frame(90, 2);
  backend.inject(f);
  ASSERT_EQ(rx.used_idx(), 2);
  EXPECT_EQ(rx.used(1), std::make_pair(1u, 100u));
  EXPECT_EQ(bytes(0x10100a, 90), f);
  // Larger than any frame the device moves (kMaxFrame): dropped before a buffer is taken.
  rx.desc(2, 0x110000, 0x20000, kWrite);
  rx.offer(2);
  backend.inject(std::vector<uint8_t>(VirtioNet::kMaxFrame + 1, 1));
  EXPECT_EQ(rx.used_idx(), 2);
  EXPECT_EQ(stat("rx_dropped_too_big"), 2u);
  backend.inject(std::vector<uint8_t>(VirtioNet::kMaxFrame, 1));
  ASSERT_EQ(rx.used_idx(), 3);
  EXPECT_EQ(rx.used(2), std::make_pair(2u, 10u + VirtioNet::kMaxFrame));
}

TEST_F(VirtioNetTest, TransmitOfMoreThanTheLargestFrameIsDropped) {
  set_up();
  // 10 + kMaxFrame + 1 readable bytes, the same page named again and again.
  const uint32_t total = 10 + VirtioNet::kMaxFrame + 1;
  uint16_t i = 0;
  for (uint32_t left = total; left > 0; ++i) {
    const uint32_t n = std::min<uint32_t>(left, 4096);
    left -= n;
    tx.desc(i, 0x100000, n, left ? kNext : 0, static_cast<uint16_t>(i + 1));
  }
  ASSERT_LE(i, VirtioNet::kQueueSize);
  tx.offer(0);
  notify(1);
  EXPECT_TRUE(backend.sent.empty());
  ASSERT_EQ(tx.used_idx(), 1);  // given back all the same
  EXPECT_EQ(stat("tx_dropped_too_big"), 1u);
  EXPECT_EQ(in(kStatus, 1) & kNeedsReset, 0u);
}

TEST_F(VirtioNetTest, HostileChainsStopTheDeviceNeverTheHost) {
  set_up();
  // A transmit buffer past the end of RAM.
  tx.desc(0, kRam - 8, 64, 0);
  tx.offer(0);
  notify(1);
  EXPECT_TRUE(backend.sent.empty());
  EXPECT_EQ(tx.used_idx(), 0);
  EXPECT_NE(in(kStatus, 1) & kNeedsReset, 0u);
  EXPECT_EQ(stat("queue_errors"), 1u);
  // Stopped: a good packet and a received frame are not served until the driver resets.
  tx.desc(1, 0x100000, 70, 0);
  tx.offer(1);
  notify(1);
  EXPECT_TRUE(backend.sent.empty());
  rx.desc(0, 0x101000, 1524, kWrite);
  rx.offer(0);
  backend.inject(frame(60, 1));
  EXPECT_EQ(rx.used_idx(), 0);

  // Reset and set up again (the rings start over from index 0).
  mem.write(0x10000, std::vector<uint8_t>(0x20000, 0).data(), 0x20000);
  set_up();
  EXPECT_EQ(in(kStatus, 1) & kNeedsReset, 0u);
  // A transmit chain shorter than the 10-byte header: a driver error (§5.1.6.2: the header
  // comes first).
  tx.desc(0, 0x100000, 6, 0);
  tx.offer(0);
  notify(1);
  EXPECT_NE(in(kStatus, 1) & kNeedsReset, 0u);
  EXPECT_TRUE(backend.sent.empty());

  mem.write(0x10000, std::vector<uint8_t>(0x20000, 0).data(), 0x20000);
  set_up();
  // A receive buffer that wraps past 4 GiB, and one in a loop: the frame is dropped, the device
  // stops, nothing outside RAM is written.
  rx.desc(0, 0xfffffffffffff000ull, 0x2000, kWrite);
  rx.offer(0);
  backend.inject(frame(60, 2));
  EXPECT_NE(in(kStatus, 1) & kNeedsReset, 0u);
  EXPECT_EQ(rx.used_idx(), 0);

  mem.write(0x10000, std::vector<uint8_t>(0x20000, 0).data(), 0x20000);
  set_up();
  rx.desc(0, 0x100000, 8, kWrite | kNext, 1);
  rx.desc(1, 0x101000, 8, kWrite | kNext, 0);
  rx.offer(0);
  backend.inject(frame(60, 3));
  EXPECT_NE(in(kStatus, 1) & kNeedsReset, 0u);
  EXPECT_EQ(stat("queue_errors"), 4u);

  // After a reset the device works again: a frame each way.
  mem.write(0x10000, std::vector<uint8_t>(0x20000, 0).data(), 0x20000);
  set_up();
  const std::vector<uint8_t> f = frame(60, 4);
  mem.write(0x10000a, f.data(), f.size());
  tx.desc(0, 0x100000, 70, 0);
  tx.offer(0);
  notify(1);
  ASSERT_EQ(backend.sent.size(), 1u);
  EXPECT_EQ(backend.sent[0], f);
  rx.desc(0, 0x102000, 1524, kWrite);
  rx.offer(0);
  backend.inject(f);
  EXPECT_EQ(rx.used_idx(), 1);
}

TEST_F(VirtioNetTest, SuppressedInterruptsAreNotRaised) {
  set_up();
  // VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.7): the buffer is used, the line stays low.
  rx.set_avail_flags(1);
  rx.desc(0, 0x100000, 1524, kWrite);
  rx.offer(0);
  backend.inject(frame(60, 1));
  EXPECT_EQ(rx.used_idx(), 1);
  EXPECT_FALSE(irq.levels[kIrq]);
  EXPECT_EQ(stat("interrupts"), 0u);
}

}  // namespace
}  // namespace vmbt
