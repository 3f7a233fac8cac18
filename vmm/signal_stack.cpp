#include "vmm/signal_stack.h"

#include <signal.h>

#include <cstdlib>

namespace vmbt {

void ensure_signal_alt_stack() {
  thread_local bool done = false;
  if (done) return;
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) {
    done = true;
    return;
  }
  constexpr size_t kBytes = 256 * 1024;
  stack_t st{};
  st.ss_sp = std::malloc(kBytes);  // lives as long as the thread
  st.ss_size = kBytes;
  if (st.ss_sp && sigaltstack(&st, nullptr) == 0) done = true;
}

}  // namespace vmbt
