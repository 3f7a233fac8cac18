// Translations filled ahead of their use (docs/shadow-mmu.md, the first section): a guest PTE
// store that installs a translation (KVM's mmu_pte_write_new_pte), its pages waiting in runs for
// a first use, and a global page's neighbours filled with it.
#include <algorithm>
#include <cstring>

#include "shadow_mmu/shadow_mmu.h"
#include "shadow_mmu/shadow_space.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {

using namespace shadow_detail;  // this library's own vocabulary (shadow_space.h)

void ShadowMmu::prefetch(uint32_t pt_page, uint32_t index, uint64_t before, uint64_t pte) {
  // A guest PTE write that installs a translation (KVM's shadow MMU updates the shadow entry on
  // it, mmu_pte_write_new_pte): the page is mapped now, so the access that follows (the retried
  // access of the last true fault, a fault-around neighbour, a copied-on-write page) takes no
  // host fault. Only present, accessed entries: mapping one with A=0 must not set the guest's A
  // bit behind its back. Only new frames, except for the awaited page: a permission change to a
  // page already mapped (fork's write protection) waits for a use. The window: the awaited
  // fault's, else the user view for U=1 entries and the supervisor view for U=0 ones.
  constexpr uint64_t kPresent = 0x1, kAccessed = 0x20, kUser = 0x4, kFrame = kEntryFrame;
  if (!paging_ || (pte & (kPresent | kAccessed)) != (kPresent | kAccessed)) return;
  const bool fresh = !(before & kPresent) || (before & kFrame) != (pte & kFrame);
  const bool awaiting = awaited_.space == current_ && awaited_.generation == current_->generation;
  if (!fresh && !awaiting) return;
  auto users = pt_users_.find(pt_page);
  if (users == pt_users_.end()) return;
  // A copy: fill() traces the walk, which may add to this very list (after make_room reset the
  // space, say).
  const std::vector<Mapping> mappings = users->second;
  const auto live = std::count_if(mappings.begin(), mappings.end(), [](const Mapping& m) {
    return m.generation == m.space->generation;
  });
  for (const Mapping& m : mappings) {
    // The current space, or the only one using the table: a table private to an address space
    // that is filled before it is switched to (Linux's text_poke sets its PTE, then loads the
    // poking mm's CR3; exec builds the new stack before it runs). Kernel tables shared by every
    // space are not mapped in all of them ahead of use.
    Space& space = *m.space;
    if (m.generation != space.generation || (&space != current_ && live != 1)) continue;
    const uint32_t lin_page = (m.lin_page << dir_shift()) | index;
    const bool awaited = awaiting && &space == current_ && lin_page == awaited_.lin_page;
    if ((!awaited && !fresh) || (space.shadow[lin_page] & entry::kMapped)) continue;
    const uint32_t window =
        awaited ? awaited_.window : ((pte & kUser) ? entry::kInUser : entry::kInSup);
    WalkResult w = walk_in(space, lin_page << 12, Access{false, window == entry::kInUser, false});
    if (!w.ok || w.large || (w.pte_addr >> 12) != pt_page ||
        backing_of(w.page_base) != Backing::kRam) {
      continue;
    }
    ++stats_.prefetched;
    if (awaited) awaited_.space = nullptr;
    // The awaited page is used right after: mapped now, not deferred into a run (its use would
    // cost a trip to the monitor to map it).
    fill(space, lin_page, w, Backing::kRam, window, !awaited);
  }
}

bool ShadowMmu::defer_prefetch(Space& space, uint32_t lin_page) {
  // A kernel installs PTEs in bursts (Linux's fault-around maps up to 16 neighbouring pages of a
  // file, mostly consecutive frames): their mappings gather into one run, mapped with one host
  // call at the first use of one of them (map_pending_run), or never.
  const uint32_t e = space.shadow[lin_page];
  const uint32_t window = e & entry::kWindows;
  if (e & (entry::kUnassigned | entry::kMmio) ||
      (window != entry::kInSup && window != entry::kInUser)) {
    return false;
  }
  const uint32_t phys = e & entry::kPhysMask;
  if (access_watched(phys)) return false;  // mapped alone, then made inaccessible (apply)
  const bool writable = host_writable(e, window == entry::kInUser);
  space.shadow[lin_page] &= ~window;  // not in the window yet: its use reaches the monitor
  if (!pending_runs_.empty()) {
    PendingRun& r = pending_runs_.back();
    if (r.space == &space && r.generation == space.generation && r.window == window &&
        r.writable == writable && lin_page == r.lin_first + r.count &&
        phys == r.phys_first + r.count && r.count < kMaxPendingRun) {
      ++r.count;
      return true;
    }
  }
  pending_runs_.push_back({&space, space.generation, lin_page, phys, 1, window, writable});
  forget_oldest_pending_runs();
  return true;
}

