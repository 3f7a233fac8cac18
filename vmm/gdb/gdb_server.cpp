#include "vmm/gdb/gdb_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "vmm/error.h"
#include "vmm/machine/irq.h"

namespace vmbt::gdb {

/// The stopped guest as the stub sees it: the engine's registers and its debug memory access.
class GdbServer::EngineTarget final : public DebugTarget {
 public:
  EngineTarget(Engine& engine, Stats& stats, const MonitorCommands& more)
      : engine_(engine), stats_(stats), more_(more) {}
  VcpuState registers() override { return engine_.state(); }
  void set_registers(const VcpuState& state) override { engine_.set_state(state); }
  bool access_memory(uint32_t linear, uint8_t* data, size_t size, bool write) override {
    return engine_.debug_access(linear, data, size, write);
  }
  std::string monitor(std::string_view command) override {
    while (!command.empty() && command.back() == ' ') command.remove_suffix(1);
    if (more_ && command != "help" && !command.empty()) {
      if (std::optional<std::string> out = more_(command)) return *out;
    }
    if (command == "stats") {
      Stats now = stats_;
      engine_.collect_stats(now);
      return now.to_text();
    }
    if (command == "help" || command.empty()) {
      std::string help =
          "vmbt monitor commands:\n  stats   the counters --stats prints at the end of a run\n";
      if (more_) help += more_("help").value_or("");
      return help;
    }
    return fmt::format("unknown monitor command '{}' (try 'monitor help')\n", command);
  }

 private:
  Engine& engine_;
  Stats& stats_;
  const MonitorCommands& more_;
};

namespace {

/// "tcp:HOST:PORT", "tcp::PORT" or "PORT" -> host (default 127.0.0.1) and port.
void parse_spec(std::string_view spec, std::string* host, uint16_t* port) {
  std::string_view rest = spec;
  if (rest.substr(0, 4) == "tcp:") rest.remove_prefix(4);
  std::string_view host_part;
  const size_t colon = rest.rfind(':');
  if (colon != std::string_view::npos) {
    host_part = rest.substr(0, colon);
    rest = rest.substr(colon + 1);
  }
  unsigned long value = 0;
  bool ok = !rest.empty() && rest.size() <= 5;
  for (char c : rest) {
    ok = ok && c >= '0' && c <= '9';
    if (ok) value = value * 10 + static_cast<unsigned long>(c - '0');
  }
  if (!ok || value > 65535) {
    throw Error(
        fmt::format("--gdb '{}': expected tcp::PORT, tcp:HOST:PORT or PORT (as QEMU's "
                    "-gdb), e.g. tcp::1234",
                    spec));
  }
  *host = host_part.empty() ? "127.0.0.1" : std::string(host_part);
  if (*host == "localhost") *host = "127.0.0.1";
  *port = static_cast<uint16_t>(value);
}

}  // namespace

GdbServer::GdbServer(std::string_view spec) {
  std::string host;
  parse_spec(spec, &host, &port_);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port_);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    throw Error(fmt::format("--gdb '{}': '{}' is not an IPv4 address", spec, host));
  }
  listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listener_ < 0) throw Error(fmt::format("--gdb: socket: {}", std::strerror(errno)));
  const int one = 1;
  setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listener_, 1) != 0) {
    const int err = errno;
    close(listener_);
    throw Error(fmt::format("--gdb: cannot listen on {}:{}: {}{}", host, port_, std::strerror(err),
                            err == EADDRINUSE ? " (another program, or another vmbt, has it: "
                                                "pick another port)"
                                              : ""));
  }
  socklen_t len = sizeof addr;
  getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  address_ = fmt::format("{}:{}", host, port_);
}

GdbServer::~GdbServer() {
  if (client_ >= 0) close(client_);
  if (listener_ >= 0) close(listener_);
}

void GdbServer::attach(Engine& engine, Stats& stats) {
  engine_ = &engine;
  stats_ = &stats;
  target_ = std::make_unique<EngineTarget>(engine, stats, monitor_commands_);
}

void GdbServer::accept_client() {
  const int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return;
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  client_ = fd;
  stub_ = std::make_unique<GdbStub>(*target_);
  decoder_ = PacketDecoder();
  events_.clear();
  last_sent_.clear();
  interrupt_ = awaiting_stop_ = false;
}

void GdbServer::drop_client() {
  if (client_ >= 0) close(client_);
  client_ = -1;
  stub_.reset();
  if (engine_) engine_->set_debug({});  // no breakpoints, no stepping: the guest runs on
}

