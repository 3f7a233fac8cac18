#include "shadow_mmu/shadow_mmu.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "vmm/cpu_state.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {

namespace {

constexpr uint32_t kPages = 1u << 20;  ///< 4 KiB pages in the 4 GiB linear space
constexpr uint32_t kIdentityCr3 = ShadowMmu::kIdentitySpace;

/// Why a guest-physical page is write-protected in every window mapping it.
namespace protect {
constexpr uint8_t kCode = 1;       ///< holds translated code (self-modifying-code detection)
constexpr uint8_t kPageTable = 2;  ///< a page directory or page table the shadows derive from
}  // namespace protect

/// A shadow entry: what the guest's tables said when the page was filled.
namespace entry {
constexpr uint32_t kPhysMask = 0x000fffff;
constexpr uint32_t kMapped = 1u << 20;
constexpr uint32_t kSupWrite = 1u << 21;   ///< supervisor writes allowed (R/W, or CR0.WP=0)
constexpr uint32_t kUser = 1u << 22;       ///< user access allowed (U/S=1 at both levels)
constexpr uint32_t kUserWrite = 1u << 23;  ///< user writes allowed
constexpr uint32_t kDirty = 1u << 24;      ///< the guest's D bit is set
}  // namespace entry

class RamPhys final : public PhysAccess {
 public:
  explicit RamPhys(GuestMemory& ram) : ram_(ram) {}
  bool read32(uint32_t pa, uint32_t* v) override { return ram_.read(pa, v, 4); }
  bool write32(uint32_t pa, uint32_t v) override { return ram_.write(pa, &v, 4); }

 private:
  GuestMemory& ram_;
};

}  // namespace

struct ShadowMmu::Space {
  uint32_t cr3_base = 0;
  uint32_t generation = 1;
  uint64_t last_used = 0;
  LinearWindow sup, user;
  uint32_t* shadow = nullptr;  ///< kPages entries, lazily committed anonymous memory

  Space() {
    void* p = mmap(nullptr, kPages * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw Error("cannot allocate a shadow page table");
    shadow = static_cast<uint32_t*>(p);
  }
  ~Space() { munmap(shadow, kPages * sizeof(uint32_t)); }
  void clear_shadow() { madvise(shadow, kPages * sizeof(uint32_t), MADV_DONTNEED); }
};

ShadowMmu::ShadowMmu(GuestMemory& ram, std::function<void(uint32_t)> on_code_write,
                     std::function<void(uint32_t)> on_mappings_dropped)
    : ram_(ram),
      on_code_write_(std::move(on_code_write)),
      on_mappings_dropped_(std::move(on_mappings_dropped)),
      phys_(std::make_unique<RamPhys>(ram)),
      protection_(ram.size() / LinearWindow::kPage, 0) {
  identity_ = space_for(kIdentityCr3);
  current_ = identity_;
}

ShadowMmu::~ShadowMmu() = default;

size_t ShadowMmu::spaces_live() const {
  return spaces_.size();
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
    reset_space(*victim);
  } else {
    spaces_.push_back(std::make_unique<Space>());
    victim = spaces_.back().get();
  }
  victim->cr3_base = cr3_base;
  victim->last_used = ++clock_;
  ++stats_.spaces_created;
  return victim;
}

uint32_t ShadowMmu::space_id() const {
  return current_->cr3_base;
}

void ShadowMmu::reset_space(Space& space) {
  on_mappings_dropped_(space.cr3_base);
  space.sup.unmap_pages(0, kPages);
  space.user.unmap_pages(0, kPages);
  space.clear_shadow();
  ++space.generation;
  ++stats_.flushes;
}

void ShadowMmu::set_mode(const VcpuState& s) {
  bool paging = (s.cr0 & cr0::kPg) && (s.cr0 & cr0::kPe);
  PagingMode m;
  m.cr3 = s.cr3 & 0xfffff000u;
  m.pse = s.cr4 & cr4::kPse;
  m.wp = s.cr0 & cr0::kWp;
  m.pge = s.cr4 & cr4::kPge;
  // Changes that alter what every existing shadow means (WP, PSE) flush all of them; PGE only
  // changes TLB retention, which shadows kept coherent by tracing do not depend on.
  if (paging_ && paging && (m.pse != mode_.pse || m.wp != mode_.wp)) flush_all();
  Space* before = current_;
  paging_ = paging;
  mode_ = m;
  current_ = paging ? space_for(m.cr3) : identity_;
  if (current_ != before) ++stats_.space_switches;
}

