#include "vmm/devices/virtio/virtio_blk.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "vmm/machine/disk_image.h"
#include "vmm/stats.h"

namespace vmbt {

namespace {
constexpr uint64_t kHeaderBytes = 16;
void put_le(std::vector<uint8_t>& v, size_t at, uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) v[at + i] = static_cast<uint8_t>(value >> (8 * i));
}
}  // namespace

VirtioBlk::VirtioBlk(GuestMemory& memory, DiskImage& image, unsigned id)
    : memory_(memory), image_(image), id_(id), config_(24, 0), buffer_(kChunk) {
  put_le(config_, 0, image.sectors(), 8);      // capacity
  put_le(config_, 12, kSegMax, 4);             // seg_max
  put_le(config_, 20, DiskImage::kSector, 4);  // blk_size
}

uint64_t VirtioBlk::features() const {
  uint64_t f = kFeatureSegMax | kFeatureBlkSize | kFeatureFlush | kFeatureIndirect;
  if (image_.read_only()) f |= kFeatureRo;
  return f;
}

bool VirtioBlk::fits(uint64_t sector, uint64_t bytes) const {
  return bytes <= kMaxRequest && image_.in_range(sector, bytes);
}

bool VirtioBlk::process(unsigned /*index*/, SplitVirtqueue& queue) {
  bool used = false;
  // At most one queue's worth a notify: a driver that keeps the ring full cannot hold the vCPU.
  for (unsigned n = 0; n < queue.size(); ++n) {
    std::optional<DescriptorChain> chain = queue.pop();
    if (!chain) break;
    queue.push(chain->head, serve(*chain));
    used = true;
  }
  return used;
}

uint32_t VirtioBlk::serve(const DescriptorChain& chain) {
  ++requests_;
  uint8_t header[kHeaderBytes];
  if (chain.readable < kHeaderBytes ||
      chain.read(memory_, 0, header, kHeaderBytes) != kHeaderBytes) {
    throw VirtqueueError("a block request without its 16-byte header");
  }
  if (chain.writable == 0) throw VirtqueueError("a block request with no room for its status");
  uint32_t type;
  uint64_t sector;
  std::memcpy(&type, header, 4);
  std::memcpy(&sector, header + 8, 8);
  const uint64_t status_at = chain.writable - 1;
  uint8_t status = kStatusOk;
  uint64_t written = 0;
  switch (type) {
    case kTypeIn: {
      const uint64_t bytes = status_at;
      if (!fits(sector, bytes)) {
        status = kStatusIoErr;
        break;
      }
      for (uint64_t done = 0; done < bytes && status == kStatusOk;) {
        const uint64_t n = std::min(kChunk, bytes - done);
        if (!image_.read(sector + done / DiskImage::kSector, buffer_.data(), n)) {
          status = kStatusIoErr;
          break;
        }
        written += chain.write(memory_, done, buffer_.data(), n);
        done += n;
      }
      break;
    }
    case kTypeOut: {
      const uint64_t bytes = chain.readable - kHeaderBytes;
      if (image_.read_only() || !fits(sector, bytes)) {
        status = kStatusIoErr;
        break;
      }
      for (uint64_t done = 0; done < bytes;) {
        const uint64_t n = std::min(kChunk, bytes - done);
        chain.read(memory_, kHeaderBytes + done, buffer_.data(), n);
        if (!image_.write(sector + done / DiskImage::kSector, buffer_.data(), n)) {
          status = kStatusIoErr;
          break;
        }
        done += n;
      }
      break;
    }
    case kTypeFlush:
      if (!image_.flush()) status = kStatusIoErr;
      break;
    case kTypeGetId: {
      // Up to 20 bytes, NUL-padded when shorter (§5.2.6.1).
      uint8_t id[20] = {};
      const std::string text = fmt::format("vmbt-{}", id_);
      std::memcpy(id, text.data(), std::min<size_t>(text.size(), sizeof id));
      written += chain.write(memory_, 0, id, std::min<uint64_t>(sizeof id, status_at));
      break;
    }
    default:
      status = kStatusUnsupported;
      break;
  }
  if (status != kStatusOk) ++errors_;
  written += chain.write(memory_, status_at, &status, 1);
  return static_cast<uint32_t>(std::min<uint64_t>(written, UINT32_MAX));
}

void VirtioBlk::collect_stats(Stats& stats, const std::string& prefix) const {
  stats.set(prefix + "requests", requests_);
  stats.set(prefix + "request_errors", errors_);
  stats.set(prefix + "bytes_read", image_.bytes_read());
  stats.set(prefix + "bytes_written", image_.bytes_written());
  stats.set(prefix + "flushes", image_.flushes());
}

}  // namespace vmbt
