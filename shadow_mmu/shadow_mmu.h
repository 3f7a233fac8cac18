// Shadow page tables: guest address spaces as host address-space windows, kept coherent by
// write-tracing the guest's page tables.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "shadow_mmu/linear_window.h"
#include "shadow_mmu/page_walker.h"
#include "vmm/engine.h"

namespace vmbt {

class GuestMemory;
class Stats;
struct VcpuState;

/// Counters of the shadow MMU (all since creation).
struct ShadowMmuStats {
  uint64_t hidden_faults = 0;         ///< shadow miss with a valid guest mapping: filled, retried
  uint64_t hidden_faults_user = 0;    ///< of those, through the user view (CPL 3)
  uint64_t unassigned_evictions = 0;  ///< batches of all-ones pages unmapped (kMaxUnassignedPages)
  uint64_t mapping_limit_resets = 0;  ///< spaces reset to stay under vm.max_map_count
  uint64_t wp_revocations = 0;        ///< spaces whose WP=0 write rights were taken back
  uint64_t shadow_translations = 0;   ///< monitor translations answered by a shadow entry
  uint64_t hidden_faults_other_window = 0;  ///< of those, mapped already in the other view
  uint64_t true_faults = 0;                 ///< the guest's own page fault, delivered to it
  uint64_t tracing_faults = 0;              ///< the guest wrote a traced page-table page
  uint64_t dirty_faults = 0;                ///< first write to a clean page (the guest's D bit set)
  uint64_t code_write_faults = 0;           ///< a write to a page holding translated code
  uint64_t flushes = 0;         ///< whole-space resets (CR0.WP/CR4 changes, PD writes, evictions)
  uint64_t space_switches = 0;  ///< CR3 loads that changed the current space
  uint64_t spaces_created = 0;
  uint64_t ranges_dropped = 0;     ///< 4 MiB ranges unmapped after a page-table write
  uint64_t invlpg = 0;             ///< INVLPG executed (no work: tracing keeps shadows exact)
  uint64_t unassigned_fills = 0;   ///< pages with no RAM behind them mapped to the all-ones page
  uint64_t unassigned_writes = 0;  ///< stores to such pages (discarded)
  uint64_t mmio_faults = 0;        ///< accesses to MMIO windows, emulated by the monitor
  uint64_t unshadowed_tables = 0;  ///< page tables no longer traced after a flood of writes
  uint64_t table_writes = 0;  ///< traced page-table stores translated code made via the monitor
  uint64_t prefetched = 0;    ///< pages filled when the guest wrote their PTE (no walk later)
  uint64_t prefetch_runs_used = 0;       ///< runs of prefetched pages mapped at a first use
  uint64_t prefetch_runs_forgotten = 0;  ///< runs never used: dropped, or the oldest of too many
  uint64_t large_fills = 0;              ///< 4 MiB pages mapped whole on their first hidden fault
  uint64_t global_prefills = 0;  ///< global 4 KiB pages mapped along with a faulting neighbour
  uint64_t spaces_recycled = 0;  ///< new address spaces that kept part of an evicted one's shadows
  uint64_t ranges_kept = 0;      ///< present 4 MiB ranges (PDEs) they kept
  uint64_t downgrades = 0;       ///< mappings kept with fewer rights after a PTE write (R/W, D)
};

/// The shadow MMU of the bt engine (Intel SDM Vol. 3A ch. 4 semantics, VMware/KVM shadow-paging
/// structure; see docs/shadow-mmu.md).
///
/// Each guest address space (a CR3 value; or the identity map while CR0.PG=0) is a pair of host
/// windows over guest RAM: one with the supervisor view (every present page; writable when R/W=1
/// or CR0.WP=0) and one with the user view (only U/S=1 pages; writable when R/W=1). Translated
/// code at CPL3 runs on the user window, otherwise on the supervisor window, so U/S and R/W are
/// enforced by the host MMU. Windows fill lazily: a host fault is a hidden fault (the guest
/// mapping is valid: map it and retry) or a true fault (deliver #PF). A page is mapped read-only
/// until the guest's D bit is set, and while its guest-physical page holds page tables we walked
/// (tracing) or translated code (self-modifying-code detection). A write to a traced page-table
/// page drops every mapping derived from it. Up to kMaxSpaces address spaces are kept, so
/// switching back to a recent CR3 finds its shadows intact.
class ShadowMmu {
 public:
  static constexpr unsigned kMaxSpaces = 8;

