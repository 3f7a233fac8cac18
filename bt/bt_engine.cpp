// The bt engine's dispatcher: block lookup and chaining, callouts, faults, interrupts.
#include "bt/bt_engine.h"

#include <Zydis/Zydis.h>
#include <fmt/format.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "bt/fpu_class.h"
#include "bt/guest_operands.h"
#include "bt/host_fault_handler.h"
#include "bt/insn_policy.h"
#include "bt/legacy_ops.h"
#include "bt/masked_store.h"
#include "bt/segment_checks.h"
#include "vmm/cpu_model.h"
#include "vmm/error.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/irq.h"

namespace vmbt::bt {

namespace {

/// Guest EFLAGS bits that live in the host RFLAGS while translated code runs.
constexpr uint32_t kHostFlagBits = eflags::kArith | eflags::kDf;

/// The monitor's accesses for an instruction it executes, logged for the guest's data
/// breakpoints (all of a legacy instruction's accesses are its own: Intel SDM Vol. 3B §17.2.5).
class LoggingMemory final : public LinearMemory {
 public:
  LoggingMemory(LinearMemory& memory, std::vector<DataAccess>& log) : memory_(memory), log_(log) {}
  void read(uint32_t linear, void* dst, unsigned size, bool user) override {
    memory_.read(linear, dst, size, user);
    log_.push_back({linear, size, false});
  }
  void write(uint32_t linear, const void* src, unsigned size, bool user) override {
    memory_.write(linear, src, size, user);
    log_.push_back({linear, size, true});
  }

