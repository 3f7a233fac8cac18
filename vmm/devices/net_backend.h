// What a network device's frames go to and come from on the host (user-mode networking...).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace vmbt {

/// The host side of a guest's network interface: Ethernet frames (destination MAC first, no
/// preamble, no FCS) in both directions. Single-threaded: everything happens in the run loop's
/// thread, from Machine::poll and Machine::wait_until.
class NetBackend {
 public:
  /// Gets one frame for the guest; the bytes are valid for the call only.
  using Receiver = std::function<void(const uint8_t* frame, size_t len)>;

  virtual ~NetBackend() = default;
  /// Where frames for the guest go (the NIC's receive path); it may run inside send().
  void set_receiver(Receiver receiver) { receiver_ = std::move(receiver); }
  /// A frame the guest transmitted.
  virtual void send(const uint8_t* frame, size_t len) = 0;
  /// Serves the host side without waiting (sockets ready, timers due) up to `now_ns`.
  virtual void poll(uint64_t now_ns) = 0;
  /// The next host time at which poll() has timed work, or UINT64_MAX.
  virtual uint64_t next_deadline_ns() const { return UINT64_MAX; }
  /// Sleeps until `deadline_ns` (host_now_ns's clock) or until host traffic arrives, whichever
  /// comes first, then serves it; a signal may cut it short.
  virtual void wait_until(uint64_t deadline_ns) = 0;

 protected:
  /// Hands a frame to the receiver (dropped when there is none).
  void deliver(const uint8_t* frame, size_t len) {
    if (receiver_) receiver_(frame, len);
  }

 private:
  Receiver receiver_;
};

}  // namespace vmbt
