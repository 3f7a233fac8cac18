#include "bt/host_fault_handler.h"

#include <signal.h>

#include <cstring>

#include "bt/bt_engine.h"
#include "vmm/signal_stack.h"

namespace vmbt::bt {

namespace {

constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP};
struct sigaction g_previous[sizeof kSignals / sizeof kSignals[0]];
thread_local BtEngine* t_engine = nullptr;

thread_local bool t_installed = false;  ///< this thread's engine already checked the handlers

void chain(int sig, siginfo_t* info, void* uc) {
  for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
    if (kSignals[i] != sig) continue;
    const struct sigaction& old = g_previous[i];
    if ((old.sa_flags & SA_SIGINFO) && old.sa_sigaction) {
      old.sa_sigaction(sig, info, uc);
      return;
    }
    if (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN && old.sa_handler) {
      old.sa_handler(sig);
      return;
    }
  }
  // Default action: re-raised when the faulting instruction runs again.
  signal(sig, SIG_DFL);
}

void on_host_fault(int sig, siginfo_t* info, void* uc) {
  clear_alignment_check();
  BtEngine* engine = t_engine;
  if (engine && engine->handle_host_fault(sig, info, uc)) return;
  chain(sig, info, uc);
}

}  // namespace

void attach_host_fault_handler(BtEngine* engine) {
  // Called before every entry into translated code: cheap once done for this engine.
  if (t_engine == engine && t_installed) return;
  // (Re)installed whenever someone else took a signal over since: the console restores the
  // handlers it found when it goes away.
  for (size_t i = 0; i < sizeof kSignals / sizeof kSignals[0]; ++i) {
    struct sigaction current {};
    sigaction(kSignals[i], nullptr, &current);
    if ((current.sa_flags & SA_SIGINFO) && current.sa_sigaction == on_host_fault) continue;
    struct sigaction sa {};
    sa.sa_sigaction = on_host_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(kSignals[i], &sa, &g_previous[i]);
  }
  ensure_signal_alt_stack();
  t_engine = engine;
  t_installed = true;
}

void detach_host_fault_handler() {
  t_engine = nullptr;
  t_installed = false;
}

}  // namespace vmbt::bt
