// The BIOS linker/loader command format (QEMU hw/acpi/bios-linker-loader.c, SeaBIOS
// src/fw/romfile_loader.h).
#include "vmm/boot/bios_linker.h"

#include "vmm/error.h"

namespace vmbt {

size_t BiosLinkerLoader::begin(Command command) {
  const size_t at = bytes_.size();
  bytes_.resize(at + kEntrySize, 0);
  put32(at, static_cast<uint32_t>(command));
  return at;
}

void BiosLinkerLoader::put_name(size_t at, const std::string& name) {
  if (name.empty() || name.size() >= kFileNameSize) {
    throw Error("internal: a table-loader file name is 1 to 55 bytes: " + name);
  }
  for (size_t i = 0; i < name.size(); ++i) bytes_[at + i] = static_cast<uint8_t>(name[i]);
}

void BiosLinkerLoader::put32(size_t at, uint32_t value) {
  for (unsigned i = 0; i < 4; ++i) bytes_[at + i] = static_cast<uint8_t>(value >> (8 * i));
}

void BiosLinkerLoader::allocate(const std::string& file, uint32_t alignment, Zone zone) {
  if (alignment == 0 || (alignment & (alignment - 1))) {
    throw Error("internal: a table-loader alignment is a power of two");
  }
  const size_t at = begin(Command::kAllocate);
  put_name(at + 4, file);
  put32(at + 4 + kFileNameSize, alignment);
  bytes_[at + 8 + kFileNameSize] = static_cast<uint8_t>(zone);
}

void BiosLinkerLoader::add_pointer(const std::string& destination, const std::string& source,
                                   uint32_t offset, uint8_t size) {
  if (size != 1 && size != 2 && size != 4 && size != 8) {
    throw Error("internal: a table-loader pointer is 1, 2, 4 or 8 bytes");
  }
  const size_t at = begin(Command::kAddPointer);
  put_name(at + 4, destination);
  put_name(at + 4 + kFileNameSize, source);
  put32(at + 4 + 2 * kFileNameSize, offset);
  bytes_[at + 8 + 2 * kFileNameSize] = size;
}

void BiosLinkerLoader::add_checksum(const std::string& file, uint32_t result_offset, uint32_t start,
                                    uint32_t length) {
  const size_t at = begin(Command::kAddChecksum);
  put_name(at + 4, file);
  put32(at + 4 + kFileNameSize, result_offset);
  put32(at + 8 + kFileNameSize, start);
  put32(at + 12 + kFileNameSize, length);
}

}  // namespace vmbt