 private:
  LinearMemory& memory_;
  std::vector<DataAccess>& log_;
};

}  // namespace

BtEngine::BtEngine(GuestMemory& memory, InterruptSource& interrupts,
                   std::function<bool(uint64_t)> is_mmio)
    : memory_(memory),
      interrupts_(interrupts),
      ctx_(std::make_unique<BtContext>()),
      stubs_(Stubs::generate(cache_)),
      mmu_(
          memory, [this](uint32_t page) { code_page_written(page); },
          [this](uint32_t space, uint32_t first, uint32_t pages, bool global) {
            forget_indirect(space, first, pages, global);
          }),
      linear_memory_(memory, mmu_, s_),
      system_(linear_memory_, *this),
      translator_(cache_, stubs_, *this, *ctx_),
      tables_(reinterpret_cast<uint64_t>(stubs_.indirect_miss),
              reinterpret_cast<uint64_t>(stubs_.indirect_exit)) {
  ctx_->direct_call = &BtEngine::direct_call_entry;
  ctx_->engine = this;
  forget_cpuid_answers();
  if (is_mmio) mmu_.set_mmio_predicate(std::move(is_mmio));
  // A device's DMA into RAM bypasses the shadow mappings that protect translated code and traced
  // page tables: tell the shadow MMU, page by page, as a guest store would.
  memory_.set_dma_observer([this](uint64_t gpa, uint64_t len) {
    for (uint64_t at = gpa; at < gpa + len;) {
      const uint64_t page_end = (at | 0xfff) + 1;
      const uint64_t n = std::min(page_end, gpa + len) - at;
      if (at <= 0xffffffffu)
        mmu_.note_phys_write(static_cast<uint32_t>(at), static_cast<uint32_t>(n));
      at += n;
    }
  });
  translator_.on_flush = [this] {
    // Code pages stay write-protected until written once more; a write then finds no blocks.
    tables_.clear_all();
    entering_ = kicked_ = nullptr;
  };
  tsc_offset_ = 0;
}

BtEngine::~BtEngine() {
  memory_.set_dma_observer({});
  detach_host_fault_handler();
}

uint32_t BtEngine::table_mode(uint32_t flags) const {
  // One-off shapes (a single instruction, a segment access the monitor checked once) are never
  // entered in a table; fetch rights differ between CPL 3 and the rest.
  constexpr uint32_t kUserBit = 1u << 31;
  return (flags & ~(tb_flags::kSingleInstruction | tb_flags::kSegUnchecked)) |
         (s_.cpl() == 3 ? kUserBit : 0);
}

void BtEngine::forget_indirect(uint32_t space_id, uint32_t first_page, uint32_t pages,
                               bool global) {
  tables_.forget_pages(space_id, first_page, pages, global);
  // A whole space's tables are freed: the context must not keep probing one of them (it is
  // loaded again before translated code next runs from the dispatcher).
  if (first_page == 0 && pages >= (1u << 20)) select_tables(key_flags());
}

void BtEngine::set_state(const VcpuState& state) {
  s_ = state;
  // PAE paging with no PDPTE registers given (a state from the kvm engine, which keeps them in
  // KVM): loaded from the PDPT at CR3, as a VM entry loads them (Intel SDM Vol. 3C §26.3.2.4).
  if ((s_.cr0 & cr0::kPg) && (s_.cr4 & cr4::kPae) && s_.pdpte == std::array<uint64_t, 4>{}) {
    mmu_.load_pdptes(s_.cr3, &s_.pdpte);
  }
  mmu_.set_mode(s_);
  std::memcpy(ctx_->guest_fx.data(), s_.fxsave.data(), 512);
  uint16_t fcw;
  std::memcpy(&fcw, ctx_->guest_fx.data(), 2);
  if (fcw == 0) {  // no FPU state given: the FNINIT / power-up values (SDM Vol. 1 §8.1.1)
    uint16_t init_fcw = 0x37f;
    uint32_t mxcsr = 0x1f80;
    std::memcpy(ctx_->guest_fx.data(), &init_fcw, 2);
    std::memcpy(ctx_->guest_fx.data() + 24, &mxcsr, 4);
  }
  update_guest_breakpoints();
}

VcpuState BtEngine::state() {
  VcpuState s = s_;
  std::memcpy(s.fxsave.data(), ctx_->guest_fx.data(), 512);
  s.tsc = read_tsc();
  return s;
}

std::optional<uint64_t> BtEngine::read_platform_msr(uint32_t index) {
  return msrs_ ? msrs_->read(index, read_tsc()) : std::nullopt;
}

bool BtEngine::write_platform_msr(uint32_t index, uint64_t value) {
  if (!msrs_) return false;
  const bool apic_was_enabled = msrs_->apic_enabled();
  const uint32_t apic_base_was = msrs_->apic_base();
  const CpuidDynamic cpuid_was = msrs_->cpuid_dynamic();
  if (!msrs_->write(index, value, read_tsc())) return false;
  const CpuidDynamic cpuid_now = msrs_->cpuid_dynamic();
  if (!(cpuid_now == cpuid_was)) forget_cpuid_answers();
  if (msrs_->apic_enabled() != apic_was_enabled || msrs_->apic_base() != apic_base_was) {
    // The APIC's page moved or appeared: the shadow page tables map the old and new frames as
    // they were (RAM-less pages as all-ones pages, the APIC's as MMIO).
    mmu_.flush_all();
  }
  return true;
}

void BtEngine::forget_cpuid_answers() {
  for (size_t i = 0; i < BtContext::kCpuidSlots; ++i) {
    ctx_->cpuid_tag[i] = BtContext::cpuid_empty_tag(i);
  }
}

CpuidEntry BtEngine::cpuid(uint32_t function, uint32_t index) {
  CpuidEntry e = CpuModel::query(function, index, msrs_ ? msrs_->cpuid_dynamic() : CpuidDynamic{});
  if (function == 1 && tsc_deadline_withheld_) e.ecx &= ~CpuModel::kTscDeadlineFeature;
  return e;
}

uint64_t BtEngine::read_tsc() {
  return __rdtsc() + static_cast<uint64_t>(tsc_offset_);
}
void BtEngine::write_tsc(uint64_t value) {
  tsc_offset_ = static_cast<int64_t>(value - __rdtsc());
}

void BtEngine::on_paging_changed(const VcpuState& s) {
  // CR0.PG and CR4.PSE/PGE change what every translation means: blocks found through the
  // global tables must be looked up again. (CR3 loads keep global translations; CR0.WP only
  // changes supervisor write rights, which no block depends on.)
  // (PAE and EFER.NXE too: other walks, and pages that were executable may no longer be.)
  uint32_t mode = (s.cr0 & cr0::kPg) | (s.cr4 & (cr4::kPse | cr4::kPge | cr4::kPae)) |
                  ((s.efer & efer::kNxe) ? 1u : 0u);
  if (mode != paging_mode_bits_) tables_.clear_global();
  paging_mode_bits_ = mode;
  mmu_.set_mode(s);
  // The watched ranges may map elsewhere now.
  if (!debug_.watchpoints.empty() || guest_data_breakpoints_) watch_frames();
}

bool BtEngine::load_pdptes(uint32_t cr3, std::array<uint64_t, 4>* pdpte) {
  return mmu_.load_pdptes(cr3, pdpte);
}

void BtEngine::on_invlpg(uint32_t linear) {
  mmu_.invlpg(linear);
  // INVLPG invalidates a global translation too (Intel SDM Vol. 3A §4.10.4.1): blocks reached
  // through it by the indirect tables are looked up again.
  tables_.forget_page_everywhere(mmu_.space_id(), linear >> 12);
  // A page-table change the guest made known: a watched range may map another frame now.
  if (!debug_.watchpoints.empty() || guest_data_breakpoints_) watch_frames();
}

void BtEngine::on_debug_registers_changed(const VcpuState& s) {
  // Applied once the instruction is over (direct_call, handle_callout): dropping translations
  // now would free the decoded instruction the emulator still runs on.
  s_.dr = s.dr;  // (the emulator runs on s_ itself; a copy keeps this independent of that)
  guest_breakpoints_changed_ = true;
}

void BtEngine::update_guest_breakpoints() {
  guest_breakpoints_changed_ = false;
  // Intel SDM Vol. 3B §17.2.4: only enabled breakpoints (Ln or Gn) raise #DB. I/O breakpoints
  // (R/W 10 with CR4.DE=1) are not implemented: they never match (docs/bt.md).
  std::vector<uint32_t> exec;
  for (unsigned n = 0; n < 4; ++n) {
    const dr::Breakpoint b = dr::breakpoint(s_.dr, n);
    if (b.enabled && b.kind == dr::Kind::kExecute) exec.push_back(s_.dr[n]);
  }
  std::sort(exec.begin(), exec.end());
  exec.erase(std::unique(exec.begin(), exec.end()), exec.end());
  const bool data = dr::any_enabled(s_.dr, true);
  const bool had_data = guest_data_breakpoints_;
  guest_exec_breakpoints_ = std::move(exec);
  guest_data_breakpoints_ = data;
  system_.set_data_access_log(data ? &data_log_ : nullptr);
  if (data != had_data) {
    // Blocks with direct calls (kDirectCalls in key_flags) or without them run on chained to
    // each other: all go, as for a new callout observer.
    drop_translations();
  }
  apply_breakpoints();
  if (data || had_data) watch_frames();
}

void BtEngine::apply_breakpoints() {
  std::vector<uint32_t> all = debug_.breakpoints;
  all.insert(all.end(), guest_exec_breakpoints_.begin(), guest_exec_breakpoints_.end());
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  if (all == translator_breakpoints_) return;
  // Blocks translated before were made for the old set (chained, in tables): all go.
  translator_.set_breakpoints(all);
  translator_breakpoints_ = std::move(all);
  drop_translations();
}

unsigned BtEngine::fetch(uint32_t eip, uint8_t* dst, unsigned len, uint32_t* phys_page) {
  // Instruction fetch with the CPL's rights; stops at the end of the page (the translator asks
  // again for the next one) and where no RAM or firmware ROM is.
  uint64_t pa = 0;
  uint32_t error_code = 0;
  if (!mmu_.translate(eip, fetch_access(), &pa, &error_code)) {
    return 0;
  }
  unsigned avail = 0;
  const uint8_t* code = mmu_.readable(pa, &avail);
  if (!code) return 0;
  const unsigned n = std::min(len, avail);
  std::memcpy(dst, code, n);
  *phys_page = static_cast<uint32_t>(pa >> 12);
  if (n < len && ((eip + n) & 0xfff) == 0) {  // the rest from the next page, if mapped
    uint32_t next_page = 0;
    return n + fetch(eip + n, dst + n, len - n, &next_page);
  }
  return n;
}

uint32_t BtEngine::key_flags() const {
  uint32_t f = 0;
  if (s_.seg[kDs].base == 0 && s_.seg[kEs].base == 0) f |= tb_flags::kFlatData;
  if (s_.seg[kSs].base == 0) f |= tb_flags::kFlatStack;
  if (s_.cr0 & (cr0::kTs | cr0::kEm)) f |= tb_flags::kFpuTrap;
  if (!(s_.cr4 & cr4::kOsfxsr)) f |= tb_flags::kSseOff;
  f |= restricted_segments(s_) << tb_flags::kRestrictedShift;
  f |= restricted_segments_16(s_) << tb_flags::kRestricted16Shift;
  if (!s_.seg[kCs].db) f |= tb_flags::kCode16;
  if (!s_.seg[kSs].db) f |= tb_flags::kStack16;
  if (mmu_.paging()) f |= tb_flags::kPaging;
  // Inline CLI/STI/PUSHF/INVLPG (CPL0) and host RDTSC skip the monitor; a callout observer
  // (vmbt trace) wants to see every sensitive instruction, so it gets callouts for them all.
  // Virtual-8086 mode is CPL 3 (VcpuRegisters::cpl), so never kCpl0: its blocks translate as
  // real mode's, whose sensitive instructions all go to the monitor too, which tells the modes
  // apart when it runs them (EFLAGS.VM); its accesses use the user window (CPL 3).
  bool cpl0 = s_.cpl() == 0 && (s_.cr0 & cr0::kPe);  // (real mode has CPL 0 too)
  if (!callout_observer_) {
    if (cpl0) f |= tb_flags::kCpl0;
    // A guest data breakpoint: sensitive instructions go through handle_callout, which checks
    // their accesses (direct calls would go on in translated code).
    if (!guest_data_breakpoints_) f |= tb_flags::kDirectCalls;
    if (tsc_offset_ == 0 && (cpl0 || !(s_.cr4 & cr4::kTsd))) f |= tb_flags::kHostTsc;
  }
  return f;
}

uint32_t BtEngine::dispatch_flags() const {
  // EFLAGS.TF: one instruction at a time, each followed by a #DB trap (Intel SDM Vol. 3A
  // §17.3.1.4). Callouts trap in the system emulator.
  return key_flags() | ((s_.eflags & eflags::kTf) ? tb_flags::kSingleInstruction : 0);
}

void BtEngine::protect_code_pages(const TranslationBlock* tb) {
  for (unsigned i = 0; i < tb->page_count; ++i) mmu_.protect_code(tb->pages[i]);
}

void BtEngine::code_page_written(uint32_t phys_page) {
  std::vector<TranslationBlock*> dead = cache_.invalidate_page(phys_page);
  smc_invalidations_ += dead.size();
  for (TranslationBlock* tb : dead) forget_block(tb);
}

void BtEngine::forget_block(TranslationBlock* tb) {
  // Indirect-table entries of a dead block go back to the miss stub.
  tables_.forget_block(tb->eip, tb->host_start);
  if (kicked_ == tb) kicked_ = nullptr;
}

TranslationBlock* BtEngine::lookup(uint32_t eip, uint32_t flags) {
  const uint32_t cs_base = s_.seg[kCs].base;
  const uint32_t linear = cs_base + eip;
  uint64_t pa = 0;
  uint32_t error_code = 0;
  bool global = false;
  if (!mmu_.translate(linear, fetch_access(), &pa, &error_code, &global)) return nullptr;
  unsigned avail = 0;
  if (!mmu_.readable(pa, &avail)) return nullptr;  // no RAM or ROM (or at/above 4 GiB): #UD
  TranslationBlock* tb = cache_.find(eip, flags, static_cast<uint32_t>(pa >> 12), cs_base);
  if (tb && tb->page_count == 2) {  // the second page must map to the same code too
    uint64_t pa2 = 0;
    if (!mmu_.translate((linear | 0xfff) + 1, fetch_access(), &pa2, &error_code) ||
        (pa2 >> 12) != tb->pages[1]) {
      cache_.discard(tb);
      tb = nullptr;
    }
  }
  if (!tb) {
    tb = translator_.translate(eip, flags, cs_base);
    if (!tb) return nullptr;
    protect_code_pages(tb);
  }
  // Only blocks of the mode the CPU is in go into its table (callers pass the current mode;
  // never one-off shapes).
  if (!(flags & (tb_flags::kSingleInstruction | tb_flags::kSegUnchecked))) {
    remember_page(tb, flags, linear >> 12, static_cast<uint32_t>(pa >> 12),
                  global && tb->page_count == 1 && cs_base == 0);
  }
  return tb;
}

void BtEngine::remember_page(TranslationBlock* tb, uint32_t flags, uint32_t page,
                             uint32_t phys_page, bool global) {
  const uint32_t space = mmu_.space_id(), mode = table_mode(flags);
  if (tables_.holds(space, mode, tb->eip, tb->host_start, global)) return;  // already there
  page_fill_.assign(1, {tb->eip, tb->host_start});
  // The first block of this page in the table: the other blocks already translated from the
  // same code page for this mode go in with it (a new process running a program other processes
  // ran, a new space's kernel pages), one dispatcher trip per page instead of one per target.
  // Each is right here: the same linear page maps the same frame, which this CPL may fetch from.
  const std::vector<CodeCache::PageBlock>* others = cache_.blocks_on(phys_page);
  if (others && !tables_.has_page(space, mode, page, global)) {
    for (const CodeCache::PageBlock& other : *others) {
      if (other.tb == tb || other.key_flags != flags || !other.one_page ||
          other.cs_base != tb->cs_base || ((other.cs_base + other.eip) >> 12) != page) {
        continue;
      }
      page_fill_.push_back({other.eip, other.host});
    }
    table_page_fills_ += page_fill_.size() - 1;
  }
  tables_.remember_all(space, mode, page, global, page_fill_);
}

void BtEngine::load_context() {
  load_context(key_flags());
}

void BtEngine::load_context(uint32_t flags) {
  for (unsigned i = 0; i < 8; ++i) ctx_->gpr[i] = s_.gpr[i];
  ctx_->host_flags = (s_.eflags & kHostFlagBits) | eflags::kFixed1;
  ctx_->vflags = s_.eflags & ~(kHostFlagBits | eflags::kIf);
  ctx_->vif = (s_.eflags & eflags::kIf) ? 1 : 0;
  ctx_->irq_pending = interrupts_.interrupt_pending() ? 1 : 0;
  // Alignment checking applies at CPL3 with CR0.AM and EFLAGS.AC (Intel SDM Vol. 3A §6.15,
  // vector 17): the host's own check does it, and its SIGBUS becomes the guest's #AC.
  if (s_.cpl() == 3 && (s_.cr0 & cr0::kAm) && (s_.eflags & eflags::kAc)) {
    ctx_->host_flags |= eflags::kAc;
  }
  for (unsigned i = 0; i < 6; ++i) ctx_->seg_base[i] = s_.seg[i].base;
  for (unsigned i = 0; i < 6; ++i) ctx_->seg_sel[i] = s_.seg[i].selector;
  ctx_->exit_kind = ExitKind::kNone;
  ctx_->exit_tb = nullptr;
  uint8_t* window = mmu_.window_base(s_.cpl());
  ctx_->window_base = reinterpret_cast<uint64_t>(window);
  ctx_->window_neg = 0 - ctx_->window_base;
  select_tables(flags);
}

void BtEngine::select_tables(uint32_t flags) {
  // A guest kernel's branches mostly reach its global pages, a process's its own: the table
  // that hits first most often is probed first.
  const uint32_t mode = table_mode(flags);
  uint64_t* space = tables_.slots(mmu_.space_id(), mode);
  uint64_t* global = tables_.global_slots(mode);
  const bool global_first = s_.cpl() != 3 && tables_.has_global(mode);
  uint64_t* const first = global_first ? global : space;
  ctx_->second_table = global_first ? space : global;
  ctx_->indirect_table_neg = 0 - reinterpret_cast<uint64_t>(first);
  ctx_->second_table_neg = 0 - reinterpret_cast<uint64_t>(ctx_->second_table);
  // A kick already waiting keeps the kick table (kick()): translated code leaves at its first
  // indirect exit.
  ctx_->indirect_table = ctx_->kick_pending ? tables_.kick_slots() : first;
}

void BtEngine::store_context() {
  for (unsigned i = 0; i < 8; ++i) s_.gpr[i] = ctx_->gpr[i];
  s_.eflags = (ctx_->vflags & ~(kHostFlagBits | eflags::kIf)) | (ctx_->vif ? eflags::kIf : 0) |
              (ctx_->host_flags & kHostFlagBits);
  s_.eip = ctx_->eip;
}

void BtEngine::enter(TranslationBlock* tb) {
  if (fpu_activate_pending_) {
    ctx_->fpu_active = 1;
    fpu_activate_pending_ = false;
  }
  load_context();
  entering_ = tb;
  attach_host_fault_handler(this);
  stubs_.enter(ctx_.get(), tb->entry);
  entering_ = nullptr;
  store_context();
}

uint64_t BtEngine::direct_call_entry(BtContext* ctx, void* site) {
  return static_cast<BtEngine*>(ctx->engine)->direct_call(*static_cast<CalloutSite*>(site));
}

uint64_t BtEngine::leave_direct_call() {
  load_context();
  ctx_->eip = s_.eip;
  ctx_->exit_kind = ExitKind::kDirectCall;
  return 0;
}

uint64_t BtEngine::direct_call(CalloutSite& site) {
  switch (site.kind) {
    case CalloutSite::Kind::kTableWriteBegin:
      return table_write_begin(site);
    case CalloutSite::Kind::kTableWriteEnd:
      return table_write_end(site);
    case CalloutSite::Kind::kDivideError: {
      // #DE without a host SIGFPE (Intel SDM Vol. 3A §6.15, vector 0: a fault, EIP at the DIV).
      ctx_->eip = site.insn.eip;
      store_context();
      bool done = false;
      Exit e = raise_exception(exc::kDe, done);
      return after_direct_exception(std::move(e), done);
    }
    case CalloutSite::Kind::kInstruction:
      break;
  }
  if (site.fast != CalloutSite::FastPath::kNone) {
    if (uint64_t next = fast_path(site)) return next == kLeave ? 0 : next;
  }
  // The guest state at the instruction, from the context the stub filled in.
  TranslationBlock* const from = site.tb;
  const uint32_t block_flags = from->key_flags;
  const uint64_t flushes = cache_.flushes();
  const uint8_t* const window = reinterpret_cast<const uint8_t*>(ctx_->window_base);
  const uint32_t space = mmu_.space_id();
  ctx_->eip = site.insn.eip;
  store_context();
  ++direct_calls_;
  ++callouts_by_mnemonic_[site.insn.zi.mnemonic];

  bool done = false;
  Exit e = run_callout(&site.insn.zi, site.insn.ops, &site.insn, done);
  // (A change of the guest's breakpoints may drop every translation, `site` with them: the
  // flush count below leaves before `site` is used again.)
  if (guest_breakpoints_changed_) update_guest_breakpoints();
  if (done) {
    direct_exit_ = std::move(e);
    direct_exit_pending_ = true;
    return leave_direct_call();
  }
  if (single_step_eip_ != UINT32_MAX || mmio_.stage != PendingMmio::kNone || io_pending_ ||
      cache_.flushes() != flushes || windows_pending_) {
    return leave_direct_call();
  }
  if (site.falls_through && s_.eip == site.insn.next_eip) {
    return resume_block(site, block_flags, flushes, window, space);
  }
  // A control transfer (or an exception delivered): on into the target's block.
  return transfer_to(key_flags(), &site);
}

uint64_t BtEngine::fast_path(CalloutSite& site) {
  // Works on the context alone (s_ holds what translated code cannot change: segments, control
  // registers, MSRs). 0 = not the common case after all: the system emulator runs it instead,
  // before anything was changed here.
  auto& gpr = ctx_->gpr;
  switch (site.fast) {
    case CalloutSite::FastPath::kCpuid: {
      // Intel SDM Vol. 2A CPUID: never faults in protected mode; flags unaffected.
      const uint32_t leaf = gpr[kEax];
      const CpuidEntry e = cpuid(leaf, gpr[kEcx]);
      if (!CpuModel::depends_on_index(leaf)) {
        // The same leaf next time is answered in translated code (Translator: inline CPUID).
        const size_t slot = BtContext::cpuid_slot(leaf);
        ctx_->cpuid_tag[slot] = 0u - leaf;
        ctx_->cpuid_answer[slot] = {e.eax, e.ebx, e.ecx, e.edx};
      }
      gpr[kEax] = e.eax;
      gpr[kEbx] = e.ebx;
      gpr[kEcx] = e.ecx;
      gpr[kEdx] = e.edx;
      break;
    }
    case CalloutSite::FastPath::kPortIo: {
      // Intel SDM Vol. 1 §19.5: CPL <= IOPL needs no I/O permission bitmap, except in
      // virtual-8086 mode, where the bitmap always decides (§19.5.2): the emulator checks it.
      const unsigned iopl = (ctx_->vflags & eflags::kIopl) >> 12;
      if (!port_io_ || s_.cpl() > iopl || (ctx_->vflags & eflags::kVm)) return 0;
      const unsigned size = site.access_size;
      IoAccess a;
      a.port = static_cast<uint16_t>(site.io_port >= 0 ? site.io_port : gpr[kEdx] & 0xffff);
      a.size = static_cast<uint8_t>(size);
      a.write = site.io_write;
      a.count = 1;
      uint8_t data[4] = {};
      a.data = data;
      if (a.write) std::memcpy(data, &gpr[kEax], size);
      const bool go_on = port_io_(a);
      ++io_in_engine_;
      if (!a.write) {
        uint32_t v = 0;
        std::memcpy(&v, data, size);
        const uint32_t keep = size == 4 ? 0 : ~((1u << (8 * size)) - 1);
        gpr[kEax] = (gpr[kEax] & keep) | v;
      }
      if (!go_on || windows_pending_) {
        // The machine asked to stop (debug exit, reset): the run loop sees it. Or the access
        // changed the firmware's memory windows (a PAM write), which only the dispatcher may
        // apply (set_memory_windows): leave for it.
        if (!go_on) {
          direct_exit_ = Exit(ExitReason::kKicked);
          direct_exit_pending_ = true;
        }
        ctx_->eip = site.insn.next_eip;
        ctx_->exit_kind = ExitKind::kDirectCall;
        ++callouts_by_mnemonic_[site.insn.zi.mnemonic];
        ++direct_calls_;
        return kLeave;
      }
      break;
    }
    case CalloutSite::FastPath::kInvlpg: {
      // Intel SDM Vol. 2A INVLPG: #GP(0) above CPL 0 (the emulator raises it); the operand is
      // an address, never accessed.
      const ZydisDecodedOperand& m = site.insn.ops[0];
      const int seg = operand_segment(m);
      if (s_.cpl() != 0 || s_.seg[seg].base != 0) return 0;
      int base = gpr_index(m.mem.base), index = gpr_index(m.mem.index);
      uint32_t ea = static_cast<uint32_t>(m.mem.disp.has_displacement ? m.mem.disp.value : 0);
      if (base >= 0) ea += gpr[base];
      if (index >= 0) ea += gpr[index] * m.mem.scale;
      if (site.insn.zi.address_width == 16) ea &= 0xffff;
      on_invlpg(ea);
      break;
    }
    case CalloutSite::FastPath::kSystemCall:
    case CalloutSite::FastPath::kSoftwareInterrupt:
    case CalloutSite::FastPath::kIret: {
      // The emulator's own SYSENTER/SYSEXIT, INT n or IRET, without its general entry; then on
      // into the target's block, as a direct call's transfer goes.
      store_context();
      s_.eip = site.insn.eip;
      const bool done = site.fast == CalloutSite::FastPath::kSystemCall
                            ? system_.fast_system_call(s_, site.insn)
                        : site.fast == CalloutSite::FastPath::kSoftwareInterrupt
                            ? system_.fast_software_interrupt(s_, site.insn)
                            : system_.fast_iret(s_, site.insn);
      if (!done) return 0;
      ++callouts_by_mnemonic_[site.insn.zi.mnemonic];
      ++direct_calls_;
      const uint64_t next = transfer_to(key_flags(), &site);
      return next ? next : kLeave;
    }
    case CalloutSite::FastPath::kNone:
      return 0;
  }
  ++callouts_by_mnemonic_[site.insn.zi.mnemonic];
  ++direct_calls_;
  // A device may have raised an interrupt the guest can take now; a kick may be waiting.
  if (ctx_->kick_pending || (ctx_->vif && interrupts_.interrupt_pending())) {
    ctx_->eip = site.insn.next_eip;
    ctx_->exit_kind = ExitKind::kDirectCall;
    return kLeave;
  }
  return ctx_->resume;
}

uint64_t BtEngine::resume_block(const CalloutSite& site, uint32_t block_flags, uint64_t flushes,
                                const uint8_t* window, uint32_t space) {
  if (dispatcher_has_work() || cache_.flushes() != flushes) return leave_direct_call();
  // A mode, address space or window the rest of this block was not translated for (a kernel
  // entry loading FS, say): on in the block for the next instruction in the new mode, as the
  // dispatcher would go.
  const uint32_t flags = key_flags();
  if (!site.tb->valid || flags != block_flags || mmu_.window_base(s_.cpl()) != window ||
      mmu_.space_id() != space) {
    return transfer_to(flags);
  }
  load_context(flags);
  return ctx_->resume;
}

TranslationBlock* BtEngine::transfer_target(uint32_t flags, CalloutSite* site) {
  const uint32_t cs_base = s_.seg[kCs].base;
  if (site) {
    const CalloutSite::LastTarget& t = site->last_target;
    // (The flush count first: the block records live until a flush.)
    if (t.flushes == cache_.flushes() && t.eip == s_.eip && t.flags == flags &&
        t.cs_base == cs_base && t.space == mmu_.space_id() && t.tb->valid &&
        t.tb->page_count == 1) {
      uint64_t pa = 0;
      uint32_t error_code = 0;
      if (mmu_.translate(cs_base + s_.eip, fetch_access(), &pa, &error_code) &&
          (pa >> 12) == t.phys_page) {
        return t.tb;  // the same frame still: the block found there before
      }
    }
  }
  TranslationBlock* to = lookup(s_.eip, flags);
  if (site && to && to->page_count == 1 && !(flags & tb_flags::kSingleInstruction)) {
    site->last_target = {cache_.flushes(), s_.eip,       flags, cs_base,
                         mmu_.space_id(),  to->pages[0], to};
  }
  return to;
}

bool BtEngine::dispatcher_has_work() const {
  // A kick, an interrupt or NMI the guest can take now (or the one-instruction shadow before
  // it), TF, or a new code segment base.
  return ctx_->kick_pending || system_.interrupt_shadow ||
         ((s_.eflags & eflags::kIf) && interrupts_.interrupt_pending()) ||
         (!system_.nmi_blocked && interrupts_.nmi_pending()) || (s_.eflags & eflags::kTf) ||
         s_.seg[kCs].base != table_cs_base_;
}

uint64_t BtEngine::transfer_to(uint32_t flags, CalloutSite* site) {
  if (dispatcher_has_work()) return leave_direct_call();
  if (s_.eflags & eflags::kRf) {
    // IRET (or a task switch) loaded RF (Intel SDM Vol. 3B §17.3.1.1): it is cleared as the
    // next instruction starts; the dispatcher runs that one alone past a guest instruction
    // breakpoint.
    if (!guest_exec_breakpoints_.empty()) return leave_direct_call();
    s_.eflags &= ~eflags::kRf;
  }
  const uint32_t fpu_active = ctx_->fpu_active;
  TranslationBlock* to = transfer_target(flags, site);
  if (ctx_->fpu_active != fpu_active) {
    ctx_->fpu_active = fpu_active;  // the units hold the monitor's state: enter() swaps later
    fpu_activate_pending_ = true;
    return leave_direct_call();
  }
  if (!to) return leave_direct_call();  // a fetch fault: the dispatcher delivers it
  ++direct_transfers_;
  recent_blocks_[recent_next_++ % recent_blocks_.size()] = to->eip;
  load_context(flags);
  entering_ = to;  // a kick landing in the stub on the way there cuts this block's chains
  return reinterpret_cast<uint64_t>(to->entry);
}

uint64_t BtEngine::table_write_begin(CalloutSite& site) {
  const uint64_t flushes = cache_.flushes();
  ctx_->eip = site.insn.eip;
  store_context();
  // Nothing is done yet: leaving re-runs the instruction from the dispatcher. A store this
  // shape cannot make (across a page boundary, or not into RAM: MMIO, unassigned) runs there as
  // a one-instruction block, which has the ordinary shape (a host fault, the store run alone);
  // re-entering this block would come straight back here, for ever.
  const uint32_t linear = ctx_->table_linear;
  const unsigned size = site.access_size;
  if (ctx_->kick_pending) return leave_direct_call();
  if ((linear & 0xfff) + size > 0x1000) {
    single_step_eip_ = s_.eip;
    return leave_direct_call();
  }
  uint64_t phys = 0;
  try {
    if (!linear_memory_.translate(linear, true, s_.cpl() == 3, &phys) ||
        !memory_.contains(phys, size)) {
      single_step_eip_ = s_.eip;
      return leave_direct_call();
    }
  } catch (const GuestFault& f) {
    bool done = false;  // #PF: CR2 is set; the store never happened
    Exit e = raise_exception(f, done);
    return after_direct_exception(std::move(e), done);
  }
  mmu_.begin_table_write(static_cast<uint32_t>(phys), size);
  if (cache_.flushes() != flushes || !site.tb->valid) {
    mmu_.end_table_write();  // the store has not run: nothing changed, nothing to drop
    return leave_direct_call();
  }
  ctx_->table_offset = reinterpret_cast<uint64_t>(memory_.host_base() + phys) - ctx_->window_base;
  return ctx_->resume;  // registers, flags and the window are as the stub saved them
}

uint64_t BtEngine::table_write_end(CalloutSite& site) {
  const uint64_t flushes = cache_.flushes();
  const uint8_t* const window = reinterpret_cast<const uint8_t*>(ctx_->window_base);
  const uint32_t space = mmu_.space_id();
  ctx_->eip = site.insn.next_eip;
  store_context();
  mmu_.end_table_write();
  return resume_block(site, site.tb->key_flags, flushes, window, space);
}

void BtEngine::kick(const void* signal_context) {
  ctx_->kick_pending = 1;
  // Every indirect exit leaves from now on (translated code reads the table pointer at each);
  // direct chains are cut below for the block that runs. The dispatcher's next entry selects
  // the real tables again (select_tables).
  ctx_->indirect_table = tables_.kick_slots();
  if (!signal_context) return;
  auto* uc = static_cast<ucontext_t*>(const_cast<void*>(signal_context));
  auto rip = reinterpret_cast<uint8_t*>(uc->uc_mcontext.gregs[REG_RIP]);
  if (rip >= stubs_.begin && rip < stubs_.end) {
    // Between enter() and the block's first instruction: cut the block about to run.
    if (entering_ && !kicked_) {
      cache_.unlink_exits(entering_);
      kicked_ = entering_;
    }
    return;
  }
  if (!cache_.contains_host(rip)) return;  // in the monitor: it checks kick_pending itself
  TranslationBlock* tb = cache_.find_by_host(rip);
  if (!tb) return;
  for (const TranslationBlock::TableExit& t : tb->table_exits) {
    if (rip >= tb->host_start + t.lookup_start && rip < tb->host_start + t.lookup_end) {
      // In a table exit's lookup, which may have read the table pointer already: leave through
      // the stub (r9d holds the target).
      uc->uc_mcontext.gregs[REG_RIP] = reinterpret_cast<greg_t>(stubs_.indirect_exit);
      return;
    }
  }
  if (!kicked_) {
    cache_.unlink_exits(tb);
    kicked_ = tb;
  }
}

bool BtEngine::handle_host_fault(int signal, void* siginfo, void* ucontext) {
  auto* uc = static_cast<ucontext_t*>(ucontext);
  auto* info = static_cast<siginfo_t*>(siginfo);
  auto rip = reinterpret_cast<uint8_t*>(uc->uc_mcontext.gregs[REG_RIP]);
  if (!cache_.contains_host(rip) || (rip >= stubs_.begin && rip < stubs_.end)) return false;
  TranslationBlock* tb = cache_.find_by_host(rip);
  if (!tb || tb->insns.empty()) return false;
  uint32_t off = static_cast<uint32_t>(rip - tb->host_start);
  auto it = std::upper_bound(tb->insns.begin(), tb->insns.end(), off,
                             [](uint32_t o, const InsnMap& m) { return o < m.host_offset; });
  if (it == tb->insns.begin()) return false;
  const InsnMap& insn = *std::prev(it);

  greg_t* g = uc->uc_mcontext.gregs;
  const int host_reg[8] = {REG_RAX, REG_RCX, REG_RDX, REG_RBX, REG_RSP, REG_RBP, REG_RSI, REG_RDI};
  for (unsigned i = 0; i < 8; ++i) ctx_->gpr[i] = static_cast<uint32_t>(g[host_reg[i]]);
  // ESI/EDI were window pointers around a string instruction (flat segments only).
  if (insn.fixup.si_biased) {
    ctx_->gpr[kEsi] = static_cast<uint32_t>(static_cast<uint64_t>(g[REG_RSI]) - ctx_->window_base);
  }
  if (insn.fixup.di_biased) {
    ctx_->gpr[kEdi] = static_cast<uint32_t>(static_cast<uint64_t>(g[REG_RDI]) - ctx_->window_base);
  }
  ctx_->host_flags = static_cast<uint32_t>(g[REG_EFL]) & (kHostFlagBits | eflags::kFixed1);
  ctx_->eip = insn.guest_eip;
  ctx_->exit_kind = ExitKind::kFault;

  fault_ = HostFault{};
  fault_.signal = signal;
  fault_.host_pc = reinterpret_cast<uint64_t>(rip);
  fault_.code = info->si_code;
  // An SSE instruction's floating-point exception is #XM; x87's is #MF. The host's MXCSR status
  // bits tell them apart: an unmasked SSE exception leaves its flag set.
  fault_.sse = signal == SIGFPE && uc->uc_mcontext.fpregs &&
               (uc->uc_mcontext.fpregs->mxcsr & 0x3f & ~(uc->uc_mcontext.fpregs->mxcsr >> 7));
  if (signal == SIGSEGV || signal == SIGBUS) {
    fault_.address = info->si_addr;
    fault_.write = (g[REG_ERR] & 2) != 0;
  }
  g[REG_RIP] = reinterpret_cast<greg_t>(stubs_.exit_after_fault);
  g[REG_RSP] = static_cast<greg_t>(ctx_->host_rsp);
  ++host_faults_;
  return true;
}

std::string BtEngine::describe_eip() const {
  return fmt::format("EIP {:#010x} (CS {:#06x}, CPL {})", s_.eip, s_.seg[kCs].selector, s_.cpl());
}

Exit BtEngine::finish_step(const StepResult& r, bool& done) {
  switch (r.kind) {
    case StepKind::kDone:
      return Exit();
    case StepKind::kIo: {
      if (port_io_) {
        // Devices answer at once: perform the access on the run loop's I/O bus here, without
        // an exit, and complete the instruction (the kvm engine reaches the same bus by exits).
        // (r.io.data is the emulator's buffer: the device reads or fills it in place.)
        IoAccess access;
        access.port = r.io.port;
        access.size = r.io.size;
        access.write = r.io.write;
        access.count = r.io.count;
        access.data = r.io.data;
        const bool go_on = port_io_(access);
        io_in_engine_ += r.io.count;
        Exit e = finish_step(system_.finish_io(s_, r.io), done);
        if (done) return e;
        if (!go_on) {
          done = true;
          return Exit(ExitReason::kKicked);  // the run loop sees the machine's exit request
        }
        return Exit();
      }
      io_pending_ = true;
      io_step_ = r;
      Exit e(ExitReason::kIo);
      e.io.port = io_step_.io.port;
      e.io.size = io_step_.io.size;
      e.io.write = io_step_.io.write;
      e.io.count = io_step_.io.count;
      e.io.data = io_step_.io.data;
      done = true;
      return e;
    }
    case StepKind::kHalt:
      done = true;
      return Exit(ExitReason::kHalt);
    case StepKind::kShutdown:
      done = true;
      return Exit(ExitReason::kShutdown,
                  fmt::format("guest shutdown (triple fault) at {}{}{}", describe_eip(),
                              r.message.empty() ? "" : ": ", r.message));
    case StepKind::kUnsupported:
      done = true;
      return Exit(ExitReason::kInternalError,
                  r.message.empty()
                      ? fmt::format("bt cannot run the instruction at {}", describe_eip())
                      : r.message);
  }
  return Exit();
}

bool BtEngine::decode_at_eip(uint8_t (&bytes)[16], ZydisDecodedInstruction& insn,
                             ZydisDecodedOperand* ops) {
  try {
    linear_memory_.read(s_.seg[kCs].base + s_.eip, bytes, sizeof bytes, s_.cpl() == 3);
  } catch (const GuestFault&) {
    // The bytes past the page may be unmapped; the emulator fetches exactly and faults itself.
  }
  // The code segment's default size (CS.D) picks the decoding, as the CPU's does.
  const bool code32 = s_.seg[kCs].db;
  ZydisDecoder decoder;
  ZydisDecoderInit(&decoder, code32 ? ZYDIS_MACHINE_MODE_LEGACY_32 : ZYDIS_MACHINE_MODE_LEGACY_16,
                   code32 ? ZYDIS_STACK_WIDTH_32 : ZYDIS_STACK_WIDTH_16);
  return ZYAN_SUCCESS(ZydisDecoderDecodeFull(&decoder, bytes, sizeof bytes, &insn, ops));
}

Exit BtEngine::raise_exception(uint8_t vector, bool& done) {
  ++exceptions_by_vector_[vector];
  return finish_step(system_.raise(s_, vector), done);
}

Exit BtEngine::raise_exception(uint8_t vector, uint32_t error_code, bool& done) {
  ++exceptions_by_vector_[vector];
  return finish_step(system_.raise(s_, vector, true, error_code), done);
}

Exit BtEngine::raise_exception(const GuestFault& f, bool& done) {
  return f.has_error_code ? raise_exception(f.vector, f.error_code, done)
                          : raise_exception(f.vector, done);
}

uint64_t BtEngine::after_direct_exception(Exit e, bool done) {
  if (done) {  // the run ends (a triple fault, say): the dispatcher returns `e`
    direct_exit_ = std::move(e);
    direct_exit_pending_ = true;
    return leave_direct_call();
  }
  return transfer_to(key_flags());  // on in the handler's block
}

Exit BtEngine::handle_callout(bool& done) {
  uint8_t bytes[16] = {};
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  bool decoded = decode_at_eip(bytes, insn, ops);
  if (decoded) {
    ++callouts_by_mnemonic_[insn.mnemonic];
  } else {
    ++undecodable_callouts_;
  }
  if (callout_observer_) {
    CalloutEvent ev;
    ev.eip = s_.eip;
    ev.linear = s_.seg[kCs].base + s_.eip;
    ev.cpl = s_.cpl();
    ev.length = decoded ? insn.length : 1;
    std::memcpy(ev.bytes, bytes, sizeof ev.bytes);
    ev.mnemonic = decoded ? ZydisMnemonicGetString(insn.mnemonic) : "(invalid)";
    callout_observer_(ev);
  }
  // With the guest's data breakpoints, the accesses the instruction made through its operands,
  // once it completed (a fault empties the log), are traps run() delivers after it.
  const bool logging = guest_data_breakpoints_;
  if (logging) data_log_.clear();
  Exit e = run_callout(decoded ? &insn : nullptr, ops, nullptr, done);
  if (guest_breakpoints_changed_) update_guest_breakpoints();
  if (logging) {
    uint32_t hits = 0;
    for (const DataAccess& a : data_log_) hits |= dr::data_hits(s_.dr, a.linear, a.size, a.write);
    data_log_.clear();
    if (dr::fires(s_.dr[7], hits)) callout_hits_ |= hits;
  }
  return e;
}

Exit BtEngine::run_callout(const ZydisDecodedInstruction* decoded_insn,
                           const ZydisDecodedOperand* ops, const sys::Insn* predecoded,
                           bool& done) {
  const bool decoded = decoded_insn != nullptr;
  // (A reference to a static, not `decoded ? *decoded_insn : ZydisDecodedInstruction{}`: that
  // conditional is a prvalue, a 300-byte copy on every callout.)
  static const ZydisDecodedInstruction kNoInstruction{};
  const ZydisDecodedInstruction& insn = decoded ? *decoded_insn : kNoInstruction;
  // A direct call's instruction is known: only the legacy group goes to execute_legacy.
  if (decoded && (!predecoded || is_legacy_instruction(insn.mnemonic))) {
    LoggingMemory logged(linear_memory_, data_log_);
    LegacyOutcome legacy = execute_legacy(
        s_, insn, ops,
        guest_data_breakpoints_ ? static_cast<LinearMemory&>(logged) : linear_memory_);
    if (legacy.result == LegacyResult::kDone) return Exit();
    data_log_.clear();  // not done: nothing the guest's data breakpoints see
    if (legacy.result == LegacyResult::kFault) {
      return raise_exception(legacy.fault, done);
    }
  }
  if (decoded) {
    // CR0.EM/TS/MP and CR4.OSFXSR (Intel SDM Vol. 3A Table 2-2, §13.1): the translator sends
    // the affected instructions here only when one of them is set.
    bool em = s_.cr0 & cr0::kEm, ts = s_.cr0 & cr0::kTs, mp = s_.cr0 & cr0::kMp;
    bool osfxsr = s_.cr4 & cr4::kOsfxsr;
    int vector = -1;
    switch (fpu_class(insn)) {
      case FpuClass::kWait:
        if (ts && mp) {
          vector = exc::kNm;
        } else {
          s_.eip += insn.length;  // nothing to wait for: the guest's x87 runs synchronously
          return Exit();
        }
        break;
      case FpuClass::kX87:
      case FpuClass::kFxsr:
        if (em || ts) vector = exc::kNm;
        break;
      case FpuClass::kMmx:
        vector = em ? exc::kUd : ts ? exc::kNm : -1;
        break;
      case FpuClass::kSse:
        vector = (em || !osfxsr) ? exc::kUd : ts ? exc::kNm : -1;
        break;
      case FpuClass::kNone:
        break;
    }
    if (vector >= 0) {
      return raise_exception(vector, done);
    }
  }
  if (decoded && is_masked_store(insn.mnemonic)) {
    // Only a direct call has its instruction predecoded.
    const LegacyOutcome m = run_masked_store(insn, ops, predecoded != nullptr);
    if (m.result == LegacyResult::kDone) return Exit();
    if (m.result == LegacyResult::kFault) return raise_exception(m.fault, done);
  }
  StepResult r = predecoded ? system_.execute(s_, *predecoded) : system_.execute(s_);
  if (r.kind == StepKind::kUnsupported && decoded &&
      (segments_used(insn, ops) & restricted_segments(s_))) {
    // An ordinary instruction through a segment that needs checks: check its accesses here,
    // then run it alone, untouched (Intel SDM Vol. 3A §5.3-5.4).
    if (auto f = check_instruction(s_, insn, ops)) {
      return raise_exception(f->vector, f->error_code, done);
    }
    single_step_eip_ = s_.eip;
    single_step_unchecked_ = true;
    return Exit();
  }
  if (r.kind == StepKind::kUnsupported && decoded && !policy::model_executes(insn)) {
    return raise_exception(exc::kUd, done);  // not in the vmbt CPU model: #UD
  }
  if (r.kind == StepKind::kUnsupported && r.message.empty()) {
    r.message =
        fmt::format("bt does not implement '{}' at {}",
                    decoded ? ZydisMnemonicGetString(insn.mnemonic) : "(invalid)", describe_eip());
  }
  return finish_step(r, done);
}

LegacyOutcome BtEngine::run_masked_store(const ZydisDecodedInstruction& insn,
                                         const ZydisDecodedOperand* ops, bool in_direct_call) {
  // The guest's vector registers are in guest_fx, except during a direct call from code that
  // uses them: then x87/MMX are in the units and XMM0-7 in the context's copy (the stub saved
  // them, and loads them back from there on the way out).
  if (!(in_direct_call && ctx_->fpu_live)) {
    return execute_masked_store(s_, insn, ops, ctx_->guest_fx, linear_memory_);
  }
  // The units as they are (the monitor's XMM and MXCSR, the guest's x87/MMX), and the guest's
  // whole view for the instruction.
  alignas(16) std::array<uint8_t, 512> units{};
  asm volatile("fxsave %0" : "=m"(units));
  alignas(16) std::array<uint8_t, 512> guest = units;
  std::memcpy(guest.data() + 160, ctx_->guest_xmm.data(), ctx_->guest_xmm.size());
  const LegacyOutcome out = execute_masked_store(s_, insn, ops, guest, linear_memory_);
  // Back into the units: only the x87/MMX part changed (MASKMOVQ's TOP and tags, the registers
  // turned with TOP); the XMM registers and MXCSR get back exactly what they held, so the
  // compiler's own use of them across this is undisturbed.
  std::memcpy(units.data(), guest.data(), 4);                 // FCW, FSW
  units[4] = guest[4];                                        // abridged FTW
  std::memcpy(units.data() + 32, guest.data() + 32, 8 * 16);  // ST0-7 / MM0-7
  asm volatile("fxrstor %0"
               :
               : "m"(units)
               : "st", "st(1)", "st(2)", "st(3)", "st(4)", "st(5)", "st(6)", "st(7)");
  return out;
}

Exit BtEngine::handle_fault(bool& done) {
  HostFault f = fault_;
  if (f.signal == SIGFPE) {
    // Integer divide errors are #DE; x87 and SSE exceptions (only unmasked ones trap) are #MF
    // and #XM (Intel SDM Vol. 3A §6.15: vectors 0, 16, 19).
    uint8_t vector = exc::kDe;
    if (f.code != FPE_INTDIV && f.code != FPE_INTOVF) vector = f.sse ? exc::kXm : exc::kMf;
    if (vector == exc::kXm && !(s_.cr4 & cr4::kOsxmmexcpt))
      vector = exc::kUd;  // without OSXMMEXCPT
    return raise_exception(vector, done);
  }
  if (f.signal == SIGILL) {  // an instruction this host cannot run: what the guest sees is #UD
    return raise_exception(exc::kUd, done);
  }
  if (f.signal == SIGBUS && f.code == BUS_ADRALN) {
    return raise_exception(exc::kAc, 0, done);  // #AC(0)
  }
  if (f.signal == SIGSEGV || f.signal == SIGBUS) {
    ShadowMmu::Fault m = mmu_.handle_host_fault(f.address, f.write);
    switch (m.kind) {
      case ShadowMmu::Fault::kRetry:
        return Exit();
      case ShadowMmu::Fault::kSingleStep:
        // Run the store alone: a block re-translated from a code page would protect it again
        // (and a traced page table would be traced again) before the store completes.
        single_step_eip_ = s_.eip;
        single_step_code_write_ = m.code_write;
        if (TranslationBlock* from = cache_.find_by_host(reinterpret_cast<void*>(f.host_pc))) {
          // An instruction the monitor already checked (a segment that needs checks) stays
          // checked when it runs alone again: re-checking would step it back here forever.
          if (from->key_flags & tb_flags::kSegUnchecked) single_step_unchecked_ = true;
        }
        if (m.watched) {
          watched_access_ = watched_access_at(m.linear, f.write);
          if (guest_data_breakpoints_) start_rep_iteration();
        }
        if (m.table_write && !m.code_write && !callout_observer_) {
          // Adaptive translation: from now on this instruction stores into page tables through
          // the monitor, without a fault; its block is translated again with that shape.
          table_writers_.insert(s_.seg[kCs].base + s_.eip);
          if (TranslationBlock* tb = cache_.find_by_host(reinterpret_cast<void*>(f.host_pc))) {
            cache_.discard(tb);
            forget_block(tb);
          }
        }
        return Exit();
      case ShadowMmu::Fault::kMmio:
        return start_mmio(m, done);
      case ShadowMmu::Fault::kPageFault:
        s_.cr2 = m.linear;
        return raise_exception(exc::kPf, m.error_code, done);
      case ShadowMmu::Fault::kNotWindow:
        if (f.code == SI_KERNEL) {
          // A general-protection fault of the guest instruction itself (e.g. a misaligned
          // MOVAPS): the guest's #GP(0) (Intel SDM Vol. 3A §6.15, vector 13).
          return raise_exception(exc::kGp, 0, done);
        }
        break;
    }
  }
  done = true;
  return Exit(ExitReason::kInternalError,
              fmt::format("bt: unexpected host signal {} ({}) in translated code at {} (host PC "
                          "{:#x})",
                          f.signal, strsignal(f.signal), describe_eip(), f.host_pc));
}

Exit BtEngine::deliver_fetch_fault(bool& done) {
  uint64_t pa = 0;
  uint32_t error_code = 0;
  uint32_t eip = s_.seg[kCs].base + s_.eip;
  // The first instruction byte, or the rest of the instruction on the next page.
  for (uint32_t probe : {eip, (eip | 0xfff) + 1}) {
    if (!mmu_.translate(probe, fetch_access(), &pa, &error_code)) {
      s_.cr2 = probe;
      return raise_exception(exc::kPf, error_code, done);
    }
  }
  // Nothing behind the address: a PC's bus reads all ones there, FF FF is an invalid opcode, so
  // the CPU raises #UD (Intel SDM Vol. 2A, opcode map: FF /7 is reserved) at the instruction.
  ++fetches_outside_ram_;
  last_fetch_outside_ram_ = eip;
  return raise_exception(exc::kUd, done);
}

Exit BtEngine::mmio_exit(bool write) {
  Exit e(ExitReason::kMmio);
  e.mmio.gpa = mmio_.gpa;
  e.mmio.size = static_cast<uint8_t>(mmio_.size);
  e.mmio.write = write;
  e.mmio.data = mmio_data_.data();
  return e;
}

Access BtEngine::fetch_access() const {
  return Access{false, s_.cpl() == 3, true};
}

Exit BtEngine::start_mmio(const ShadowMmu::Fault& fault, bool& done) {
  // The access's size and direction come from the instruction's memory operand.
  uint8_t bytes[16] = {};
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  const ZydisDecodedOperand* mem = nullptr;
  if (decode_at_eip(bytes, insn, ops)) {
    for (unsigned i = 0; i < insn.operand_count; ++i) {
      if (ops[i].type == ZYDIS_OPERAND_TYPE_MEMORY && ops[i].mem.type == ZYDIS_MEMOP_TYPE_MEM) {
        mem = mem ? nullptr : &ops[i];  // exactly one memory operand
        if (!mem) break;
      }
    }
  }
  unsigned size = mem ? mem->size / 8 : 0;
  if (!mem || size == 0 || size > 8 || (fault.linear & 0xfff) + size > 0x1000 ||
      insn.meta.category == ZYDIS_CATEGORY_STRINGOP) {
    done = true;
    return Exit(ExitReason::kInternalError,
                fmt::format("bt cannot emulate this MMIO access (guest-physical {:#x}) at {}: one "
                            "load or store of 1-8 bytes is supported",
                            fault.phys, describe_eip()));
  }
  mmio_.gpa = fault.phys;
  mmio_.linear = fault.linear;
  mmio_.size = size;
  mmio_.unchecked = running_unchecked_;
  mmio_.reads = mem->actions & ZYDIS_OPERAND_ACTION_MASK_READ;
  mmio_.writes = mem->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE;
  mmio_data_.fill(0);
  if (mmio_.reads) {  // ask the device first; the instruction runs when its answer is in
    mmio_.stage = PendingMmio::kAwaitingRead;
    done = true;
    return mmio_exit(false);
  }
  mmu_.map_scratch(mmio_.linear, true);
  mmio_.stage = PendingMmio::kStepping;
  single_step_eip_ = s_.eip;
  single_step_unchecked_ = mmio_.unchecked;
  return Exit();
}

Exit BtEngine::run() {
  if (mmio_.stage == PendingMmio::kAwaitingRead) {
    // The device's answer goes where the instruction will read it; then it runs alone.
    mmu_.map_scratch(mmio_.linear, mmio_.writes);
    std::memcpy(mmu_.scratch() + (mmio_.linear & 0xfff), mmio_data_.data(), mmio_.size);
    mmio_.stage = PendingMmio::kStepping;
    single_step_eip_ = s_.eip;
    single_step_unchecked_ = mmio_.unchecked;
  }
  if (io_pending_) {
    io_pending_ = false;
    bool done = false;
    Exit e = finish_step(system_.finish_io(s_, io_step_.io), done);
    if (done) return e;
  }
  for (;;) {
    if (ctx_->kick_pending) {
      ctx_->kick_pending = 0;
      if (kicked_) {
        cache_.relink_exits(kicked_);
        kicked_ = nullptr;
      }
      return Exit(ExitReason::kKicked);
    }
    // The STI / MOV SS shadow covers exactly one instruction (Intel SDM Vol. 3A §6.8.3): with an
    // interrupt waiting, that instruction runs as a block of its own and the interrupt comes
    // before the next (which may be a CLI).
    // NMIs come first and ignore IF; the shadow holds them too (Intel SDM Vol. 3A §6.8.3 allows
    // it after STI and requires it after MOV SS).
    bool shadow_step = false;
    if (system_.interrupt_shadow) {
      system_.interrupt_shadow = false;
      shadow_step = ((s_.eflags & eflags::kIf) && interrupts_.interrupt_pending()) ||
                    (!system_.nmi_blocked && interrupts_.nmi_pending());
    } else if (!debug_.single_step && !system_.nmi_blocked && interrupts_.nmi_pending()) {
      interrupts_.acknowledge_nmi();
      ++nmis_delivered_;
      bool done = false;
      Exit e = finish_step(system_.deliver_nmi(s_), done);
      if (done) return e;
    } else if (!debug_.single_step && (s_.eflags & eflags::kIf) &&
               interrupts_.interrupt_pending()) {
      ++interrupts_delivered_;
      bool done = false;
      Exit e =
          finish_step(system_.deliver_interrupt(s_, interrupts_.acknowledge_interrupt()), done);
      if (done) return e;
    }
    if (windows_pending_) apply_memory_windows();
    const uint32_t flags = dispatch_flags();
    const bool trap_flag = flags & tb_flags::kSingleInstruction;
    if (s_.seg[kCs].base != table_cs_base_) {
      // Indirect-branch tables are keyed by EIP, an offset in CS: a new code segment base
      // invalidates them all.
      tables_.clear_all();
      table_cs_base_ = s_.seg[kCs].base;
    }
    TranslationBlock* tb = nullptr;
    // A debugger's step, or the instruction it resumes at: one instruction, breakpoints ignored.
    const bool debug_one = debug_.single_step || debug_resume_;
    debug_resume_ = false;
    const uint32_t debug_eip = s_.eip, debug_cs = s_.seg[kCs].selector;
    bool single = single_step_eip_ == s_.eip || shadow_step;
    single_step_eip_ = UINT32_MAX;
    // EFLAGS.RF (Intel SDM Vol. 3B §17.3.1.1): cleared as the next instruction starts, which it
    // lets past an instruction breakpoint of the guest's (run alone, breakpoints ignored); the
    // debugger's own breakpoint there still stops first. A retry (a host fault the guest never
    // saw) sets it again below.
    const bool resume_flag = s_.eflags & eflags::kRf;
    bool rf_step = false;
    if (resume_flag) {
      const uint32_t linear = s_.seg[kCs].base + s_.eip;
      rf_step = guest_breakpoint_at(linear);
      if (rf_step && !debug_one &&
          std::binary_search(debug_.breakpoints.begin(), debug_.breakpoints.end(), linear)) {
        Exit e(ExitReason::kDebug);
        e.debug = DebugStop::kBreakpoint;
        return e;
      }
      s_.eflags &= ~eflags::kRf;
      single |= rf_step;
    }
    const uint32_t held_hits = held_hits_;
    const bool code_write = single && single_step_code_write_;
    const uint32_t unchecked = single && single_step_unchecked_ ? tb_flags::kSegUnchecked : 0;
    single_step_code_write_ = single_step_unchecked_ = false;  // one instruction each
    if (code_write) {
      // The store writes a page with translated code (maybe its own): a one-off block, not
      // write-protected, discarded after it ran.
      tb = translator_.translate(s_.eip,
                                 flags | tb_flags::kSingleInstruction | unchecked |
                                     (debug_one || rf_step ? tb_flags::kNoBreakpoints : 0),
                                 s_.seg[kCs].base);
    } else if (single || debug_one) {
      // Kept: page-table stores and checked-segment instructions recur.
      tb = lookup(s_.eip, flags | tb_flags::kSingleInstruction | unchecked |
                              (debug_one || rf_step ? tb_flags::kNoBreakpoints : 0));
    } else {
      tb = lookup(s_.eip, flags);
    }
    if (!tb) {
      bool done = false;
      Exit e = deliver_fetch_fault(done);
      if (done) return e;
      continue;
    }
    ++dispatches_;
    recent_blocks_[recent_next_++ % recent_blocks_.size()] = tb->eip;
    running_unchecked_ = tb->key_flags & tb_flags::kSegUnchecked;
    enter(tb);
    // The first instruction did not run: a host fault (retried, or the guest's fault, whose
    // frame has RF=1 anyway) or a callout still to run.
    const bool first_not_run =
        (ctx_->exit_kind == ExitKind::kFault || ctx_->exit_kind == ExitKind::kCallout) &&
        s_.eip == debug_eip && s_.seg[kCs].selector == debug_cs;
    if (resume_flag && ctx_->exit_kind == ExitKind::kFault && first_not_run) {
      s_.eflags |= eflags::kRf;
    }
    bool rep_goes_on = false;  // a single iteration ran and the REP instruction is not over
    if (rep_iteration_) {
      const RepIteration it = *rep_iteration_;
      rep_iteration_.reset();
      if (ctx_->exit_kind == ExitKind::kFault && first_not_run) {
        s_.gpr[kEcx] += it.count - 1;  // the iteration did not complete: the count as it was
      } else {
        s_.gpr[kEcx] = it.count - 1;
        const bool zf = s_.eflags & eflags::kZf;
        rep_goes_on = !(it.repe && !zf) && !(it.repne && zf);
        if (rep_goes_on) s_.eip = it.eip;
      }
    }
    if (single) {
      if (code_write) cache_.discard(tb);  // its page was not write-protected
      bool mmio_write = false;
      if (mmio_.stage == PendingMmio::kStepping) {
        mmio_write = mmio_.writes && ctx_->exit_kind != ExitKind::kFault;
        if (mmio_write) {
          std::memcpy(mmio_data_.data(), mmu_.scratch() + (mmio_.linear & 0xfff), mmio_.size);
        }
        mmio_.stage = PendingMmio::kNone;
      }
      mmu_.resume_tracing();
      if (mmio_write) {  // what the instruction stored goes to the device
        return mmio_exit(true);
      }
    }
    uint32_t db_hits = 0;  // B0-B3 of the guest's data breakpoints the instruction triggered
    if (single && watched_access_) {
      // The access to a watched frame ran (unless it faulted): a debugger's data breakpoint
      // reports it after the instruction, with the watched byte's address; the guest's are a
      // #DB trap after it (Intel SDM Vol. 3B §17.2.5), below.
      const WatchedAccess access = *watched_access_;
      watched_access_.reset();
      if (ctx_->exit_kind != ExitKind::kFault) {
        if (auto hit = watch_hit(access)) {
          Exit e(ExitReason::kDebug);
          e.debug = DebugStop::kWatchpoint;
          e.debug_watch = hit->first;
          e.debug_address = hit->second;
          return e;
        }
        if (guest_data_breakpoints_) {
          const uint32_t hits = dr::data_hits(s_.dr, access.linear, access.size, access.write);
          if (dr::fires(s_.dr[7], hits)) db_hits = hits;
        }
      }
    }

    bool done = false;
    Exit e;
    ++exits_by_kind_[static_cast<unsigned>(ctx_->exit_kind)];
    switch (ctx_->exit_kind) {
      case ExitKind::kBranch: {
        // The mode now, not the one the loop started with: a direct call in the blocks that ran
        // may have changed it and gone on in another mode's block (resume_block, transfer_to).
        // Blocks of different modes are never chained.
        TranslationBlock* from = ctx_->exit_tb;
        const uint32_t now = dispatch_flags();
        TranslationBlock* to = lookup(s_.eip, now);
        // With paging a chain is only safe where the target's code comes from pages the source
        // was checked against: another address space may map other pages there, and only the
        // dispatcher's lookup checks that (cross-page branches use the per-space table).
        auto covered = [&](uint32_t page) {
          return page == from->pages[0] || (from->page_count == 2 && page == from->pages[1]);
        };
        bool same_pages = from && to &&
                          ((from->cs_base + from->eip) >> 12) == ((to->cs_base + to->eip) >> 12) &&
                          covered(to->pages[0]) && (to->page_count == 1 || covered(to->pages[1]));
        if (from && from->valid && to && from != kicked_ && (!mmu_.paging() || same_pages) &&
            from->key_flags == now && !(now & tb_flags::kSingleInstruction) &&
            !(from->key_flags & tb_flags::kSingleInstruction)) {
          cache_.link(from, ctx_->exit_slot, to);
          ++chains_;
        }
        break;
      }
      case ExitKind::kIndirect:
      case ExitKind::kUnlinked:
      case ExitKind::kNone:
        break;
      case ExitKind::kIrqWindow:
        system_.interrupt_shadow = true;  // STI's shadow: one instruction, then the interrupt
        break;
      case ExitKind::kCallout:
        e = handle_callout(done);
        break;
      case ExitKind::kDirectCall:
        if (direct_exit_pending_) {
          direct_exit_pending_ = false;
          return std::move(direct_exit_);
        }
        break;
      case ExitKind::kFault:
        e = handle_fault(done);
        break;
      case ExitKind::kDebugStop: {
        const uint32_t linear = s_.seg[kCs].base + s_.eip;
        if (std::binary_search(debug_.breakpoints.begin(), debug_.breakpoints.end(), linear)) {
          e = Exit(ExitReason::kDebug);  // the debugger's breakpoint: it comes first
          e.debug = DebugStop::kBreakpoint;
          return e;
        }
        // The guest's instruction breakpoint: a fault, before the instruction runs (Intel SDM
        // Vol. 3B §17.3.1.1), the frame's RF as EFLAGS.RF is (0: with RF set the dispatcher
        // runs the instruction instead).
        if (s_.eflags & eflags::kRf) break;
        s_.dr[6] = dr::dr6_with_hits(s_.dr[6], dr::execute_hits(s_.dr, linear));
        e = raise_exception(exc::kDb, done);
        break;
      }
    }
    if (done) return e;
    if (debug_.single_step && !(ctx_->exit_kind == ExitKind::kFault && s_.eip == debug_eip &&
                                s_.seg[kCs].selector == debug_cs)) {
      // The step is over unless a host fault the guest never saw (a shadow fill, a traced
      // store run alone) left the instruction to run again.
      e = Exit(ExitReason::kDebug);
      e.debug = DebugStop::kStep;
      return e;
    }
    db_hits |= std::exchange(callout_hits_, 0);
    if (held_hits) {
      // The instruction after a MOV SS / POP SS ran: the data breakpoint it held is reported
      // now (Intel SDM Vol. 3A §6.8.3), with this instruction's own; unless it is to run again.
      if (first_not_run && ctx_->exit_kind == ExitKind::kFault) {
        single_step_eip_ = s_.eip;
      } else {
        db_hits |= std::exchange(held_hits_, 0);
      }
    }
    if (db_hits && system_.interrupt_shadow) {
      // A MOV SS / POP SS triggered it: held until after the next instruction, which runs alone.
      held_hits_ |= db_hits;
      db_hits = 0;
      single_step_eip_ = s_.eip;
    }
    const bool single_step_trap = trap_flag && (ctx_->exit_kind == ExitKind::kBranch ||
                                                ctx_->exit_kind == ExitKind::kIndirect);
    if (single_step_trap || db_hits) {
      if (single_step_trap) s_.dr[6] |= dr::kBs;  // DR6.BS: single-step
      if (db_hits) s_.dr[6] = dr::dr6_with_hits(s_.dr[6], db_hits);
      // A trap between iterations of a REP string instruction pushes RF=1 (§17.3.1.1).
      if (db_hits && rep_goes_on) s_.eflags |= eflags::kRf;
      e = raise_exception(exc::kDb, done);
      if (done) return e;
    }
  }
}

bool BtEngine::enable_perf_map() {
  const std::string path = fmt::format("/tmp/perf-{}.map", getpid());
  perf_map_.reset(std::fopen(path.c_str(), "w"));
  if (!perf_map_) throw Error(fmt::format("--perfmap: cannot write {}", path));
  std::setvbuf(perf_map_.get(), nullptr, _IOFBF, 1 << 16);
  // The stubs generated at start-up, each named, in address order.
  std::vector<std::pair<const uint8_t*, const char*>> stubs = {
      {reinterpret_cast<const uint8_t*>(stubs_.enter), "vmbt_stub_enter"},
      {stubs_.exit, "vmbt_stub_exit"},
      {stubs_.exit_after_fault, "vmbt_stub_exit_after_fault"},
      {stubs_.indirect_miss, "vmbt_stub_indirect_miss"},
      {stubs_.indirect_exit, "vmbt_stub_indirect_exit"},
      {stubs_.direct_call, "vmbt_stub_direct_call"}};
  std::sort(stubs.begin(), stubs.end());
  for (size_t i = 0; i < stubs.size(); ++i) {
    const uint8_t* end = i + 1 < stubs.size() ? stubs[i + 1].first : stubs_.end;
    std::fprintf(perf_map_.get(), "%lx %lx %s\n", reinterpret_cast<unsigned long>(stubs[i].first),
                 static_cast<unsigned long>(end - stubs[i].first), stubs[i].second);
  }
  cache_.set_perf_map(perf_map_.get());
  return true;
}

std::string BtEngine::hand_over_blocker() {
  if (system_.interrupt_shadow) return "in an interrupt shadow (after STI or MOV SS)";
  if (system_.nmi_blocked) return "in an NMI handler (NMIs blocked until its IRET)";
  if (io_pending_ || mmio_.stage != PendingMmio::kNone || single_step_eip_ != UINT32_MAX) {
    return "an instruction is half-done";
  }
  return {};
}

std::string BtEngine::set_memory_windows(const std::vector<MemoryWindow>& windows) {
  // A PAM write may come from inside translated code (an OUT to the PCI configuration ports on
  // the direct call's fast path), whose block must not be freed under it: the change waits for
  // the dispatcher (apply_memory_windows), which the direct call leaves for at once.
  pending_windows_ = windows;
  windows_pending_ = true;
  return {};
}

void BtEngine::apply_memory_windows() {
  windows_pending_ = false;
  mmu_.set_firmware_windows(std::move(pending_windows_));
  pending_windows_.clear();
  drop_translations();
}

void BtEngine::forget_guest_memory() {
  drop_translations();
  mmu_.flush_all();
  mmu_.set_mode(s_);
}

void BtEngine::drop_translations() {
  cache_.flush();
  tables_.clear_all();
  entering_ = kicked_ = nullptr;
}

void BtEngine::set_callout_observer(std::function<void(const CalloutEvent&)> observer) {
  // Observed callouts need blocks without direct calls (key_flags): chained blocks of the other
  // kind must not run on.
  if (static_cast<bool>(observer) != static_cast<bool>(callout_observer_)) drop_translations();
  callout_observer_ = std::move(observer);
}

std::string BtEngine::set_debug(const DebugSettings& settings) {
  const bool changed = settings.breakpoints != debug_.breakpoints;
  debug_ = settings;
  if (changed) apply_breakpoints();
  debug_resume_ = true;
  watch_frames();
  return {};
}

void BtEngine::watch_frames() {
  // The frames the watched linear ranges map to now stay read-only (write watchpoints) or
  // inaccessible (read and access watchpoints) in the shadow page tables. A page not mapped now
  // is watched once a page-table switch maps it (on_paging_changed).
  std::vector<uint32_t> write_pages, access_pages;
  std::vector<DebugSettings::Watch> watches = debug_.watchpoints;
  for (unsigned n = 0; n < 4 && guest_data_breakpoints_; ++n) {
    // The guest's data breakpoints (Intel SDM Vol. 3B §17.2.5): linear ranges, as a debugger's.
    const dr::Breakpoint b = dr::breakpoint(s_.dr, n);
    if (!b.enabled || (b.kind != dr::Kind::kWrite && b.kind != dr::Kind::kReadWrite)) continue;
    watches.push_back({b.linear, b.length,
                       b.kind == dr::Kind::kWrite ? DebugSettings::Watch::Kind::kWrite
                                                  : DebugSettings::Watch::Kind::kAccess});
  }
  for (const DebugSettings::Watch& w : watches) {
    if (w.length == 0) continue;
    for (uint64_t page = w.linear >> 12; page <= (uint64_t{w.linear} + w.length - 1) >> 12;
         ++page) {
      const std::optional<uint32_t> pa = mmu_.probe_physical(static_cast<uint32_t>(page << 12));
      if (!pa || !memory_.contains(*pa, 1)) continue;
      (w.kind == DebugSettings::Watch::Kind::kWrite ? write_pages : access_pages)
          .push_back(*pa >> 12);
    }
  }
  for (auto* pages : {&write_pages, &access_pages}) {
    std::sort(pages->begin(), pages->end());
    pages->erase(std::unique(pages->begin(), pages->end()), pages->end());
  }
  mmu_.set_watched_pages(write_pages, access_pages);
}

void BtEngine::start_rep_iteration() {
  uint8_t bytes[16] = {};
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (!decode_at_eip(bytes, insn, ops) || insn.meta.category != ZYDIS_CATEGORY_STRINGOP ||
      insn.address_width != 32 || s_.gpr[kEcx] <= 1 || !has_rep_prefix(insn)) {
    return;
  }
  rep_iteration_ =
      RepIteration{s_.gpr[kEcx], s_.eip, (insn.attributes & ZYDIS_ATTRIB_HAS_REPE) != 0,
                   (insn.attributes & ZYDIS_ATTRIB_HAS_REPNE) != 0};
  s_.gpr[kEcx] = 1;
  // One element at the faulting address.
  watched_access_->size = std::max<uint32_t>(1, insn.operand_width / 8);
}

BtEngine::WatchedAccess BtEngine::watched_access_at(uint32_t linear, bool write) {
  WatchedAccess access{linear, 1, !write, write};
  uint8_t bytes[16] = {};
  ZydisDecodedInstruction insn;
  ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
  if (!decode_at_eip(bytes, insn, ops)) return access;
  const bool string = insn.meta.category == ZYDIS_CATEGORY_STRINGOP;
  for (unsigned i = 0; i < insn.operand_count; ++i) {
    if (ops[i].type != ZYDIS_OPERAND_TYPE_MEMORY || ops[i].mem.type != ZYDIS_MEMOP_TYPE_MEM) {
      continue;
    }
    access.read |= (ops[i].actions & ZYDIS_OPERAND_ACTION_MASK_READ) != 0;
    access.write |= (ops[i].actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
    access.size = std::max<uint32_t>(access.size, ops[i].size / 8);
  }
  if (string && has_rep_prefix(insn)) access.size = 0x1000 - (linear & 0xfff);
  return access;
}

std::optional<std::pair<DebugSettings::Watch::Kind, uint32_t>> BtEngine::watch_hit(
    const WatchedAccess& access) const {
  using Kind = DebugSettings::Watch::Kind;
  const uint64_t end = uint64_t{access.linear} + access.size;
  for (const DebugSettings::Watch& w : debug_.watchpoints) {
    const bool how = w.kind == Kind::kWrite  ? access.write
                     : w.kind == Kind::kRead ? access.read
                                             : access.read || access.write;
    const uint64_t w_end = uint64_t{w.linear} + w.length;
    if (how && access.linear < w_end && w.linear < end) {
      return std::pair(w.kind, std::max(access.linear, w.linear));
    }
  }
  return std::nullopt;
}

bool BtEngine::debug_access(uint32_t linear, uint8_t* data, size_t size, bool write) {
  // Through the guest's tables as they are (no A/D updates); a store is seen as a guest store
  // would be: translated code and traced tables first.
  return memory_.copy_linear(
      linear, data, size, write,
      [this](uint32_t at) -> std::optional<uint64_t> { return mmu_.probe_physical(at); },
      [this](uint64_t gpa, size_t bytes) {
        mmu_.note_phys_write(static_cast<uint32_t>(gpa), static_cast<unsigned>(bytes));
      });
}

std::string BtEngine::debug_notes() {
  std::string out = "last blocks dispatched (oldest first; chained blocks are not listed):";
  for (unsigned i = 0; i < recent_blocks_.size(); ++i) {
    unsigned n = recent_next_ + i;
    if (n < recent_blocks_.size() && recent_next_ < recent_blocks_.size()) continue;
    out += fmt::format(" {:08x}", recent_blocks_[n % recent_blocks_.size()]);
  }
  if (fetches_outside_ram_ != 0) {
    out += fmt::format(
        "\n{} instruction fetches outside RAM ({} MiB) raised #UD; the last at linear "
        "{:#010x}",
        fetches_outside_ram_, memory_.size() >> 20, last_fetch_outside_ram_);
  }
  return out + "\n";
}

void BtEngine::collect_stats(Stats& stats) {
  stats.set("bt.blocks_translated", cache_.blocks_translated());
  stats.set("bt.blocks_live", cache_.blocks_live());
  stats.set("bt.translation_cache_bytes", cache_.bytes_used());
  stats.set("bt.translation_cache_flushes", cache_.flushes());
  stats.set("bt.fast_deliveries", system_.fast_paths_taken());
  stats.set("bt.translation_cache_record_bytes", cache_.record_bytes());
  stats.set("bt.fetches_outside_ram", fetches_outside_ram_);
  stats.set("bt.indirect_tables.live", tables_.live());
  stats.set("bt.indirect_tables.page_fills", table_page_fills_);
  stats.set("bt.indirect_tables.created", tables_.created());
  stats.set("bt.indirect_tables.evicted", tables_.evictions());
  stats.set("bt.smc_invalidations", smc_invalidations_);
  stats.set("bt.chains_made", chains_);
  stats.set("bt.dispatches", dispatches_);
  static const char* kKinds[] = {"none",     "branch",     "indirect",    "callout",   "fault",
                                 "unlinked", "irq_window", "direct_call", "debug_stop"};
  static_assert(std::size(kKinds) == std::tuple_size_v<decltype(exits_by_kind_)>);
  for (unsigned i = 0; i < exits_by_kind_.size(); ++i) {
    if (exits_by_kind_[i]) stats.set(std::string("bt.block_exits.") + kKinds[i], exits_by_kind_[i]);
  }
  stats.set("bt.host_faults", host_faults_);
  stats.set("interrupts_delivered", interrupts_delivered_);
  stats.set("nmis_delivered", nmis_delivered_);
  mmu_.collect_stats(stats, "bt.shadow.");
  const ShadowMmuStats& m = mmu_.stats();
  stats.set("guest_page_faults", m.true_faults);
  for (size_t m = 0; m < callouts_by_mnemonic_.size(); ++m) {
    if (callouts_by_mnemonic_[m] == 0) continue;
    stats.set(std::string("bt.callouts.") + ZydisMnemonicGetString(static_cast<ZydisMnemonic>(m)),
              callouts_by_mnemonic_[m]);
  }
  if (undecodable_callouts_) stats.set("bt.callouts.(invalid)", undecodable_callouts_);
  stats.set("bt.direct_calls", direct_calls_);
  stats.set("bt.direct_transfers", direct_transfers_);
  stats.set("io_in_engine", io_in_engine_);
  for (const auto& [vector, n] : exceptions_by_vector_) {
    stats.set(fmt::format("exceptions_delivered.{}", vector), n);
  }
  const TranslatorStats& t = translator_.stats();
  stats.set("bt.insns.ident", t.ident);
  stats.set("bt.insns.memory_rewritten", t.rewritten_mem);
  stats.set("bt.insns.control", t.control);
  stats.set("bt.insns.stack", t.stack);
  stats.set("bt.insns.string", t.string);
  stats.set("bt.insns.callout", t.callouts);
  stats.set("bt.insns.direct_call", t.direct_calls);
  stats.set("bt.insns.table_writer", t.table_writers);
}

}  // namespace vmbt::bt
