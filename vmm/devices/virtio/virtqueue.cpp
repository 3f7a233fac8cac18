#include "vmm/devices/virtio/virtqueue.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "vmm/machine/guest_memory.h"

namespace vmbt {

namespace {
constexpr uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;  // §2.7.5
constexpr uint16_t kAvailNoInterrupt = 1;                             // §2.7.7
}  // namespace

uint64_t DescriptorChain::read(const GuestMemory& mem, uint64_t offset, void* dst,
                               uint64_t len) const {
  auto* out = static_cast<uint8_t*>(dst);
  uint64_t done = 0;
  for (const Segment& s : segments) {
    if (s.writable || done == len) break;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(s.len - offset, len - done);
    if (!mem.read(s.gpa + offset, out + done, n)) break;  // (checked in pop(): RAM)
    done += n;
    offset = 0;
  }
  return done;
}

uint64_t DescriptorChain::write(GuestMemory& mem, uint64_t offset, const void* src,
                                uint64_t len) const {
  const auto* in = static_cast<const uint8_t*>(src);
  uint64_t done = 0;
  for (const Segment& s : segments) {
    if (!s.writable) continue;
    if (done == len) break;
    if (offset >= s.len) {
      offset -= s.len;
      continue;
    }
    const uint64_t n = std::min<uint64_t>(s.len - offset, len - done);
    if (!mem.dma_write(s.gpa + offset, in + done, n)) break;
    done += n;
    offset = 0;
  }
  return done;
}

void SplitVirtqueue::set_legacy(uint32_t pfn, uint16_t size) {
  reset();
  if (pfn == 0 || size == 0) return;
  const uint64_t desc = uint64_t{pfn} << 12;
  const uint64_t avail = desc + 16ull * size;
  const uint64_t avail_end = avail + 6 + 2ull * size;
  set_rings(size, desc, avail, (avail_end + kAlign - 1) & ~uint64_t{kAlign - 1});
  pfn_ = pfn;
}

void SplitVirtqueue::set_rings(uint16_t size, uint64_t desc, uint64_t avail, uint64_t used) {
  reset();
  if (size == 0) return;
  size_ = size;
  desc_ = desc;
  avail_ = avail;
  used_ = used;
  // Every part in RAM (§2.7: descriptor table 16 bytes an entry; available ring flags, idx,
  // ring[size], used_event; used ring flags, idx, ring[size] of 8 bytes, avail_event), aligned.
  const bool fits = mem_.contains(desc, 16ull * size) && mem_.contains(avail, 6 + 2ull * size) &&
                    mem_.contains(used, 6 + 8ull * size);
  const bool aligned = desc % 16 == 0 && avail % 2 == 0 && used % 4 == 0;
  if (!fits || !aligned || (size & (size - 1)) != 0 || size > 32768) {
    broken_ = true;  // reported at the first pop()
  }
}

void SplitVirtqueue::reset() {
  pfn_ = 0;
  size_ = 0;
  desc_ = avail_ = used_ = 0;
  last_avail_ = used_idx_ = 0;
  broken_ = false;
}

uint16_t SplitVirtqueue::read16(uint64_t gpa) const {
  uint16_t v = 0;
  if (!mem_.read(gpa, &v, 2)) throw VirtqueueError("a ring lies outside guest RAM");
  return v;
}

SplitVirtqueue::Descriptor SplitVirtqueue::descriptor(uint64_t table, uint16_t index) const {
  uint8_t raw[16];
  if (!mem_.read(table + 16ull * index, raw, 16)) {
    throw VirtqueueError("a descriptor table lies outside guest RAM");
  }
  Descriptor d;
  std::memcpy(&d.addr, raw, 8);
  std::memcpy(&d.len, raw + 8, 4);
  std::memcpy(&d.flags, raw + 12, 2);
  std::memcpy(&d.next, raw + 14, 2);
  return d;
}

void SplitVirtqueue::add_segment(DescriptorChain& chain, const Descriptor& d) const {
  const bool writable = d.flags & kDescWrite;
  if (!writable && chain.writable != 0) {
    throw VirtqueueError("a device-readable descriptor follows a device-writable one");
  }
  if (!mem_.contains(d.addr, d.len)) {
    throw VirtqueueError(
        fmt::format("a buffer at {:#x}+{:#x} lies outside guest RAM", d.addr, d.len));
  }
  chain.segments.push_back({d.addr, d.len, writable});
  (writable ? chain.writable : chain.readable) += d.len;
}

std::optional<DescriptorChain> SplitVirtqueue::pop() {
  if (!enabled()) return std::nullopt;
  try {
    if (broken_)
      throw VirtqueueError("the queue's rings lie outside guest RAM (or are misaligned)");
    const uint16_t avail_idx = read16(avail_ + 2);
    const uint16_t pending = static_cast<uint16_t>(avail_idx - last_avail_);
    if (pending == 0) return std::nullopt;
    if (pending > size_) throw VirtqueueError("the available index ran past the queue size");
    const uint16_t head = read16(avail_ + 4 + 2ull * (last_avail_ % size_));
    if (head >= size_) throw VirtqueueError("an available head is not a descriptor index");
    DescriptorChain chain;
    chain.head = head;
    uint16_t index = head;
    for (unsigned count = 0;; ++count) {
      if (count >= size_) throw VirtqueueError("a descriptor chain loops");
      const Descriptor d = descriptor(desc_, index);
      if (d.flags & kDescIndirect) {
        if (d.flags & kDescNext) throw VirtqueueError("an indirect descriptor with F_NEXT");
        if (d.len == 0 || d.len % 16 || d.len / 16 > kMaxIndirect) {
          throw VirtqueueError("an indirect table of a bad length");
        }
        const uint16_t n = static_cast<uint16_t>(d.len / 16);
        uint16_t j = 0;
        for (unsigned inner = 0;; ++inner) {
          if (inner >= n) throw VirtqueueError("an indirect descriptor chain loops");
          const Descriptor e = descriptor(d.addr, j);
          if (e.flags & kDescIndirect) throw VirtqueueError("a nested indirect table");
          add_segment(chain, e);
          if (!(e.flags & kDescNext)) break;
          if (e.next >= n) throw VirtqueueError("an indirect next index past its table");
          j = e.next;
        }
        break;  // an indirect descriptor ends its chain
      }
      add_segment(chain, d);
      if (!(d.flags & kDescNext)) break;
      if (d.next >= size_) throw VirtqueueError("a next index is not a descriptor index");
      index = d.next;
    }
    ++last_avail_;
    return chain;
  } catch (const VirtqueueError&) {
    broken_ = true;
    throw;
  }
}

void SplitVirtqueue::push(uint16_t head, uint32_t written) {
  if (!enabled() || broken_) return;
  uint8_t elem[8];
  const uint32_t id = head;
  std::memcpy(elem, &id, 4);
  std::memcpy(elem + 4, &written, 4);
  mem_.dma_write(used_ + 4 + 8ull * (used_idx_ % size_), elem, 8);
  ++used_idx_;
  // The index after the element (§2.7.8.2: the element is visible before the index moves).
  mem_.dma_write(used_ + 2, &used_idx_, 2);
}

bool SplitVirtqueue::interrupt_suppressed() const {
  if (!enabled() || broken_) return false;
  uint16_t flags = 0;
  mem_.read(avail_, &flags, 2);
  return flags & kAvailNoInterrupt;
}

}  // namespace vmbt
