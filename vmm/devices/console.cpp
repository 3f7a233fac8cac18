// Terminal console: raw-mode stdin/stdout with QEMU-style Ctrl-A escapes (POSIX termios(3),
// poll(2), sigaction(2); QEMU chardev/char-mux.c behaviour for the escapes).
#include "vmm/devices/console.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace vmbt {

EscapeDecoder::Result EscapeDecoder::feed(uint8_t byte) {
  if (got_escape_) {
    got_escape_ = false;
    switch (byte) {
      case kEscapeChar:
        return {Action::kForward, kEscapeChar};
      case 'x':
        return {Action::kQuit, 0};
      case 's':
        return {Action::kSwitch, 0};
      case 'n':
        return {Action::kNmi, 0};
      case 'h':
      case '?':
        return {Action::kHelp, 0};
      default:
        return {Action::kNone, 0};
    }
  }
  if (byte == kEscapeChar) {
    got_escape_ = true;
    return {Action::kNone, 0};
  }
  return {Action::kForward, byte};
}

std::string_view EscapeDecoder::help_text() {
  return "\r\n"
         "C-a h    print this help\r\n"
         "C-a x    exit vmbt\r\n"
         "C-a s    move the guest to the other engine (bt <-> kvm; run with --switchable)\r\n"
         "C-a n    raise an NMI (the platform's NMI line, LINT1)\r\n"
         "C-a C-a  sends C-a to the guest\r\n";
}

namespace {

// Process-wide terminal state, readable from signal handlers.
struct termios g_saved_termios;
int g_tty_fd = -1;
volatile sig_atomic_t g_termios_saved = 0;
bool g_atexit_registered = false;

constexpr int kFatalSignals[] = {SIGSEGV, SIGABRT, SIGBUS, SIGHUP, SIGQUIT};
constexpr size_t kNumFatal = sizeof(kFatalSignals) / sizeof(kFatalSignals[0]);
struct sigaction g_old_actions[kNumFatal];
bool g_installed[kNumFatal] = {};

void fatal_signal_handler(int sig) {
  const int saved_errno = errno;
  TerminalConsole::restore_terminal();
  // Re-raise with the default action: delivered when the handler returns (the signal is blocked
  // while it runs); a fault re-executes and terminates the same way.
  signal(sig, SIG_DFL);
  raise(sig);
  errno = saved_errno;
}

void atexit_restore() {
  TerminalConsole::restore_terminal();
}

void write_all(int fd, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    const ssize_t n = ::write(fd, p, len);
    if (n > 0) {
      p += n;
      len -= static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd pfd{fd, POLLOUT, 0};
      ::poll(&pfd, 1, -1);  // someone else made the descriptor non-blocking
    } else {
      return;  // closed or broken output: drop the byte, as a serial line would
    }
  }
}

}  // namespace

void TerminalConsole::restore_terminal() {
  if (g_termios_saved) tcsetattr(g_tty_fd, TCSANOW, &g_saved_termios);
}

TerminalConsole::TerminalConsole(int in_fd, int out_fd) : in_fd_(in_fd), out_fd_(out_fd) {
  struct termios tty;
  if (isatty(in_fd_) && tcgetattr(in_fd_, &tty) == 0) {
    g_saved_termios = tty;
    g_tty_fd = in_fd_;
    g_termios_saved = 1;
    // As QEMU's stdio backend: raw input, output post-processing on, no signal keys.
    tty.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    tty.c_oflag |= OPOST;
    tty.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN | ISIG);
    tty.c_cflag &= ~(CSIZE | PARENB);
    tty.c_cflag |= CS8;
    tty.c_cc[VMIN] = 1;
    tty.c_cc[VTIME] = 0;
    if (tcsetattr(in_fd_, TCSANOW, &tty) == 0) {
      tty_ = true;
      if (!g_atexit_registered) {
        g_atexit_registered = true;
        std::atexit(atexit_restore);
      }
      for (size_t i = 0; i < kNumFatal; ++i) {
        struct sigaction current;
        if (sigaction(kFatalSignals[i], nullptr, &current) != 0) continue;
        if (current.sa_handler != SIG_DFL || (current.sa_flags & SA_SIGINFO)) continue;
        struct sigaction action;
        std::memset(&action, 0, sizeof(action));
        action.sa_handler = fatal_signal_handler;
        sigemptyset(&action.sa_mask);
        if (sigaction(kFatalSignals[i], &action, &g_old_actions[i]) == 0) g_installed[i] = true;
      }
    } else {
      g_termios_saved = 0;
    }
  }
}

TerminalConsole::~TerminalConsole() {
  if (!tty_) return;
  for (size_t i = 0; i < kNumFatal; ++i) {
    if (g_installed[i]) {
      sigaction(kFatalSignals[i], &g_old_actions[i], nullptr);
      g_installed[i] = false;
    }
  }
  restore_terminal();
  g_termios_saved = 0;
}

void TerminalConsole::write(uint8_t byte) {
  write_all(out_fd_, &byte, 1);
}

size_t TerminalConsole::read(uint8_t* buf, size_t max) {
  if (eof_ || max == 0 || quit_requested()) return 0;
  pollfd pfd{in_fd_, POLLIN, 0};
  int ready;
  do {
    ready = ::poll(&pfd, 1, 0);
  } while (ready < 0 && errno == EINTR);
  if (ready <= 0) return 0;
  if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
    if (pfd.revents & POLLNVAL) eof_ = true;
    return 0;
  }
  uint8_t raw[256];
  ssize_t n;
  do {
    n = ::read(in_fd_, raw, max < sizeof(raw) ? max : sizeof(raw));
  } while (n < 0 && errno == EINTR);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
  if (n <= 0) {
    eof_ = true;  // end of file, hang-up or error: stop reading
    return 0;
  }
  if (!tty_) {
    std::memcpy(buf, raw, static_cast<size_t>(n));
    return static_cast<size_t>(n);
  }
  size_t out = 0;
  for (ssize_t i = 0; i < n; ++i) {
    const EscapeDecoder::Result r = escapes_.feed(raw[i]);
    switch (r.action) {
      case EscapeDecoder::Action::kForward:
        buf[out++] = r.byte;
        break;
      case EscapeDecoder::Action::kHelp: {
        const std::string_view help = EscapeDecoder::help_text();
        write_all(2, help.data(), help.size());
        break;
      }
      case EscapeDecoder::Action::kQuit:
        quit_.store(true, std::memory_order_relaxed);
        return out;  // the rest of the input is not for the guest
      case EscapeDecoder::Action::kSwitch:
        switch_.store(true, std::memory_order_relaxed);
        break;
      case EscapeDecoder::Action::kNmi:
        nmi_.store(true, std::memory_order_relaxed);
        break;
      case EscapeDecoder::Action::kNone:
        break;
    }
  }
  return out;
}

}  // namespace vmbt
