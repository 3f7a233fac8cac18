// Host time for the device models (declared in vmm/machine/irq.h).
#include <time.h>
#include <x86intrin.h>

#include <cstdint>

#include "vmm/machine/irq.h"

namespace vmbt {

uint64_t host_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

double host_tsc_hz() {
  static const double hz = [] {
    const uint64_t t0 = host_now_ns();
    const uint64_t c0 = __rdtsc();
    uint64_t t1;
    do {
      t1 = host_now_ns();
    } while (t1 - t0 < 10'000'000);
    const uint64_t c1 = __rdtsc();
    return static_cast<double>(c1 - c0) * 1e9 / static_cast<double>(t1 - t0);
  }();
  return hz;
}

}  // namespace vmbt
