// One guest, two engines: runs it on bt or kvm and hands it to the other on request, at an
// instruction boundary, over the same RAM and devices (README "Switching engines").
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "vmm/engine.h"

namespace vmbt {

/// An Engine made of two. Both must run over the same GuestMemory and InterruptSource (the
/// builder makes them so). A switch takes the complete architectural state from the running
/// engine (Engine::state(), TSC included), has the other forget what it derived from guest memory
/// while it was not running (translations, shadow page tables), and hands it the state. It
/// happens only where nothing is half-done: at the start of run() after an exit that left no
/// I/O to complete (a kick), when the running engine has no event being delivered and no
/// interrupt shadow (Engine::hand_over_blocker()); otherwise the request waits. When the other
/// engine cannot run the guest as it is (Engine::cannot_run(), e.g. kvm-pvm and paging), the
/// request is refused with that reason and the guest stays where it is.
class SwitchingEngine final : public Engine {
 public:
  /// `first` runs first. `on_event` receives one line per switch or refusal (for stderr).
  SwitchingEngine(std::unique_ptr<Engine> first, std::unique_ptr<Engine> second,
                  std::function<void(const std::string&)> on_event = {});

  std::string_view name() const override { return current()->name(); }
  void set_state(const VcpuState& state) override { current()->set_state(state); }
  VcpuState state() override { return current()->state(); }
  Exit run() override;
  void kick(const void* signal_context) override { current()->kick(signal_context); }
  void set_port_io(std::function<bool(IoAccess&)> port_io) override;
  void set_platform_msrs(MsrModel* msrs) override;
  bool nmis_blocked() override { return current()->nmis_blocked(); }
  void collect_stats(Stats& stats) override;
  std::string debug_notes() override { return current()->debug_notes(); }
  bool enable_perf_map() override {
    const bool first = engines_[0]->enable_perf_map();
    return engines_[1]->enable_perf_map() || first;
  }
  std::string set_debug(const DebugSettings& settings) override;
  /// Both engines map the windows (each may take the guest); the first refusal is the answer.
  std::string set_memory_windows(const std::vector<MemoryWindow>& windows) override {
    std::string why = engines_[0]->set_memory_windows(windows);
    std::string other = engines_[1]->set_memory_windows(windows);
    return why.empty() ? other : why;
  }
  std::string set_a20(bool enabled) override {
    std::string why = engines_[0]->set_a20(enabled);
    std::string other = engines_[1]->set_a20(enabled);
    return why.empty() ? other : why;
  }
  bool debug_access(uint32_t linear, uint8_t* data, size_t size, bool write) override {
    return current()->debug_access(linear, data, size, write);
  }

  /// Asks for a switch to the other engine at the next boundary. Async-signal-safe.
  void request_switch() { requested_.store(true, std::memory_order_relaxed); }
  /// Switches on a schedule: first after `first_ns` of run time, then every `period_ns` (0: once).
  void schedule(uint64_t first_ns, uint64_t period_ns);
  /// Switches once after the guest has run `count` instructions from the start: the running
  /// engine single-steps them (Engine::set_debug), so the point is exact on bt (a REP string
  /// instruction is one; kvm steps its iterations) and interrupts wait until then.
  void switch_after_instructions(uint64_t count);
  /// Switches done and refused so far.
  uint64_t switches() const { return switches_; }
  uint64_t refusals() const { return refusals_; }

 private:
  Engine* current() const { return engines_[active_.load(std::memory_order_relaxed)].get(); }
  /// Performs a requested switch if it can be done now; false when it must wait.
  bool try_switch();
  /// Moves the guest to the other engine now (the running one cannot go on: `why`); false when
  /// the other cannot run it either.
  bool fall_back(const std::string& why);
  /// The state handover itself, from the running engine to the other.
  void hand_over(const VcpuState& s);

  std::unique_ptr<Engine> engines_[2];
  std::atomic<unsigned> active_{0};
  std::atomic<bool> requested_{false};
  std::function<void(const std::string&)> on_event_;
  DebugSettings debug_;         ///< a debugger's settings, re-applied to the engine switched to
  bool clean_boundary_ = true;  ///< the last exit left nothing for the next run() to complete
  bool scheduled_ = false;
  uint64_t steps_left_ = 0;  ///< switch_after_instructions: steps still to run (0: none)
  uint64_t next_switch_ns_ = 0, period_ns_ = 0;  ///< run time of the next scheduled switch
  uint64_t started_ns_ = 0;
  uint64_t switches_ = 0, refusals_ = 0, fallbacks_ = 0;
  uint64_t ns_[2] = {}, exits_[2] = {};
};

}  // namespace vmbt
