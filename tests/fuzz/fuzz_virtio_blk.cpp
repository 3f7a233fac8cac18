// libFuzzer target: virtio-blk behind a legacy split virtqueue, with the guest's side of the queue
// (descriptor table, available ring, indirect tables, request headers) taken from the input: a
// hostile driver. Every chain must end in a used-ring entry or a VirtqueueError; nothing may read
// or write outside guest RAM or the image, crash, hang or trip a sanitizer.
//
// Input: [0..1] the available index to publish; then up to 8 KiB copied to the queue's page
// (0x10000: 256 descriptors, then the available ring), the rest to 0x20000 (buffers, headers,
// indirect tables; the descriptors may point anywhere, inside RAM or not).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "tests/fuzz/fuzz_virtio_support.h"
#include "vmm/devices/virtio/virtio_blk.h"
#include "vmm/devices/virtio/virtqueue.h"
#include "vmm/machine/disk_image.h"
#include "vmm/machine/guest_memory.h"

using vmbt::fuzzing::image_path;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static vmbt::GuestMemory mem(2u << 20);
  static vmbt::DiskImage image(image_path(), false, false);
  std::memset(mem.host_base(), 0, 0x40000);
  uint16_t avail_idx;
  std::memcpy(&avail_idx, data, 2);
  data += 2;
  size -= 2;
  const size_t ring_bytes = std::min<size_t>(size, 8192);
  mem.write(0x10000, data, ring_bytes);
  mem.write(0x20000, data + ring_bytes, std::min<size_t>(size - ring_bytes, 0x20000));

  vmbt::SplitVirtqueue queue(mem);
  queue.set_legacy(0x10, vmbt::VirtioBlk::kQueueSize);
  // The available index lives after the 256 descriptors: publish the input's.
  mem.write(0x10000 + 16 * vmbt::VirtioBlk::kQueueSize + 2, &avail_idx, 2);
  vmbt::VirtioBlk blk(mem, image, 0);
  try {
    blk.process(0, queue);
    blk.process(0, queue);  // a second notify finds nothing new, or the same breakage
  } catch (const vmbt::VirtqueueError&) {
    // the device stops: what a hostile driver gets
  }
  return 0;
}
