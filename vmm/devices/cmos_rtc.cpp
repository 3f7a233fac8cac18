// MC146818A RTC and PC/AT CMOS RAM (Motorola MC146818A datasheet; IBM PC/AT Technical Reference,
// "CMOS RAM address map").
#include "vmm/devices/cmos_rtc.h"

#include <algorithm>

namespace vmbt {

namespace {
constexpr uint16_t kIndexPort = 0x70;
constexpr uint16_t kDataPort = 0x71;

constexpr uint8_t kSeconds = 0x00, kMinutes = 0x02, kHours = 0x04, kDayOfWeek = 0x06,
                  kDayOfMonth = 0x07, kMonth = 0x08, kYear = 0x09, kRegA = 0x0a, kRegB = 0x0b,
                  kRegC = 0x0c, kRegD = 0x0d, kCentury = 0x32;
constexpr uint8_t kBSet = 0x80, kBUie = 0x10, kBBinary = 0x04, kB24Hour = 0x02;
constexpr uint8_t kHourPm = 0x80;

void put16(uint8_t* ram, uint8_t index, uint64_t value) {
  ram[index] = static_cast<uint8_t>(value);
  ram[index + 1] = static_cast<uint8_t>(value >> 8);
}
}  // namespace

CmosRtc::CmosRtc(uint64_t ram_bytes, std::function<time_t()> clock) : clock_(std::move(clock)) {
  ram_[kRegA] = 0x26;  // 32.768 kHz time base, 1.024 kHz periodic rate
  ram_[kRegB] = kB24Hour;
  ram_[kRegD] = 0x80;  // VRT: the battery is fine

  constexpr uint64_t kKiB = 1024, kMiB = 1024 * kKiB;
  put16(ram_, 0x15, std::min<uint64_t>(ram_bytes, 640 * kKiB) / kKiB);
  const uint64_t extended =
      ram_bytes > kMiB ? std::min<uint64_t>((ram_bytes - kMiB) / kKiB, 65535) : 0;
  put16(ram_, 0x17, extended);
  put16(ram_, 0x30, extended);
  const uint64_t above16 =
      ram_bytes > 16 * kMiB ? std::min<uint64_t>((ram_bytes - 16 * kMiB) / (64 * kKiB), 65535) : 0;
  put16(ram_, 0x34, above16);
  // Memory above 4 GiB in 64 KiB units, 24 bits (QEMU's pc_cmos_init; SeaBIOS src/fw/paravirt.c
  // reads it with 0x34/0x35 where fw_cfg has no etc/e820).
  const uint64_t above4g = ram_bytes > (4096 * kMiB) ? (ram_bytes - 4096 * kMiB) / (64 * kKiB) : 0;
  for (unsigned i = 0; i < 3; ++i) ram_[0x5b + i] = static_cast<uint8_t>(above4g >> (8 * i));
  ram_[0x10] = 0x00;  // diskette drive types: none
  ram_[0x12] = 0x00;  // fixed disk types: none (the disks are virtio-blk, not ATA)
  ram_[0x14] = 0x02;  // equipment byte: no diskette drives, math coprocessor, EGA/VGA (bits 5:4 0)
  ram_[0x3d] = 0x02;  // boot devices 1 and 2 (low nibble first): hard disk, then none
  ram_[0x38] = 0x00;  // boot device 3 (bits 7:4): none; bit 0 clear: check the floppy signature
  ram_[0x5f] = 0x00;  // CPUs - 1 (QEMU's byte; SeaBIOS's CMOS_BIOS_SMP_COUNT)

  unsigned sum = 0;
  for (unsigned i = 0x10; i <= 0x2d; ++i) sum += ram_[i];
  ram_[0x2e] = static_cast<uint8_t>(sum >> 8);
  ram_[0x2f] = static_cast<uint8_t>(sum);
}

void CmosRtc::register_ports(IoBus& bus) {
  bus.add(kIndexPort, 2, this, "cmos-rtc");
}

time_t CmosRtc::host_time() const {
  return clock_ ? clock_() : ::time(nullptr);
}

time_t CmosRtc::guest_time() const {
  if (ram_[kRegB] & kBSet) {
    struct tm copy = frozen_;
    return timegm(&copy);
  }
  return host_time() + offset_;
}

struct tm CmosRtc::current_tm() const {
  if (ram_[kRegB] & kBSet) return frozen_;
  const time_t now = host_time() + offset_;
  struct tm tm = {};
  gmtime_r(&now, &tm);
  return tm;
}

uint8_t CmosRtc::encode(int value) const {
  if (ram_[kRegB] & kBBinary) return static_cast<uint8_t>(value);
  return static_cast<uint8_t>(((value / 10) % 10) << 4 | (value % 10));
}

int CmosRtc::decode(uint8_t value) const {
  if (ram_[kRegB] & kBBinary) return value;
  return (value >> 4) * 10 + (value & 0x0f);
}

uint8_t CmosRtc::encode_hour(int hour) const {
  if (ram_[kRegB] & kB24Hour) return encode(hour);
  const int h12 = hour % 12 == 0 ? 12 : hour % 12;  // 12 AM = 00:xx, 12 PM = 12:xx
  return static_cast<uint8_t>(encode(h12) | (hour >= 12 ? kHourPm : 0));
}

int CmosRtc::decode_hour(uint8_t value) const {
  if (ram_[kRegB] & kB24Hour) return decode(value);
  const int h12 = decode(value & 0x7f);
  return h12 % 12 + ((value & kHourPm) ? 12 : 0);
}

uint8_t CmosRtc::read_byte(uint16_t port) {
  return port == kDataPort ? read_register(index_) : 0xff;
}

void CmosRtc::write_byte(uint16_t port, uint8_t value) {
  if (port == kIndexPort) {
    index_ = value & 0x7f;
    nmi_masked_ = value & 0x80;
  } else if (port == kDataPort) {
    write_register(index_, value);
  }
}

uint8_t CmosRtc::read_register(uint8_t index) {
  switch (index) {
    case kSeconds:
      return encode(current_tm().tm_sec);
    case kMinutes:
      return encode(current_tm().tm_min);
    case kHours:
      return encode_hour(current_tm().tm_hour);
    case kDayOfWeek:
      return encode(current_tm().tm_wday + 1);
    case kDayOfMonth:
      return encode(current_tm().tm_mday);
    case kMonth:
      return encode(current_tm().tm_mon + 1);
    case kYear:
      return encode((current_tm().tm_year + 1900) % 100);
    case kCentury:
      return encode((current_tm().tm_year + 1900) / 100);
    case kRegA:
      return ram_[kRegA] & 0x7f;  // UIP never set
    case kRegC: {
      const uint8_t value = ram_[kRegC];
      ram_[kRegC] = 0;
      return value;
    }
    case kRegD:
      return 0x80;
    default:
      return ram_[index];
  }
}

void CmosRtc::write_register(uint8_t index, uint8_t value) {
  switch (index) {
    case kSeconds:
    case kMinutes:
    case kHours:
    case kDayOfMonth:
    case kMonth:
    case kYear:
    case kCentury: {
      struct tm tm = current_tm();
      const int year = tm.tm_year + 1900;
      switch (index) {
        case kSeconds:
          tm.tm_sec = decode(value);
          break;
        case kMinutes:
          tm.tm_min = decode(value);
          break;
        case kHours:
          tm.tm_hour = decode_hour(value);
          break;
        case kDayOfMonth:
          tm.tm_mday = decode(value);
          break;
        case kMonth:
          tm.tm_mon = decode(value) - 1;
          break;
        case kYear:
          tm.tm_year = year / 100 * 100 + decode(value) - 1900;
          break;
        default:  // century
          tm.tm_year = decode(value) * 100 + year % 100 - 1900;
          break;
      }
      tm.tm_isdst = 0;
      if (ram_[kRegB] & kBSet) {
        frozen_ = tm;  // kept as written until SET clears (a whole date may be in flux)
      } else {
        offset_ = timegm(&tm) - host_time();
      }
      return;
    }
    case kDayOfWeek:  // follows the date
      return;
    case kRegA:
      ram_[kRegA] = value & 0x7f;
      return;
    case kRegB: {
      const bool was_set = ram_[kRegB] & kBSet;
      if ((value & kBSet) && !was_set) frozen_ = current_tm();
      if (value & kBSet) value &= static_cast<uint8_t>(~kBUie);
      if (!(value & kBSet) && was_set) {
        struct tm tm = frozen_;
        tm.tm_isdst = 0;
        offset_ = timegm(&tm) - host_time();
      }
      ram_[kRegB] = value;
      return;
    }
    case kRegC:
    case kRegD:  // read-only
      return;
    default:
      ram_[index] = value;
      return;
  }
}

}  // namespace vmbt
