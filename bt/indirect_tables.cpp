// The indirect-branch tables: per address space and mode, plus a global table per mode; bounded.
#include "bt/indirect_tables.h"

#include <algorithm>

namespace vmbt::bt {

namespace {
constexpr uint32_t kPages = 1u << 20;
constexpr uint32_t kNoPage = UINT32_MAX;  ///< slot_page of a slot no list holds
/// A page has at most 4096 distinct slots (the table is indexed by the low 16 bits of the EIP);
/// a list longer than this has stale or repeated entries and is compacted.
constexpr size_t kCompactAt = 2 * 4096;
}  // namespace

IndirectTables::IndirectTables(uint64_t miss_stub, uint64_t exit_stub) : miss_stub_(miss_stub) {
  empty_.fill(miss_stub);
  std::fill(kick_.begin(), kick_.end(), exit_stub);
}

void IndirectTables::clear(Table& t) const {
  for (const auto& [page, list] : t.by_page) {
    for (uint32_t i : list) {
      t.slots[i] = miss_stub_;
      t.slot_page[i] = kNoPage;
    }
  }
  t.by_page.clear();
}

void IndirectTables::place(Table& t, uint32_t i, uint32_t page, uint64_t host,
                           std::vector<uint32_t>* list) {
  // A slot whose slot_page is `page` is in that page's list already.
  if (t.slot_page[i] != page) {
    if (!list) list = &t.by_page[page];
    list->push_back(i);
    if (list->size() > kCompactAt) {  // slots taken back and forth with other pages
      std::erase_if(*list, [&](uint32_t j) { return t.slot_page[j] != page && j != i; });
      std::sort(list->begin(), list->end());
      list->erase(std::unique(list->begin(), list->end()), list->end());
    }
  }
  t.slots[i] = host;
  t.slot_page[i] = page;
}

void IndirectTables::enter(Table& t, uint32_t eip, uint32_t page, uint64_t host,
                           std::vector<uint32_t>* list) {
  const uint32_t i = eip & (kIndirectTableSize - 1);
  if (t.slots[i] == host) return;
  if (t.slots[i + 1] == host) {  // in the victim slot: the two swap, most recent first
    std::swap(t.slots[i], t.slots[i + 1]);
    std::swap(t.slot_page[i], t.slot_page[i + 1]);
    for (uint32_t k : {i, i + 1}) {
      if (t.slot_page[k] != kNoPage) t.by_page[t.slot_page[k]].push_back(k);
    }
    return;
  }
  if (t.slot_page[i] != kNoPage) place(t, i + 1, t.slot_page[i], t.slots[i]);
  place(t, i, page, host, list);
}

std::unique_ptr<IndirectTables::Table> IndirectTables::take_empty() {
  if (!pool_.empty()) {
    std::unique_ptr<Table> t = std::move(pool_.back());
    pool_.pop_back();
    return t;
  }
  auto t = std::make_unique<Table>();
  t->slots.fill(miss_stub_);
  t->slot_page.fill(kNoPage);
  ++created_;
  return t;
}

void IndirectTables::give_back(std::unique_ptr<Table> t) {
  for (auto* recent : {&recent_, &recent_global_}) {
    for (Recent& r : *recent) {
      if (r.table == t.get()) r = Recent{};
    }
  }
  if (pool_.size() >= kPoolTables) return;  // freed
  clear(*t);
  pool_.push_back(std::move(t));
}

template <typename Map>
void IndirectTables::evict_lru(Map& map, typename Map::key_type keep) {
  auto victim = map.end();
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (it->first == keep) continue;
    if (victim == map.end() || it->second->last_used < victim->second->last_used) victim = it;
  }
  if (victim == map.end()) return;
  give_back(std::move(victim->second));
  map.erase(victim);
  ++evictions_;
}

IndirectTables::Table* IndirectTables::recall(std::array<Recent, 2>& recent, uint64_t key) {
  if (recent[0].table && recent[0].key == key) return recent[0].table;
  if (recent[1].table && recent[1].key == key) {
    std::swap(recent[0], recent[1]);
    return recent[0].table;
  }
  return nullptr;
}

void IndirectTables::note(std::array<Recent, 2>& recent, uint64_t key, Table* table) {
  recent[1] = recent[0];
  recent[0] = Recent{key, table};
}

template <typename Map>
IndirectTables::Table* IndirectTables::find_or_make(Map& map, std::array<Recent, 2>& recent,
                                                    typename Map::key_type key, size_t limit,
                                                    bool create) {
  Table* t = recall(recent, key);
  if (!t) {
    auto it = map.find(key);
    if (it == map.end()) {
      if (!create) return nullptr;
      if (map.size() >= limit) evict_lru(map, key);
      it = map.emplace(key, take_empty()).first;
    }
    t = it->second.get();
    note(recent, key, t);
  }
  t->last_used = ++clock_;
  return t;
}

IndirectTables::Table* IndirectTables::table_for(uint32_t space, uint32_t mode, bool global,
                                                 bool create) {
  return global ? find_or_make(global_, recent_global_, mode, kMaxGlobalTables, create)
                : find_or_make(tables_, recent_, key(space, mode), kMaxTables, create);
}

