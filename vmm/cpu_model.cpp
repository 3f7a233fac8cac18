#include "vmm/cpu_model.h"

#include <fmt/format.h>

#include <cstring>

namespace vmbt {

namespace {
uint32_t str4(const char* s) {
  uint32_t v;
  std::memcpy(&v, s, 4);
  return v;
}

/// CpuModel::leaves(), built once (the model is fixed).
const std::vector<CpuidEntry>& model_leaves() {
  static const std::vector<CpuidEntry> all = CpuModel::leaves();
  return all;
}
}  // namespace

std::vector<CpuidEntry> CpuModel::leaves() {
  std::vector<CpuidEntry> out;
  out.push_back({0, 0, 2, str4(kVendor), str4(kVendor + 8), str4(kVendor + 4)});
  uint32_t signature = (kFamily << 8) | (kModel << 4) | kStepping;
  // EBX: CLFLUSH line size 8 (x 8 = 64 bytes) in bits 15:8, one logical processor.
  out.push_back({1, 0, signature, (8u << 8) | (1u << 16), kFeaturesEcx, kFeaturesEdx});
  // Leaf 2: AL=1 (one iteration), descriptor bytes 0 = none.
  out.push_back({2, 0, 1, 0, 0, 0});
  out.push_back({0x80000000u, 0, 0x80000004u, 0, 0, 0});
  out.push_back({0x80000001u, 0, 0, 0, 0, kExtFeaturesEdx});
  char brand[48] = {};
  std::memcpy(brand, kBrand, std::strlen(kBrand));
  for (uint32_t i = 0; i < 3; ++i) {
    const char* b = brand + 16 * i;
    out.push_back({0x80000002u + i, 0, str4(b), str4(b + 4), str4(b + 8), str4(b + 12)});
  }
  return out;
}

CpuidEntry CpuModel::query(uint32_t function, uint32_t index, const CpuidDynamic& dynamic) {
  const std::vector<CpuidEntry>& all = model_leaves();
  uint32_t max_basic = all[0].eax;
  uint32_t max_ext = 0x80000004u;
  if (function >= 0x80000000u) {
    if (function > max_ext) return {function, index, 0, 0, 0, 0};
  } else if ((function & 0xF0000000u) == 0x40000000u) {
    return {function, index, 0, 0, 0, 0};
  } else if (function > max_basic) {
    function = max_basic;
  }
  for (const auto& e : all) {
    if (e.function == function) {
      CpuidEntry r = e;
      r.index = index;
      if (function == 1 && !dynamic.apic_enabled) r.edx &= ~kApicFeature;
      if (function == 0x80000001u && dynamic.xd_disabled) r.edx &= ~kExtFeaturesEdx;
      return r;
    }
  }
  return {function, index, 0, 0, 0, 0};
}

bool CpuModel::depends_on_index(uint32_t function) {
  const uint32_t max_basic = model_leaves()[0].eax;
  if (function >= 0x80000000u || (function & 0xF0000000u) == 0x40000000u) return false;
  if (function > max_basic) function = max_basic;
  switch (function) {
    case 0x4:
    case 0x7:
    case 0xb:
    case 0xd:
    case 0xf:
    case 0x10:
    case 0x12:
    case 0x14:
    case 0x17:
    case 0x18:
      return true;
    default:
      return function > 0x18;
  }
}

std::string CpuModel::describe() {
  return fmt::format(
      "{} family {} model {} stepping {} \"{}\" (CPUID.1 EDX={:#010x} ECX={:#x}, "
      "80000001H EDX={:#x})",
      kVendor, kFamily, kModel, kStepping, kBrand, kFeaturesEdx, kFeaturesEcx, kExtFeaturesEdx);
}

}  // namespace vmbt