bool GdbServer::wait_for_connection(const std::function<bool()>& abort) {
  while (client_ < 0) {
    pollfd p{listener_, POLLIN, 0};
    if (poll(&p, 1, 100) > 0) accept_client();
    if (client_ < 0 && abort && abort()) return false;
  }
  return true;
}

bool GdbServer::receive(int timeout_ms) {
  pollfd p{client_, POLLIN, 0};
  const int ready = poll(&p, 1, timeout_ms);
  if (ready <= 0) return true;  // nothing yet (or a signal cut the wait short)
  uint8_t buf[4096];
  const ssize_t n = recv(client_, buf, sizeof buf, 0);
  if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return false;
  if (n > 0) decoder_.feed(buf, static_cast<size_t>(n), events_);
  return true;
}

void GdbServer::send_raw(std::string_view bytes) {
  while (!bytes.empty() && client_ >= 0) {
    const ssize_t n = send(client_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the connection is gone: the next receive() sees it
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void GdbServer::send_packet(std::string_view payload) {
  last_sent_ = frame_packet(payload);
  send_raw(last_sent_);
}

std::optional<StopSignal> GdbServer::stop_requested() {
  const uint64_t now = host_now_ns();
  if (now < next_poll_ns_) return std::nullopt;
  next_poll_ns_ = now + 1'000'000;
  if (client_ < 0) {
    accept_client();  // a debugger that connects finds the guest stopped
    return client_ >= 0 ? std::optional(StopSignal::kTrap) : std::nullopt;
  }
  if (!receive(0)) {
    drop_client();
    return std::nullopt;
  }
  for (const InputEvent& e : events_) {
    if (e.kind == InputEvent::Kind::kInterrupt) interrupt_ = true;
  }
  events_.clear();  // GDB sends nothing else while the guest runs (all-stop mode)
  if (!interrupt_) return std::nullopt;
  interrupt_ = false;
  return StopSignal::kInt;
}

Resume GdbServer::serve_stop(StopSignal signal, const std::function<bool()>& abort,
                             std::optional<WatchStop> watch) {
  if (client_ < 0) return Resume::kDetach;
  const std::string stop = stub_->stop_reply(signal, watch);
  if (awaiting_stop_) send_packet(stop);
  awaiting_stop_ = false;
  for (;;) {
    for (size_t i = 0; i < events_.size(); ++i) {
      const InputEvent e = std::move(events_[i]);
      switch (e.kind) {
        case InputEvent::Kind::kAck:
        case InputEvent::Kind::kInterrupt:  // already stopped
          continue;
        case InputEvent::Kind::kNack:
          send_raw(last_sent_);
          continue;
        case InputEvent::Kind::kBadChecksum:
        case InputEvent::Kind::kTooLong:
          if (!stub_->no_ack_mode()) send_raw("-");
          continue;
        case InputEvent::Kind::kPacket:
          break;
      }
      if (!stub_->no_ack_mode()) send_raw("+");
      std::string reply;
      const Resume r = stub_->handle(e.payload, &reply);
      if (r == Resume::kNone || r == Resume::kDetach) send_packet(reply);
      if (r == Resume::kNone) continue;
      events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      if (r == Resume::kDetach) {
        drop_client();
        return r;
      }
      if (r == Resume::kKill) return r;
      DebugSettings settings;
      settings.single_step = r == Resume::kStep;
      settings.breakpoints = stub_->breakpoints();
      settings.watchpoints = stub_->watchpoints();
      const std::string why = engine_->set_debug(settings);
      if (!why.empty() && (settings.single_step || !settings.breakpoints.empty() ||
                           !settings.watchpoints.empty())) {
        // Tell the user in GDB's console, then report a stop where the guest is.
        const std::string text = fmt::format("vmbt: {}\n", why);
        std::string output = "O";  // console output (§E.3)
        output += to_hex(reinterpret_cast<const uint8_t*>(text.data()), text.size());
        send_packet(output);
        send_packet(stub_->stop_reply(StopSignal::kTrap));
        i = static_cast<size_t>(-1);  // events_ were trimmed: start over
        continue;
      }
      awaiting_stop_ = true;
      return r;
    }
    events_.clear();
    if (!receive(100)) {
      drop_client();
      return Resume::kDetach;
    }
    if (abort && abort()) return Resume::kKill;
  }
}

void GdbServer::guest_exited(int status) {
  if (client_ < 0) return;
  send_packet(fmt::format("W{:02x}", status & 0xff));
  drop_client();
}

}  // namespace vmbt::gdb