  /// `on_code_write(phys_page)`: translated code on that guest-physical page must be dropped.
  /// `on_mappings_dropped(space_id, first_page, pages, global)`: linear pages of that space were
  /// unmapped (the engine's indirect-branch table for it, keyed by linear address, must forget
  /// blocks there). `global` is false when only that space's own translations changed (its page
  /// directory was written): global translations then survive, as in a TLB (Intel SDM Vol. 3A
  /// §4.10.2.4); true when a page-table entry changed, which may be a global page's.
  using DropHook =
      std::function<void(uint32_t space_id, uint32_t first_page, uint32_t pages, bool global)>;
  ShadowMmu(GuestMemory& ram, std::function<void(uint32_t)> on_code_write,
            DropHook on_mappings_dropped);
  ~ShadowMmu();

  /// Adopts the paging state of `s` (CR0.PG/WP, CR3, CR4.PSE/PGE/PAE, IA32_EFER.NXE and the PDPTE
  /// registers of PAE paging, Intel SDM Vol. 3A §4.1, §4.4.1); call after any change. A change of
  /// CR4.PSE, CR4.PAE or EFER.NXE changes what every shadow means: all spaces are reset. With PAE
  /// paging a space is keyed by CR3 bits 31:5 (the PDPT), and PDPTE registers that differ from
  /// those its shadows derive from (a MOV CR3 that reloaded a rewritten PDPT) drop the ranges
  /// whose page-directory entries now differ.
  void set_mode(const VcpuState& s);
  /// Loads the PDPTE registers for CR3 value `cr3` from guest RAM as MOV CR3 and the other load
  /// events of Intel SDM Vol. 3A §4.4.1 do (page_walker.h load_pdptes); false for the #GP (a
  /// present PDPTE with a reserved bit, a PDPT outside RAM), leaving `*pdpte` alone.
  bool load_pdptes(uint32_t cr3, std::array<uint64_t, 4>* pdpte);
  bool paging() const { return paging_; }
  /// Identifies the current address space: its CR3 page-directory base (32-bit paging) or PDPT
  /// base (PAE paging, CR3 bits 31:5), or kIdentitySpace.
  uint32_t space_id() const;
  static constexpr uint32_t kIdentitySpace = UINT32_MAX;
  /// Base of the window translated code uses at privilege level `cpl`.
  uint8_t* window_base(unsigned cpl) const;

  /// What a host fault at `host` in translated code means.
  struct Fault {
    enum Kind {
      kRetry,       ///< resolved (hidden fault, D bit, page-table tracing): run it again
      kSingleStep,  ///< a store into a page with translated code or traced page tables: what
                    ///< derived from the page is dropped and the page is writable until
                    ///< resume_tracing(); run the faulting instruction alone, then resume
      kPageFault,   ///< the guest's own #PF: deliver it
      kMmio,        ///< an access to a device's MMIO window at `phys`: the monitor emulates it
      kNotWindow,   ///< not an address in any window
    } kind = kNotWindow;
    uint32_t linear = 0;
    uint32_t error_code = 0;   ///< for kPageFault (Intel SDM Vol. 3A §4.7)
    bool code_write = false;   ///< for kSingleStep: the page held translated code
    bool table_write = false;  ///< for kSingleStep: the page is a traced page table
    bool watched = false;      ///< for kSingleStep: a debugger watches the frame (an access to
                               ///< it runs alone; set_watched_pages)
    uint64_t phys = 0;         ///< for kMmio: the guest-physical address accessed
  };
  Fault handle_host_fault(const void* host, bool write);

