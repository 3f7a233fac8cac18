// The indirect-branch tables, one per address space and mode, bounded.
#include "bt/indirect_tables.h"

#include <algorithm>

namespace vmbt::bt {

namespace {
/// The table is indexed by the low 16 bits of the EIP, so one page's blocks sit in 4096
/// consecutive slots shared with 15 other pages' blocks.
constexpr uint32_t kSlotsPerPage = 4096;
constexpr uint32_t kPages = 1u << 20;
}  // namespace

IndirectTables::IndirectTables(uint64_t miss_stub) : miss_stub_(miss_stub) {
  miss_.fill(miss_stub);
}

void IndirectTables::clear(Table& t) const {
  t.slots.fill(miss_stub_);
  std::fill(t.pages.begin(), t.pages.end(), 0);
}

void IndirectTables::enter(Table& t, uint32_t eip, uint32_t page, uint64_t host) {
  const uint32_t i = eip & (kIndirectTableSize - 1);
  t.slots[i] = host;
  t.slot_page[i] = page;
  t.pages[page / 64] |= uint64_t{1} << (page % 64);
}

uint64_t* IndirectTables::slots(uint32_t space, uint32_t mode) {
  const uint64_t k = key(space, mode);
  if (cached_ && cached_key_ == k) return cached_->slots.data();
  auto& slot = tables_[k];
  if (!slot) {
    if (tables_.size() > kMaxTables) evict_lru(tables_, k);
    slot = std::make_unique<Table>();
    ++created_;
    if (Table* g = global_for(mode, false)) {
      *slot = *g;
    } else {
      clear(*slot);
    }
  }
  slot->last_used = ++clock_;
  cached_key_ = k;
  cached_ = slot.get();
  return slot->slots.data();
}

IndirectTables::Table* IndirectTables::global_for(uint32_t mode, bool create) {
  auto it = global_.find(mode);
  if (it != global_.end()) return it->second.get();
  if (!create) return nullptr;
  if (global_.size() >= kMaxGlobalTables) evict_lru(global_, mode);
  auto t = std::make_unique<Table>();
  ++created_;
  clear(*t);
  return (global_[mode] = std::move(t)).get();
}

template <typename Map>
void IndirectTables::evict_lru(Map& map, typename Map::key_type keep) {
  auto victim = map.end();
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first == keep) continue;
    if (victim == map.end() || it->second->last_used < victim->second->last_used) victim = it;
  }
  if (victim == map.end()) return;
  if (victim->second.get() == cached_) cached_ = nullptr;
  map.erase(victim);
  ++evictions_;
}

void IndirectTables::remember(uint32_t space, uint32_t mode, uint32_t eip, uint32_t page,
                              const void* host, bool global) {
  const uint64_t h = reinterpret_cast<uint64_t>(host);
  slots(space, mode);
  enter(*cached_, eip, page, h);
  if (global) {
    Table* g = global_for(mode, true);
    g->last_used = clock_;
    enter(*g, eip, page, h);
  }
}

void IndirectTables::forget_pages(uint32_t space, uint32_t first, uint32_t pages, bool global) {
  // Blocks on global pages are like global TLB entries (Intel SDM Vol. 3A §4.10.2.4): a change
  // to one space's page directory (a new process's, a whole space evicted) leaves them; a
  // page-table entry change, INVLPG or a CR4.PGE/CR0 change takes them away.
  if (global) {
    for (auto& [mode, t] : global_) clear_pages(*t, first, pages, nullptr);
  }
  auto begin = tables_.lower_bound(key(space, 0));
  auto end = tables_.lower_bound(key(space + 1, 0));
  if (space == UINT32_MAX) end = tables_.end();
  if (first == 0 && pages >= kPages) {  // the whole space: its tables go
    if (cached_ && (cached_key_ >> 32) == space) cached_ = nullptr;
    tables_.erase(begin, end);
    return;
  }
  for (auto it = begin; it != end; ++it) {
    const uint32_t mode = static_cast<uint32_t>(it->first);
    clear_pages(*it->second, first, pages, global ? nullptr : global_for(mode, false));
  }
}

void IndirectTables::forget_page_everywhere(uint32_t space, uint32_t page) {
  for (auto& [mode, t] : global_) clear_pages(*t, page, 1, nullptr);
  forget_pages(space, page, 1, false);
}

void IndirectTables::forget_block(uint32_t eip, const void* host) {
  const uint64_t h = reinterpret_cast<uint64_t>(host);
  const uint32_t i = eip & (kIndirectTableSize - 1);
  for (auto& [k, t] : tables_) {
    if (t->slots[i] == h) t->slots[i] = miss_stub_;
  }
  for (auto& [mode, t] : global_) {
    if (t->slots[i] == h) t->slots[i] = miss_stub_;
  }
}

void IndirectTables::clear_global() {
  for (auto& [mode, t] : global_) clear(*t);
}

void IndirectTables::clear_all() {
  for (auto& [k, t] : tables_) clear(*t);
  clear_global();
}

void IndirectTables::clear_pages(Table& t, uint32_t first, uint32_t pages,
                                 const Table* keep) const {
  // Only pages with blocks in the table matter (a bit each); of those, only the slots that hold
  // blocks of that page. Slots `keep` holds too (global blocks) stay.
  if (first == 0 && pages >= kPages) {
    if (keep && keep != &t) {
      const uint64_t last_used = t.last_used;
      t = *keep;
      t.last_used = last_used;
    } else {
      clear(t);
    }
    return;
  }
  const uint32_t end = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{first} + pages, kPages));
  for (uint32_t p = first; p < end;) {
    const uint64_t word = t.pages[p / 64] >> (p % 64);
    if (word == 0) {  // no page with blocks in the rest of this word
      p = (p / 64 + 1) * 64;
      continue;
    }
    if (!(word & 1)) {
      ++p;
      continue;
    }
    bool kept = false;
    const uint32_t start = (p * kSlotsPerPage) & (kIndirectTableSize - 1);
    for (uint32_t i = start; i < start + kSlotsPerPage; ++i) {
      if (t.slot_page[i] != p) continue;
      if (keep && keep->slots[i] == t.slots[i] && keep->slot_page[i] == p) {
        kept |= t.slots[i] != miss_stub_;
        continue;
      }
      t.slots[i] = miss_stub_;
    }
    if (!kept) t.pages[p / 64] &= ~(uint64_t{1} << (p % 64));
    ++p;
  }
}

}  // namespace vmbt::bt
