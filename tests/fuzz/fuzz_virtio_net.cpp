// libFuzzer target: virtio-net behind the legacy virtio-pci transport, with the guest's side of
// both queues (descriptor tables, available rings, indirect tables, packets) taken from the input:
// a hostile driver. Every transmitted chain must end in a used-ring entry or a VirtqueueError
// (the device stops); every received frame in a receive buffer, a drop, or the same stop; nothing
// may read or write outside guest RAM, crash, hang or trip a sanitizer.
//
// Input: [0..1] receiveq available index, [2..3] transmitq available index, [4..5] the length of
// the frames the backend delivers (up to 65535, more than some buffers hold), [6] rounds (each:
// a transmitq notify, a frame for the guest, an ISR read), [7] unused; then up to 4614 bytes to
// each queue's page (0x10000 receiveq, 0x20000 transmitq: 256 descriptors and the available
// ring), the rest to 0x40000 (buffers, indirect tables; descriptors may point anywhere).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tests/fuzz/fuzz_virtio_support.h"
#include "vmm/devices/virtio/virtio_net.h"
#include "vmm/devices/virtio/virtio_pci.h"
#include "vmm/machine/guest_memory.h"

namespace {
using vmbt::fuzzing::NullBackend;
using vmbt::fuzzing::NullIrq;
constexpr uint16_t kBar = 0xc000;
constexpr size_t kRingBytes =
    16 * vmbt::VirtioNet::kQueueSize + 6 + 2 * vmbt::VirtioNet::kQueueSize;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  static vmbt::GuestMemory mem(2u << 20);
  std::memset(mem.host_base(), 0, 0x60000);
  uint16_t rx_idx, tx_idx, frame_len;
  std::memcpy(&rx_idx, data, 2);
  std::memcpy(&tx_idx, data + 2, 2);
  std::memcpy(&frame_len, data + 4, 2);
  const unsigned rounds = 1 + data[6] % 4;
  data += 8;
  size -= 8;
  const size_t rx_bytes = std::min(size, kRingBytes);
  mem.write(0x10000, data, rx_bytes);
  const size_t tx_bytes = std::min(size - rx_bytes, kRingBytes);
  mem.write(0x20000, data + rx_bytes, tx_bytes);
  mem.write(0x40000, data + rx_bytes + tx_bytes,
            std::min<size_t>(size - rx_bytes - tx_bytes, 0x20000));
  mem.write(0x10000 + 16 * vmbt::VirtioNet::kQueueSize + 2, &rx_idx, 2);
  mem.write(0x20000 + 16 * vmbt::VirtioNet::kQueueSize + 2, &tx_idx, 2);

  NullBackend backend;
  NullIrq irq;
  vmbt::VirtioNet net(mem, backend);
  vmbt::VirtioPci pci(mem, net, irq, 6, 0x020000, "net0");
  pci.assign_io_bar(0, kBar);
  // The legacy driver's set-up (virtio 1.2 §3.1.2): status, features, both queues, DRIVER_OK.
  pci.io_write(kBar + 0x12, 1, 1 | 2);
  pci.io_write(kBar + 0x04, 4, pci.io_read(kBar + 0x00, 4));
  for (uint16_t q = 0; q < 2; ++q) {
    pci.io_write(kBar + 0x0e, 2, q);
    pci.io_write(kBar + 0x08, 4, q == 0 ? 0x10 : 0x20);
  }
  pci.io_write(kBar + 0x12, 1, 1 | 2 | 4);
  std::vector<uint8_t> frame(frame_len, 0x5a);
  for (unsigned r = 0; r < rounds; ++r) {
    pci.io_write(kBar + 0x10, 2, 1);  // transmitq notify
    backend.inject(frame);            // a frame for the guest
    pci.io_write(kBar + 0x10, 2, 0);  // receiveq notify (buffers added)
    (void)pci.io_read(kBar + 0x13, 1);
  }
  return 0;
}
