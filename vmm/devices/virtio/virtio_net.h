// The virtio network device (virtio 1.2 §5.1) over a NetBackend.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "vmm/devices/virtio/virtio_device.h"

namespace vmbt {

class GuestMemory;
class NetBackend;

/// virtio-net (virtio 1.2 §5.1), as QEMU's transitional virtio-net-pci presents it to a legacy
/// driver: receiveq (queue 0) and transmitq (queue 1) of kQueueSize each; features
/// VIRTIO_NET_F_MAC (5), VIRTIO_NET_F_STATUS (16) and VIRTIO_RING_F_INDIRECT_DESC (28), nothing
/// else (no checksum offload, no GSO, no MRG_RXBUF, no control queue); configuration (§5.1.4):
/// mac (kMac, QEMU's default 52:54:00:12:34:56) and status VIRTIO_NET_S_LINK_UP.
///
/// Every packet in either direction is a struct virtio_net_hdr (§5.1.6) followed by one Ethernet
/// frame of at most kMaxFrame bytes: the 10-byte legacy header when the driver came through the
/// legacy interface, the 12-byte one (num_buffers last) when it accepted VIRTIO_F_VERSION_1
/// through the modern interface (§5.1.6: "Legacy Interface: Device Operation").
///
/// Transmit (§5.1.6.2): on a notify of the transmitq, each chain's readable part is gathered, the
/// header dropped and the frame sent to the backend; the chain is used with length 0. A chain
/// shorter than the header is a driver error (VirtqueueError, as QEMU's "virtio-net header not
/// in first element"); a larger frame is dropped and counted.
///
/// Receive (§5.1.6.3, §5.1.6.4): a frame from the backend goes at once into the next available
/// receiveq chain: a zeroed header (flags 0, gso_type VIRTIO_NET_HDR_GSO_NONE; num_buffers 1 in
/// the 12-byte header, §5.1.6.4.2) and the frame, used length header + frame length, then an
/// interrupt. Nothing is queued in the host: with no
/// buffer available (or the driver not ready) the frame is dropped and counted, and a chain too
/// small for it is given back unwritten (used length 0, which Linux drops as a short packet).
class VirtioNet final : public VirtioDevice {
 public:
  static constexpr uint16_t kQueueSize = 256;
  static constexpr unsigned kReceiveQ = 0, kTransmitQ = 1;
  /// The legacy header without MRG_RXBUF (§5.1.6, "Legacy Interface: Device Operation").
  static constexpr uint32_t kHeaderBytes = 10;
  /// The header with VIRTIO_F_VERSION_1 (§5.1.6: num_buffers is always there).
  static constexpr uint32_t kHeaderBytesVersion1 = 12;
  /// The largest frame moved either way (a 64 KiB IP packet in an Ethernet frame with a VLAN tag,
  /// QEMU's NET_BUFSIZE less its header); larger ones are dropped.
  static constexpr uint32_t kMaxFrame = 65562;
  static constexpr uint64_t kFeatureMac = 1ull << 5, kFeatureStatus = 1ull << 16;
  static constexpr uint16_t kStatusLinkUp = 1;  ///< VIRTIO_NET_S_LINK_UP (§5.1.4)
  static constexpr std::array<uint8_t, 6> kMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

  /// Sends the guest's frames to `backend` and takes its frames (NetBackend::set_receiver).
  VirtioNet(GuestMemory& memory, NetBackend& backend);
  /// Takes its receiver back from the backend (which may outlive it).
  ~VirtioNet() override;
  VirtioNet(const VirtioNet&) = delete;
  VirtioNet& operator=(const VirtioNet&) = delete;

  uint16_t device_id() const override { return 1; }
  uint64_t features() const override { return kFeatureMac | kFeatureStatus | kFeatureIndirect; }
  unsigned queue_count() const override { return 2; }
  uint16_t queue_size() const override { return kQueueSize; }
  unsigned config_size() const override { return static_cast<unsigned>(config_.size()); }
  uint8_t config_byte(unsigned offset) const override { return config_[offset]; }
  bool process(unsigned index, SplitVirtqueue& queue) override;
  void attach_transport(VirtioQueueAccess& transport) override { transport_ = &transport; }
  /// VIRTIO_F_VERSION_1 accepted: the 12-byte header (§5.1.6).
  void set_driver_features(uint64_t features) override;
  /// Back to the legacy header.
  void reset() override { header_bytes_ = kHeaderBytes; }
  /// The header in use: kHeaderBytes or kHeaderBytesVersion1.
  uint32_t header_bytes() const { return header_bytes_; }
  void collect_stats(Stats& stats, const std::string& prefix) const override;

  /// A frame for the guest (the backend's receiver): into the receiveq now, or dropped.
  void receive(const uint8_t* frame, size_t len);

 private:
  /// Sends every chain available on the transmitq (at most one queue's worth).
  bool transmit(SplitVirtqueue& queue);

  GuestMemory& memory_;
  NetBackend& backend_;
  VirtioQueueAccess* transport_ = nullptr;
  uint32_t header_bytes_ = kHeaderBytes;
  std::array<uint8_t, 8> config_{};
  std::vector<uint8_t> frame_;  ///< one transmitted frame, kMaxFrame bytes
  uint64_t tx_packets_ = 0, tx_bytes_ = 0, tx_dropped_too_big_ = 0;
  uint64_t rx_packets_ = 0, rx_bytes_ = 0, rx_dropped_no_buffer_ = 0, rx_dropped_too_big_ = 0;
};

}  // namespace vmbt
