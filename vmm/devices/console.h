// The host terminal as the guest's serial console, with QEMU's Ctrl-A escapes.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "vmm/devices/char_backend.h"

namespace vmbt {

/// The Ctrl-A escape state machine of QEMU's multiplexed stdio console (QEMU manual, "Keys in the
/// character backend multiplexer"), without any terminal: feed it input bytes one at a time.
///   Ctrl-A x        quit
///   Ctrl-A s        move the guest to the other engine (vmbt's own; with --switchable)
///   Ctrl-A n        raise the platform's NMI line (LINT1; QEMU's `nmi` monitor command)
///   Ctrl-A h or ?   print the list of escapes
///   Ctrl-A Ctrl-A   send one Ctrl-A (0x01) to the guest
///   Ctrl-A other    swallowed (c, b, t ... are QEMU monitor/other features vmbt lacks)
class EscapeDecoder {
 public:
  static constexpr uint8_t kEscapeChar = 0x01;  ///< Ctrl-A

  enum class Action {
    kNone,     ///< nothing for the guest (escape prefix or swallowed escape)
    kForward,  ///< `byte` goes to the guest
    kQuit,     ///< Ctrl-A x
    kHelp,     ///< Ctrl-A h / Ctrl-A ?
    kSwitch,   ///< Ctrl-A s
    kNmi,      ///< Ctrl-A n
  };
  struct Result {
    Action action = Action::kNone;
    uint8_t byte = 0;  ///< valid with kForward
  };

  /// Consumes one input byte.
  Result feed(uint8_t byte);
  /// True after a Ctrl-A that still waits for its command key.
  bool escape_pending() const { return got_escape_; }
  /// The help text listing the escapes (lines end in "\r\n": the terminal is in raw mode).
  static std::string_view help_text();

 private:
  bool got_escape_ = false;
};

/// The serial console on the host terminal, as QEMU's `-nographic` / `-serial mon:stdio`:
///
/// - Output: every guest byte is written at once with write(2) to `out_fd` (standard output),
///   retrying on EINTR, partial writes and EAGAIN.
/// - Input from `in_fd` (standard input) without blocking: poll(2) with zero timeout, then
///   read(2). The descriptor is not switched to O_NONBLOCK (that flag would be shared with the
///   shell and, on a terminal, with standard output). At end of file (or a read error) input stops
///   for good: read() returns 0 without touching the descriptor again.
/// - If `in_fd` is a terminal: it is put in raw mode the way QEMU does (no echo, no canonical
///   mode, no signal keys, no CR/NL translation or flow control on input, 8-bit characters, VMIN 1;
///   output post-processing stays as the terminal had it plus OPOST, as QEMU leaves it, so a guest
///   "\n" still starts a new line). Ctrl-C therefore reaches the guest; Ctrl-A x quits. The
///   original settings come back in the destructor, at exit() (atexit), and on SIGSEGV, SIGABRT,
///   SIGBUS, SIGHUP and SIGQUIT (the handler restores the terminal, then re-raises the signal with
///   its default action). Handlers are only installed for signals still at their default
///   disposition; SIGINT and SIGTERM are left to the run loop, which should call
///   restore_terminal() itself.
/// - The Ctrl-A escapes (EscapeDecoder) are active only when `in_fd` is a terminal; piped or file
///   input reaches the guest byte for byte, 0x01 included, so scripted input is never eaten.
///
/// One TerminalConsole at a time may own the terminal (the saved settings are process-wide).
class TerminalConsole : public CharBackend {
 public:
  explicit TerminalConsole(int in_fd = 0, int out_fd = 1);
  ~TerminalConsole() override;
  TerminalConsole(const TerminalConsole&) = delete;
  TerminalConsole& operator=(const TerminalConsole&) = delete;

  void write(uint8_t byte) override;
  size_t read(uint8_t* buf, size_t max) override;

  /// True once the user typed Ctrl-A x.
  bool quit_requested() const { return quit_.load(std::memory_order_relaxed); }
  /// True once for each Ctrl-A s typed since the last call.
  bool take_switch_request() { return switch_.exchange(false, std::memory_order_relaxed); }
  /// True once for each Ctrl-A n typed since the last call.
  bool take_nmi_request() { return nmi_.exchange(false, std::memory_order_relaxed); }
  /// True when input is a terminal in raw mode (escapes active).
  bool is_tty() const { return tty_; }
  /// True once input reached end of file.
  bool input_closed() const { return eof_; }

  /// Puts the terminal back as it was before the console took it. Async-signal-safe (one
  /// tcsetattr from a saved copy); does nothing if no terminal was taken. Idempotent.
  static void restore_terminal();

 private:
  int in_fd_;
  int out_fd_;
  bool tty_ = false;
  bool eof_ = false;
  std::atomic<bool> quit_{false};
  std::atomic<bool> switch_{false};
  std::atomic<bool> nmi_{false};
  EscapeDecoder escapes_;
};

}  // namespace vmbt
