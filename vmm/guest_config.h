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

/// A host forward of user networking (`--net user,hostfwd=...`, QEMU's spelling): connections
/// (TCP) or datagrams (UDP) to host_addr:host_port on the host go to guest_addr:guest_port.
struct HostForward {
  bool udp = false;
  uint32_t host_addr = 0x7f000001;   ///< IPv4, host byte order (default 127.0.0.1)
  uint16_t host_port = 0;            ///< 1-65535
  uint32_t guest_addr = 0x0a00020f;  ///< IPv4, host byte order (default 10.0.2.15, the DHCP lease)
  uint16_t guest_port = 0;           ///< 1-65535
};

/// The guest's network (`--net`, parse_net): none, or user-mode networking (libslirp) with host
/// forwards.
struct NetConfig {
  bool user = false;
  std::vector<HostForward> forwards;
};

/// A disk the machine attaches as a virtio-blk device (`--drive`, parse_drive).
struct DriveConfig {
  std::string path;
  bool read_only = false;
};

/// A guest: what `vmbt run`, `compare`, `trace` and `bench micro` fill in from their flags (in
/// QEMU's spelling, parsed as each flag is read), and what the builder (cli/guest_session.h,
/// run_guest_once) turns into a machine (vmm/machine/machine.h) and an engine. The one
/// description of a guest: the CLI, the tests and the benchmarks all build from it.
/// Debian's SeaBIOS (package `seabios`): the default `--bios`.
inline constexpr char kDefaultBios[] = "/usr/share/seabios/bios-256k.bin";

struct GuestConfig {
  EngineKind engine = EngineKind::kBt;
  /// Multiboot ELF32 or Linux bzImage; empty: a firmware boot (the CPU starts at its reset
  /// state in `bios`, as a PC does).
  std::string kernel;
  /// The BIOS ROM image of a firmware boot (`--bios`, QEMU's -bios).
  std::string bios = kDefaultBios;
  std::string initrd;  ///< a bzImage's initrd, or Multiboot module 0 (optional)
  std::string append;  ///< kernel command line (empty: the loader's default)
  /// Guest RAM in bytes, GuestMemory::kMinBytes (2 MiB) to kMaxBytes (3 GiB): `--memory`
  /// (parse_ram_size, as QEMU's -m).
  uint64_t ram_bytes = 256ull << 20;
  double timeout_seconds = 0;  ///< end the run after this long; 0: never
  bool trace_io = false;       ///< log every port and MMIO access to stderr
  /// virtio-blk disks in order (/dev/vda, /dev/vdb, ...): `--drive` (parse_drive), at most 4.
  std::vector<DriveConfig> drives;
  bool snapshot = false;  ///< `--snapshot`: drive writes go to a temporary overlay
  /// `--net` (parse_net): a virtio-net NIC on user-mode networking with host forwards, or none.
  NetConfig net;
  /// Engine switching (README "Switching engines"): the other engine stands by and takes the
  /// running guest after `switch_after_seconds` (< 0: never by time), then every
  /// `switch_every_seconds` (0: once), or on Ctrl-A s when `switchable`.
  bool switchable = false;
  double switch_after_seconds = -1;
  /// Switch once after this many guest instructions (single-stepped to there); < 0: not used.
  int64_t switch_after_instructions = -1;
  double switch_every_seconds = 0;

  /// No kernel: the firmware boots the machine.
  bool firmware_boot() const { return kernel.empty(); }
};

/// Parses "N", "NK", "NM", "NG" (binary units, case-insensitive, an optional "iB" or "B" after
/// the unit; a bare number is MiB, as QEMU's -m) into bytes. Throws vmbt::Error for anything else
/// or on overflow.
uint64_t parse_memory_size(const std::string& text);
/// Parses `--memory`: parse_memory_size, within the RAM a guest may have (2 MiB to 3 GiB);
/// throws vmbt::Error saying so otherwise.
uint64_t parse_ram_size(const std::string& text);
/// `bytes` (whole KiB) in `--memory`'s spelling: "256M", "3G", "1536K" (the largest unit that
/// divides it).
std::string format_memory_size(uint64_t bytes);

/// Parses a `--drive` specification in QEMU's spelling: `[file=]PATH[,format=raw][,if=virtio]
/// [,readonly=on|off]` (a comma in PATH is written ",,"). Throws vmbt::Error saying what is wrong
/// (another format or interface, an unknown option, no path).
DriveConfig parse_drive(const std::string& spec);

/// Parses a `--net` specification in QEMU's spelling: `none`, or `user` followed by any number of
/// `,hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT` (QEMU's -netdev user hostfwd;
/// an empty HOSTADDR is 127.0.0.1, where QEMU binds every address; an empty GUESTADDR is
/// 10.0.2.15, the guest's DHCP lease; GUESTADDR must be in 10.0.2.0/24). Throws vmbt::Error
/// saying what is wrong (another backend, an unknown option, a malformed forward).
NetConfig parse_net(const std::string& spec);

}  // namespace vmbt
