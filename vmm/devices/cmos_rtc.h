// Motorola MC146818A real-time clock and CMOS RAM, as on the IBM PC/AT.
#pragma once

#include <time.h>

#include <cstdint>
#include <functional>

#include "vmm/machine/io_bus.h"

namespace vmbt {

/// The PC's RTC/CMOS at ports 0x70 (index, write-only; bit 7 = NMI disable) and 0x71 (data), per
/// the Motorola MC146818A datasheet ("Address map", "Time, calendar and alarm locations",
/// "Registers A-D") and the IBM PC/AT CMOS layout for the BIOS bytes.
///
/// - 128 bytes of CMOS RAM; the index port's bit 7 (NMI disable) is remembered (nmi_masked()).
///   Reads of port 0x70 return 0xff (it is write-only on the AT).
/// - Time and date (0x00 seconds, 0x02 minutes, 0x04 hours, 0x06 day of week 1-7 with Sunday = 1,
///   0x07 day of month, 0x08 month, 0x09 year in century, 0x32 century) come from the clock
///   function (UTC) plus an offset. Register B's DM bit (binary vs BCD) and 24/12 bit (PM = hour
///   bit 7 in 12-hour mode) are honoured on reads and writes. A guest write of a time or date
///   register moves the offset so the clock keeps running from the written value; while B.SET is
///   1 the clock is frozen and writes collect in the frozen copy, which starts running when SET
///   goes back to 0. Day-of-week writes are ignored: it always follows the date.
/// - Alarm bytes (0x01, 0x03, 0x05) are plain RAM.
/// - Register A: divider/rate bits stored (default 0x26); UIP (bit 7) is never set, so a reader
///   never sees an update in progress (the clock's reads are consistent by construction).
/// - Register B: default 0x02 (24-hour, BCD); setting SET clears UIE as the datasheet says.
/// - Register C: flags, cleared by a read (never set: see below). Register D: VRT = 1 (0x80).
/// - BIOS memory bytes from `ram_bytes`: 0x15/0x16 base memory in KiB (640, or less if RAM is
///   smaller), 0x17/0x18 and 0x30/0x31 extended memory above 1 MiB in KiB (capped at 65535),
///   0x34/0x35 memory above 16 MiB in 64 KiB units (capped at 65535), 0x5b-0x5d memory above
///   4 GiB in 64 KiB units (QEMU's bytes; 0 here), and the standard checksum of 0x10-0x2d at 0x2e
///   (high byte) / 0x2f.
/// - BIOS configuration bytes as QEMU's pc machine sets them and SeaBIOS reads them: 0x10
///   diskette types (none), 0x12 fixed disk types (none), 0x14 equipment byte (0x02: math
///   coprocessor, no diskettes, EGA/VGA), the boot order in 0x3d (devices 1 and 2, a nibble
///   each: 2 = hard disk first) and 0x38 bits 7:4 (device 3: none; bit 0 clear: floppy signature
///   checked), and 0x5f the CPU count - 1 (0).
///
/// Not implemented: the periodic, alarm and update-ended interrupts (IRQ8) and their register C
/// flags; the square-wave output; daylight-saving (B.DSE is stored but has no effect).
class CmosRtc : public ByteIoDevice {
 public:
  /// `clock` returns the host's UTC time in seconds since the epoch; empty means time(nullptr).
  explicit CmosRtc(uint64_t ram_bytes, std::function<time_t()> clock = {});

  /// Adds ports 0x70-0x71 to `bus`.
  void register_ports(IoBus& bus);

  /// True when the last index write had bit 7 set (NMI disabled).
  bool nmi_masked() const { return nmi_masked_; }
  /// The currently selected CMOS index (0-127).
  uint8_t index() const { return index_; }
  /// The guest's view of the time (UTC seconds since the epoch).
  time_t guest_time() const;
  /// Raw CMOS RAM access for the machine (e.g. to fill BIOS bytes); no clock semantics.
  uint8_t cmos_byte(uint8_t index) const { return ram_[index & 0x7f]; }
  void set_cmos_byte(uint8_t index, uint8_t value) { ram_[index & 0x7f] = value; }

 private:
  uint8_t read_byte(uint16_t port) override;
  void write_byte(uint16_t port, uint8_t value) override;
  uint8_t read_register(uint8_t index);
  void write_register(uint8_t index, uint8_t value);
  /// Broken-down guest time now (the frozen copy while B.SET = 1).
  struct tm current_tm() const;
  uint8_t encode(int value) const;
  int decode(uint8_t value) const;
  uint8_t encode_hour(int hour) const;
  int decode_hour(uint8_t value) const;
  time_t host_time() const;

  std::function<time_t()> clock_;
  uint8_t ram_[128] = {};
  uint8_t index_ = 0;
  bool nmi_masked_ = false;
  time_t offset_ = 0;  ///< guest time - host time, seconds
  struct tm frozen_ = {};
};

}  // namespace vmbt
