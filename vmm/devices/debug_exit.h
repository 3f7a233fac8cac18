// QEMU's isa-debug-exit port and the POST diagnostic port 0x80.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "vmm/machine/io_bus.h"

namespace vmbt {

/// QEMU-compatible isa-debug-exit (QEMU hw/misc/debugexit.c) at port 0xf4, one port, any access
/// width: a guest write of V asks the run to end with exit status (V << 1) | 1, so a guest can
/// never report 0 (the process exit code is that value modulo 256, as with QEMU). Reads return 0.
/// The first write wins; later writes are ignored until reset().
class DebugExit : public IoDevice {
 public:
  static constexpr uint16_t kPort = 0xf4;

  /// Adds port 0xf4 to `bus`.
  void register_ports(IoBus& bus);

  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// The requested exit status, once the guest wrote the port.
  std::optional<int> exit_status() const { return status_; }
  /// Called with the status at the write (e.g. to stop the vCPU at once); optional.
  void set_on_exit(std::function<void(int)> callback) { on_exit_ = std::move(callback); }
  /// Forgets a previous request.
  void reset() { status_.reset(); }

 private:
  std::optional<int> status_;
  std::function<void(int)> on_exit_;
};

/// The POST-code port 0x80 (IBM PC/AT "manufacturing test port"): Linux writes it for I/O delays
/// (outb_p). Writes are accepted and remembered (last_code()), reads return 0xff as on QEMU;
/// claiming the port keeps these accesses out of the unclaimed-port count.
class PostPort : public IoDevice {
 public:
  static constexpr uint16_t kPort = 0x80;

  /// Adds port 0x80 to `bus`.
  void register_ports(IoBus& bus);

  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// The last byte written (0 before any write).
  uint8_t last_code() const { return last_; }

 private:
  uint8_t last_ = 0;
};

}  // namespace vmbt
