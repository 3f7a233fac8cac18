// The bt engine: its state, block lookup and chaining, the translated code's context, and the
// dispatcher loop (run). Direct calls are in bt/direct_calls.cpp, callouts and exceptions in
// bt/engine_callouts.cpp, host faults and MMIO in bt/engine_faults.cpp, debugging in
// bt/engine_debug.cpp.
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
/// The access probes' lookup tables (BtContext::probe_low/probe_high): for each access class,
/// whether an entry's bits 20-27 and 29-31 hold that class's ShadowMmu::probe_required bits.
void fill_probe_tables(BtContext& ctx) {
  for (const bool user : {false, true}) {
    for (const bool write : {false, true}) {
      const size_t cls = BtContext::probe_class(write, user);
      const uint32_t need = ShadowMmu::probe_required(write, user);
      const uint32_t low = need & 0x0ff00000u, high = need & 0xe0000000u;
      if ((low | high) != need) throw Error("bt: access probe bits outside 20-27 and 29-31");
      for (uint32_t i = 0; i < 256; ++i) ctx.probe_low[cls * 256 + i] = ((i << 20) & low) != low;
      for (uint32_t i = 0; i < 8; ++i) ctx.probe_high[cls * 8 + i] = ((i << 29) & high) != high;
    }
  }
}
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
  ctx_->state_cs = &s_.seg[kCs];
  ctx_->shadow_entries = mmu_.shadow_entries();
  fill_probe_tables(*ctx_);
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
  ctx_->shadow_entries = mmu_.shadow_entries();  // the space's, as its window
  ctx_->window_neg = 0 - ctx_->window_base;
  ctx_->window_high = ctx_->window_base + LinearWindow::kSpan;
  select_tables(flags);
}

BtEngine::TablePair BtEngine::tables_for(uint32_t mode, unsigned cpl, bool create) {
  // A guest kernel's branches mostly reach its global pages, a process's its own: the table
  // that hits first most often is probed first.
  uint64_t* space =
      create ? tables_.slots(mmu_.space_id(), mode) : tables_.find_slots(mmu_.space_id(), mode);
  if (!space) return {};
  uint64_t* global = tables_.global_slots(mode);
  const bool global_first = cpl != 3 && tables_.has_global(mode);
  return global_first ? TablePair{global, space} : TablePair{space, global};
}

void BtEngine::select_tables(uint32_t flags) {
  const TablePair t = tables_for(table_mode(flags), s_.cpl(), true);
  ctx_->second_table = t.second;
  ctx_->indirect_table_neg = 0 - reinterpret_cast<uint64_t>(t.first);
  ctx_->second_table_neg = 0 - reinterpret_cast<uint64_t>(t.second);
  // A kick already waiting keeps the kick table (kick()): translated code leaves at its first
  // indirect exit.
  ctx_->indirect_table = ctx_->kick_pending ? tables_.kick_slots() : t.first;
  prepare_system_calls(flags);
}

