// Intel 8042 keyboard controller (PS/2 style) with no keyboard or mouse attached.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>

#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"

namespace vmbt {

/// The PC's 8042 keyboard controller at ports 0x60 (data) and 0x64 (status read, command write),
/// after the IBM PC/AT Technical Reference ("Keyboard controller") and the PS/2 extensions, with
/// empty keyboard and auxiliary (mouse) connectors. What a guest sees:
///
/// - Status (port 0x64 read): bit 0 OBF (a byte waits in the output buffer), bit 1 IBF (always 0:
///   commands complete at once), bit 2 SYS (the command byte's system flag, also set by the
///   self-test), bit 3 A2 (the last write was a command to 0x64), bit 4 inhibit switch (1 = not
///   inhibited), bit 5 AUX OBF (the byte came from the auxiliary port), bit 6 timeout, bit 7
///   parity error (0).
/// - Controller commands (port 0x64 write): 0x20-0x3f read RAM byte n (0x20: the command byte),
///   0x60-0x7f write RAM byte n (the next data byte), 0xa7/0xa8 disable/enable the AUX interface,
///   0xa9 AUX interface test (0x00), 0xaa self-test (0x55), 0xab keyboard interface test (0x00),
///   0xad/0xae disable/enable the keyboard interface, 0xc0 read input port, 0xd0/0xd1 read/write
///   the output port, 0xd2/0xd3 write the keyboard/AUX output buffer (loopback), 0xd4 write the
///   next byte to the AUX device, 0xf0-0xff pulse output port lines low for bits 0-3 clear (0xfe:
///   bit 0, the CPU reset line). Other commands are ignored.
/// - Command byte (RAM byte 0): bit 0 keyboard interrupt (IRQ1), bit 1 AUX interrupt (IRQ12),
///   bit 2 system flag, bit 4 keyboard disabled, bit 5 AUX disabled, bit 6 scan-code translation.
///   Initially 0x45, as a BIOS leaves it.
/// - Data written to port 0x60 outside a command goes to the keyboard; 0xd4 sends a byte to the
///   AUX device. Nothing is attached, so either ends as a real controller ends a transmission
///   nobody clocks: status bit 6 (timeout) with 0xfe in the output buffer. Linux's atkbd and
///   psmouse probes see that as a NAK and give up at once.
/// - Every byte put in the output buffer raises IRQ1 (IRQ12 for AUX bytes) while the command
///   byte enables it; reading port 0x60 empties the buffer and lowers the line. Reading an empty
///   buffer returns the last byte again.
/// - Resetting the CPU (0xfe or any pulse with bit 0 clear, or writing the output port with
///   bit 0 clear) asks the machine to end the run: reset_requested() = 0. A20 (output port bit 1)
///   is remembered but not modelled: guest addresses never wrap at 1 MiB.
class I8042 : public IoDevice {
 public:
  static constexpr uint16_t kDataPort = 0x60;
  static constexpr uint16_t kCommandPort = 0x64;
  static constexpr unsigned kKeyboardIrq = 1;
  static constexpr unsigned kAuxIrq = 12;

  /// Status register bits.
  static constexpr uint8_t kStatusObf = 0x01, kStatusIbf = 0x02, kStatusSys = 0x04,
                           kStatusCommand = 0x08, kStatusUnlocked = 0x10, kStatusAuxObf = 0x20,
                           kStatusTimeout = 0x40;
  /// Command byte bits.
  static constexpr uint8_t kCtrKbdInt = 0x01, kCtrAuxInt = 0x02, kCtrSys = 0x04,
                           kCtrKbdDisabled = 0x10, kCtrAuxDisabled = 0x20, kCtrTranslate = 0x40;
  static constexpr uint8_t kInitialCtr = kCtrKbdInt | kCtrSys | kCtrTranslate;

  explicit I8042(IrqSink& irq);

  /// Adds ports 0x60 and 0x64 to `bus`.
  void register_ports(IoBus& bus);

  uint32_t io_read(uint16_t port, unsigned size) override;
  void io_write(uint16_t port, unsigned size, uint32_t value) override;

  /// Set when the guest pulsed the CPU reset line: the run's exit status (0).
  std::optional<int> reset_requested() const { return reset_; }
  static constexpr const char* kResetReason = "guest reset (i8042 pulse)";

  /// The command byte (controller RAM byte 0).
  uint8_t command_byte() const { return ram_[0]; }
  /// The output port (bit 0 reset line, 1 = running; bit 1 A20 gate).
  uint8_t output_port() const { return outport_; }
  /// Called with the A20 gate's new state (output port bit 1) whenever a write changes it.
  void set_on_a20(std::function<void(bool)> f) { on_a20_ = std::move(f); }

 private:
  enum class Source : uint8_t { kController, kKeyboard, kAux };
  /// Puts `value` in the output buffer (replacing an unread byte) and updates the IRQ lines.
  void output(uint8_t value, Source source, bool timeout = false);
  void command(uint8_t cmd);
  void write_output_port(uint8_t value);
  void update_irqs();
  uint8_t status() const;

  IrqSink& irq_;
  std::array<uint8_t, 32> ram_{};  ///< byte 0 is the command byte
  uint8_t outport_ = 0xcf;         ///< reset line high, A20 on (as QEMU's KBD_OUT_* default)
  uint8_t out_ = 0;                ///< output buffer
  bool obf_ = false;
  Source source_ = Source::kController;
  bool timeout_ = false;
  std::function<void(bool)> on_a20_;
  bool last_was_command_ = true;
  bool sys_ = false;                ///< set by the self-test (0xaa)
  std::optional<uint8_t> pending_;  ///< a command waiting for its data byte on port 0x60
  bool irq1_ = false, irq12_ = false;
  std::optional<int> reset_;
};

}  // namespace vmbt
