#include "shadow_mmu/shadow_mmu.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstring>

#include "shadow_mmu/shadow_space.h"
#include "vmm/cpu_state.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/stats.h"

namespace vmbt {

using namespace shadow_detail;  // this library's own vocabulary (shadow_space.h)

namespace {

class RamPhys final : public PhysAccess {
 public:
  explicit RamPhys(GuestMemory& ram) : ram_(ram) {}
  bool read32(uint32_t pa, uint32_t* v) override { return ram_.read(pa, v, 4); }
  bool write32(uint32_t pa, uint32_t v) override { return ram_.write(pa, &v, 4); }

 private:
  GuestMemory& ram_;
};

/// Guest-physical memory as a space that is not current saw it when its shadows were derived:
/// its page-directory entries are the remembered ones (`derived`), never the page at its CR3
/// (or, with PAE paging, the pages its PDPTEs named), and nothing is written. That address space
/// may be gone, its directory freed and reused for anything, a file's page cache say; a walk
/// through it that set an Accessed bit there set bit 5 of a word of whatever the page held now
/// (seen as Debian guests' libkmod and ld.so corrupted in the page cache, one boot in about fifteen
/// under load).
class DerivedDirectoryPhys final : public PhysAccess {
 public:
  /// 32-bit paging: the directory at `directory_page`.
  DerivedDirectoryPhys(PhysAccess& ram, uint32_t directory_page,
                       const std::array<uint64_t, 2048>& derived)
      : ram_(ram), derived_(derived) {
    pages_[0] = directory_page;
  }
  /// PAE paging: the directories the PDPTEs `pdpte` name (entries 512 * i on for PDPTE i).
  DerivedDirectoryPhys(PhysAccess& ram, const std::array<uint64_t, 4>& pdpte,
                       const std::array<uint64_t, 2048>& derived)
      : ram_(ram), derived_(derived), pae_(true) {
    for (unsigned i = 0; i < 4; ++i) {
      if ((pdpte[i] & 1) && (pdpte[i] & kEntryFrame) < (uint64_t{1} << 32)) {
        pages_[i] = static_cast<uint32_t>((pdpte[i] & kEntryFrame) >> 12);
      }
    }
  }
  bool read32(uint32_t pa, uint32_t* v) override {
    if (!pae_ && (pa >> 12) == pages_[0]) {
      *v = static_cast<uint32_t>(derived_[(pa & 0xfff) >> 2]);
      return true;
    }
    return ram_.read32(pa, v);
  }
  bool read64(uint64_t pa, uint64_t* v) override {
    for (unsigned i = 0; pae_ && i < 4; ++i) {
      if ((pa >> 12) == pages_[i]) {
        *v = derived_[512 * i + ((pa & 0xfff) >> 3)];
        return true;
      }
    }
    return ram_.read64(pa, v);
  }
  /// The walks made through it are reads of entries with A set already (prefetch,
  /// downgrade_entries): nothing to write, and nothing may be.
  bool write32(uint32_t, uint32_t) override { return true; }

