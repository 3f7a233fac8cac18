// A small builder of ACPI Machine Language (AML) bytes for the DSDT: names, integers, packages,
// buffers, scopes, devices and the resource descriptors of a PCI root bridge's _CRS.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmbt::aml {

/// AML bytes: one term, or several in a row.
using Bytes = std::vector<uint8_t>;

/// `a` followed by `b`.
Bytes operator+(Bytes a, const Bytes& b);

/// Appends the low `bytes` bytes of `v` to `out`, least significant first (ACPI's byte order,
/// ACPI 6.5 §5.2: every multi-byte field is little-endian).
void append_le(Bytes& out, uint64_t v, unsigned bytes);

/// PkgLength for a package whose content after the PkgLength is `content_length` bytes (ACPI 6.5
/// §20.2.4): the encoded length counts itself; 1 byte up to 63 in all, otherwise a lead byte
/// (bits 7:6 = the number of bytes that follow, bits 3:0 the low nibble) and 1-3 more bytes,
/// little-endian from bit 4. Throws vmbt::Error beyond 2^28 - 1.
Bytes pkg_length(size_t content_length);

/// The smallest ComputationalData for `v` (§20.2.3): ZeroOp, OneOp, BytePrefix, WordPrefix,
/// DWordPrefix or QWordPrefix.
Bytes integer(uint64_t v);

/// A NameSeg (§20.2.2): four characters, A-Z, 0-9 or '_', the first not a digit; a shorter name
/// is padded with '_' as ASL does. Throws vmbt::Error otherwise.
Bytes name_seg(const std::string& seg);

/// A NameString (§20.2.2): an optional root prefix '\' then one segment, or DualNamePrefix with
/// two ("\_SB_.PCI0" style, dot-separated).
Bytes name_string(const std::string& path);

/// `Name (seg, object)` (§20.2.5.1 DefName).
Bytes name(const std::string& seg, const Bytes& object);

/// `Package (n) {elements...}` (§20.2.5.4 DefPackage), at most 255 elements.
Bytes package(const std::vector<Bytes>& elements);

/// `Buffer () {bytes...}` (§20.2.5.4 DefBuffer): its size as an integer, then the bytes.
Bytes buffer(const Bytes& bytes);

/// `Scope (path) {body}` (§20.2.5.1 DefScope).
Bytes scope(const std::string& path, const Bytes& body);

/// `Device (seg) {body}` (§20.2.5.2 DefDevice, ExtOpPrefix 0x5B 0x82).
Bytes device(const std::string& seg, const Bytes& body);

/// `EisaId ("PNP0A03")` (§19.6.35): three letters compressed into 5 bits each and four hex digits,
/// as a DWordConst in the byte order ASL gives it. Throws vmbt::Error for another shape.
Bytes eisa_id(const std::string& id);

/// Resource descriptors for a _CRS buffer (ACPI 6.5 §6.4). Each is the descriptor's bytes.
namespace resource {
/// WordBusNumber (§6.4.3.5.3 Word Address Space Descriptor, resource type 2): a producer of bus
/// numbers [min, max], MinFixed and MaxFixed, positive decode.
Bytes word_bus_number(uint16_t min, uint16_t max);
/// WordIO (type 1): a producer of I/O ports [min, max], MinFixed, MaxFixed, entire ISA range.
Bytes word_io(uint16_t min, uint16_t max);
/// DWordMemory (§6.4.3.5.2, type 0): a producer of memory [min, max], MinFixed, MaxFixed,
/// cacheable, read-write.
Bytes dword_memory(uint32_t min, uint32_t max);
/// IO (§6.4.2.5 I/O Port Descriptor): a consumer of `length` ports at `base`, 16-bit decode.
Bytes io(uint16_t base, uint8_t length);
/// The End Tag (§6.4.2.9), checksum 0 (the OS then does not check the template).
Bytes end_tag();
}  // namespace resource

}  // namespace vmbt::aml
