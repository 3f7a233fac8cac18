// libFuzzer target: every device on the machine's port-I/O and MMIO buses (UART, PIC pair, PIT,
// RTC/CMOS, fw_cfg, i8042, port 0x92, debug-exit, PCI configuration mechanism #1 and the host
// bridge's config space, ACPI PM, local APIC, I/O APIC, HPET), the platform MSRs and the INTA
// cycle, driven by a sequence of accesses a hostile guest could make, with the machine's clock
// advanced between them. No access may crash, trip a sanitizer or hang.
//
// Input: records of 8 bytes: [0] kind (bit 0: write, bit 1: MMIO, bit 2: advance the clock,
// bit 3: acknowledge an interrupt if one is pending, bit 4: an MSR access), [1] size selector (1,
// 2 or 4 bytes), [2..3] port (little endian; MMIO: the top 16 bits of the address below 4 GiB,
// the low 16 from [4..5]; MSR: an index into kMsrs, or the raw low 16 bits when past it), [4..7]
// value (MSR: the low 32 bits written, [2..3] repeated as the high 16).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vmm/devices/buffer_console.h"
#include "vmm/machine/machine.h"
#include "vmm/msr_model.h"

namespace {
/// The MSRs the platform keeps (vmm/msr_model.h), so that most MSR records reach one.
constexpr uint32_t kMsrs[] = {0x1B,  0xFE,  0x179, 0x1A0, 0x200, 0x201, 0x20F,     0x250,
                              0x258, 0x259, 0x26F, 0x277, 0x2FF, 0x6E0, 0xC0000080};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmbt::BufferConsole console;
  vmbt::GuestConfig config;
  config.ram_bytes = 4u << 20;
  vmbt::Machine machine(config, console);
  uint64_t now_ns = 0;
  for (size_t at = 0; at + 8 <= size && at < 8 * 4096; at += 8) {
    const uint8_t* r = data + at;
    const unsigned bytes = r[1] % 3 == 0 ? 1 : r[1] % 3 == 1 ? 2 : 4;
    uint16_t port;
    uint32_t value;
    std::memcpy(&port, r + 2, 2);
    std::memcpy(&value, r + 4, 4);
    if (r[0] & 4) {
      now_ns += uint64_t{value} * 1000;
      machine.poll(now_ns);
      continue;
    }
    if (r[0] & 8) {
      if (machine.interrupts().interrupt_pending())
        (void)machine.interrupts().acknowledge_interrupt();
      continue;
    }
    if (r[0] & 16) {
      constexpr size_t kCount = sizeof(kMsrs) / sizeof(kMsrs[0]);
      const uint32_t index = port < kCount ? kMsrs[port] : port;
      if (r[0] & 1) {
        (void)machine.msrs().write(index, (uint64_t{port} << 32) | value, now_ns);
      } else {
        (void)machine.msrs().read(index, now_ns);
      }
      continue;
    }
    if (r[0] & 2) {
      const uint64_t gpa = (uint64_t{port} << 16) | (value & 0xffff);
      if (r[0] & 1) {
        machine.mmio().write(gpa, bytes, value >> 16);
      } else {
        (void)machine.mmio().read(gpa, bytes);
      }
    } else if (r[0] & 1) {
      machine.io().write(port, bytes, value);
    } else {
      (void)machine.io().read(port, bytes);
    }
    if (machine.exit_requested()) break;  // debug exit or reset: the run would end here
  }
  return 0;
}
