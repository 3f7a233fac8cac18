#include "vmm/switching_engine.h"

#include <fmt/format.h>

#include "vmm/machine/irq.h"

namespace vmbt {

SwitchingEngine::SwitchingEngine(std::unique_ptr<Engine> first, std::unique_ptr<Engine> second,
                                 std::function<void(const std::string&)> on_event)
    : on_event_(std::move(on_event)) {
  engines_[0] = std::move(first);
  engines_[1] = std::move(second);
  // One CPU model on both sides: kvm cannot offer TSC-deadline mode (KVM keeps the MSR).
  engines_[0]->withhold_tsc_deadline();
  engines_[1]->withhold_tsc_deadline();
}

void SwitchingEngine::set_port_io(std::function<bool(IoAccess&)> port_io) {
  engines_[0]->set_port_io(port_io);
  engines_[1]->set_port_io(std::move(port_io));
}

void SwitchingEngine::set_platform_msrs(MsrModel* msrs) {
  engines_[0]->set_platform_msrs(msrs);
  engines_[1]->set_platform_msrs(msrs);
}

void SwitchingEngine::schedule(uint64_t first_ns, uint64_t period_ns) {
  scheduled_ = true;
  next_switch_ns_ = first_ns;
  period_ns_ = period_ns;
}

void SwitchingEngine::switch_after_instructions(uint64_t count) {
  steps_left_ = count;
  if (count == 0) {
    request_switch();
    return;
  }
  DebugSettings step = debug_;
  step.single_step = true;
  current()->set_debug(step);
}

std::string SwitchingEngine::set_debug(const DebugSettings& settings) {
  debug_ = settings;
  return current()->set_debug(settings);
}

bool SwitchingEngine::try_switch() {
  Engine* from = current();
  if (std::string busy = from->hand_over_blocker(); !busy.empty()) return false;  // later
  Engine* to = engines_[active_.load(std::memory_order_relaxed) ^ 1].get();
  const VcpuState s = from->state();
  if (std::string why = to->cannot_run(s); !why.empty()) {
    ++refusals_;
    if (on_event_) {
      on_event_(
          fmt::format("switch from {} to {} refused at EIP {:#010x}: {}; the guest stays "
                      "on {}",
                      from->name(), to->name(), s.eip, why, from->name()));
    }
    return true;
  }
  hand_over(s);
  ++switches_;
  if (on_event_) {
    on_event_(
        fmt::format("switched from {} to {} at EIP {:#010x}", from->name(), to->name(), s.eip));
  }
  return true;
}

void SwitchingEngine::hand_over(const VcpuState& s) {
  const unsigned active = active_.load(std::memory_order_relaxed);
  Engine* from = engines_[active].get();
  Engine* to = engines_[active ^ 1].get();
  to->forget_guest_memory();
  to->set_state(s);
  to->set_tsc(s.tsc);  // the guest's TSC goes on from where it was
  if (!debug_.breakpoints.empty() || !debug_.watchpoints.empty() || debug_.single_step) {
    to->set_debug(debug_);
    from->set_debug({});
  }
  active_.store(active ^ 1, std::memory_order_relaxed);
}

bool SwitchingEngine::fall_back(const std::string& why) {
  Engine* from = current();
  Engine* to = engines_[active_.load(std::memory_order_relaxed) ^ 1].get();
  const VcpuState s = from->state();
  if (!to->cannot_run(s).empty()) return false;
  hand_over(s);
  ++fallbacks_;
  if (on_event_) {
    on_event_(fmt::format("{} cannot go on at EIP {:#010x} ({}): the guest goes on under {}",
                          from->name(), s.eip, why, to->name()));
  }
  return true;
}

Exit SwitchingEngine::run() {
  const uint64_t now = host_now_ns();
  if (started_ns_ == 0) started_ns_ = now;
  if (scheduled_ && now - started_ns_ >= next_switch_ns_) {
    requested_.store(true, std::memory_order_relaxed);
    scheduled_ = period_ns_ != 0;
    next_switch_ns_ = now - started_ns_ + period_ns_;
  }
  if (clean_boundary_ && requested_.load(std::memory_order_relaxed) && try_switch()) {
    requested_.store(false, std::memory_order_relaxed);
  }
  const unsigned active = active_.load(std::memory_order_relaxed);
  Exit e = engines_[active]->run();
  ns_[active] += host_now_ns() - now;
  ++exits_[active];
  if (steps_left_ && e.reason == ExitReason::kDebug && e.debug == DebugStop::kStep &&
      !debug_.single_step) {
    // One of the instructions counted for switch_after_instructions: not the run loop's.
    if (--steps_left_ == 0) {
      engines_[active]->set_debug(debug_);
      requested_.store(true, std::memory_order_relaxed);
    }
    clean_boundary_ = true;
    return Exit(ExitReason::kKicked);
  }
  // An I/O or MMIO exit is completed by the next run() of the same engine.
  clean_boundary_ = e.reason != ExitReason::kIo && e.reason != ExitReason::kMmio;
  if (e.reason == ExitReason::kInternalError && e.engine_limit && fall_back(e.message)) {
    return Exit(ExitReason::kKicked);  // the run loop calls run() again: the other engine runs
  }
  return e;
}

void SwitchingEngine::collect_stats(Stats& stats) {
  engines_[0]->collect_stats(stats);
  engines_[1]->collect_stats(stats);
  stats.set("switch.switches", switches_);
  stats.set("switch.refused", refusals_);
  stats.set("switch.fallbacks", fallbacks_);
  for (unsigned i = 0; i < 2; ++i) {
    const std::string name(engines_[i]->name());
    stats.set_value("switch.seconds." + name, static_cast<double>(ns_[i]) / 1e9);
    stats.set("switch.exits." + name, exits_[i]);
  }
}

}  // namespace vmbt