uint8_t* ShadowMmu::window_base(unsigned cpl) const {
  if (!paging_) return current_->sup.base();
  return cpl == 3 ? current_->user.base() : current_->sup.base();
}

void ShadowMmu::flush_all() {
  for (auto& s : spaces_) reset_space(*s);
  rmap_.clear();
  pt_users_.clear();
  pd_users_.clear();
  for (auto& p : protection_) p &= ~protect::kPageTable;
}

void ShadowMmu::apply(Space& space, uint32_t lin_page) {
  uint32_t e = space.shadow[lin_page];
  uint32_t phys = e & entry::kPhysMask;
  bool locked = phys < protection_.size() && protection_[phys] != 0;
  bool dirty = e & entry::kDirty;
  bool sup_w = (e & entry::kSupWrite) && dirty && !locked;
  bool user_w = (e & entry::kUserWrite) && dirty && !locked;
  auto map = [&](LinearWindow& w, bool writable) {
    if (!w.map_page(ram_, lin_page, phys, writable)) {
      throw Error("internal: shadow MMU mapped a page outside guest RAM");
    }
  };
  try {
    map(space.sup, sup_w);
    if (paging_ && (e & entry::kUser)) map(space.user, user_w);
  } catch (const Error&) {
    // Most likely the host's limit on mappings (vm.max_map_count): free the other spaces'.
    for (auto& s : spaces_) {
      if (s.get() != &space) reset_space(*s);
    }
    map(space.sup, sup_w);
    if (paging_ && (e & entry::kUser)) map(space.user, user_w);
  }
}