  /// The monitor's RAM bytes at `linear` for a `size`-byte access within one page, when no
  /// walk is needed to find them: paging off, or the current space's shadow maps the page already
  /// with the rights of a `write`/`user` access (its entry is what a walk would find, A and D
  /// set: translate() would give the same frame), and the bytes are plain RAM (no firmware
  /// window, MMIO or unassigned address). nullptr otherwise: translate() then. One call for the
  /// monitor's frequent small accesses (exception frames, descriptors, IRET's pops).
  uint8_t* mapped_ram(uint32_t linear, unsigned size, bool write, bool user);

  /// Access probes (docs/bt.md "Access probes"): translated code reads the current address
  /// space's shadow entries (one uint32_t per 4 KiB linear page, 2^20 of them; valid until the
  /// current space changes: the engine reloads it with the window base) and lets an access run
  /// when every bit of probe_required() is set in its page's entry: the page is then mapped in
  /// that window with that access's rights (a host fault remains possible, for a traced page
  /// table, translated code, a device page or a mapping still on its way: the host fault path
  /// takes those as before). The bits lie in 20-27 and 29-31 only. A prefetched page whose host
  /// mapping waits for its first use lacks its window's bit, so its probe calls the monitor.
  const uint32_t* shadow_entries() const;
  static uint32_t probe_required(bool write, bool user);
  /// Whether the current space's shadow entry for `linear` has every probe_required() bit for a
  /// `write`/`user` access (always with paging off: no probe is translated then, and the host
  /// fault path stays correct for any access let through).
  bool probe_passes(uint32_t linear, bool write, bool user) const;
  /// (`global`: the translation is global, G=1 with CR4.PGE: the same in every address space,
  /// which the architecture lets a TLB assume, Intel SDM Vol. 3A §4.10.2.4.)
  /// Translates for the monitor's own access (emulated instructions, instruction fetch), with
  /// the rights of `access` (a fetch from an execute-disabled page faults, §4.6.1), setting A/D
  /// bits; false with the #PF error code on failure. `*phys` may lie at or above 4 GiB with PAE
  /// paging: no RAM is there for this machine (reads all ones, fetches #UD).
  bool translate(uint32_t linear, const Access& access, uint64_t* phys, uint32_t* error_code,
                 bool* global = nullptr);
  /// The guest-physical address `linear` maps to in the guest's tables as they are, without
  /// rights checks or accessed/dirty updates (a debugger's view, page_walker.h probe());
  /// nullopt when not present or at or above 4 GiB (PAE). With paging off, `linear` itself.
  std::optional<uint32_t> probe_physical(uint32_t linear);
  /// Tells the MMU the monitor is about to write `len` bytes at guest-physical `phys_addr` (within
  /// one page): translated code there is dropped, and so is every mapping derived from the
  /// page-table entries written.
  void note_phys_write(uint32_t phys_addr, uint32_t len);
  /// A store that translated code performs on guest RAM through the monitor's own mapping
  /// (adaptive translation of an instruction that writes traced page tables, docs/bt.md): call
  /// begin before it with the guest-physical address and size (within one page), end after it.
  /// Translated code on the page is dropped at begin; at end, what derived from the entries the
  /// store changed in a way a TLB could not keep (Intel SDM Vol. 3A §4.10.4.2: frame, P, R/W,
  /// U/S, PS, or A/D cleared) is dropped, as a tracing fault would, without one. A table written
  /// this way kFloodWrites times in a row with no fill through it is no longer traced.
  void begin_table_write(uint32_t phys_addr, unsigned len);
  void end_table_write();
  /// Write-protects `phys_page` in every window because it holds translated code.
  void protect_code(uint32_t phys_page);
  /// A debugger's watchpoints: the guest-physical pages `write_pages` stay read-only in every
  /// window, `access_pages` inaccessible; a store into the first, or any access to the second,
  /// is a kSingleStep fault with `watched` (the engine runs the instruction alone, then decides
  /// whether it touched a watched range). Replaces the previous sets.
  void set_watched_pages(const std::vector<uint32_t>& write_pages,
                         const std::vector<uint32_t>& access_pages);
  /// Ends the writable interval granted by a kSingleStep fault: the page is traced again if any
  /// shadow mapping derived from it since. Also takes away a scratch page mapped for MMIO.
  void resume_tracing();