int ShadowMmu::pending_run_index(const Space& space, uint32_t lin_page, uint32_t window) const {
  for (size_t i = 0; i < pending_runs_.size(); ++i) {
    const PendingRun& r = pending_runs_[i];
    if (r.space == &space && r.window == window && lin_page - r.lin_first < r.count) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

void ShadowMmu::map_pending_run(size_t index) {
  const PendingRun r = pending_runs_[index];
  pending_runs_.erase(pending_runs_.begin() + static_cast<std::ptrdiff_t>(index));
  Space& space = *r.space;
  if (r.generation != space.generation) return;
  make_room(space, r.lin_first);
  if (r.generation != space.generation) {  // reset to make room: its entries went with it
    space.shadow[r.lin_first] = 0;         // (but the one make_room keeps)
    return;
  }
  LinearWindow& window = r.window == entry::kInSup ? space.sup : space.user;
  try {
    window.map_fd_range(r.lin_first, r.count, 0, ram_.fd(), uint64_t{r.phys_first} << 12,
                        r.writable);
  } catch (const Error&) {
    // The host refused (vm.max_map_count): forget them; they fault in one by one.
    window.unmap_pages(r.lin_first, r.count, 0);
    std::memset(space.shadow + r.lin_first, 0, r.count * sizeof(uint32_t));
    return;
  }
  space.count_host_map(r.lin_first, r.count);
  for (uint32_t i = 0; i < r.count; ++i) space.shadow[r.lin_first + i] |= r.window;
}

template <typename Pred>
void ShadowMmu::map_pending_runs_where(Pred pred) {
  // From the start after each: mapping one may reset other spaces (make_room), which forgets
  // their runs.
  for (size_t i = 0; i < pending_runs_.size();) {
    if (pred(pending_runs_[i])) {
      map_pending_run(i);
      i = 0;
    } else {
      ++i;
    }
  }
}

void ShadowMmu::map_pending_runs(const Space& space, uint32_t first, uint32_t count) {
  map_pending_runs_where([&](const PendingRun& r) {
    return r.space == &space && first < uint64_t{r.lin_first} + r.count &&
           r.lin_first < uint64_t{first} + count;
  });
}

void ShadowMmu::map_pending_frame(uint32_t phys_page) {
  map_pending_runs_where([&](const PendingRun& r) { return phys_page - r.phys_first < r.count; });
}

void ShadowMmu::forget_oldest_pending_runs() {
  while (pending_runs_.size() > kMaxPendingRuns) {
    // The oldest has waited long enough to be unlikely to be used: forgotten, its pages walk
    // again if they are (their A bits are set already: nothing the guest can see).
    const PendingRun old = pending_runs_.front();
    pending_runs_.erase(pending_runs_.begin());
    ++stats_.prefetch_runs_forgotten;
    if (old.generation == old.space->generation) {
      std::memset(old.space->shadow + old.lin_first, 0, old.count * sizeof(uint32_t));
    }
  }
}

void ShadowMmu::drop_pending_runs(const Space& space, uint32_t first, uint32_t count) {
  // The parts of a run outside the dropped range stay pending (a process's exit clears its
  // page-table entries one by one: each drops one page of a fault-around run).
  const uint64_t end = uint64_t{first} + count;
  std::vector<PendingRun> kept;
  std::erase_if(pending_runs_, [&](const PendingRun& r) {
    const uint64_t r_end = uint64_t{r.lin_first} + r.count;
    if (r.space != &space || r.lin_first >= end || r_end <= first) return false;
    if (r.lin_first >= first && r_end <= end) ++stats_.prefetch_runs_forgotten;
    if (r.lin_first < first) {
      PendingRun below = r;
      below.count = first - r.lin_first;
      kept.push_back(below);
    }
    if (r_end > end) {
      PendingRun above = r;
      above.lin_first = static_cast<uint32_t>(end);
      above.phys_first = r.phys_first + static_cast<uint32_t>(end - r.lin_first);
      above.count = static_cast<uint32_t>(r_end - end);
      kept.push_back(above);
    }
    for (uint64_t p = std::max<uint64_t>(first, r.lin_first); p < std::min(end, r_end); ++p) {
      if (r.generation == r.space->generation) r.space->shadow[p] = 0;
    }
    return true;
  });
  pending_runs_.insert(pending_runs_.end(), kept.begin(), kept.end());
  forget_oldest_pending_runs();
}

void ShadowMmu::prefill_globals(Space& space, uint32_t lin_page, const WalkResult& w) {
  constexpr uint64_t kP = 0x1, kRw = 0x2, kUs = 0x4, kA = 0x20, kD = 0x40, kG = 0x100;
  if (!mode_.pge || space.cr3_base == kIdentityCr3 || w.large ||
      !ram_.contains(w.pte_addr & ~uint64_t{0xfff}, LinearWindow::kPage)) {
    return;
  }
  const uint32_t pt_page = static_cast<uint32_t>(w.pte_addr >> 12);
  const uint8_t* pt = ram_.host_base() + (uint64_t{pt_page} << 12);
  uint64_t pde = 0;
  if (!ram_.contains(w.pde_addr, entry_bytes())) return;
  pde = ram_entry(static_cast<uint32_t>(w.pde_addr >> 12),
                  static_cast<uint32_t>(w.pde_addr & 0xfff) / entry_bytes());
  const uint32_t entries = table_entries();
  const uint32_t first = lin_page & ~(entries - 1);
  // Reserved bits in a PTE (PAE: bits 62:36, and XD without NXE) make its walk fault: skipped.
  const uint64_t reserved = mode_.pae ? (pae::kRsvdHigh | (mode_.nxe ? 0 : pae::kXd)) : 0;
  // Rights as the walker combines them (Intel SDM Vol. 3A §4.6; XD in either entry, §4.6.1).
  auto bits_of = [&](uint64_t pte) {
    uint32_t b = entry::kMapped | entry::kInSup;
    const bool rw = (pde & kRw) && (pte & kRw), us = (pde & kUs) && (pte & kUs);
    if (rw || !mode_.wp) b |= entry::kSupWrite;
    if (!rw && !mode_.wp) space.wp_overflow = true;  // a run: reset when WP is set
    if (us) b |= entry::kUser;
    if (us && rw) b |= entry::kUserWrite;
    if (pte & kD) b |= entry::kDirty;
    return b;
  };
  const bool pde_nx = mode_.nxe && (pde & pae::kXd);
  uint32_t run_lin = 0, run_phys = 0, run_count = 0, run_bits = 0;
  bool run_nx = false;
  auto flush = [&] {
    if (run_count == 0) return;
    map_run(space, run_lin, run_phys, run_count, run_bits, run_nx);
    stats_.global_prefills += run_count;
    run_count = 0;
  };
  for (uint32_t i = 0; i < entries; ++i) {
    const uint64_t pte = entry_of(pt, i);
    const uint32_t lin = first + i;
    const uint64_t frame = pte & kEntryFrame;
    const bool take = (pte & (kP | kA | kG)) == (kP | kA | kG) && !(pte & reserved) &&
                      !(space.shadow[lin] & entry::kMapped) && frame < (uint64_t{1} << 32) &&
                      ram_.contains(frame, LinearWindow::kPage);
    if (!take) {
      flush();
      continue;
    }
    const uint32_t phys = static_cast<uint32_t>(frame >> 12);
    const uint32_t b = bits_of(pte);
    const bool nx = pde_nx || (mode_.nxe && (pte & pae::kXd));
    if (run_count && phys == run_phys + run_count && b == run_bits && nx == run_nx) {
      ++run_count;
      continue;
    }
    flush();
    run_lin = lin;
    run_phys = phys;
    run_bits = b;
    run_nx = nx;
    run_count = 1;
  }
  flush();
}

}  // namespace vmbt
