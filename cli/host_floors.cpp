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

/// A page of a memfd mapped into a reserved range and taken away again, as the shadow MMU maps a
/// guest page into a window (LinearWindow::map_fd_page) and drops it (unmap_pages).
struct MappedPageRound {
  int fd = -1;
  uint8_t* reserved = nullptr;
  MappedPageRound() {
    fd = memfd_create("vmbt-host-floor", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, 4096) != 0) throw Error("host floors: cannot create a memfd");
    void* p = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error("host floors: cannot reserve a page");
    reserved = static_cast<uint8_t*>(p);
  }
  ~MappedPageRound() {
    munmap(reserved, 4096);
    close(fd);
  }
  void run(unsigned i) const {
    mmap(reserved, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED | MAP_POPULATE, fd, 0);
    *static_cast<volatile uint8_t*>(static_cast<void*>(reserved)) = static_cast<uint8_t>(i);
    mmap(reserved, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
  }
};

double run_once(const std::string& name, uint8_t* page, const MappedPageRound& mapped) {
  const uint64_t start = __rdtsc();
  if (name == "host_syscall") {
    for (unsigned i = 0; i < kOperations; ++i) syscall(SYS_getppid);
  } else if (name == "host_mprotect") {
    for (unsigned i = 0; i < kOperations; ++i) {
      mprotect(page, 4096, (i & 1) ? PROT_READ | PROT_WRITE : PROT_READ);
    }
  } else if (name == "host_map_page") {
    for (unsigned i = 0; i < kOperations; ++i) mapped.run(i);
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
  if (name != "host_sigsegv" && name != "host_mprotect" && name != "host_syscall" &&
      name != "host_map_page") {
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
  const MappedPageRound mapped;
  run_once(name, page, mapped);  // warm-up
  for (unsigned r = 0; r < std::max(runs, 1u); ++r) {
    cycles.push_back(run_once(name, page, mapped));
  }
  sigaction(SIGSEGV, &old, nullptr);
  g_page = nullptr;
  munmap(p, 4096);
  std::sort(cycles.begin(), cycles.end());
  return cycles[cycles.size() / 2];
}

}  // namespace vmbt