  /// Guest-physical addresses for which this returns true belong to MMIO devices: accesses to them
  /// are reported as kMmio faults instead of reading all ones.
  void set_mmio_predicate(std::function<bool(uint64_t)> is_mmio) { is_mmio_ = std::move(is_mmio); }
  /// For emulating one MMIO access: maps a scratch page at `linear`'s page (read-only or
  /// writable) in the current space until resume_tracing(); scratch() is its content.
  void map_scratch(uint32_t linear, bool writable);
  uint8_t* scratch() { return unassigned_host_ + LinearWindow::kPage; }
  /// INVLPG: nothing to do, since shadows are never staler than the guest's tables (counted).
  void invlpg(uint32_t linear);
  /// Forgets every shadow mapping of every space.
  void flush_all();

  /// The firmware's memory windows over guest-physical memory (Engine::set_memory_windows: the
  /// BIOS ROM and the PAM-switched BIOS area, sorted, page aligned, all read-only): replaces the
  /// previous set and forgets every shadow mapping. A window page whose host memory is the RAM
  /// at the same address is mapped read-only (its writes are kMmio faults, for the device that
  /// decides whether they land); any other window page is MMIO: reads and writes are the
  /// device's (vmm/machine/firmware_memory.h), and readable() gives its bytes for code fetch and
  /// the monitor.
  void set_firmware_windows(std::vector<MemoryWindow> windows);
  /// Host bytes a read of guest-physical `pa` sees (RAM, or a firmware window's host memory),
  /// with `*avail` set to how many follow in the same page and memory; nullptr where nothing is
  /// (all ones).
  const uint8_t* readable(uint64_t pa, unsigned* avail) const;
  /// The A20 gate: while it is off, physical address bit 20 is 0 for every address translated
  /// with paging off (real mode and unpaged protected mode wrap at 1 MiB, as on a PC); forgets
  /// every shadow mapping when it changes. With paging on, A20 is not applied (no paged OS
  /// runs with it off).
  void set_a20(bool enabled);
  /// Whether `pa` lies in a firmware window (its writes are the device's, not RAM's).
  bool in_firmware_window(uint64_t pa) const { return firmware_window(pa) != nullptr; }

  /// How many host mappings (VMAs, each page mapped on its own is one) all spaces may hold
  /// together before the least recently used are reset: three quarters of vm.max_map_count by
  /// default (read at start-up). Tests set a small one to reach the bound quickly.
  void set_host_map_budget(uint64_t mappings) { host_map_budget_ = mappings; }
  const ShadowMmuStats& stats() const { return stats_; }
  /// Adds the counters to `stats` under `prefix` ("bt.shadow.").
  void collect_stats(Stats& stats, const std::string& prefix) const;
  size_t spaces_live() const;

