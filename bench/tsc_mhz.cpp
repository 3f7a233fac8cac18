// bench/tsc_mhz: prints the host's TSC frequency in MHz, measured by counting TSC ticks over
// 200 ms of CLOCK_MONOTONIC (the guests' RDTSC counts at this rate under both engines).
#include <x86intrin.h>

#include <cstdio>
#include <ctime>

namespace {

double now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main() {
  double t0 = now();
  unsigned long long c0 = __rdtsc();
  while (now() - t0 < 0.2) {
  }
  double t1 = now();
  unsigned long long c1 = __rdtsc();
  std::printf("%.1f\n", static_cast<double>(c1 - c0) / (t1 - t0) / 1e6);
  return 0;
}
