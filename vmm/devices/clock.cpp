// Host time for the device models (declared in vmm/machine/irq.h).
#include <time.h>

#include <cstdint>

#include "vmm/machine/irq.h"

namespace vmbt {

uint64_t host_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

}  // namespace vmbt
