// fw_cfg legacy interface (QEMU docs/specs/fw_cfg.rst).
#include "vmm/devices/fw_cfg.h"

#include <algorithm>

#include "vmm/error.h"

namespace vmbt {

namespace {
constexpr uint16_t kWriteChannel = 0x4000;
constexpr size_t kFileNameSize = 56;

std::vector<uint8_t> le(uint64_t value, unsigned bytes) {
  std::vector<uint8_t> out(bytes);
  for (unsigned i = 0; i < bytes; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
  return out;
}

void put_be(std::vector<uint8_t>& out, uint64_t value, unsigned bytes) {
  for (unsigned i = bytes; i-- > 0;) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
}  // namespace

FwCfg::FwCfg(uint64_t ram_bytes, uint16_t cpus) {
  items_[kSignature] = {'Q', 'E', 'M', 'U'};
  items_[kId] = le(1, 4);
  items_[kRamSize] = le(ram_bytes, 8);
  items_[kNbCpus] = le(cpus, 2);
  items_[kMaxCpus] = le(cpus, 2);
  rebuild_directory();
}

void FwCfg::register_ports(IoBus& bus) {
  bus.add(kSelectorPort, 2, this, "fw_cfg");
}

void FwCfg::set_item(uint16_t key, std::vector<uint8_t> data) {
  items_[key & ~kWriteChannel] = std::move(data);
}

uint16_t FwCfg::add_file(const std::string& name, std::vector<uint8_t> data) {
  if (name.empty() || name.size() >= kFileNameSize) {
    throw Error("internal: a fw_cfg file name is 1 to 55 bytes: " + name);
  }
  for (const auto& f : files_) {
    if (f.first == name) throw Error("internal: fw_cfg file added twice: " + name);
  }
  if (files_.size() >= kMaxFiles) throw Error("internal: too many fw_cfg files");
  const uint16_t key = static_cast<uint16_t>(kFileFirst + files_.size());
  items_[key] = std::move(data);
  files_.emplace_back(name, key);
  rebuild_directory();
  return key;
}

void FwCfg::rebuild_directory() {
  // Sorted by name, as QEMU lists them (hw/nvram/fw_cfg.c): a firmware may search it in order.
  auto sorted = files_;
  std::sort(sorted.begin(), sorted.end());
  std::vector<uint8_t> dir;
  put_be(dir, sorted.size(), 4);
  for (const auto& [name, key] : sorted) {
    put_be(dir, items_[key].size(), 4);
    put_be(dir, key, 2);
    put_be(dir, 0, 2);
    for (size_t i = 0; i < kFileNameSize; ++i) {
      dir.push_back(i < name.size() ? static_cast<uint8_t>(name[i]) : 0);
    }
  }
  items_[kFileDir] = std::move(dir);
}

uint32_t FwCfg::io_read(uint16_t, unsigned size) {
  if (size != 1) return 0;  // only byte reads of the data register are defined
  const auto it = items_.find(selector_ & ~kWriteChannel);
  if (it == items_.end() || offset_ >= it->second.size()) return 0;
  return it->second[offset_++];
}

void FwCfg::io_write(uint16_t port, unsigned size, uint32_t value) {
  if (port == kSelectorPort && size == 2) {
    selector_ = static_cast<uint16_t>(value);
    offset_ = 0;
  }
  // Byte writes are data writes: ignored.
}

}  // namespace vmbt
