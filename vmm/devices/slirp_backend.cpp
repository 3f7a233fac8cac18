#include "vmm/devices/slirp_backend.h"

#include <arpa/inet.h>
#include <poll.h>
#include <slirp/libslirp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>

#include "vmm/error.h"
#include "vmm/machine/irq.h"

namespace vmbt {

namespace {
in_addr ipv4(uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  return a;
}
std::string dotted(uint32_t host_order) {
  return fmt::format("{}.{}.{}.{}", host_order >> 24, (host_order >> 16) & 0xff,
                     (host_order >> 8) & 0xff, host_order & 0xff);
}
/// The first guest errors are reported; the rest only counted (a guest can send many).
constexpr uint64_t kReportedGuestErrors = 5;
}  // namespace

/// libslirp's instance, its callbacks (static: `opaque` is the backend) and what they keep.
struct SlirpBackend::State {
  struct Timer {
    SlirpTimerCb cb = nullptr;
    void* opaque = nullptr;
    uint64_t expire_ns = UINT64_MAX;  ///< UINT64_MAX: not armed
  };
  SlirpBackend* owner = nullptr;
  Slirp* slirp = nullptr;
  SlirpCb callbacks{};
  std::vector<pollfd> fds;  ///< this round's descriptors (slirp_pollfds_fill)
  std::vector<std::unique_ptr<Timer>> timers;

  static State& of(void* opaque) { return *static_cast<SlirpBackend*>(opaque)->state_; }

  static ssize_t send_packet(const void* buf, size_t len, void* opaque) {
    static_cast<SlirpBackend*>(opaque)->deliver(static_cast<const uint8_t*>(buf), len);
    return static_cast<ssize_t>(len);
  }
  static void guest_error(const char* msg, void* opaque) {
    auto* self = static_cast<SlirpBackend*>(opaque);
    if (++self->guest_errors_ <= kReportedGuestErrors) {
      std::fprintf(stderr, "vmbt: net0: libslirp: the guest sent a bad packet: %s\n", msg);
    }
  }
  static int64_t clock_get_ns(void* opaque) {
    return static_cast<int64_t>(static_cast<SlirpBackend*>(opaque)->now_ns_());
  }
  static void* timer_new(SlirpTimerCb cb, void* cb_opaque, void* opaque) {
    auto t = std::make_unique<Timer>();
    t->cb = cb;
    t->opaque = cb_opaque;
    Timer* raw = t.get();
    of(opaque).timers.push_back(std::move(t));
    return raw;
  }
  static void timer_free(void* timer, void* opaque) {
    auto& timers = of(opaque).timers;
    std::erase_if(timers, [timer](const std::unique_ptr<Timer>& t) { return t.get() == timer; });
  }
  /// `expire_ms`: milliseconds on clock_get_ns's clock.
  static void timer_mod(void* timer, int64_t expire_ms, void* /*opaque*/) {
    static_cast<Timer*>(timer)->expire_ns =
        expire_ms < 0 ? 0 : static_cast<uint64_t>(expire_ms) * 1'000'000;
  }
  // Descriptors are collected afresh each round (slirp_pollfds_fill): nothing to register.
  static void register_poll_fd(int /*fd*/, void* /*opaque*/) {}
  static void unregister_poll_fd(int /*fd*/, void* /*opaque*/) {}
  static void notify(void* /*opaque*/) {}  // one thread: the next round sees it

