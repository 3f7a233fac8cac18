// Parsing of size arguments such as --memory 256M.
#pragma once

#include <cstdint>
#include <string>

namespace vmbt {

/// Parses "N", "NK", "NM", "NG" (binary units, case-insensitive; a bare number is MiB, as QEMU's
/// -m) into bytes. Throws vmbt::Error for anything else or on overflow.
uint64_t parse_memory_size(const std::string& text);

}  // namespace vmbt
