#include "vmm/devices/virtio/virtio_net.h"

#include <algorithm>

#include "vmm/devices/net_backend.h"
#include "vmm/stats.h"

namespace vmbt {

VirtioNet::VirtioNet(GuestMemory& memory, NetBackend& backend)
    : memory_(memory), backend_(backend), frame_(kMaxFrame) {
  std::copy(kMac.begin(), kMac.end(), config_.begin());
  config_[6] = static_cast<uint8_t>(kStatusLinkUp);
  config_[7] = static_cast<uint8_t>(kStatusLinkUp >> 8);
  backend_.set_receiver([this](const uint8_t* frame, size_t len) { receive(frame, len); });
}

VirtioNet::~VirtioNet() {
  backend_.set_receiver(nullptr);
}

void VirtioNet::set_driver_features(uint64_t features) {
  header_bytes_ = (features & kFeatureVersion1) ? kHeaderBytesVersion1 : kHeaderBytes;
}

bool VirtioNet::process(unsigned index, SplitVirtqueue& queue) {
  // A notify of the receiveq only says buffers were added: they are used as frames arrive.
  return index == kTransmitQ && transmit(queue);
}

bool VirtioNet::transmit(SplitVirtqueue& queue) {
  bool used = false;
  // At most one queue's worth a notify: a driver that keeps the ring full cannot hold the vCPU.
  for (unsigned n = 0; n < queue.size(); ++n) {
    std::optional<DescriptorChain> chain = queue.pop();
    if (!chain) break;
    if (chain->readable < header_bytes_) {
      throw VirtqueueError("a transmitted packet without its virtio_net_hdr");
    }
    const uint64_t len = chain->readable - header_bytes_;
    if (len > kMaxFrame) {
      ++tx_dropped_too_big_;
    } else {
      chain->read(memory_, header_bytes_, frame_.data(), len);
      ++tx_packets_;
      tx_bytes_ += len;
      // (The backend may answer at once, e.g. an ARP reply: receive() runs inside this call.)
      backend_.send(frame_.data(), len);
    }
    queue.push(chain->head, 0);
    used = true;
  }
  return used;
}

void VirtioNet::receive(const uint8_t* frame, size_t len) {
  if (len > kMaxFrame) {
    ++rx_dropped_too_big_;
    return;
  }
  bool placed = false;  // a chain was taken (filled, or given back too small)
  auto fill = [&](SplitVirtqueue& queue) {
    std::optional<DescriptorChain> chain = queue.pop();
    if (!chain) return false;
    if (chain->writable < header_bytes_ + len) {
      // Too small: given back empty (no partial frames), the frame dropped.
      ++rx_dropped_too_big_;
      queue.push(chain->head, 0);
      placed = true;
      return true;
    }
    // flags 0, VIRTIO_NET_HDR_GSO_NONE, no offsets; num_buffers 1 (§5.1.6.4.2) in the 12-byte
    // header.
    const uint8_t header[kHeaderBytesVersion1] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    chain->write(memory_, 0, header, header_bytes_);
    chain->write(memory_, header_bytes_, frame, len);
    queue.push(chain->head, static_cast<uint32_t>(header_bytes_ + len));
    ++rx_packets_;
    rx_bytes_ += len;
    placed = true;
    return true;
  };
  // Not set up, stopped, or no chain available: dropped (the guest's TCP sends it again).
  if (transport_) transport_->serve_queue(kReceiveQ, fill);
  if (!placed) ++rx_dropped_no_buffer_;
}

void VirtioNet::collect_stats(Stats& stats, const std::string& prefix) const {
  stats.set(prefix + "tx_packets", tx_packets_);
  stats.set(prefix + "tx_bytes", tx_bytes_);
  stats.set(prefix + "tx_dropped_too_big", tx_dropped_too_big_);
  stats.set(prefix + "rx_packets", rx_packets_);
  stats.set(prefix + "rx_bytes", rx_bytes_);
  stats.set(prefix + "rx_dropped_no_buffer", rx_dropped_no_buffer_);
  stats.set(prefix + "rx_dropped_too_big", rx_dropped_too_big_);
}

}  // namespace vmbt
