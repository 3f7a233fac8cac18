#include "vmm/guest_config.h"

#include "vmm/machine/machine.h"

#include <fmt/format.h>

#include "vmm/error.h"

namespace vmbt {

const char* engine_name(EngineKind kind) {
  switch (kind) {
    case EngineKind::kBt:
      return "bt";
    case EngineKind::kKvm:
      return "kvm";
    case EngineKind::kAuto:
      return "auto";
  }
  return "bt";
}

EngineKind parse_engine_kind(const std::string& name) {
  if (name == "bt") return EngineKind::kBt;
  if (name == "kvm") return EngineKind::kKvm;
  if (name == "auto") return EngineKind::kAuto;
  throw Error(fmt::format("unknown engine '{}': choose auto, bt or kvm", name));
}

DriveConfig parse_drive(const std::string& spec) {
  // Split at single commas; ",," is a literal comma (QEMU's option syntax).
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < spec.size(); ++i) {
    if (spec[i] == ',' && i + 1 < spec.size() && spec[i + 1] == ',') {
      parts.back() += ',';
      ++i;
    } else if (spec[i] == ',') {
      parts.emplace_back();
    } else {
      parts.back() += spec[i];
    }
  }
  DriveConfig d;
  for (size_t i = 0; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const size_t eq = p.find('=');
    const std::string key = eq == std::string::npos ? "" : p.substr(0, eq);
    const std::string value = eq == std::string::npos ? p : p.substr(eq + 1);
    if (key.empty() && i == 0) {
      d.path = value;
    } else if (key == "file") {
      d.path = value;
    } else if (key == "format") {
      if (value != "raw") {
        throw Error(
            fmt::format("--drive {}: format={} is not supported: vmbt reads raw images "
                        "(convert with qemu-img convert -O raw)",
                        spec, value));
      }
    } else if (key == "if") {
      if (value != "virtio") {
        throw Error(
            fmt::format("--drive {}: if={}: vmbt's disks are virtio-blk (if=virtio)", spec, value));
      }
    } else if (key == "readonly") {
      if (value != "on" && value != "off") {
        throw Error(fmt::format("--drive {}: readonly takes on or off", spec));
      }
      d.read_only = value == "on";
    } else {
      throw Error(
          fmt::format("--drive {}: unknown option '{}' (file, format, if, readonly)", spec, p));
    }
  }
  if (d.path.empty()) throw Error(fmt::format("--drive {}: no image file", spec));
  return d;
}

}  // namespace vmbt