void BtEngine::prepare_system_calls(uint32_t flags) {
  for (SystemCallSwitch& sw : ctx_->system_call) sw.not_ready = 1;
  // The common case of SystemEmulator::fast_system_call, and what the inline code does not
  // change: RF stays clear, IF is the only flag SYSENTER clears, and without EFLAGS.AC (or
  // CR0.AM) neither CPL needs the host's alignment check (load_context). The tables hold
  // blocks of CS base 0, what both instructions load.
  const bool common =
      (flags & tb_flags::kDirectCalls) && SystemEmulator::system_call_common_case(s_) &&
      !(s_.eflags & eflags::kRf) && !((s_.cr0 & cr0::kAm) && (s_.eflags & eflags::kAc)) &&
      guest_exec_breakpoints_.empty() && !system_.interrupt_shadow && table_cs_base_ == 0;
  if (!common) return;
  const SegmentReg cs = s_.seg[kCs], ss = s_.seg[kSs];
  for (size_t which : {BtContext::kSysenter, BtContext::kSysexit}) {
    // The mode after the instruction: the same state with its CS and SS (nothing else of what
    // key_flags() reads changes), put back below.
    SystemEmulator::load_system_call_segments(s_, which == BtContext::kSysenter);
    const uint32_t to_flags = key_flags();
    const unsigned to_cpl = s_.cpl();
    const uint32_t mode = table_mode(to_flags);
    SystemCallSwitch& sw = ctx_->system_call[which];
    sw.segments = {s_.seg[kCs], s_.seg[kSs]};
    s_.seg[kCs] = cs;
    s_.seg[kSs] = ss;
    if (!(to_flags & tb_flags::kDirectCalls)) continue;
    const TablePair t = tables_for(mode, to_cpl, false);
    if (!t.first) continue;  // the monitor's way first: it makes the table
    sw.second_table = t.second;
    sw.indirect_table_neg = 0 - reinterpret_cast<uint64_t>(t.first);
    sw.second_table_neg = 0 - reinterpret_cast<uint64_t>(t.second);
    sw.tables = {t.first, tables_.kick_slots()};
    sw.selectors = {sw.segments[0].selector, sw.segments[1].selector};
    sw.esp = s_.sysenter_esp;
    sw.eip = s_.sysenter_eip;
    const auto window = reinterpret_cast<uint64_t>(mmu_.window_base(to_cpl));
    sw.window_base = window;
    sw.window_neg = 0 - window;
    sw.window_high = window + LinearWindow::kSpan;
    sw.not_ready = 0;
  }
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

std::string BtEngine::describe_eip() const {
  return fmt::format("EIP {:#010x} (CS {:#06x}, CPL {})", s_.eip, s_.seg[kCs].selector, s_.cpl());
}

Exit BtEngine::run() {
  // As QEMU's cpu_exec: finish what the last exit left, then, block after block: take a kick,
  // deliver a pending event, choose the block, run it, handle how it left, then the traps that
  // follow an instruction.
  if (std::optional<Exit> e = finish_last_exit()) return std::move(*e);
  for (;;) {
    if (ctx_->kick_pending) return take_kick();
    DispatchStep step;
    if (std::optional<Exit> e = deliver_pending_event(step)) return std::move(*e);
    if (physical_change_pending()) apply_physical_changes();
    if (std::optional<Exit> e = choose_block(step)) return std::move(*e);
    if (!step.tb) {
      bool done = false;
      Exit e = deliver_fetch_fault(done);
      if (done) return e;
      continue;
    }
    ++dispatches_;
    recent_blocks_[recent_next_++ % recent_blocks_.size()] = step.tb->eip;
    enter(step.tb);
    if (std::optional<Exit> e = after_block(step)) return std::move(*e);
    if (std::optional<Exit> e = handle_exit()) return std::move(*e);
    if (std::optional<Exit> e = traps_after(step)) return std::move(*e);
  }
}

std::optional<Exit> BtEngine::finish_last_exit() {
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
  return std::nullopt;
}

Exit BtEngine::take_kick() {
  ctx_->kick_pending = 0;
  if (kicked_) {
    cache_.relink_exits(kicked_);
    kicked_ = nullptr;
  }
  return Exit(ExitReason::kKicked);
}

std::optional<Exit> BtEngine::deliver_pending_event(DispatchStep& step) {
  // The STI / MOV SS shadow covers exactly one instruction (Intel SDM Vol. 3A §6.8.3): with an
  // interrupt waiting, that instruction runs as a block of its own and the interrupt comes
  // before the next (which may be a CLI).
  // NMIs come first and ignore IF; the shadow holds them too (Intel SDM Vol. 3A §6.8.3 allows
  // it after STI and requires it after MOV SS).
  bool done = false;
  if (system_.interrupt_shadow) {
    system_.interrupt_shadow = false;
    step.shadow_step = ((s_.eflags & eflags::kIf) && interrupts_.interrupt_pending()) ||
                       (!system_.nmi_blocked && interrupts_.nmi_pending());
  } else if (!debug_.single_step && !system_.nmi_blocked && interrupts_.nmi_pending()) {
    interrupts_.acknowledge_nmi();
    ++nmis_delivered_;
    Exit e = finish_step(system_.deliver_nmi(s_), done);
    if (done) return e;
  } else if (!debug_.single_step && (s_.eflags & eflags::kIf) && interrupts_.interrupt_pending()) {
    ++interrupts_delivered_;
    Exit e = finish_step(system_.deliver_interrupt(s_, interrupts_.acknowledge_interrupt()), done);
    if (done) return e;
  }
  return std::nullopt;
}

std::optional<Exit> BtEngine::choose_block(DispatchStep& step) {
  const uint32_t flags = dispatch_flags();
  step.trap_flag = flags & tb_flags::kSingleInstruction;
  if (s_.seg[kCs].base != table_cs_base_) {
    // Indirect-branch tables are keyed by EIP, an offset in CS: a new code segment base
    // invalidates them all.
    tables_.clear_all();
    table_cs_base_ = s_.seg[kCs].base;
  }
  // A debugger's step, or the instruction it resumes at: one instruction, breakpoints ignored.
  const bool debug_one = debug_.single_step || debug_resume_;
  debug_resume_ = false;
  step.start_eip = s_.eip;
  step.start_cs = s_.seg[kCs].selector;
  step.single = single_step_eip_ == s_.eip || step.shadow_step;
  single_step_eip_ = UINT32_MAX;
  // EFLAGS.RF (Intel SDM Vol. 3B §17.3.1.1): cleared as the next instruction starts, which it
  // lets past an instruction breakpoint of the guest's (run alone, breakpoints ignored); the
  // debugger's own breakpoint there still stops first. A retry (a host fault the guest never
  // saw) sets it again (after_block).
  step.resume_flag = s_.eflags & eflags::kRf;
  bool rf_step = false;
  if (step.resume_flag) {
    const uint32_t linear = s_.seg[kCs].base + s_.eip;
    rf_step = guest_breakpoint_at(linear);
    if (rf_step && !debug_one &&
        std::binary_search(debug_.breakpoints.begin(), debug_.breakpoints.end(), linear)) {
      Exit e(ExitReason::kDebug);
      e.debug = DebugStop::kBreakpoint;
      return e;
    }
    s_.eflags &= ~eflags::kRf;
    step.single |= rf_step;
  }
  step.held_hits = held_hits_;
  step.code_write = step.single && single_step_code_write_;
  const uint32_t unchecked = step.single && single_step_unchecked_ ? tb_flags::kSegUnchecked : 0;
  single_step_code_write_ = single_step_unchecked_ = false;  // one instruction each
  const uint32_t one = tb_flags::kSingleInstruction | unchecked |
                       (debug_one || rf_step ? tb_flags::kNoBreakpoints : 0);
  if (step.code_write) {
    // The store writes a page with translated code (maybe its own): a one-off block, not
    // write-protected, discarded after it ran.
    step.tb = translator_.translate(s_.eip, flags | one, s_.seg[kCs].base);
  } else if (step.single || debug_one) {
    // Kept: page-table stores and checked-segment instructions recur.
    step.tb = lookup(s_.eip, flags | one);
  } else {
    step.tb = lookup(s_.eip, flags);
  }
  return std::nullopt;
}

std::optional<Exit> BtEngine::after_block(DispatchStep& step) {
  // The first instruction did not run: a host fault (retried, or the guest's fault, whose
  // frame has RF=1 anyway) or a callout still to run.
  step.first_not_run =
      (ctx_->exit_kind == ExitKind::kFault || ctx_->exit_kind == ExitKind::kCallout) &&
      s_.eip == step.start_eip && s_.seg[kCs].selector == step.start_cs;
  if (step.resume_flag && ctx_->exit_kind == ExitKind::kFault && step.first_not_run) {
    s_.eflags |= eflags::kRf;
  }
  if (rep_iteration_) {
    const RepIteration it = *rep_iteration_;
    rep_iteration_.reset();
    if (ctx_->exit_kind == ExitKind::kFault && step.first_not_run) {
      s_.gpr[kEcx] += it.count - 1;  // the iteration did not complete: the count as it was
    } else {
      s_.gpr[kEcx] = it.count - 1;
      const bool zf = s_.eflags & eflags::kZf;
      step.rep_goes_on = !(it.repe && !zf) && !(it.repne && zf);
      if (step.rep_goes_on) s_.eip = it.eip;
    }
  }
  if (step.single) {
    if (step.code_write) cache_.discard(step.tb);  // its page was not write-protected
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
  if (step.single && watched_access_) {
    // The access to a watched frame ran (unless it faulted): a debugger's data breakpoint
    // reports it after the instruction, with the watched byte's address; the guest's are a
    // #DB trap after it (Intel SDM Vol. 3B §17.2.5), in traps_after.
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
        if (dr::fires(s_.dr[7], hits)) step.db_hits = hits;
      }
    }
  }
  return std::nullopt;
}

