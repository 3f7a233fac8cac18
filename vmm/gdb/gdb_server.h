// vmbt's GDB remote stub on a TCP socket: QEMU's `-gdb tcp::PORT`, `-s` and `-S` for both engines.
// The run loop (run_loop.h) asks it when to stop and hands it the stopped guest.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/engine.h"
#include "vmm/gdb/gdb_packet.h"
#include "vmm/gdb/gdb_stub.h"
#include "vmm/stats.h"

namespace vmbt::gdb {

/// One listening socket and at most one debugger connected to it. A debugger that connects to a
/// running guest stops it; one that disconnects lets it run on (as QEMU's gdbstub).
class GdbServer {
 public:
  /// Listens on `spec`: "tcp:HOST:PORT", "tcp::PORT" (any address... as QEMU: 127.0.0.1 here,
  /// the safe default) or "PORT"; port 0 picks a free one (port()). Throws vmbt::Error naming
  /// the address on a bad spec or a port in use.
  explicit GdbServer(std::string_view spec);
  ~GdbServer();
  GdbServer(const GdbServer&) = delete;
  GdbServer& operator=(const GdbServer&) = delete;

  uint16_t port() const { return port_; }
  /// "127.0.0.1:1234", for messages.
  const std::string& address() const { return address_; }

  /// Binds the session to the run's engine; `stats` is what `monitor stats` prints (with the
  /// engine's counters added at the time).
  void attach(Engine& engine, Stats& stats);
  /// More `monitor` commands (qRcmd), tried before the built-in ones (stats, help): returns the
  /// text to print, or nullopt for a command it does not know.
  using MonitorCommands = std::function<std::optional<std::string>(std::string_view)>;
  void set_monitor_commands(MonitorCommands commands) { monitor_commands_ = std::move(commands); }
  /// Blocks until a debugger connects (`-S`); false if `abort()` said to give up first.
  bool wait_for_connection(const std::function<bool()>& abort);
  /// Between engine runs: a signal when the guest must stop for the debugger (kTrap: one
  /// connected; kInt: it sent Ctrl-C). At most one poll() a millisecond.
  std::optional<StopSignal> stop_requested();
  /// The guest is stopped with `signal`: sends the stop reply (unless none is owed) and serves
  /// the debugger until it resumes, applying its breakpoints and stepping to the engine.
  /// Returns kKill when the debugger ended the run, kDetach when it left or disconnected.
  Resume serve_stop(StopSignal signal, const std::function<bool()>& abort,
                    std::optional<WatchStop> watch = {});
  /// The guest ended with vmbt exit status `status`: tells the debugger (W packet), closes.
  void guest_exited(int status);
  /// Whether a debugger is connected now.
  bool connected() const { return client_ >= 0; }

 private:
  class EngineTarget;
  void accept_client();
  void drop_client();
  void send_packet(std::string_view payload);
  void send_raw(std::string_view bytes);
  /// Reads what is there (waiting up to `timeout_ms`); false when the connection closed.
  bool receive(int timeout_ms);

  int listener_ = -1, client_ = -1;
  uint16_t port_ = 0;
  std::string address_;
  Engine* engine_ = nullptr;
  Stats* stats_ = nullptr;
  std::unique_ptr<EngineTarget> target_;
  MonitorCommands monitor_commands_;
  std::unique_ptr<GdbStub> stub_;
  PacketDecoder decoder_;
  std::vector<InputEvent> events_;
  std::string last_sent_;
  bool interrupt_ = false;      ///< Ctrl-C arrived while the guest ran
  bool awaiting_stop_ = false;  ///< the debugger resumed the guest and waits for a stop reply
  uint64_t next_poll_ns_ = 0;
};

}  // namespace vmbt::gdb
