// Host floors for `vmbt bench micro`: what this host charges for the operations a monitor built
// on host signals and host page mappings cannot avoid, measured natively in the same run.
#pragma once

#include <string>

namespace vmbt {

/// Cycles (host TSC) per operation of host floor `name`, the median of `runs` runs:
///   host_sigsegv   a store to a PROT_NONE page whose SIGSEGV handler makes it writable with
///                  mprotect, and the mprotect that takes the access away again (round trip)
///   host_mprotect  one mprotect of one page (alternating read-only and read/write)
///   host_syscall   one trivial system call (getppid through syscall(2))
///   host_map_page  a memfd page mapped over a reserved (PROT_NONE) page with its page-table
///                  entry made at once (MAP_FIXED | MAP_POPULATE), one store to it, and the
///                  reservation mapped back over it: what a guest page that comes and goes costs
///                  the shadow MMU's windows (LinearWindow::map_fd_page, unmap_pages)
/// Throws vmbt::Error for an unknown name or when the host refuses the mapping.
double measure_host_floor(const std::string& name, unsigned runs);

}  // namespace vmbt
