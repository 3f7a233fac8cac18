#include "cli/host_floors.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <vector>

#include "vmm/error.h"

namespace vmbt {

namespace {

constexpr unsigned kOperations = 2000;

volatile sig_atomic_t g_faults = 0;
void* g_page = nullptr;

void on_segv(int, siginfo_t* info, void*) {
  // The floor a hidden fault pays: the signal, the handler's mprotect, the return.
  if (info->si_addr != g_page) {
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  mprotect(g_page, 4096, PROT_READ | PROT_WRITE);
  g_faults = g_faults + 1;
}

double run_once(const std::string& name, uint8_t* page) {
  const uint64_t start = __rdtsc();
  if (name == "host_syscall") {
    for (unsigned i = 0; i < kOperations; ++i) syscall(SYS_getppid);
  } else if (name == "host_mprotect") {
    for (unsigned i = 0; i < kOperations; ++i) {
      mprotect(page, 4096, (i & 1) ? PROT_READ | PROT_WRITE : PROT_READ);
    }
  } else {
    for (unsigned i = 0; i < kOperations; ++i) {
      mprotect(page, 4096, PROT_NONE);
      *static_cast<volatile uint8_t*>(page) = static_cast<uint8_t>(i);
    }
  }
  return static_cast<double>(__rdtsc() - start) / kOperations;
}

}  // namespace

double measure_host_floor(const std::string& name, unsigned runs) {
  if (name != "host_sigsegv" && name != "host_mprotect" && name != "host_syscall") {
    throw Error("no host floor is called '" + name + "'");
  }
  void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw Error("host floors: cannot map a page");
  auto* page = static_cast<uint8_t*>(p);
  struct sigaction sa {
  }, old{};
  sa.sa_sigaction = on_segv;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  g_page = page;
  sigaction(SIGSEGV, &sa, &old);
  std::vector<double> cycles;
  run_once(name, page);  // warm-up
  for (unsigned r = 0; r < std::max(runs, 1u); ++r) cycles.push_back(run_once(name, page));
  sigaction(SIGSEGV, &old, nullptr);
  g_page = nullptr;
  munmap(p, 4096);
  std::sort(cycles.begin(), cycles.end());
  return cycles[cycles.size() / 2];
}

}  // namespace vmbt
