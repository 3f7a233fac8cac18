// The GDB remote protocol's commands for one stopped IA-32 vCPU: registers, memory, breakpoints,
// resumption (GDB manual, Appendix E "GDB Remote Serial Protocol", §E.2 "Packets" and §E.4
// "General Query Packets"). No I/O here: the server (gdb_server.h) moves the bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/cpu_state.h"
#include "vmm/engine.h"

namespace vmbt::gdb {

/// What the stub needs of the stopped guest: implemented over an engine and the machine
/// (gdb_server.cpp) and by fakes in the tests.
class DebugTarget {
 public:
  virtual ~DebugTarget() = default;
  virtual VcpuState registers() = 0;
  /// Puts back registers the stub changed (general registers, EIP, EFLAGS, the x87/SSE image).
  virtual void set_registers(const VcpuState& state) = 0;
  /// Reads (write=false) or writes `size` bytes at guest *linear* address `linear`, translated
  /// through the guest's page tables without setting accessed/dirty bits. False, with nothing
  /// written, when a byte is not mapped or not RAM.
  virtual bool access_memory(uint32_t linear, uint8_t* data, size_t size, bool write) = 0;
  /// `monitor COMMAND` (qRcmd): the text to print for the user.
  virtual std::string monitor(std::string_view command) = 0;
};

/// What the guest does after a packet.
enum class Resume {
  kNone,      ///< stays stopped: send the reply now
  kContinue,  ///< runs until a breakpoint, Ctrl-C or its end (the reply is the next stop reply)
  kStep,      ///< runs one instruction, then stops (the reply is the next stop reply)
  kKill,      ///< 'k': end the run
  kDetach,    ///< 'D': send the reply, forget the debugger, run on
};

/// The signal numbers stop replies carry (GDB's own numbering, include/gdb/signals.def).
enum class StopSignal : uint8_t { kInt = 2, kTrap = 5 };

/// A watchpoint's stop: which kind triggered, at which watched byte.
struct WatchStop {
  DebugSettings::Watch::Kind kind = DebugSettings::Watch::Kind::kWrite;
  uint32_t address = 0;
};

/// Register image of the i386 target description the stub sends (qXfer:features:read): the
/// core feature (eax..gs, st0-st7, x87 control), SSE (xmm0-7, mxcsr), then CR0, CR2, CR3, CR4.
/// Sizes in bytes, in GDB's register-number order.
inline constexpr size_t kRegisterCount = 16 + 8 + 8 + 8 + 1 + 4;
size_t register_size(size_t regno);
/// Appends register `regno` of `s` to `out` as target-order bytes.
void read_register(const VcpuState& s, size_t regno, std::vector<uint8_t>& out);
/// Stores `bytes` (register_size(regno) of them) into register `regno`; false for a register
/// the debugger may not change (segment and control registers: loading them has side effects
/// the stub does not emulate).
bool write_register(VcpuState& s, size_t regno, const uint8_t* bytes);
/// The target description document ("target.xml").
std::string_view target_xml();

/// Answers packets for one debugging session.
class GdbStub {
 public:
  /// Most breakpoints the stub keeps (a Z0 beyond them is refused with an error reply).
  static constexpr size_t kMaxBreakpoints = 4096;

  explicit GdbStub(DebugTarget& target) : target_(target) {}

  /// Handles one packet's payload. `reply` receives the payload to send (empty: "not
  /// supported", which is a valid reply). Returns what the guest does next; for kContinue and
  /// kStep nothing is sent now.
  Resume handle(std::string_view packet, std::string* reply);
  /// The stop reply for a stop with `signal` ("T05thread:01;"); with `watch`, a watchpoint's
  /// ("T05watch:ADDR;thread:01;", rwatch or awatch for the others, §E.3).
  std::string stop_reply(StopSignal signal, std::optional<WatchStop> watch = {});
  /// The last stop reply's signal ('?').
  StopSignal last_signal() const { return last_signal_; }

  /// Software breakpoints (Z0/Z1) as guest linear addresses, sorted.
  const std::vector<uint32_t>& breakpoints() const { return breakpoints_; }
  /// Watchpoints (Z2 write, Z3 read, Z4 access) as guest linear ranges, in the order set.
  const std::vector<DebugSettings::Watch>& watchpoints() const { return watchpoints_; }
  /// Most watchpoints the stub keeps.
  static constexpr size_t kMaxWatchpoints = 64;
  /// True once GDB asked for QStartNoAckMode: no '+' acknowledgements either way.
  bool no_ack_mode() const { return no_ack_; }

 private:
  std::string read_registers();
  std::string write_registers(std::string_view hex);
  std::string read_memory(std::string_view args);
  std::string write_memory(std::string_view args, bool binary);
  std::string change_breakpoint(std::string_view args, bool insert);
  std::string query(std::string_view packet);
  Resume resume_command(std::string_view packet, std::string* reply);

  DebugTarget& target_;
  std::vector<uint32_t> breakpoints_;
  std::vector<DebugSettings::Watch> watchpoints_;
  StopSignal last_signal_ = StopSignal::kTrap;
  bool no_ack_ = false;
};

}  // namespace vmbt::gdb
