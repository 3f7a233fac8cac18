// User-mode networking: a NetBackend over libslirp (QEMU's `-net user`).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "vmm/devices/net_backend.h"
#include "vmm/guest_config.h"

struct pollfd;

namespace vmbt {

/// libslirp's TCP/IP stack between the guest's frames and the host's sockets, with QEMU's user
/// network: the guest's network 10.0.2.0/24, the host (gateway) 10.0.2.2, DHCP leases from
/// 10.0.2.15, a DNS forwarder at 10.0.2.3 (to the host's resolver from /etc/resolv.conf), IPv4
/// only. The guest reaches the host's loopback as 10.0.2.2 (as in QEMU).
///
/// Single-threaded: poll() serves ready sockets without waiting, at most every kPollIntervalNs
/// while the guest runs (a poll(2) per engine exit would cost more than the traffic it serves);
/// wait_until() sleeps in ppoll(2) on slirp's sockets, so a packet wakes a guest halted in HLT at
/// once. libslirp's timers (timer_new/timer_mod) run from poll() when due.
class SlirpBackend final : public NetBackend {
 public:
  static constexpr uint64_t kPollIntervalNs = 250'000;

  /// Starts the stack and listens for `forwards`; throws vmbt::Error when libslirp cannot start
  /// or a host forward cannot listen (e.g. the port is taken). `now_ns`: the clock (ns).
  explicit SlirpBackend(const std::vector<HostForward>& forwards,
                        std::function<uint64_t()> now_ns = nullptr);
  ~SlirpBackend() override;
  SlirpBackend(const SlirpBackend&) = delete;
  SlirpBackend& operator=(const SlirpBackend&) = delete;

  void send(const uint8_t* frame, size_t len) override;
  void poll(uint64_t now_ns) override;
  uint64_t next_deadline_ns() const override;
  void wait_until(uint64_t deadline_ns) override;

  /// Frames the guest sent that libslirp rejected as malformed (its guest_error callback).
  uint64_t guest_errors() const { return guest_errors_; }

 private:
  struct State;
  /// One round: slirp_pollfds_fill, ppoll until `deadline_ns` (0: do not wait), then
  /// slirp_pollfds_poll and the timers that are due.
  void serve(uint64_t deadline_ns);

  std::unique_ptr<State> state_;
  std::function<uint64_t()> now_ns_;
  uint64_t next_poll_ns_ = 0;
  uint64_t guest_errors_ = 0;
};

}  // namespace vmbt