void ShadowMmu::fill(Space& space, uint32_t lin_page, const WalkResult& w) {
  uint32_t phys = w.page_base >> 12;
  uint32_t e = phys | entry::kMapped;
  if (w.sup_write_ok) e |= entry::kSupWrite;
  if (w.user_ok) e |= entry::kUser;
  if (w.user_write_ok) e |= entry::kUserWrite;
  if (w.dirty) e |= entry::kDirty;
  space.shadow[lin_page] = e;
  apply(space, lin_page);
  auto& maps = rmap_[phys];
  if (maps.size() > 32) {
    std::erase_if(maps, [&](const Mapping& m) {
      return m.generation != m.space->generation ||
             (m.space->shadow[m.lin_page] & (entry::kPhysMask | entry::kMapped)) !=
                 (phys | entry::kMapped);
    });
  }
  maps.push_back({&space, space.generation, lin_page});
  if (space.cr3_base == kIdentityCr3) return;
  // Trace the structures this translation came from.
  uint32_t pd_page = w.pde_addr >> 12;
  auto& pd = pd_users_[pd_page];
  if (std::none_of(pd.begin(), pd.end(), [&](const Mapping& m) {
        return m.space == &space && m.generation == space.generation;
      })) {
    pd.push_back({&space, space.generation, 0});
  }
  protect(pd_page, protect::kPageTable);
  if (!w.large) {
    uint32_t pt_page = w.pte_addr >> 12;
    uint32_t pde_index = lin_page >> 10;
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
  auto it = rmap_.find(phys_page);
  if (it == rmap_.end()) return;
  auto& maps = it->second;
  std::erase_if(maps, [&](const Mapping& m) {
    return m.generation != m.space->generation ||
           (m.space->shadow[m.lin_page] & (entry::kPhysMask | entry::kMapped)) !=
               (phys_page | entry::kMapped);
  });
  for (const Mapping& m : maps) apply(*m.space, m.lin_page);
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

void ShadowMmu::resume_tracing() {
  uint32_t page = suspended_;
  suspended_ = UINT32_MAX;
  if (page == UINT32_MAX) return;
  auto live = [](const std::vector<Mapping>& users) {
    return std::any_of(users.begin(), users.end(),
                       [](const Mapping& m) { return m.generation == m.space->generation; });
  };
  auto pt = pt_users_.find(page);
  auto pd = pd_users_.find(page);
  if ((pt != pt_users_.end() && live(pt->second)) || (pd != pd_users_.end() && live(pd->second))) {
    protect(page, protect::kPageTable);
  }
}

void ShadowMmu::unmap_range(Space& space, uint32_t first_page, uint32_t count) {
  on_mappings_dropped_(space.cr3_base);
  space.sup.unmap_pages(first_page, count);
  space.user.unmap_pages(first_page, count);
  std::memset(space.shadow + first_page, 0, count * sizeof(uint32_t));
}

void ShadowMmu::drop_derived(uint32_t phys_page) {
  if (auto it = pt_users_.find(phys_page); it != pt_users_.end()) {
    for (const Mapping& m : it->second) {
      if (m.generation != m.space->generation) continue;
      unmap_range(*m.space, m.lin_page << 10, 1024);
      ++stats_.ranges_dropped;
    }
    pt_users_.erase(it);
  }
  if (auto it = pd_users_.find(phys_page); it != pd_users_.end()) {
    for (const Mapping& m : it->second) {
      if (m.generation != m.space->generation) continue;
      reset_space(*m.space);
    }
    pd_users_.erase(it);
  }
  unprotect(phys_page, protect::kPageTable);
}

void ShadowMmu::note_phys_write(uint32_t phys_page) {
  if (phys_page >= protection_.size() || protection_[phys_page] == 0) return;
  if (protection_[phys_page] & protect::kCode) {
    on_code_write_(phys_page);
    unprotect(phys_page, protect::kCode);
  }
  if (protection_[phys_page] & protect::kPageTable) drop_derived(phys_page);
}

ShadowMmu::FillResult ShadowMmu::walk_into(Space& space, uint32_t linear, const Access& access,
                                           uint32_t* error_code) {
  uint32_t lin_page = linear >> 12;
  if (!paging_) {
    if (!ram_.contains(uint64_t{lin_page} << 12, LinearWindow::kPage)) return kNoRam;
    WalkResult w;
    w.ok = true;
    w.page_base = lin_page << 12;
    w.sup_write_ok = w.user_ok = w.user_write_ok = w.dirty = true;
    fill(space, lin_page, w);
    return kFilled;
  }
  WalkResult w = walk(*phys_, mode_, linear, access);
  if (!w.ok) {
    *error_code = w.error_code;
    return kGuestFault;
  }
  if (!ram_.contains(w.page_base, LinearWindow::kPage)) return kNoRam;
  fill(space, lin_page, w);
  return kFilled;
}

ShadowMmu::Fault ShadowMmu::handle_host_fault(const void* host, bool write) {
  Fault f;
  Space* space = nullptr;
  bool user_window = false;
  uint32_t linear = 0;
  for (auto& s : spaces_) {
    if (s->sup.contains(host, &linear)) {
      space = s.get();
      break;
    }
    if (s->user.contains(host, &linear)) {
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

  if (!(e & entry::kMapped) || (user_window && !(e & entry::kUser))) {
    uint32_t err = 0;
    FillResult r = walk_into(*space, linear, access, &err);
    if (r == kFilled) {
      ++stats_.hidden_faults;
      f.kind = Fault::kRetry;
      return f;
    }
    if (r == kNoRam) {
      f.kind = Fault::kOutsideRam;
      return f;
    }
    ++stats_.true_faults;
    f.kind = Fault::kPageFault;
    f.error_code = err;
    return f;
  }
  // A write to a page mapped read-only: a guest protection fault, its D bit, a traced page table,
  // or translated code.
  uint32_t phys = e & entry::kPhysMask;
  if (paging_) {
    WalkResult w = walk(*phys_, mode_, linear, access);
    if (!w.ok) {
      ++stats_.true_faults;
      f.kind = Fault::kPageFault;
      f.error_code = w.error_code;
      return f;
    }
    if ((w.page_base >> 12) != phys) {  // the entry was stale: refill from the walk
      fill(*space, lin_page, w);
      ++stats_.hidden_faults;
      f.kind = Fault::kRetry;
      return f;
    }
    if (!(e & entry::kDirty)) ++stats_.dirty_faults;
    fill(*space, lin_page, w);
  }
  f.kind = Fault::kRetry;
  if (phys < protection_.size() && protection_[phys]) {
    // The store must complete before the page is protected again, but re-running it would
    // re-derive the mappings (and the protection) when it writes through a translation that
    // the page itself provides: the engine runs it alone with tracing suspended.
    if (protection_[phys] & protect::kCode) ++stats_.code_write_faults;
    if (protection_[phys] & protect::kPageTable) ++stats_.tracing_faults;
    resume_tracing();
    suspended_ = phys;
    note_phys_write(phys);
    f.kind = Fault::kSingleStep;
  }
  return f;
}

bool ShadowMmu::translate(uint32_t linear, const Access& access, uint32_t* phys,
                          uint32_t* error_code) {
  if (!paging_) {
    *phys = linear;
    return true;
  }
  WalkResult w = walk(*phys_, mode_, linear, access);
  if (!w.ok) {
    *error_code = w.error_code;
    return false;
  }
  *phys = w.phys;
  return true;
}

void ShadowMmu::invlpg(uint32_t linear) {
  if (!paging_) return;
  unmap_range(*current_, linear >> 12, 1);
}

}  // namespace vmbt