 private:
  struct Space;
  Space* space_for(uint32_t cr3_base);
  void reset_space(Space& space);
  /// Gives an evicted space to the address space `cr3_base`; resync_directory then keeps the
  /// shadows of the 4 MiB ranges whose page-directory entry both share (a kernel's half).
  void recycle_space(Space& space, uint32_t cr3_base);
  /// A space becomes current: drops the ranges whose page-directory entry changed since their
  /// shadows were derived, and traces its directory.
  void resync_directory(Space& space);
  /// Drops page-directory entries [first, first + count) of `space`: their 4 MiB ranges (2 MiB
  /// with PAE paging, where entry i is PDE i % 512 under PDPTE i / 512).
  void drop_directory_range(Space& space, uint32_t first, uint32_t count);
  /// What is behind a guest-physical page. kRom: a firmware window's read-only file (the BIOS
  /// ROM), mapped like an all-ones page (entry::kUnassigned) but from the window's file, with the
  /// frame kept in the entry to find it; its writes are the device's (kMmio faults).
  enum class Backing { kRam, kUnassigned, kMmio, kRom };
  /// Records and maps a translation; `window` is the window bit (first copy) that needs it now.
  /// `prefetching`: the host mapping may be deferred into a run (defer_prefetch).
  void fill(Space& space, uint32_t lin_page, const WalkResult& w, Backing backing, uint32_t window,
            bool prefetching = false);
  void unmap_windows(Space& space, uint32_t lin_page, uint32_t entry_bits);
  Backing backing_of(uint64_t page_base) const;
  /// Maps `lin_page` in the windows its shadow entry names, with the rights it gives. `mapped`:
  /// the windows that map this very page already (their protection is changed instead).
  void apply(Space& space, uint32_t lin_page, bool prefetching = false, uint32_t mapped = 0);
  /// Prefetched pages whose host mapping waits for a use: consecutive linear pages over
  /// consecutive frames of one window, with one protection. Their shadow entries are filled
  /// (kMapped and the rights) without the window's bit, so an access to one reaches the monitor
  /// (translated code's access probe fails on it, an unprobed access takes the host fault), which
  /// maps the whole run with one host call (map_pending_run). Every other change to such a page
  /// maps its run first (a fill, a protection change of its frame) or takes the page out of it
  /// (a drop), so only these two paths ever see a pending page. Most are never used (a kernel's
  /// fault-around installs 16 pages of a file for the one that faulted): those cost a shadow entry
  /// only.
  struct PendingRun {
    Space* space = nullptr;
    uint32_t generation = 0, lin_first = 0, phys_first = 0, count = 0, window = 0;
    bool writable = false;
  };
  std::vector<PendingRun> pending_runs_;  ///< oldest first
  /// Runs waiting at once; the oldest is forgotten beyond (its entries cleared: a use walks).
  static constexpr size_t kMaxPendingRuns = 64;
  static constexpr uint32_t kMaxPendingRun = 1024;
  /// Adds prefetched `lin_page` (its shadow entry filled) to the newest pending run, or starts a
  /// new one; false when it must be mapped at once (not RAM, or in more than one window).
  bool defer_prefetch(Space& space, uint32_t lin_page);
  /// Maps pending run `index` (and removes it from the list).
  void map_pending_run(size_t index);
  /// Maps the pending runs of `space` that overlap linear pages [first, first + count), before
  /// their entries change.
  void map_pending_runs(const Space& space, uint32_t first, uint32_t count);
  /// Maps the pending runs over guest-physical page `phys_page`, before its protection changes.
  void map_pending_frame(uint32_t phys_page);
  /// Maps every pending run `pred` holds true for (prefetch.cpp only).
  template <typename Pred>
  void map_pending_runs_where(Pred pred);
  /// Forgets the oldest pending runs beyond kMaxPendingRuns.
  void forget_oldest_pending_runs();
  /// Linear pages [first, first + count) of `space` are dropped: their pages leave the pending
  /// runs (nothing was mapped for them; their entries are cleared), and what a run had outside
  /// the range stays pending, as one or two runs.
  void drop_pending_runs(const Space& space, uint32_t first, uint32_t count);
  /// The index of the pending run of `space` holding linear page `lin_page` of `window`
  /// (entry::kInSup or kInUser), or -1.
  int pending_run_index(const Space& space, uint32_t lin_page, uint32_t window) const;
  void add_reverse_mapping(Space& space, uint32_t lin_page, uint32_t phys);
  /// Records an all-ones page mapped in `space`, unmapping the older ones beyond the bound.
  void note_unassigned(Space& space, uint32_t lin_page);
  /// CR0.WP was set: the pages filled supervisor-writable while it was clear become read-only
  /// again in every space (a space that had too many, or runs, is reset instead).
  void revoke_wp_writes();
  static constexpr size_t kMaxWpPages = 4096;
  /// Keeps the host mappings of all spaces under host_map_budget_ (before mapping `lin_page`
  /// of `space`): resets spaces, this one last.
  void make_room(Space& space, uint32_t lin_page);
  /// Host mappings all spaces may hold (Space::host_maps, summed) before make_room resets some:
  /// three quarters of vm.max_map_count (read at start-up), the rest left to vmbt's own.
  uint64_t host_map_budget_ = 48000;
  static constexpr size_t kMaxUnassignedPages = 1024;
  /// A hidden fault in a 4 MiB page of the supervisor view (a kernel's direct map): maps all of
  /// it with one host call when none of it is mapped yet; false when it cannot (then one page).
  bool fill_large(Space& space, uint32_t lin_page, const WalkResult& w);
  /// Walks `linear` in `space`: the current one through the guest's tables as the CPU does;
  /// any other through the page-directory entries its shadows were derived from, writing
  /// nothing (its directory may be gone and its page reused: DerivedDirectoryPhys).
  WalkResult walk_in(Space& space, uint32_t linear, const Access& access);
  void trace_walk(Space& space, uint32_t lin_page, const WalkResult& w);
  void protect(uint32_t phys_page, uint8_t reason);
  void unprotect(uint32_t phys_page, uint8_t reason);
  /// Sets the host protection of every mapping of `phys_page` from its shadow entry and
  /// protection_: in the current space now, in the others when they are current again.
  void remap_all(uint32_t phys_page);
  /// remap_all for the current space, deferring the others; or only for `only`.
  void remap(uint32_t phys_page, Space* only);
  void defer_protection(Space& space, uint32_t phys_page);
  /// The space is current: its deferred protection changes are made.
  void apply_deferred_protections(Space& space);
  static constexpr size_t kMaxDeferredProtections = 4096;
  /// Unmaps what derived from entries [first, first + count) of page-table page `phys_page`.
  void drop_entries(uint32_t phys_page, uint32_t first, uint32_t count);
  void unmap_range(Space& space, uint32_t first_page, uint32_t count, bool global = true);
  /// unmap_range without telling the engine (the caller has).
  void unmap_span(Space& space, uint32_t first_page, uint32_t count);
  enum FillResult { kFilled, kGuestFault };
  /// Makes `f` the guest's #PF with `error_code` (counted) and returns it.
  Fault page_fault(uint32_t error_code, Fault& f);
  /// Walks the guest's tables for the access; false (with `f` made a #PF) if they forbid it.
  bool guest_allows(uint32_t linear, const Access& access, Fault& f);
  FillResult walk_into(Space& space, uint32_t linear, const Access& access, uint32_t* error_code,
                       uint32_t window);
  PagingMode mode() const { return mode_; }