std::optional<Exit> BtEngine::handle_exit() {
  bool done = false;
  Exit e;
  ++exits_by_kind_[static_cast<unsigned>(ctx_->exit_kind)];
  switch (ctx_->exit_kind) {
    case ExitKind::kBranch:
      chain(ctx_->exit_tb, ctx_->exit_slot);
      break;
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
  return std::nullopt;
}

void BtEngine::chain(TranslationBlock* from, unsigned slot) {
  // The mode now, not the one the loop started with: a direct call in the blocks that ran
  // may have changed it and gone on in another mode's block (resume_block, transfer_to).
  // Blocks of different modes are never chained.
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
    cache_.link(from, slot, to);
    ++chains_;
  }
}

std::optional<Exit> BtEngine::traps_after(DispatchStep& step) {
  if (debug_.single_step && !(ctx_->exit_kind == ExitKind::kFault && s_.eip == step.start_eip &&
                              s_.seg[kCs].selector == step.start_cs)) {
    // The step is over unless a host fault the guest never saw (a shadow fill, a traced
    // store run alone) left the instruction to run again.
    Exit e(ExitReason::kDebug);
    e.debug = DebugStop::kStep;
    return e;
  }
  uint32_t db_hits = step.db_hits | std::exchange(callout_hits_, 0);
  if (step.held_hits) {
    // The instruction after a MOV SS / POP SS ran: the data breakpoint it held is reported
    // now (Intel SDM Vol. 3A §6.8.3), with this instruction's own; unless it is to run again.
    if (step.first_not_run && ctx_->exit_kind == ExitKind::kFault) {
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
  const bool single_step_trap = step.trap_flag && (ctx_->exit_kind == ExitKind::kBranch ||
                                                   ctx_->exit_kind == ExitKind::kIndirect);
  if (single_step_trap || db_hits) {
    if (single_step_trap) s_.dr[6] |= dr::kBs;  // DR6.BS: single-step
    if (db_hits) s_.dr[6] = dr::dr6_with_hits(s_.dr[6], db_hits);
    // A trap between iterations of a REP string instruction pushes RF=1 (§17.3.1.1).
    if (db_hits && step.rep_goes_on) s_.eflags |= eflags::kRf;
    bool done = false;
    Exit e = raise_exception(exc::kDb, done);
    if (done) return e;
  }
  return std::nullopt;
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
  // the dispatcher (apply_physical_changes), which the direct call leaves for at once.
  pending_physical_.windows = windows;
  return {};
}

std::string BtEngine::set_a20(bool enabled) {
  // As the windows: an OUT to port 0x92 on the fast path is inside a block.
  pending_physical_.a20 = enabled;
  return {};
}

void BtEngine::apply_physical_changes() {
  if (pending_physical_.windows) mmu_.set_firmware_windows(std::move(*pending_physical_.windows));
  if (pending_physical_.a20) mmu_.set_a20(*pending_physical_.a20);
  pending_physical_ = {};
  drop_translations();  // what an address holds changed
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
  stats.set("bt.inline_system_calls", ctx_->inline_system_calls);
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
  stats.set("bt.insns.probed", t.probed);
  stats.set("bt.access_probes.calls", access_probe_calls_);
  stats.set("bt.access_probes.fills", access_probe_fills_);
  stats.set("bt.access_probes.page_faults", access_probe_page_faults_);
  stats.set("bt.access_probes.instructions", probed_accesses_.size());
}

}  // namespace vmbt::bt