uint64_t* IndirectTables::slots(uint32_t space, uint32_t mode) {
  return table_for(space, mode, false, true)->slots.data();
}

uint64_t* IndirectTables::find_slots(uint32_t space, uint32_t mode) {
  Table* t = table_for(space, mode, false, false);
  return t ? t->slots.data() : nullptr;
}

uint64_t* IndirectTables::global_slots(uint32_t mode) {
  Table* g = table_for(0, mode, true, false);
  return g ? g->slots.data() : empty_.data();
}

void IndirectTables::remember(uint32_t space, uint32_t mode, uint32_t eip, uint32_t page,
                              const void* host, bool global) {
  const Entry one{eip, host};
  remember_all(space, mode, page, global, std::span<const Entry>(&one, 1));
}

void IndirectTables::remember_all(uint32_t space, uint32_t mode, uint32_t page, bool global,
                                  std::span<const Entry> blocks) {
  Table& t = *table_for(space, mode, global, true);
  if (global) global_pages_[page >> 6] |= uint64_t{1} << (page & 63);
  std::vector<uint32_t>& list = t.by_page[page];
  for (const Entry& b : blocks) enter(t, b.eip, page, reinterpret_cast<uint64_t>(b.host), &list);
}

bool IndirectTables::holds(uint32_t space, uint32_t mode, uint32_t eip, const void* host,
                           bool global) {
  const Table* t = table_for(space, mode, global, false);
  const uint32_t i = eip & (kIndirectTableSize - 1);
  const uint64_t h = reinterpret_cast<uint64_t>(host);
  return t && (t->slots[i] == h || t->slots[i + 1] == h);
}

bool IndirectTables::has_page(uint32_t space, uint32_t mode, uint32_t page, bool global) {
  const Table* t = table_for(space, mode, global, false);
  return t && t->by_page.count(page) != 0;
}

void IndirectTables::forget_pages(uint32_t space, uint32_t first, uint32_t pages, bool global) {
  // Blocks on global pages are like global TLB entries (Intel SDM Vol. 3A §4.10.2.4): a change
  // to one space's page directory (a new process's, a whole space evicted) leaves them; a
  // page-table entry change, INVLPG or a CR4.PGE/CR0 change takes them away.
  if (global) {
    const uint64_t end = std::min<uint64_t>(uint64_t{first} + pages, kPages);
    for (uint64_t p = first; p < end; ++p) {
      if ((p & 63) == 0 && end - p >= 64 && global_pages_[p >> 6] == 0) {
        p += 63;  // none of these 64
        continue;
      }
      if (!maybe_global(static_cast<uint32_t>(p))) continue;
      global_pages_[p >> 6] &= ~(uint64_t{1} << (p & 63));
      for (auto& [mode, t] : global_) clear_page(*t, static_cast<uint32_t>(p));
    }
  }
  auto begin = tables_.lower_bound(key(space, 0));
  auto end = space == UINT32_MAX ? tables_.end() : tables_.lower_bound(key(space + 1, 0));
  if (first == 0 && pages >= kPages) {  // the whole space: its tables go
    for (auto it = begin; it != end; ++it) give_back(std::move(it->second));
    tables_.erase(begin, end);
    return;
  }
  for (auto it = begin; it != end; ++it) clear_pages(*it->second, first, pages);
}

void IndirectTables::forget_page_everywhere(uint32_t space, uint32_t page) {
  forget_pages(space, page, 1, true);
}

void IndirectTables::forget_block(uint32_t eip, const void* host) {
  const uint64_t h = reinterpret_cast<uint64_t>(host);
  const uint32_t i = eip & (kIndirectTableSize - 1);
  auto forget = [&](Table& t) {
    for (uint32_t k : {i, i + 1}) {
      if (t.slots[k] == h) t.slots[k] = miss_stub_;
    }
  };
  for (auto& [k, t] : tables_) forget(*t);
  for (auto& [mode, t] : global_) forget(*t);
}

void IndirectTables::clear_global() {
  for (auto& [mode, t] : global_) clear(*t);
  std::fill(global_pages_.begin(), global_pages_.end(), 0);
}

void IndirectTables::clear_all() {
  for (auto& [k, t] : tables_) clear(*t);
  clear_global();
}

void IndirectTables::clear_page(Table& t, uint32_t page) const {
  auto it = t.by_page.find(page);
  if (it == t.by_page.end()) return;
  for (uint32_t i : it->second) {
    if (t.slot_page[i] != page) continue;  // another page's now
    t.slots[i] = miss_stub_;
    t.slot_page[i] = kNoPage;
  }
  t.by_page.erase(it);
}

void IndirectTables::clear_pages(Table& t, uint32_t first, uint32_t pages) const {
  const uint64_t end = std::min<uint64_t>(uint64_t{first} + pages, kPages);
  if (end - first <= t.by_page.size()) {
    for (uint32_t p = first; p < end; ++p) clear_page(t, p);
    return;
  }
  std::vector<uint32_t> hit;
  for (const auto& [page, list] : t.by_page) {
    if (page >= first && page < end) hit.push_back(page);
  }
  for (uint32_t p : hit) clear_page(t, p);
}

}  // namespace vmbt::bt
