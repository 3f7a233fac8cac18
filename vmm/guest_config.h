// The guest as the user describes it: one configuration for every command that runs one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vmbt {

/// The engine that runs a guest: binary translation, or hardware assist through /dev/kvm.
/// kAuto: kvm where this host's KVM can run the guest, bt otherwise (the builder decides).
enum class EngineKind { kBt, kKvm, kAuto };

/// The engine's name as `--engine` spells it: "bt", "kvm" or "auto".
const char* engine_name(EngineKind kind);
/// Parses `--engine`'s spelling; throws vmbt::Error naming the choices for anything else.
EngineKind parse_engine_kind(const std::string& name);

/// A guest: what `vmbt run`, `compare`, `trace` and `bench micro` fill in from their flags (in
/// QEMU's spelling), and what the builder (cli/guest_session.h, run_guest_once) turns into a
/// machine and an engine. Devices and drives join it as they arrive.
struct GuestConfig {
  EngineKind engine = EngineKind::kBt;
  std::string kernel;           ///< Multiboot ELF32 or Linux bzImage (required)
  std::string initrd;           ///< a bzImage's initrd, or Multiboot module 0 (optional)
  std::string append;           ///< kernel command line (empty: the loader's default)
  std::string memory = "256M";  ///< guest RAM, 2M to 3G with K/M/G suffixes (as QEMU's -m)
  double timeout_seconds = 0;   ///< end the run after this long; 0: never
  bool trace_io = false;        ///< log every port and MMIO access to stderr
  /// `--drive` specifications, in order (parse_drive): virtio-blk disks /dev/vda, /dev/vdb, ...
  std::vector<std::string> drives;
  bool snapshot = false;  ///< `--snapshot`: drive writes go to a temporary overlay
  /// `--net` specification (parse_net): "none", or "user[,hostfwd=...]..." for a virtio-net NIC.
  std::string net = "none";
  /// Engine switching (README "Switching engines"): the other engine stands by and takes the
  /// running guest after `switch_after_seconds` (< 0: never by time), then every
  /// `switch_every_seconds` (0: once), or on Ctrl-A s when `switchable`.
  bool switchable = false;
  double switch_after_seconds = -1;
  /// Switch once after this many guest instructions (single-stepped to there); < 0: not used.
  int64_t switch_after_instructions = -1;
  double switch_every_seconds = 0;
};

struct DriveConfig;
/// Parses a `--drive` specification in QEMU's spelling: `[file=]PATH[,format=raw][,if=virtio]
/// [,readonly=on|off]` (a comma in PATH is written ",,"). Throws vmbt::Error saying what is wrong
/// (another format or interface, an unknown option, no path).
DriveConfig parse_drive(const std::string& spec);

struct NetConfig;
/// Parses a `--net` specification in QEMU's spelling: `none`, or `user` followed by any number of
/// `,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT` (QEMU's -netdev user hostfwd;
/// an empty HOSTADDR is 127.0.0.1, where QEMU binds every address; an empty GUESTADDR is
/// 10.0.2.15, the guest's DHCP lease; GUESTADDR must be in 10.0.2.0/24). Throws vmbt::Error
/// saying what is wrong (another backend, an unknown option, a malformed forward).
NetConfig parse_net(const std::string& spec);

}  // namespace vmbt
