// Intel 82441FX PMC datasheet §3.2: the host bridge's configuration registers and PAM0-PAM6.
#include "vmm/devices/i440fx.h"

namespace vmbt {

I440fxHostBridge::I440fxHostBridge() : PciFunction(kVendorIntel, kDevice, 0x02, 0x060000) {
  put16(0x04, 0x0006);  // command: memory space, bus master
  put16(0x06, 0x0280);  // status: fast back-to-back capable, DEVSEL medium
  set_subsystem(0x1af4, 0x1100);
  wmask_[0x05] = 0x01;  // SERR# enable (no interrupt-disable bit: the bridge has no INTx)
  for (unsigned i = 0x40; i < 0x100; ++i) wmask_[i] = 0xff;
  wmask_[kPam0] = 0x70;                                       // HIENABLE (bits 3:0 reserved)
  for (unsigned i = 1; i < 7; ++i) wmask_[kPam0 + i] = 0x77;  // bit 3 of each nibble reserved
}

uint8_t I440fxHostBridge::pam_attributes(unsigned segment) const {
  if (segment == 0) return (config_[kPam0] >> 4) & 3;
  if (segment >= kPamSegments) return 0;
  const uint8_t reg = config_[kPam0 + (segment + 1) / 2];
  return ((segment & 1) ? reg : reg >> 4) & 3;
}

uint32_t I440fxHostBridge::pam_segment_base(unsigned segment) {
  return segment == 0 ? 0xf0000 : 0xc0000 + 0x4000 * (segment - 1);
}

uint32_t I440fxHostBridge::pam_segment_size(unsigned segment) {
  return segment == 0 ? 0x10000 : 0x4000;
}

void I440fxHostBridge::preset_pam(const uint8_t (&values)[7]) {
  for (unsigned i = 0; i < 7; ++i) config_[kPam0 + i] = values[i] & wmask_[kPam0 + i];
}

void I440fxHostBridge::config_written(unsigned reg, unsigned size) {
  if (reg < kPam0 + 7 && reg + size > kPam0 && on_pam_change_) on_pam_change_();
}

}  // namespace vmbt