  GuestMemory& ram_;
  std::function<void(uint32_t)> on_code_write_;
  DropHook on_mappings_dropped_;
  std::unique_ptr<PhysAccess> phys_;
  std::vector<std::unique_ptr<Space>> spaces_;
  Space* current_ = nullptr;
  Space* identity_ = nullptr;
  bool paging_ = false;
  PagingMode mode_;
  uint64_t clock_ = 0;
  std::vector<uint8_t> protection_;        ///< per guest-physical page: why it is write-protected
  uint32_t suspended_ = UINT32_MAX;        ///< page left writable for one single-stepped store
  uint32_t watch_suspended_ = UINT32_MAX;  ///< a watched frame mapped as unwatched for one access
  std::vector<uint32_t> watched_pages_;    ///< set_watched_pages
  /// The frame's every access must fault (a debugger's access watchpoint, not suspended).
  bool access_watched(uint32_t phys_page) const;
  /// Gives the mappings of `lin_page` in `windows` (kInSup/kSupAlias/kInUser/kUserAlias bits)
  /// the host protection entry `e` calls for now: its writability, or none (access watched).
  void reprotect(Space& space, uint32_t lin_page, uint32_t windows, uint32_t e);
  /// Makes the page inaccessible in the windows (kInSup/kSupAlias/kInUser/kUserAlias bits).
  void revoke_windows(Space& space, uint32_t lin_page, uint32_t windows);
  /// Write-flood detection: consecutive tracing faults on one page with no fill through it.
  /// A page directory counts only stores that install an entry: an exiting process clears its
  /// user entries one by one, and unshadowing its directory would drop the kernel's half too,
  /// which the next address space in that space would keep (recycle_space).
  static constexpr unsigned kFloodWrites = 4;
  /// The current space's page directory: the only one traced (the others are compared when
  /// they are current again).
  bool is_current_directory(uint32_t page) const;
  /// Whether any live shadow derives from guest-physical page `page` (a page table of a space,
  /// or the current page directory): a write-protection for kPageTable without it is stale.
  bool shadows_derive_from(uint32_t page) const;
  /// A write hit `page`, protected as a page table: when no shadow derives from it any more, the
  /// protection is taken away (true) and the write needs nothing else.
  bool release_stale_tracing(uint32_t page);
  /// Whether the host may map a page with shadow entry `e` writable in the user view (`user`)
  /// or the supervisor view.
  bool host_writable(uint32_t e, bool user) const;
  /// The frame the current space's shadow maps `linear` to, with the byte offset, when its
  /// entry allows the access (`write`, `user`) as a walk would (A set; D set for a write): no
  /// walk is needed then. False for no entry, an unassigned or MMIO page, or fewer rights.
  bool shadowed_address(uint32_t linear, bool write, bool user, uint64_t* phys);
  /// Counts a store to traced table `page`; at kFloodWrites in a row it is no longer traced and
  /// what derived from it is dropped (then true).
  bool count_flood_write(uint32_t page);
  uint32_t flood_page_ = UINT32_MAX;
  unsigned flood_count_ = 0;
  std::array<uint8_t, 4096> suspended_copy_{};  ///< its entries before the store
  /// The monitor-performed table write between begin_table_write and end_table_write.
  struct TableWrite {
    uint32_t page = UINT32_MAX;     ///< guest-physical page, or UINT32_MAX when none is open
    uint32_t first = 0, count = 0;  ///< entries covered
    std::array<uint64_t, 3> before{};
  } table_write_;
  /// Unmaps what derived from the entries of `phys_page` that changed from `before` (first..)
  /// in a way that matters to a translation.
  void drop_changed(uint32_t phys_page, uint32_t first, const uint64_t* before, uint32_t count);
  /// Whether a PTE change from `before` to `after` only takes rights away (R/W, D) from the same
  /// present page (XD unchanged).
  static bool is_downgrade(uint64_t before, uint64_t after);
  /// Entry `index` of page table `pt_page` was downgraded: every mapping derived from it stays,
  /// with the rights a walk now gives (false when one could not be, to drop them all instead).
  bool downgrade_entries(uint32_t pt_page, uint32_t index);
  /// Entry `index` of page table `pt_page` changed from `before` to `pte`: maps, in the current
  /// space, the page it now maps when that is a new present, accessed translation or the page
  /// of the last true fault (awaited_).
  void prefetch(uint32_t pt_page, uint32_t index, uint64_t before, uint64_t pte);
  /// Geometry of the paging mode the shadows follow (mode_.pae; a change resets every space):
  /// log2 of the 4 KiB pages one page-directory entry maps (10: 4 MiB; PAE 9: 2 MiB), the
  /// entries in a paging-structure page (1024 of 4 bytes; PAE 512 of 8 bytes, §4.4.2).
  uint32_t dir_shift() const { return mode_.pae ? 9 : 10; }
  uint32_t table_entries() const { return mode_.pae ? 512 : 1024; }
  uint32_t entry_bytes() const { return mode_.pae ? 8 : 4; }
  /// Entry `index` of the paging-structure page at `table` (a host copy or guest RAM).
  uint64_t entry_of(const uint8_t* table, uint32_t index) const;
  /// Entry `index` of guest-physical page `page` (in RAM).
  uint64_t ram_entry(uint32_t page, uint32_t index) const;
  /// Whether directory entry `pde` maps a large page (PS with CR4.PSE, or PS with PAE paging).
  bool is_large(uint64_t pde) const;
  /// The page-directory pages of the current space, with the directory index (Space::derived_pde)
  /// of each one's entry 0: the page at CR3 (32-bit paging) or the one of each present PDPTE
  /// register (PAE paging). Returns how many.
  struct DirectoryPage {
    uint32_t page, first;
  };
  unsigned current_directories(std::array<DirectoryPage, 4>& out) const;
  /// Records whether `lin_page` of `space` is execute-disabled (WalkResult::nx).
  void set_nx(Space& space, uint32_t lin_page, uint32_t count, bool nx);
  /// The last true fault's page, which the guest's handler is expected to map.
  struct Awaited {
    Space* space = nullptr;
    uint32_t generation = 0, lin_page = 0, window = 0;
  } awaited_;
  /// Guest-physical addresses with no RAM behind them read all ones and drop writes, as on a PC
  /// bus where nothing decodes them: page 0 of this memfd is all ones (mapped read-only), page 1
  /// a scratch page a single-stepped store may write into (refilled with ones afterwards).
  std::function<bool(uint64_t)> is_mmio_;
  /// The window containing `pa`, or nullptr (set_firmware_windows).
  const MemoryWindow* firmware_window(uint64_t pa) const;
  /// Whether window `w` shows the guest RAM at its own addresses (a PAM segment read-only).
  bool shows_ram(const MemoryWindow& w) const;
  /// Whether RAM frame `phys` is mapped read-only by a firmware window.
  bool read_only_window_frame(uint32_t phys) const;
  /// The file and offset a kRom entry's frame `phys` maps (its firmware window's), or false.
  bool rom_file(uint32_t phys, int* fd, uint64_t* offset) const;
  std::vector<MemoryWindow> firmware_windows_;
  uint32_t a20_mask_ = ~0u;  ///< ~(1 << 20) while the A20 gate is off (set_a20)
  int unassigned_fd_ = -1;
  uint8_t* unassigned_host_ = nullptr;
  Space* scratch_space_ = nullptr;  ///< where the scratch page is mapped during a store
  uint32_t scratch_page_ = 0;
  /// Reverse map: guest-physical page -> (space, generation, linear page) mappings of it.
  struct Mapping {
    Space* space;
    uint32_t generation;
    uint32_t lin_page;
  };
  std::unordered_map<uint32_t, std::vector<Mapping>> rmap_;
  /// A run of linear pages mapped to consecutive guest-physical pages with one host call
  /// (fill_large, prefill_globals), listed here instead of page by page in rmap_.
  struct Run {
    Space* space;
    uint32_t generation;
    uint32_t lin_first, phys_first, count;
  };
  /// Reverse map of runs: 4 MiB guest-physical frame (phys page >> 10) -> runs overlapping it.
  std::unordered_map<uint32_t, std::vector<Run>> run_rmap_;
  /// Maps [lin_first, +count) to [phys_first, +count) in `space`'s supervisor window (shadow
  /// entries get `bits`), keeps protected pages read-only and records the run.
  void map_run(Space& space, uint32_t lin_first, uint32_t phys_first, uint32_t count, uint32_t bits,
               bool nx);
  /// A hidden fault on a global 4 KiB page of the supervisor view: maps every other present,
  /// accessed, global page of the same page table that is not mapped yet (a kernel's text and
  /// data, the same in every address space, Intel SDM Vol. 3A §4.10.2.4), in runs of
  /// consecutive frames, so a new address space does not fault on each of them.
  void prefill_globals(Space& space, uint32_t lin_page, const WalkResult& w);
  /// Page-table page -> (space, generation, PDE index) whose 4 MiB (PAE: 2 MiB) range it maps.
  std::unordered_map<uint32_t, std::vector<Mapping>> pt_users_;
  ShadowMmuStats stats_;
};

}  // namespace vmbt