 private:
  PhysAccess& ram_;
  const std::array<uint64_t, 2048>& derived_;
  std::array<uint32_t, 4> pages_{UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX};
  bool pae_ = false;
};

}  // namespace

ShadowMmu::ShadowMmu(GuestMemory& ram, std::function<void(uint32_t)> on_code_write,
                     DropHook on_mappings_dropped)
    : ram_(ram),
      on_code_write_(std::move(on_code_write)),
      on_mappings_dropped_(std::move(on_mappings_dropped)),
      phys_(std::make_unique<RamPhys>(ram)),
      protection_(ram.size() / LinearWindow::kPage, 0) {
  identity_ = space_for(kIdentityCr3);
  current_ = identity_;
  if (FILE* f = std::fopen("/proc/sys/vm/max_map_count", "r")) {
    unsigned long limit = 0;
    if (std::fscanf(f, "%lu", &limit) == 1 && limit >= 4096) host_map_budget_ = limit / 4 * 3;
    std::fclose(f);
  }
  unassigned_fd_ = memfd_create("vmbt-unassigned", MFD_CLOEXEC);
  if (unassigned_fd_ < 0 || ftruncate(unassigned_fd_, 2 * LinearWindow::kPage) != 0) {
    throw Error("cannot create the unassigned-memory page");
  }
  void* p =
      mmap(nullptr, 2 * LinearWindow::kPage, PROT_READ | PROT_WRITE, MAP_SHARED, unassigned_fd_, 0);
  if (p == MAP_FAILED) throw Error("cannot map the unassigned-memory page");
  unassigned_host_ = static_cast<uint8_t*>(p);
  std::memset(unassigned_host_, 0xff, 2 * LinearWindow::kPage);
}

ShadowMmu::~ShadowMmu() {
  if (unassigned_host_) munmap(unassigned_host_, 2 * LinearWindow::kPage);
  if (unassigned_fd_ >= 0) close(unassigned_fd_);
}

size_t ShadowMmu::spaces_live() const {
  return spaces_.size();
}

void ShadowMmu::collect_stats(Stats& stats, const std::string& prefix) const {
  const std::pair<const char*, uint64_t> counters[] = {
      {"hidden_faults", stats_.hidden_faults},
      {"hidden_faults_user", stats_.hidden_faults_user},
      {"hidden_faults_other_window", stats_.hidden_faults_other_window},
      {"true_faults", stats_.true_faults},
      {"tracing_faults", stats_.tracing_faults},
      {"dirty_faults", stats_.dirty_faults},
      {"code_write_faults", stats_.code_write_faults},
      {"flushes", stats_.flushes},
      {"space_switches", stats_.space_switches},
      {"spaces_created", stats_.spaces_created},
      {"spaces_live", spaces_.size()},
      {"ranges_dropped", stats_.ranges_dropped},
      {"invlpg", stats_.invlpg},
      {"unassigned_fills", stats_.unassigned_fills},
      {"unassigned_writes", stats_.unassigned_writes},
      {"mmio_faults", stats_.mmio_faults},
      {"unshadowed_tables", stats_.unshadowed_tables},
      {"table_writes", stats_.table_writes},
      {"prefetched", stats_.prefetched},
      {"prefetch_runs_used", stats_.prefetch_runs_used},
      {"prefetch_runs_forgotten", stats_.prefetch_runs_forgotten},
      {"large_fills", stats_.large_fills},
      {"global_prefills", stats_.global_prefills},
      {"unassigned_evictions", stats_.unassigned_evictions},
      {"mapping_limit_resets", stats_.mapping_limit_resets},
      {"wp_revocations", stats_.wp_revocations},
      {"spaces_recycled", stats_.spaces_recycled},
      {"ranges_kept", stats_.ranges_kept},
      {"shadow_translations", stats_.shadow_translations},
      {"downgrades", stats_.downgrades}};
  for (const auto& [name, value] : counters) stats.set(prefix + name, value);
}

ShadowMmu::Space* ShadowMmu::space_for(uint32_t cr3_base) {
  for (auto& s : spaces_) {
    if (s->cr3_base == cr3_base) {
      s->last_used = ++clock_;
      return s.get();
    }
  }
  Space* victim = nullptr;
  if (spaces_.size() >= kMaxSpaces + 1) {  // + the identity space, never evicted
    for (auto& s : spaces_) {
      if (s.get() == identity_ || s.get() == current_) continue;
      if (!victim || s->last_used < victim->last_used) victim = s.get();
    }
  }
  if (victim) {
    recycle_space(*victim, cr3_base);
  } else {
    spaces_.push_back(std::make_unique<Space>());
    victim = spaces_.back().get();
    victim->cr3_base = cr3_base;
  }
  victim->last_used = ++clock_;
  ++stats_.spaces_created;
  return victim;
}

uint32_t ShadowMmu::space_id() const {
  return current_->cr3_base;
}

void ShadowMmu::reset_space(Space& space) {
  std::erase_if(pending_runs_, [&](const PendingRun& r) { return r.space == &space; });
  on_mappings_dropped_(space.cr3_base, 0, kPages, false);
  for (unsigned copy = 0; copy < 2; ++copy) {
    space.sup.unmap_pages(0, kPages, copy);
    space.user.unmap_pages(0, kPages, copy);
  }
  space.clear_shadow();
  ++space.generation;
  ++stats_.flushes;
}

void ShadowMmu::recycle_space(Space& space, uint32_t cr3_base) {
  // A new address space takes the place of the least recently used one, shadows and all:
  // kernels copy their own page-directory entries into every new page directory (Linux's
  // pgd_alloc), so the ranges the two share keep their shadows when resync_directory compares
  // the new directory with the entries the old shadows derive from, and the rest go. A new
  // process then does not refill the kernel's mappings page by page, as in an empty space.
  on_mappings_dropped_(space.cr3_base, 0, kPages, false);  // its indirect-branch tables
  space.cr3_base = cr3_base;
  space.recycled = true;
  ++stats_.spaces_recycled;
}

void ShadowMmu::resync_directory(Space& space) {
  // The page directory of a space that is not current is not traced: nothing can use its
  // shadows meanwhile (translated code runs on the current space's windows only). When it is
  // current again, each range whose entry changed in a way that matters since its shadows were
  // derived (derived_pde) is dropped, as a MOV CR3 flushes a TLB (Intel SDM Vol. 3A §4.10.4.1).
  // With PAE paging the entries are those of the directories the PDPTE registers name now
  // (loaded at this MOV CR3, §4.4.1): a PDPTE that changed leads to other entries, or none.
  std::array<DirectoryPage, 4> dirs{};
  const unsigned ndirs = current_directories(dirs);
  auto now = [&](uint32_t i) -> uint64_t {
    for (unsigned d = 0; d < ndirs; ++d) {
      const uint32_t n = table_entries();
      if (i >= dirs[d].first && i < dirs[d].first + n)
        return ram_entry(dirs[d].page, i - dirs[d].first);
    }
    return 0;  // no directory there (a PDPTE not present)
  };
  unsigned kept = 0;
  uint32_t kept_slots = 0;  // which directories (bit d of dirs) kept an entry
  // Only the entries shadows derive from (derived_mask): a process has a few dozen.
  uint32_t run_first = 0, run_count = 0;
  for (uint32_t w = 0; w < space.derived_mask.size(); ++w) {
    for (uint64_t bits = space.derived_mask[w]; bits; bits &= bits - 1) {
      const uint32_t i = w * 64 + static_cast<uint32_t>(std::countr_zero(bits));
      if (!change_matters(space.derived_pde[i], now(i))) {
        ++kept;
        for (unsigned d = 0; d < ndirs; ++d) {
          if (i >= dirs[d].first && i < dirs[d].first + table_entries()) kept_slots |= 1u << d;
        }
        continue;
      }
      if (run_count && i == run_first + run_count) {
        ++run_count;
        continue;
      }
      if (run_count) drop_directory_range(space, run_first, run_count);
      run_first = i;
      run_count = 1;
    }
  }
  if (run_count) drop_directory_range(space, run_first, run_count);
  if (space.recycled) stats_.ranges_kept += kept;
  space.recycled = false;
  space.pdpte = mode_.pdpte;
  for (unsigned d = 0; d < ndirs; ++d) {
    if (kept_slots & (1u << d)) protect(dirs[d].page, protect::kPageTable);
  }
}

void ShadowMmu::drop_directory_range(Space& space, uint32_t first, uint32_t count) {
  const uint32_t shift = dir_shift();
  on_mappings_dropped_(space.cr3_base, first << shift, count << shift, false);
  unmap_span(space, first << shift, count << shift);
  for (uint32_t i = first; i < first + count; ++i) {
    const uint64_t pde = space.derived_pde[i];
    space.set_derived(i, 0);
    if (!(pde & 1) || is_large(pde) || (pde & kEntryFrame) >= (uint64_t{1} << 32)) continue;
    // The page table below it: this space no longer derives anything from it.
    auto it = pt_users_.find(static_cast<uint32_t>((pde & kEntryFrame) >> 12));
    if (it == pt_users_.end()) continue;
    std::erase_if(it->second,
                  [&](const Mapping& m) { return m.space == &space && m.lin_page == i; });
    if (it->second.empty()) pt_users_.erase(it);
  }
  ++stats_.ranges_dropped;
}

uint64_t ShadowMmu::entry_of(const uint8_t* table, uint32_t index) const {
  if (mode_.pae) {
    uint64_t v;
    std::memcpy(&v, table + uint64_t{index} * 8, 8);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, table + uint64_t{index} * 4, 4);
  return v;
}

uint64_t ShadowMmu::ram_entry(uint32_t page, uint32_t index) const {
  if (page >= protection_.size()) return 0;
  return entry_of(ram_.host_base() + (uint64_t{page} << 12), index);
}

bool ShadowMmu::is_large(uint64_t pde) const {
  return (pde & pte::kPageSize) && (mode_.pae || mode_.pse);
}

unsigned ShadowMmu::current_directories(std::array<DirectoryPage, 4>& out) const {
  if (!paging_) return 0;
  if (!mode_.pae) {
    out[0] = {current_->cr3_base >> 12, 0};
    return 1;
  }
  unsigned n = 0;
  for (uint32_t i = 0; i < 4; ++i) {
    const uint64_t pdpte = mode_.pdpte[i];
    if (!(pdpte & 1) || (pdpte & kEntryFrame) >= (uint64_t{1} << 32)) continue;
    out[n++] = {static_cast<uint32_t>((pdpte & kEntryFrame) >> 12), 512 * i};
  }
  return n;
}

void ShadowMmu::set_nx(Space& space, uint32_t lin_page, uint32_t count, bool nx) {
  if (space.nx.empty()) {
    if (!nx) return;
    space.nx.assign(kPages / 64, 0);
  }
  for (uint32_t p = lin_page; p < lin_page + count; ++p) {
    if (nx) {
      space.nx[p >> 6] |= uint64_t{1} << (p & 63);
    } else {
      space.nx[p >> 6] &= ~(uint64_t{1} << (p & 63));
    }
  }
}

bool ShadowMmu::load_pdptes(uint32_t cr3, std::array<uint64_t, 4>* pdpte) {
  return vmbt::load_pdptes(*phys_, cr3, pdpte);
}

bool ShadowMmu::is_current_directory(uint32_t page) const {
  std::array<DirectoryPage, 4> dirs{};
  const unsigned n = current_directories(dirs);
  for (unsigned d = 0; d < n; ++d) {
    if (dirs[d].page == page) return true;
  }
  return false;
}

void ShadowMmu::set_mode(const VcpuState& s) {
  bool paging = (s.cr0 & cr0::kPg) && (s.cr0 & cr0::kPe);
  PagingMode m;
  m.pae = s.cr4 & cr4::kPae;
  // PAE paging: the space is the PDPT's (CR3 bits 31:5, Table 4-7; Linux packs several 32-byte
  // PDPTs in a page), walked through the PDPTE registers; IA32_EFER.NXE matters only there.
  m.cr3 = m.pae ? (s.cr3 & pae::kPdptBase) : (s.cr3 & 0xfffff000u);
  m.pdpte = m.pae ? s.pdpte : std::array<uint64_t, 4>{};
  m.nxe = m.pae && (s.efer & efer::kNxe);
  m.pse = s.cr4 & cr4::kPse;
  m.wp = s.cr0 & cr0::kWp;
  m.pge = s.cr4 & cr4::kPge;
  // A PSE, PAE or NXE change alters what every existing shadow means (another walk, other
  // reserved bits): all of them go, also while paging is off (the spaces keep their shadows
  // then). PGE only changes TLB retention, which shadows kept coherent by tracing do not
  // depend on. CR0.WP only changes whether supervisor writes honour R/W=0 (Intel SDM Vol. 3A
  // §4.6): clearing it needs nothing (a supervisor write to such a page faults once and is
  // remapped writable); setting it takes back the pages made writable meanwhile.
  if (m.pse != mode_.pse || m.pae != mode_.pae || m.nxe != mode_.nxe) {
    flush_all();
  } else if (m.wp && !mode_.wp) {
    mode_.wp = true;
    revoke_wp_writes();
  }
  Space* before = current_;
  if (paging && !paging_) reset_space(*identity_);  // its mappings would only cost remaps
  paging_ = paging;
  mode_ = m;
  current_ = paging ? space_for(m.cr3) : identity_;
  if (current_ != before) {
    ++stats_.space_switches;
    if (paging) resync_directory(*current_);
    apply_deferred_protections(*current_);
  } else if (paging && m.pae && m.pdpte != current_->pdpte) {
    // The same PDPT loaded again with other contents (§4.4.1: the registers change only now).
    resync_directory(*current_);
  }
}

uint8_t* ShadowMmu::window_base(unsigned cpl) const {
  if (!paging_) return current_->sup.base();
  return cpl == 3 ? current_->user.base() : current_->sup.base();
}

void ShadowMmu::revoke_wp_writes() {
  for (auto& s : spaces_) {
    Space& space = *s;
    if (space.wp_overflow) {
      reset_space(space);
      continue;
    }
    // Taken out first: apply() may reset the space (make_room), which clears the list.
    std::vector<uint32_t> pages;
    pages.swap(space.wp_pages);
    for (uint32_t p : pages) {
      uint32_t& e = space.shadow[p];
      if (!(e & entry::kMapped) || !(e & entry::kWpWrite)) continue;
      e &= ~(entry::kSupWrite | entry::kWpWrite);
      apply(space, p, false, e & entry::kWindows);  // read-only again in the supervisor view
    }
    ++stats_.wp_revocations;
  }
}

void ShadowMmu::flush_all() {
  for (auto& s : spaces_) reset_space(*s);
  rmap_.clear();
  run_rmap_.clear();
  pt_users_.clear();
  for (auto& p : protection_) p &= ~protect::kPageTable;
}

void ShadowMmu::set_a20(bool enabled) {
  const uint32_t mask = enabled ? ~0u : ~(1u << 20);
  if (mask == a20_mask_) return;
  a20_mask_ = mask;
  flush_all();
}

void ShadowMmu::set_firmware_windows(std::vector<MemoryWindow> windows) {
  firmware_windows_ = std::move(windows);
  flush_all();
}

const MemoryWindow* ShadowMmu::firmware_window(uint64_t pa) const {
  for (const MemoryWindow& w : firmware_windows_) {
    if (pa >= w.gpa && pa - w.gpa < w.size) return &w;
  }
  return nullptr;
}

bool ShadowMmu::rom_file(uint32_t phys, int* fd, uint64_t* offset) const {
  const uint64_t pa = uint64_t{phys} << 12;
  const MemoryWindow* w = phys ? firmware_window(pa) : nullptr;
  if (!w || w->fd < 0) return false;
  *fd = w->fd;
  *offset = w->fd_offset + (pa - w->gpa);
  return true;
}

bool ShadowMmu::shows_ram(const MemoryWindow& w) const {
  return w.host && w.host == ram_.host_base() + w.gpa;
}

bool ShadowMmu::read_only_window_frame(uint32_t phys) const {
  const MemoryWindow* w = firmware_window(uint64_t{phys} << 12);
  return w && shows_ram(*w);
}

const uint8_t* ShadowMmu::readable(uint64_t pa, unsigned* avail) const {
  const unsigned in_page = static_cast<unsigned>(LinearWindow::kPage - (pa & 0xfff));
  if (const MemoryWindow* w = firmware_window(pa)) {
    if (!w->host) return nullptr;
    *avail = static_cast<unsigned>(std::min<uint64_t>(in_page, w->gpa + w->size - pa));
    return w->host + (pa - w->gpa);
  }
  if (!ram_.contains(pa, 1)) return nullptr;
  *avail = static_cast<unsigned>(std::min<uint64_t>(in_page, ram_.size() - pa));
  return ram_.host_base() + pa;
}

void ShadowMmu::unmap_windows(Space& space, uint32_t lin_page, uint32_t e) {
  // Revoked in place (mprotect), not unmapped: cheaper, and the next fill maps over it.
  revoke_windows(space, lin_page, e);
}

void ShadowMmu::apply(Space& space, uint32_t lin_page, bool prefetching, uint32_t mapped) {
  // Each window (and copy) is mapped only once an access through it needed it: the entry's
  // kInSup/kInUser/alias bits say which are.
  map_pending_runs(space, lin_page, 1);
  uint32_t& e = space.shadow[lin_page];
  // A page its window still holds, revoked in place, only changes protection: no run to join.
  if (prefetching && !mapped && defer_prefetch(space, lin_page)) return;
  if (e & entry::kMmio) {  // nothing mapped: every access is the device's
    unmap_windows(space, lin_page, e);
    e &= ~entry::kWindows;
    return;
  }
  if (!(paging_ && (e & entry::kUser)) && (e & (entry::kInUser | entry::kUserAlias))) {
    // No longer user-accessible: the user window must not keep it.
    unmap_windows(space, lin_page, e & (entry::kInUser | entry::kUserAlias));
    e &= ~(entry::kInUser | entry::kUserAlias);
  }
  int fd = ram_.fd();
  uint64_t offset = uint64_t{e & entry::kPhysMask} << 12;
  bool sup_w = false, user_w = false;
  if (e & entry::kUnassigned) {
    if (!rom_file(e & entry::kPhysMask, &fd, &offset)) {
      fd = unassigned_fd_;
      offset = 0;
    }
  } else {
    sup_w = host_writable(e, false);
    user_w = host_writable(e, true);
  }
  const uint32_t generation = space.generation;
  make_room(space, lin_page);
  const uint32_t bits = space.shadow[lin_page];
  // Windows that map this very page already only change protection: mprotect, not a new mapping
  // (unless make_room reset the space: its windows map nothing now).
  mapped &= bits & entry::kWindows;
  if (space.generation != generation) mapped = 0;
  space.count_host_map(lin_page, 1, std::popcount(bits & entry::kWindows & ~mapped));
  auto map_all = [&] {
    auto one = [&](LinearWindow& window, uint32_t bit, unsigned copy, bool writable) {
      if (!(bits & bit)) return;
      if (mapped & bit) {
        window.protect_page(lin_page, copy, writable);
      } else {
        window.map_fd_page(lin_page, copy, fd, offset, writable);
      }
    };
    one(space.sup, entry::kInSup, 0, sup_w);
    one(space.sup, entry::kSupAlias, 1, sup_w);
    one(space.user, entry::kInUser, 0, user_w);
    one(space.user, entry::kUserAlias, 1, user_w);
  };
  try {
    map_all();
  } catch (const Error&) {
    // Most likely the host's limit on mappings (vm.max_map_count): free the other spaces'.
    for (auto& other : spaces_) {
      if (other.get() != &space) reset_space(*other);
    }
    map_all();
  }
  if (!(e & entry::kUnassigned) && access_watched(e & entry::kPhysMask)) {
    revoke_windows(space, lin_page, bits & entry::kWindows);  // every access faults
  }
}

bool ShadowMmu::host_writable(uint32_t e, bool user) const {
  // Writable only where the guest allows the write, its D bit is set (the first write sets it,
  // Intel SDM Vol. 3A §4.8) and the frame holds no traced page table or translated code.
  const uint32_t phys = e & entry::kPhysMask;
  const uint8_t reasons = phys < protection_.size() ? protection_[phys] : 0;
  const bool locked = (phys == watch_suspended_ ? reasons & ~protect::kWatches : reasons) != 0;
  return (e & (user ? entry::kUserWrite : entry::kSupWrite)) && (e & entry::kDirty) && !locked &&
         (firmware_windows_.empty() || !read_only_window_frame(phys));
}

ShadowMmu::Backing ShadowMmu::backing_of(uint64_t page_base) const {
  if (page_base >> 32) return Backing::kUnassigned;  // PAE: nothing at or above 4 GiB here
  if (const MemoryWindow* w = firmware_windows_.empty() ? nullptr : firmware_window(page_base)) {
    // RAM seen read-only through a PAM segment maps (writes fault to the device); the ROM maps
    // from its file; anything else in a window is the device's.
    if (shows_ram(*w)) return Backing::kRam;
    return w->fd >= 0 ? Backing::kRom : Backing::kMmio;
  }
  if (ram_.contains(page_base, LinearWindow::kPage)) return Backing::kRam;
  if (is_mmio_ && is_mmio_(page_base)) return Backing::kMmio;
  return Backing::kUnassigned;
}

void ShadowMmu::fill(Space& space, uint32_t lin_page, const WalkResult& w, Backing backing,
                     uint32_t window, bool prefetching) {
  map_pending_runs(space, lin_page, 1);  // its entry changes: the host must hold what it says
  // A ROM page maps like an all-ones page, from its window's file: the frame stays in the entry.
  bool unassigned = backing == Backing::kUnassigned || backing == Backing::kRom;
  uint32_t phys = backing == Backing::kUnassigned ? 0 : static_cast<uint32_t>(w.page_base >> 12);
  uint32_t e = phys | entry::kMapped | (unassigned ? entry::kUnassigned : 0) |
               (backing == Backing::kMmio ? entry::kMmio : 0) | window;
  uint32_t old = space.shadow[lin_page];
  constexpr uint32_t kSame = entry::kMapped | entry::kPhysMask | entry::kUnassigned | entry::kMmio;
  uint32_t mapped = 0;
  if ((old & kSame) == (e & kSame)) {
    mapped = old & entry::kWindows;
    e |= mapped;  // a refresh of the same page keeps its mappings
  } else if (is_revoked(old) && backing == Backing::kRam && (old & entry::kPhysMask) == phys) {
    // The same frame again where the window revoked it in place (an accessed bit cleared, a
    // page unmapped and mapped back): mprotect it back, no new host mapping. Only the window
    // this fill is for; the others stay revoked and forgotten (a later fill maps over them).
    mapped = old & window;
    e |= mapped;
  } else if (old & entry::kMapped) {
    unmap_windows(space, lin_page, old);  // another page now: no window may keep the old one
  }
  if (w.sup_write_ok) e |= entry::kSupWrite;
  if (w.sup_write_ok && !w.writable) {  // only while CR0.WP=0
    e |= entry::kWpWrite;
    if (space.wp_pages.size() < kMaxWpPages) {
      space.wp_pages.push_back(lin_page);
    } else {
      space.wp_overflow = true;
    }
  }
  if (w.user_ok) e |= entry::kUser;
  if (w.user_write_ok) e |= entry::kUserWrite;
  if (w.dirty) e |= entry::kDirty;
  space.shadow[lin_page] = e;
  set_nx(space, lin_page, 1, w.nx);
  apply(space, lin_page, prefetching, mapped);
  if (unassigned) {
    ++stats_.unassigned_fills;
    note_unassigned(space, lin_page);
  } else if (backing == Backing::kRam) {
    add_reverse_mapping(space, lin_page, phys);
  }
  if (space.cr3_base == kIdentityCr3) return;
  trace_walk(space, lin_page, w);
}

void ShadowMmu::make_room(Space& space, uint32_t lin_page) {
  // Each page mapped on its own is a host mapping (VMA), and the host refuses more than
  // vm.max_map_count of them; once it has, even unmapping can fail (splitting a mapping needs
  // one more). So the spaces are reset before that: the least recently used others first, then,
  // when this space alone holds too many (one frame at 100,000 linear pages), this one, keeping
  // the page being mapped.
  auto total = [&] {
    uint64_t n = 0;
    for (const auto& s : spaces_) n += s->host_maps;
    return n;
  };
  if (total() < host_map_budget_) return;
  while (total() >= host_map_budget_ / 2) {
    Space* victim = nullptr;
    for (auto& s : spaces_) {
      if (s.get() == &space || s->host_maps == 0) continue;
      if (!victim || s->last_used < victim->last_used) victim = s.get();
    }
    if (!victim) break;
    reset_space(*victim);
    ++stats_.mapping_limit_resets;
  }
  if (space.host_maps >= host_map_budget_ / 2) {
    const uint32_t keep = space.shadow[lin_page];
    reset_space(space);
    space.shadow[lin_page] = keep;
    ++stats_.mapping_limit_resets;
  }
}

void ShadowMmu::note_unassigned(Space& space, uint32_t lin_page) {
  // A guest sweeping through memory that is not there (a REP MOVSD over 4 GiB) must not use up
  // the host's mappings (vm.max_map_count): the oldest batch of all-ones pages goes.
  if (space.unassigned_pages.size() >= kMaxUnassignedPages) {
    for (uint32_t p : space.unassigned_pages) {
      const uint32_t e = space.shadow[p];
      if (p == lin_page || !(e & entry::kMapped) || !(e & entry::kUnassigned)) continue;
      unmap_windows(space, p, e);
      space.shadow[p] = 0;
    }
    space.unassigned_pages.clear();
    ++stats_.unassigned_evictions;
  }
  space.unassigned_pages.push_back(lin_page);
}

void ShadowMmu::add_reverse_mapping(Space& space, uint32_t lin_page, uint32_t phys) {
  auto& maps = rmap_[phys];
  auto stale = [&](const Mapping& m) {
    return m.generation != m.space->generation ||
           (m.space->shadow[m.lin_page] & (entry::kPhysMask | entry::kMapped)) !=
               (phys | entry::kMapped);
  };
  if (maps.size() >= 16) std::erase_if(maps, stale);
  for (const Mapping& m : maps) {
    // A refill of a page already listed (after a drop) must not list it twice.
    if (m.space == &space && m.lin_page == lin_page && m.generation == space.generation) return;
  }
  maps.push_back({&space, space.generation, lin_page});
}

WalkResult ShadowMmu::walk_in(Space& space, uint32_t linear, const Access& access) {
  if (&space == current_) return walk(*phys_, mode_, linear, access);
  PagingMode mode = mode_;
  mode.cr3 = space.cr3_base;
  if (mode.pae) {
    mode.pdpte = space.pdpte;
    DerivedDirectoryPhys derived(*phys_, space.pdpte, space.derived_pde);
    return walk(derived, mode, linear, access);
  }
  DerivedDirectoryPhys derived(*phys_, space.cr3_base >> 12, space.derived_pde);
  return walk(derived, mode, linear, access);
}

void ShadowMmu::trace_walk(Space& space, uint32_t lin_page, const WalkResult& w) {
  // Trace the structures this translation came from. A table used for a translation is no
  // longer being flooded with writes.
  // (A walk that succeeded read its entries from RAM, below 4 GiB.)
  const uint32_t pd_page = static_cast<uint32_t>(w.pde_addr >> 12);
  if (pd_page == flood_page_ || (!w.large && (w.pte_addr >> 12) == flood_page_)) {
    flood_page_ = UINT32_MAX;
  }
  // Only the current space's directory is the guest's (CR3, or the PDPTE registers) and traced;
  // another space's walk came from its derived entries (walk_in), which stay as they are.
  if (&space == current_) {
    space.set_derived(
        lin_page >> dir_shift(),
        ram_entry(pd_page, static_cast<uint32_t>(w.pde_addr & 0xfff) / entry_bytes()));
    protect(pd_page, protect::kPageTable);
  }
  if (!w.large) {
    const uint32_t pt_page = static_cast<uint32_t>(w.pte_addr >> 12);
    const uint32_t pde_index = lin_page >> dir_shift();
    auto& pt = pt_users_[pt_page];
    if (std::none_of(pt.begin(), pt.end(), [&](const Mapping& m) {
          return m.space == &space && m.generation == space.generation && m.lin_page == pde_index;
        })) {
      pt.push_back({&space, space.generation, pde_index});
    }
    protect(pt_page, protect::kPageTable);
  }
}

void ShadowMmu::remap_all(uint32_t phys_page) {
  remap(phys_page, nullptr);
}

void ShadowMmu::remap(uint32_t phys_page, Space* only) {
  map_pending_frame(phys_page);
  // Only the protection changes (the page stays where it is): mprotect, not a new mapping. In
  // the current space at once; the others take it when they are current again, since nothing
  // runs on their windows meanwhile (a kernel's direct map is in every space, so a page table
  // traced or let go would otherwise cost a host call in each).
  auto due = [&](Space& space) {
    if (only) return &space == only;
    if (&space == current_) return true;
    defer_protection(space, phys_page);
    return false;
  };
  if (auto runs = run_rmap_.find(phys_page >> 10); runs != run_rmap_.end()) {
    for (const Run& m : runs->second) {
      if (phys_page < m.phys_first || phys_page >= m.phys_first + m.count) continue;
      const uint32_t lin_page = m.lin_first + (phys_page - m.phys_first);
      const uint32_t e = m.space->shadow[lin_page];
      if (m.generation != m.space->generation || !(e & entry::kInSup) ||
          (e & (entry::kPhysMask | entry::kMapped)) != (phys_page | entry::kMapped) ||
          !due(*m.space)) {
        continue;
      }
      reprotect(*m.space, lin_page, entry::kInSup, e);  // a run maps the supervisor window
    }
  }
  auto it = rmap_.find(phys_page);
  if (it == rmap_.end()) return;
  auto& maps = it->second;
  std::erase_if(maps, [&](const Mapping& m) {
    return m.generation != m.space->generation ||
           (m.space->shadow[m.lin_page] & (entry::kPhysMask | entry::kMapped)) !=
               (phys_page | entry::kMapped);
  });
  for (const Mapping& m : maps) {
    Space& space = *m.space;
    if (!due(space)) continue;
    const uint32_t e = space.shadow[m.lin_page];
    reprotect(space, m.lin_page, e & entry::kWindows, e);
  }
}

void ShadowMmu::reprotect(Space& space, uint32_t lin_page, uint32_t windows, uint32_t e) {
  if (access_watched(e & entry::kPhysMask)) {
    revoke_windows(space, lin_page, windows);
    return;
  }
  const bool sup_w = host_writable(e, false), user_w = host_writable(e, true);
  if (windows & entry::kInSup) space.sup.protect_page(lin_page, 0, sup_w);
  if (windows & entry::kSupAlias) space.sup.protect_page(lin_page, 1, sup_w);
  if (windows & entry::kInUser) space.user.protect_page(lin_page, 0, user_w);
  if (windows & entry::kUserAlias) space.user.protect_page(lin_page, 1, user_w);
}

void ShadowMmu::defer_protection(Space& space, uint32_t phys_page) {
  auto& todo = space.protection_todo;
  if (!todo.empty() && todo.back() == phys_page) return;
  if (todo.size() >= kMaxDeferredProtections) {
    space.protection_overflow = true;  // reset when it is current again
    todo.clear();
    return;
  }
  if (!space.protection_overflow) todo.push_back(phys_page);
}

void ShadowMmu::apply_deferred_protections(Space& space) {
  if (space.protection_overflow) {
    reset_space(space);
    return;
  }
  std::vector<uint32_t> todo;
  todo.swap(space.protection_todo);
  std::sort(todo.begin(), todo.end());
  todo.erase(std::unique(todo.begin(), todo.end()), todo.end());
  for (uint32_t phys : todo) remap(phys, &space);
}

void ShadowMmu::protect(uint32_t phys_page, uint8_t reason) {
  if (phys_page >= protection_.size() || (protection_[phys_page] & reason)) return;
  if (phys_page == suspended_ && reason == protect::kPageTable) return;  // until resume_tracing
  bool was_locked = protection_[phys_page] != 0;
  protection_[phys_page] |= reason;
  if (!was_locked) remap_all(phys_page);
}

void ShadowMmu::unprotect(uint32_t phys_page, uint8_t reason) {
  if (phys_page >= protection_.size() || !(protection_[phys_page] & reason)) return;
  protection_[phys_page] &= ~reason;
  if (protection_[phys_page] == 0) remap_all(phys_page);
}

void ShadowMmu::protect_code(uint32_t phys_page) {
  protect(phys_page, protect::kCode);
}

void ShadowMmu::set_watched_pages(const std::vector<uint32_t>& write_pages,
                                  const std::vector<uint32_t>& access_pages) {
  watch_suspended_ = UINT32_MAX;
  std::vector<uint32_t> old;
  old.swap(watched_pages_);
  for (uint32_t page : old) protection_[page] &= ~protect::kWatches;
  for (uint32_t page : write_pages) {
    if (page < protection_.size()) protection_[page] |= protect::kWatch;
  }
  for (uint32_t page : access_pages) {
    if (page < protection_.size()) protection_[page] |= protect::kWatchAccess;
  }
  watched_pages_ = write_pages;
  watched_pages_.insert(watched_pages_.end(), access_pages.begin(), access_pages.end());
  for (uint32_t page : old) remap_all(page);
  for (uint32_t page : watched_pages_) remap_all(page);
}

bool ShadowMmu::access_watched(uint32_t phys_page) const {
  return phys_page < protection_.size() && (protection_[phys_page] & protect::kWatchAccess) &&
         phys_page != watch_suspended_;
}

void ShadowMmu::revoke_windows(Space& space, uint32_t lin_page, uint32_t windows) {
  if (windows & entry::kInSup) space.sup.revoke_page(lin_page, 0);
  if (windows & entry::kSupAlias) space.sup.revoke_page(lin_page, 1);
  if (windows & entry::kInUser) space.user.revoke_page(lin_page, 0);
  if (windows & entry::kUserAlias) space.user.revoke_page(lin_page, 1);
}

void ShadowMmu::map_scratch(uint32_t linear, bool writable) {
  resume_tracing();
  uint32_t lin_page = linear >> 12;
  map_pending_runs(*current_, lin_page, 1);
  uint32_t& e = current_->shadow[lin_page];
  current_->sup.map_fd_page(lin_page, 0, unassigned_fd_, LinearWindow::kPage, writable);
  e |= entry::kInSup;  // so resume_tracing's apply() takes it away again
  if (paging_ && (e & entry::kUser)) {
    current_->user.map_fd_page(lin_page, 0, unassigned_fd_, LinearWindow::kPage, writable);
    e |= entry::kInUser;
  }
  scratch_space_ = current_;
  scratch_page_ = lin_page;
}

void ShadowMmu::resume_tracing() {
  if (watch_suspended_ != UINT32_MAX) {  // the watched access ran: watch the frame again
    const uint32_t page = watch_suspended_;
    watch_suspended_ = UINT32_MAX;
    remap_all(page);
  }
  if (scratch_space_) {
    Space& space = *scratch_space_;
    uint32_t& e = space.shadow[scratch_page_];
    if (e & entry::kMapped) {
      apply(space, scratch_page_);  // back to the read-only all-ones page, or the device's
    } else {
      // The entry went while the access was pending (a page-table change, a DMA into the
      // table): nothing may stay mapped there, the scratch page least of all.
      if (e & entry::kInSup) space.sup.unmap_pages(scratch_page_, 1, 0);
      if (e & entry::kInUser) space.user.unmap_pages(scratch_page_, 1, 0);
      e = 0;
    }
    std::memset(unassigned_host_ + LinearWindow::kPage, 0xff, LinearWindow::kPage);
    scratch_space_ = nullptr;
  }
  uint32_t page = suspended_;
  suspended_ = UINT32_MAX;
  if (page == UINT32_MAX) return;
  // Drop what derived from the entries the store changed (compared with the snapshot taken
  // before it), then trace the page again.
  const uint8_t* now = ram_.host_base() + (uint64_t{page} << 12);
  const uint8_t* was = suspended_copy_.data();
  const uint32_t entries = table_entries();
  for (uint32_t i = 0; i < entries;) {
    if (!change_matters(entry_of(was, i), entry_of(now, i))) {
      ++i;
      continue;
    }
    uint32_t j = i;
    while (j < entries && change_matters(entry_of(was, j), entry_of(now, j))) ++j;
    drop_entries(page, i, j - i);
    i = j;
  }
  // What the store installed is mapped now (a few entries: one store writes at most 8 bytes).
  bool installed = false;
  for (uint32_t i = 0, prefetches = 0; i < entries; ++i) {
    const uint64_t before = entry_of(was, i), after = entry_of(now, i);
    if (!change_matters(before, after)) continue;
    installed |= (after & 1) != 0;
    if (prefetches++ < 4) prefetch(page, i, before, after);
  }
  if (installed && is_current_directory(page) && count_flood_write(page)) return;
  if (shadows_derive_from(page)) protect(page, protect::kPageTable);
}

void ShadowMmu::unmap_range(Space& space, uint32_t first_page, uint32_t count, bool global) {
  on_mappings_dropped_(space.cr3_base, first_page, count, global);
  unmap_span(space, first_page, count);
}

void ShadowMmu::unmap_span(Space& space, uint32_t first_page, uint32_t count) {
  drop_pending_runs(space, first_page, count);
  if (count <= 16) {  // unmap only what is mapped: most drops are a single page
    for (uint32_t p = first_page; p < first_page + count; ++p) {
      uint32_t e = space.shadow[p];
      if (!(e & entry::kMapped)) continue;
      unmap_windows(space, p, e);
      // Its windows keep the frame, revoked: a fill of the same frame only mprotects it back.
      space.shadow[p] = (e & (entry::kUnassigned | entry::kMmio)) ? 0 : revoked(e);
    }
    return;
  }
  // A 4 MiB range (a page table or directory entry dropped): only the windows and copies that
  // map something in it are unmapped, one host call each (most ranges have nothing in the user
  // window or the wrap-around copies). Shadow entries record every host mapping (runs, pending
  // prefetches and scratch pages included). Beyond 64K pages, scanning costs more than it saves.
  uint32_t windows = entry::kWindows;
  if (count <= (1u << 16)) {
    windows = 0;
    for (uint32_t p = first_page; p < first_page + count; ++p) windows |= space.shadow[p];
  }
  if (windows & entry::kInSup) space.sup.unmap_pages(first_page, count, 0);
  if (windows & entry::kSupAlias) space.sup.unmap_pages(first_page, count, 1);
  if (windows & entry::kInUser) space.user.unmap_pages(first_page, count, 0);
  if (windows & entry::kUserAlias) space.user.unmap_pages(first_page, count, 1);
  std::memset(space.shadow + first_page, 0, count * sizeof(uint32_t));
  space.uncount_host_maps(first_page, count);
}

void ShadowMmu::drop_entries(uint32_t phys_page, uint32_t first, uint32_t count) {
  if (auto it = pt_users_.find(phys_page); it != pt_users_.end()) {
    for (const Mapping& m : it->second) {
      if (m.generation != m.space->generation) continue;
      unmap_range(*m.space, (m.lin_page << dir_shift()) + first, count);  // one page per PTE
      ++stats_.ranges_dropped;
    }
  }
  // 4 MiB (PAE: 2 MiB) per PDE, in the current space only: the others compare their
  // directories when they are current again (resync_directory). A PAE directory may be named
  // by more than one PDPTE.
  std::array<DirectoryPage, 4> dirs{};
  const unsigned n = current_directories(dirs);
  for (unsigned d = 0; d < n; ++d) {
    if (dirs[d].page == phys_page) drop_directory_range(*current_, dirs[d].first + first, count);
  }
}

void ShadowMmu::drop_changed(uint32_t phys_page, uint32_t first, const uint64_t* before,
                             uint32_t count) {
  for (uint32_t i = 0; i < count; ++i) {
    const uint64_t now = ram_entry(phys_page, first + i);
    if (!change_matters(before[i], now)) continue;
    if (is_downgrade(before[i], now) && downgrade_entries(phys_page, first + i)) continue;
    drop_entries(phys_page, first + i, 1);
  }
}

bool ShadowMmu::is_downgrade(uint64_t before, uint64_t after) {
  // The same page, present either way, with the same U/S, PS and XD, reserved bits clear and A
  // still set: only R/W or D went (fork's copy-on-write protection, a write-back clearing D).
  // The mapping can stay, with the new rights, instead of going and faulting back in. (An XD
  // change is not one: translated code from the page must be looked up again.)
  constexpr uint64_t kSame = ~uint64_t{0xfff} | 0x1 | 0x4 | 0x80 | 0x20;
  return (before & 1) && ((before ^ after) & kSame) == 0;
}

bool ShadowMmu::downgrade_entries(uint32_t pt_page, uint32_t index) {
  auto it = pt_users_.find(pt_page);
  if (it == pt_users_.end()) return true;
  const std::vector<Mapping> users = it->second;  // fill() may add to the list
  for (const Mapping& m : users) {
    Space& space = *m.space;
    if (m.generation != space.generation) continue;
    const uint32_t lin_page = (m.lin_page << dir_shift()) | index;
    const uint32_t e = space.shadow[lin_page];
    if (!(e & entry::kMapped)) continue;
    // Rights as a walk now finds them (the entry has A set: the walk changes nothing).
    const WalkResult w = walk_in(space, lin_page << 12, Access{false, false, false});
    if (!w.ok || w.large || (w.pte_addr >> 12) != pt_page ||
        (w.page_base >> 12) != (e & entry::kPhysMask)) {
      return false;  // not what it seemed: drop it
    }
    ++stats_.downgrades;
    fill(space, lin_page, w, Backing::kRam, e & entry::kWindows);
  }
  return true;
}

void ShadowMmu::begin_table_write(uint32_t phys_addr, unsigned len) {
  const uint32_t page = phys_addr >> 12;
  table_write_.page = UINT32_MAX;
  if (page >= protection_.size() || protection_[page] == 0 || len == 0) return;
  if (protection_[page] & protect::kCode) {
    on_code_write_(page);
    unprotect(page, protect::kCode);
  }
  if (!(protection_[page] & protect::kPageTable) || release_stale_tracing(page)) return;
  ++stats_.table_writes;
  if (!is_current_directory(page) && count_flood_write(page)) return;
  // Entries of 4 bytes, or 8 with PAE paging (a 32-bit store changes one half of one: Linux's
  // set_pte writes the high dword, then the low one).
  const uint32_t first = (phys_addr & 0xfff) / entry_bytes();
  const uint32_t last =
      std::min<uint32_t>(((phys_addr & 0xfff) + len - 1) / entry_bytes(), table_entries() - 1);
  table_write_.page = page;
  table_write_.first = first;
  table_write_.count = std::min<uint32_t>(last - first + 1, table_write_.before.size());
  for (uint32_t i = 0; i < table_write_.count; ++i) {
    table_write_.before[i] = ram_entry(page, first + i);
  }
}

void ShadowMmu::end_table_write() {
  if (table_write_.page == UINT32_MAX) return;
  const uint32_t page = table_write_.page;
  table_write_.page = UINT32_MAX;
  drop_changed(page, table_write_.first, table_write_.before.data(), table_write_.count);
  bool installed = false;
  for (uint32_t i = 0; i < table_write_.count; ++i) {
    const uint32_t index = table_write_.first + i;
    const uint64_t now = ram_entry(page, index);
    if (change_matters(table_write_.before[i], now)) {
      prefetch(page, index, table_write_.before[i], now);
      installed |= (now & 1) != 0;
    }
  }
  if (installed && is_current_directory(page)) count_flood_write(page);
}

bool ShadowMmu::release_stale_tracing(uint32_t page) {
  if (shadows_derive_from(page)) return false;
  // A protection left behind (a freed table, the directory of a space no longer current).
  pt_users_.erase(page);
  unprotect(page, protect::kPageTable);
  return true;
}

bool ShadowMmu::shadows_derive_from(uint32_t page) const {
  if (is_current_directory(page)) return true;
  auto it = pt_users_.find(page);
  return it != pt_users_.end() &&
         std::any_of(it->second.begin(), it->second.end(),
                     [](const Mapping& m) { return m.generation == m.space->generation; });
}

bool ShadowMmu::count_flood_write(uint32_t page) {
  flood_count_ = page == flood_page_ ? flood_count_ + 1 : 1;
  flood_page_ = page;
  if (flood_count_ < kFloodWrites) return false;
  // Written again and again without being used (zapped or filled by fork/exit/exec): no longer
  // shadowed until a fill walks through it again (KVM's write-flood heuristic).
  drop_entries(page, 0, table_entries());
  pt_users_.erase(page);
  unprotect(page, protect::kPageTable);
  flood_page_ = UINT32_MAX;
  ++stats_.unshadowed_tables;
  return true;
}

void ShadowMmu::note_phys_write(uint32_t phys_addr, uint32_t len) {
  uint32_t phys_page = phys_addr >> 12;
  if (phys_page >= protection_.size() || protection_[phys_page] == 0 || len == 0) return;
  if (protection_[phys_page] & protect::kCode) {
    on_code_write_(phys_page);
    unprotect(phys_page, protect::kCode);
  }
  if (protection_[phys_page] & protect::kPageTable) {
    uint32_t first = (phys_addr & 0xfff) / entry_bytes();
    uint32_t last =
        std::min<uint32_t>(((phys_addr & 0xfff) + len - 1) / entry_bytes(), table_entries() - 1);
    drop_entries(phys_page, first, last - first + 1);
  }
}

ShadowMmu::FillResult ShadowMmu::walk_into(Space& space, uint32_t linear, const Access& access,
                                           uint32_t* error_code, uint32_t window) {
  uint32_t lin_page = linear >> 12;
  if (!paging_) {
    WalkResult w;
    w.ok = true;
    w.page_base = (lin_page << 12) & a20_mask_;
    w.sup_write_ok = w.writable = w.user_ok = w.user_write_ok = w.dirty = true;
    fill(space, lin_page, w, backing_of(w.page_base), window);
    return kFilled;
  }
  WalkResult w = walk(*phys_, mode_, linear, access);
  if (!w.ok) {
    *error_code = w.error_code;
    return kGuestFault;
  }
  if (w.large && window == entry::kInSup && fill_large(space, lin_page, w)) return kFilled;
  fill(space, lin_page, w, backing_of(w.page_base), window);
  if (w.global && window == entry::kInSup) {
    try {
      prefill_globals(space, lin_page, w);
    } catch (const Error&) {
      // The host refused more mappings: the rest fault in one by one.
    }
  }
  return kFilled;
}

bool ShadowMmu::fill_large(Space& space, uint32_t lin_page, const WalkResult& w) {
  const uint32_t pages = 1u << dir_shift();  // 4 MiB, or 2 MiB with PAE paging
  const uint32_t first = lin_page & ~(pages - 1);
  const uint32_t phys_first = static_cast<uint32_t>(w.page_base >> 12) & ~(pages - 1);
  if (space.cr3_base == kIdentityCr3 || (w.page_base >> 32) ||
      !ram_.contains(uint64_t{phys_first} << 12, uint64_t{pages} << 12)) {
    return false;
  }
  for (uint32_t i = 0; i < pages; ++i) {
    if (space.shadow[first + i] & entry::kMapped) return false;  // partly mapped: page by page
  }
  uint32_t bits = entry::kMapped | entry::kInSup;
  if (w.sup_write_ok) bits |= entry::kSupWrite;
  if (w.sup_write_ok && !w.writable) space.wp_overflow = true;  // a run: reset when WP is set
  if (w.user_ok) bits |= entry::kUser;
  if (w.user_write_ok) bits |= entry::kUserWrite;
  if (w.dirty) bits |= entry::kDirty;
  try {
    map_run(space, first, phys_first, pages, bits, w.nx);
  } catch (const Error&) {
    return false;
  }
  ++stats_.large_fills;
  trace_walk(space, lin_page, w);
  return true;
}

void ShadowMmu::map_run(Space& space, uint32_t lin_first, uint32_t phys_first, uint32_t count,
                        uint32_t bits, bool nx) {
  map_pending_runs(space, lin_first, count);
  for (uint32_t i = 0; i < count; ++i) space.shadow[lin_first + i] = (phys_first + i) | bits;
  set_nx(space, lin_first, count, nx);
  const bool writable = (bits & entry::kSupWrite) && (bits & entry::kDirty);
  try {
    // One host call per stretch of the same protection: pages with translated code or traced
    // page tables stay read-only.
    for (uint32_t i = 0; i < count;) {
      const bool w = writable && !protection_[phys_first + i];
      uint32_t j = i + 1;
      while (j < count && (writable && !protection_[phys_first + j]) == w) ++j;
      space.sup.map_fd_range(lin_first + i, j - i, 0, ram_.fd(), uint64_t{phys_first + i} << 12, w);
      space.count_host_map(lin_first + i, j - i);
      i = j;
    }
    for (uint32_t i = 0; i < count && !watched_pages_.empty(); ++i) {
      if (access_watched(phys_first + i)) space.sup.revoke_page(lin_first + i, 0);
    }
  } catch (const Error&) {
    std::memset(space.shadow + lin_first, 0, count * sizeof(uint32_t));
    space.sup.unmap_pages(lin_first, count, 0);
    throw;
  }
  for (uint32_t frame = phys_first >> 10; frame <= (phys_first + count - 1) >> 10; ++frame) {
    auto& runs = run_rmap_[frame];
    std::erase_if(runs, [](const Run& r) { return r.generation != r.space->generation; });
    runs.push_back({&space, space.generation, lin_first, phys_first, count});
  }
}

ShadowMmu::Fault ShadowMmu::page_fault(uint32_t error_code, Fault& f) {
  ++stats_.true_faults;
  f.kind = Fault::kPageFault;
  f.error_code = error_code;
  return f;
}

bool ShadowMmu::guest_allows(uint32_t linear, const Access& access, Fault& f) {
  WalkResult w = walk(*phys_, mode_, linear, access);
  if (!w.ok) page_fault(w.error_code, f);
  return w.ok;
}

ShadowMmu::Fault ShadowMmu::handle_host_fault(const void* host, bool write) {
  Fault f;
  Space* space = nullptr;
  bool user_window = false;
  uint32_t linear = 0;
  unsigned copy = 0;
  for (auto& s : spaces_) {
    if (s->sup.contains(host, &linear, &copy)) {
      space = s.get();
      break;
    }
    if (s->user.contains(host, &linear, &copy)) {
      space = s.get();
      user_window = true;
      break;
    }
  }
  if (!space) return f;  // kNotWindow
  f.linear = linear;
  uint32_t lin_page = linear >> 12;
  uint32_t e = space->shadow[lin_page];
  Access access{write, user_window, false};
  uint32_t alias = user_window ? entry::kUserAlias : entry::kSupAlias;
  uint32_t in_window = user_window ? entry::kInUser : entry::kInSup;
  if (const int run = copy == 0 ? pending_run_index(*space, lin_page, in_window) : -1; run >= 0) {
    map_pending_run(static_cast<size_t>(run));  // a prefetched page's first use
    ++stats_.prefetch_runs_used;
    f.kind = Fault::kRetry;
    return f;
  }
  bool visible = (e & entry::kMapped) && (e & in_window);
  if (copy == 1 && visible && !(e & alias)) {
    // A wrapping access reached the second copy, mapped on demand: map it like the first.
    space->shadow[lin_page] = e | alias;
    apply(*space, lin_page);
    ++stats_.hidden_faults;
    f.kind = Fault::kRetry;
    return f;
  }

  if (!(e & entry::kMapped) || !(e & in_window)) {
    uint32_t err = 0;
    FillResult r = walk_into(*space, linear, access, &err, in_window);
    if (r == kFilled && (space->shadow[lin_page] & entry::kMmio)) {
      e = space->shadow[lin_page];  // a device page: fall through to the MMIO case below
    } else if (r == kFilled) {
      ++stats_.hidden_faults;
      if (user_window) ++stats_.hidden_faults_user;
      if (e & entry::kMapped) ++stats_.hidden_faults_other_window;
      f.kind = Fault::kRetry;
      return f;
    } else {
      ++stats_.true_faults;
      f.kind = Fault::kPageFault;
      f.error_code = err;
      // The guest's handler will most likely map this page and run the access again.
      awaited_ = {space, space->generation, lin_page, in_window};
      return f;
    }
  }
  if (e & entry::kMmio) {
    if (paging_) {  // the guest's own rights first
      if (!guest_allows(linear, access, f)) return f;
    }
    ++stats_.mmio_faults;
    f.kind = Fault::kMmio;
    f.phys = (uint64_t{e & entry::kPhysMask} << 12) | (linear & 0xfff);
    return f;
  }
  // A write to a page mapped read-only: a guest protection fault, its D bit, a traced page table,
  // translated code, no RAM at all, or RAM a firmware window shows read-only.
  uint32_t phys = e & entry::kPhysMask;
  if (write && !firmware_windows_.empty() &&
      ((e & entry::kUnassigned) ? phys != 0 : read_only_window_frame(phys))) {
    // RAM a firmware window shows read-only, or its ROM: the device decides what a write does.
    if (paging_) {
      if (!guest_allows(linear, access, f)) return f;
    }
    ++stats_.mmio_faults;
    f.kind = Fault::kMmio;
    f.phys = (uint64_t{phys} << 12) | (linear & 0xfff);
    return f;
  }
  if (e & entry::kUnassigned) {
    if (paging_) {
      if (!guest_allows(linear, access, f)) return f;
    }
    // Let the store land in the scratch page, alone, then forget it (resume_tracing).
    resume_tracing();
    if (copy == 1) space->shadow[lin_page] |= alias;  // so resume_tracing remaps that copy too
    (user_window ? space->user : space->sup)
        .map_fd_page(lin_page, copy, unassigned_fd_, LinearWindow::kPage, true);
    scratch_space_ = space;
    scratch_page_ = lin_page;
    ++stats_.unassigned_writes;
    f.kind = Fault::kSingleStep;
    return f;
  }
  if (paging_) {
    WalkResult w = walk(*phys_, mode_, linear, access);
    if (!w.ok) return page_fault(w.error_code, f);
    if ((w.page_base >> 12) != phys) {  // the entry was stale: refill from the walk
      fill(*space, lin_page, w, Backing::kRam, in_window);
      ++stats_.hidden_faults;
      f.kind = Fault::kRetry;
      return f;
    }
    if (!(e & entry::kDirty)) ++stats_.dirty_faults;
    fill(*space, lin_page, w, Backing::kRam, in_window);
  }
  f.kind = Fault::kRetry;
  if (phys < protection_.size() && protection_[phys]) {
    // The store must complete before the page is protected again, but re-running it would
    // re-derive the mappings (and the protection) when it writes through a translation that
    // the page itself provides: the engine runs it alone with tracing suspended.
    resume_tracing();
    bool single_step = false;
    if (write && (protection_[phys] & protect::kCode)) {
      ++stats_.code_write_faults;
      f.code_write = true;
      on_code_write_(phys);
      unprotect(phys, protect::kCode);
      single_step = true;
    }
    if (protection_[phys] & protect::kWatches) {
      // A debugger's watchpoint: the access runs alone with the frame mapped as if unwatched.
      f.watched = true;
      watch_suspended_ = phys;
      remap_all(phys);
      single_step = true;
    }
    if (write && (protection_[phys] & protect::kPageTable) && !release_stale_tracing(phys)) {
      ++stats_.tracing_faults;
      f.table_write = true;
      // A page table the guest keeps writing without using it (zapping or filling it, as
      // fork/exit/exec do) is no longer shadowed, so its later stores run at full speed; a page
      // directory counts only stores that install entries (resume_tracing).
      if (is_current_directory(phys) || !count_flood_write(phys)) {
        std::memcpy(suspended_copy_.data(), ram_.host_base() + (uint64_t{phys} << 12),
                    LinearWindow::kPage);
        suspended_ = phys;
        unprotect(phys, protect::kPageTable);
        single_step = true;
      }
    }
    f.kind = single_step ? Fault::kSingleStep : Fault::kRetry;
  }
  return f;
}

bool ShadowMmu::translate(uint32_t linear, const Access& access, uint64_t* phys,
                          uint32_t* error_code, bool* global) {
  if (global) *global = false;
  if (!paging_) {
    *phys = linear & a20_mask_;
    return true;
  }
  // A page the shadow maps already: its entry is what a walk would find (tracing drops it when
  // the guest's tables change), with A set and, for a writable entry, D set: no walk needed.
  // (The monitor's own accesses: exception frames, descriptor tables, emulated instructions.)
  // A fetch from an execute-disabled page walks, and faults there (Intel SDM Vol. 3A §4.6.1).
  const uint32_t lin_page = linear >> 12;
  const bool nx = access.fetch && !current_->nx.empty() &&
                  ((current_->nx[lin_page >> 6] >> (lin_page & 63)) & 1);
  if (!global && !nx && shadowed_address(linear, access.write, access.user, phys)) return true;
  WalkResult w = walk(*phys_, mode_, linear, access);
  if (!w.ok) {
    *error_code = w.error_code;
    return false;
  }
  *phys = w.phys;
  if (global) *global = w.global;
  return true;
}

bool ShadowMmu::shadowed_address(uint32_t linear, bool write, bool user, uint64_t* phys) {
  const uint32_t e = current_->shadow[linear >> 12];
  if (!(e & entry::kMapped) || (e & (entry::kUnassigned | entry::kMmio))) return false;
  const bool allowed =
      user ? ((e & entry::kUser) && (!write || ((e & entry::kUserWrite) && (e & entry::kDirty))))
           : (!write || ((e & entry::kSupWrite) && (e & entry::kDirty)));
  if (!allowed) return false;
  *phys = (uint64_t{e & entry::kPhysMask} << 12) | (linear & 0xfff);
  ++stats_.shadow_translations;
  return true;
}

uint8_t* ShadowMmu::mapped_ram(uint32_t linear, unsigned size, bool write, bool user) {
  if ((linear & 0xfff) + size > 0x1000) return nullptr;
  uint64_t pa = linear & a20_mask_;
  if (paging_ && !shadowed_address(linear, write, user, &pa)) return nullptr;
  if (!ram_.contains(pa, size) || (!firmware_windows_.empty() && firmware_window(pa))) {
    return nullptr;
  }
  return ram_.host_base() + pa;
}

const uint32_t* ShadowMmu::shadow_entries() const {
  return current_->shadow;
}

uint32_t ShadowMmu::probe_required(bool write, bool user) {
  // Reads need the page in the window; writes also the guest's write right and D bit (the
  // first write sets D through a fault, Intel SDM Vol. 3A §4.8).
  uint32_t bits = entry::kMapped | (user ? entry::kInUser | entry::kUser : entry::kInSup);
  if (write) bits |= entry::kDirty | (user ? entry::kUserWrite : entry::kSupWrite);
  return bits;
}

bool ShadowMmu::probe_passes(uint32_t linear, bool write, bool user) const {
  if (!paging_) return true;
  const uint32_t need = probe_required(write, user);
  return (current_->shadow[linear >> 12] & need) == need;
}

std::optional<uint32_t> ShadowMmu::probe_physical(uint32_t linear) {
  if (!paging_) return linear & a20_mask_;
  const WalkResult w = probe(*phys_, mode_, linear);
  if (!w.ok || (w.phys >> 32)) return std::nullopt;
  return static_cast<uint32_t>(w.phys);
}

void ShadowMmu::invlpg(uint32_t) {
  // Every page table a shadow derives from is traced, so a PTE change has already dropped what
  // it affected (Intel SDM Vol. 3A §4.10.4.1 allows a TLB to be more coherent than required).
  ++stats_.invlpg;
}

}  // namespace vmbt