  static int add_poll(int fd, int events, void* opaque) {
    short ev = 0;
    if (events & SLIRP_POLL_IN) ev |= POLLIN;
    if (events & SLIRP_POLL_OUT) ev |= POLLOUT;
    if (events & SLIRP_POLL_PRI) ev |= POLLPRI;
    auto& fds = static_cast<State*>(opaque)->fds;
    fds.push_back(pollfd{fd, ev, 0});
    return static_cast<int>(fds.size() - 1);
  }
  static int get_revents(int index, void* opaque) {
    auto& fds = static_cast<State*>(opaque)->fds;
    if (index < 0 || static_cast<size_t>(index) >= fds.size()) return 0;
    const short r = fds[static_cast<size_t>(index)].revents;
    int ev = 0;
    if (r & POLLIN) ev |= SLIRP_POLL_IN;
    if (r & POLLOUT) ev |= SLIRP_POLL_OUT;
    if (r & POLLPRI) ev |= SLIRP_POLL_PRI;
    if (r & POLLERR) ev |= SLIRP_POLL_ERR;
    if (r & POLLHUP) ev |= SLIRP_POLL_HUP;
    return ev;
  }
};

SlirpBackend::SlirpBackend(const std::vector<HostForward>& forwards,
                           std::function<uint64_t()> now_ns)
    : state_(std::make_unique<State>()), now_ns_(now_ns ? std::move(now_ns) : host_now_ns) {
  State& s = *state_;
  s.owner = this;
  s.callbacks.send_packet = State::send_packet;
  s.callbacks.guest_error = State::guest_error;
  s.callbacks.clock_get_ns = State::clock_get_ns;
  s.callbacks.timer_new = State::timer_new;
  s.callbacks.timer_free = State::timer_free;
  s.callbacks.timer_mod = State::timer_mod;
  s.callbacks.register_poll_fd = State::register_poll_fd;
  s.callbacks.unregister_poll_fd = State::unregister_poll_fd;
  s.callbacks.notify = State::notify;

  // QEMU's user network (qemu-options.hx, -netdev user: net, host, dhcpstart, dns).
  SlirpConfig config{};
  config.version = 3;
  config.restricted = 0;
  config.in_enabled = true;
  config.vnetwork = ipv4(0x0a000200);     // 10.0.2.0
  config.vnetmask = ipv4(0xffffff00);     // /24
  config.vhost = ipv4(0x0a000202);        // 10.0.2.2
  config.vdhcp_start = ipv4(0x0a00020f);  // 10.0.2.15
  config.vnameserver = ipv4(0x0a000203);  // 10.0.2.3
  config.in6_enabled = false;
  config.disable_host_loopback = false;  // 10.0.2.2 is the host's loopback, as in QEMU
  config.enable_emu = false;             // libslirp: "this code isn't safe"
  s.slirp = slirp_new(&config, &s.callbacks, this);
  if (!s.slirp) throw Error("--net user: libslirp could not start its network stack");
  for (const HostForward& f : forwards) {
    if (slirp_add_hostfwd(s.slirp, f.udp ? 1 : 0, ipv4(f.host_addr), f.host_port,
                          ipv4(f.guest_addr), f.guest_port) < 0) {
      const int err = errno;
      slirp_cleanup(s.slirp);
      s.slirp = nullptr;
      throw Error(
          fmt::format("--net user,hostfwd={}:{}:{}-{}:{}: cannot listen on the host's {}:{} ({})",
                      f.udp ? "udp" : "tcp", dotted(f.host_addr), f.host_port, dotted(f.guest_addr),
                      f.guest_port, dotted(f.host_addr), f.host_port,
                      err ? std::strerror(err) : "is the port taken?"));
    }
  }
}

SlirpBackend::~SlirpBackend() {
  if (state_->slirp) slirp_cleanup(state_->slirp);
}

void SlirpBackend::send(const uint8_t* frame, size_t len) {
  // (Bounded by the device: at most VirtioNet::kMaxFrame bytes.)
  slirp_input(state_->slirp, frame, static_cast<int>(len));
}

void SlirpBackend::poll(uint64_t now_ns) {
  if (now_ns < next_poll_ns_ && now_ns < next_deadline_ns()) return;
  serve(0);
}

uint64_t SlirpBackend::next_deadline_ns() const {
  uint64_t t = UINT64_MAX;
  for (const auto& timer : state_->timers) t = std::min(t, timer->expire_ns);
  return t;
}

void SlirpBackend::wait_until(uint64_t deadline_ns) {
  serve(deadline_ns);
}

void SlirpBackend::serve(uint64_t deadline_ns) {
  State& s = *state_;
  s.fds.clear();
  uint32_t timeout_ms = UINT32_MAX;  // slirp lowers it to its TCP timers' next tick
  slirp_pollfds_fill(s.slirp, &timeout_ms, State::add_poll, &s);
  const uint64_t now = now_ns_();
  uint64_t until = std::min(deadline_ns, next_deadline_ns());
  if (timeout_ms != UINT32_MAX) until = std::min(until, now + uint64_t{timeout_ms} * 1'000'000);
  const uint64_t wait_ns = until > now ? until - now : 0;
  timespec ts{static_cast<time_t>(wait_ns / 1'000'000'000),
              static_cast<long>(wait_ns % 1'000'000'000)};
  // A kick signal may cut the wait short (EINTR): that is fine, the run loop comes back.
  const int n = ppoll(s.fds.data(), s.fds.size(), &ts, nullptr);
  if (n < 0) {
    for (pollfd& p : s.fds) p.revents = 0;
  }
  slirp_pollfds_poll(s.slirp, n < 0 ? 1 : 0, State::get_revents, &s);
  const uint64_t after = now_ns_();
  // Timers that are due (a callback may arm or free timers: index, and check again).
  for (size_t i = 0; i < s.timers.size(); ++i) {
    State::Timer& t = *s.timers[i];
    if (t.expire_ns <= after) {
      t.expire_ns = UINT64_MAX;
      t.cb(t.opaque);
    }
  }
  next_poll_ns_ = after + kPollIntervalNs;
}

}  // namespace vmbt
