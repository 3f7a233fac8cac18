// Debugging: the GDB stub's breakpoints, steps and watched frames, the guest's own debug
// registers (docs/bt.md "Debug stops", "The guest's debug registers"), and callout observers.
#include "bt/bt_engine.h"

#include <Zydis/Zydis.h>
#include <fmt/format.h>
#include <signal.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
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

}  // namespace vmbt::bt
