// System Control Port A (port 0x92): fast CPU reset and the A20 gate.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>

#include "vmm/machine/io_bus.h"

namespace vmbt {

/// IBM PS/2 System Control Port A at 0x92 (as on the PIIX and QEMU's port92 device): bit 0 is
/// the alternate fast reset (writing it as 1 when it was 0 resets the CPU), bit 1 the A20 gate.
/// Reads return the last value written with bit 0 as 0. A change of the A20 gate is reported to
/// the machine (set_on_a20), which masks physical address bit 20 while it is off, as on a PC.
/// A reset asks the machine to end the run with status 0.
class Port92 : public IoDevice {
 public:
  static constexpr uint16_t kPort = 0x92;

  /// Adds port 0x92 to `bus`.
  void register_ports(IoBus& bus);

  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// Set when the guest asked for a fast reset: the run's exit status (0).
  std::optional<int> reset_requested() const { return reset_; }
  static constexpr const char* kResetReason = "guest reset (port 0x92 fast reset)";
  /// The A20 gate bit (1 = enabled; initially enabled, as firmware leaves it).
  bool a20() const { return value_ & 0x02; }
  /// Called with the gate's new state whenever a write changes it.
  void set_on_a20(std::function<void(bool)> f) { on_a20_ = std::move(f); }

 private:
  uint8_t value_ = 0x02;
  std::optional<int> reset_;
  std::function<void(bool)> on_a20_;
};

}  // namespace vmbt
