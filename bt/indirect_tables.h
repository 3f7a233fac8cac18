// The indirect-branch tables: where translated code finds the block for a computed target.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "bt/bt_context.h"

namespace vmbt::bt {

/// The tables translated code probes for the target of an indirect branch, a return or a branch
/// to another page (docs/bt.md, "Indirect branches"). Two levels, both per *mode*: the key flags
/// the blocks were translated for plus whether the CPU is at CPL 3 (fetch rights differ), so a
/// block translated for CPL 0 (inline CLI) or a flat DS is never found where the CPU asks for
/// more checks (issue 17: CPL 3 CLI without #GP, a supervisor page run from CPL 3, a DS limit
/// skipped):
///  - an address space's table, for blocks on pages that are not global;
///  - the mode's global table, for blocks on global pages (G=1 with CR4.PGE: a guest kernel's
///    text, the same in every space).
/// Translated code probes one (BtContext::indirect_table), Stubs::indirect_miss the other
/// (BtContext::second_table): the global one first in a kernel's modes, the space's first at
/// CPL 3. A new address space therefore starts empty and still finds the kernel's blocks.
///
/// Bounded: at most kMaxTables address-space tables and kMaxGlobalTables global ones (least
/// recently used evicted) and kPoolTables empty ones kept for reuse, 768 KiB each plus their
/// slot lists, whatever the guest does.
class IndirectTables {
 public:
  /// A guest kernel runs in a few modes (its GS and FS differ between processes), times the
  /// shadow MMU's kMaxSpaces + 1 spaces.
  static constexpr size_t kMaxTables = 32;
  static constexpr size_t kMaxGlobalTables = 8;
  static constexpr size_t kPoolTables = 16;
  /// Bytes of one table's arrays.
  static constexpr size_t kTableBytes = kIndirectTableSlots * (sizeof(uint64_t) + sizeof(uint32_t));

  /// `miss_stub`: what an empty slot holds (Stubs::indirect_miss); `exit_stub`: what every slot
  /// of the kick table holds (Stubs::indirect_exit).
  IndirectTables(uint64_t miss_stub, uint64_t exit_stub);

  /// The slots of the address-space table for (space, mode), created empty on first use.
  /// Valid until the next call that creates a table or forgets whole spaces.
  uint64_t* slots(uint32_t space, uint32_t mode);
  /// The slots of the address-space table for (space, mode), or nullptr when it has none (none
  /// is created). Valid as long as slots() says.
  uint64_t* find_slots(uint32_t space, uint32_t mode);
  /// The slots of the mode's global table (all empty when it has none). Valid until the next
  /// remember().
  uint64_t* global_slots(uint32_t mode);
  bool has_global(uint32_t mode) const { return global_.count(mode) != 0; }
  /// A table whose every slot leaves for the dispatcher: a kick points translated code at it, so
  /// the next indirect exit anywhere leaves (BtEngine::kick).
  uint64_t* kick_slots() { return kick_.data(); }

  /// Enters a block (its indirect entry `host`) for `eip` at linear page `page`: in the mode's
  /// global table when the page is global, else in the table of (space, mode).
  void remember(uint32_t space, uint32_t mode, uint32_t eip, uint32_t page, const void* host,
                bool global);
  /// A block to enter: its EIP and its indirect entry.
  struct Entry {
    uint32_t eip;
    const void* host;
  };
  /// remember() for blocks all on linear page `page` (a page's blocks entered together).
  void remember_all(uint32_t space, uint32_t mode, uint32_t page, bool global,
                    std::span<const Entry> blocks);
  /// Whether the table remember() would use holds `host` for `eip` already.
  bool holds(uint32_t space, uint32_t mode, uint32_t eip, const void* host, bool global);
  /// Whether the table remember() would use holds a block of linear page `page`.
  bool has_page(uint32_t space, uint32_t mode, uint32_t page, bool global);
  /// Linear pages [first, first + pages) of `space` changed (ShadowMmu's drop hook): their
  /// blocks go from every mode's table of the space, and from the global tables when `global`.
  /// The whole range forgets the space's tables entirely.
  void forget_pages(uint32_t space, uint32_t first, uint32_t pages, bool global);
  /// INVLPG of `page` in `space` (Intel SDM Vol. 3A §4.10.4.1: global translations go too).
  void forget_page_everywhere(uint32_t space, uint32_t page);
  /// A block is gone: every slot holding `host` for `eip` misses.
  void forget_block(uint32_t eip, const void* host);
  /// The paging mode changed (CR0.PG/WP, CR4.PSE/PGE): global blocks must be looked up again.
  void clear_global();
  /// Every table empties (a translation-cache flush, a new CS base).
  void clear_all();

  size_t live() const { return tables_.size() + global_.size(); }
  uint64_t evictions() const { return evictions_; }
  uint64_t created() const { return created_; }

 private:
  /// The slots translated code probes, and which slots hold blocks of which linear page, so
  /// that emptying a page or a table costs what is in use, not 64K slots.
  struct Table {
    std::array<uint64_t, kIndirectTableSlots> slots;
    std::array<uint32_t, kIndirectTableSlots> slot_page;  ///< linear page of each slot's block
    /// Linear page -> slots entered for it (a slot since taken by another page stays listed
    /// until its page is emptied: slot_page says whose it is).
    std::unordered_map<uint32_t, std::vector<uint32_t>> by_page;
    uint64_t last_used = 0;
  };
  static uint64_t key(uint32_t space, uint32_t mode) { return (uint64_t{space} << 32) | mode; }
  /// Empties `t` (every slot misses).
  void clear(Table& t) const;
  /// Empties the slots of page `page` in `t`.
  void clear_page(Table& t, uint32_t page) const;
  /// Empties the slots of pages [first, first + pages) in `t`.
  void clear_pages(Table& t, uint32_t first, uint32_t pages) const;
  /// Puts `host` in slot `i`, listed under `page` (in `list`, that page's list, when given).
  static void place(Table& t, uint32_t i, uint32_t page, uint64_t host,
                    std::vector<uint32_t>* list = nullptr);
  /// Enters a block: in its slot (eip's low 16 bits), the slot's block moving to the victim
  /// slot after it (the one before is dropped), so the two most recent targets of a slot stay.
  /// `list`: page's slot list, found once for a page's blocks.
  static void enter(Table& t, uint32_t eip, uint32_t page, uint64_t host,
                    std::vector<uint32_t>* list = nullptr);
  /// Whether any global table may hold a block of `page` (set when one is entered; a bit left
  /// set after its blocks went costs a lookup, never a wrong answer): most pages a guest drops
  /// are a process's, never in a global table, and need not be looked for in each of them.
  bool maybe_global(uint32_t page) const { return (global_pages_[page >> 6] >> (page & 63)) & 1; }
  std::vector<uint64_t> global_pages_ = std::vector<uint64_t>((1u << 20) / 64);
  /// The table remember() uses for (space, mode) or the mode's global one: created when
  /// `create` (evicting the least recently used beyond the bound), else null when absent.
  Table* table_for(uint32_t space, uint32_t mode, bool global, bool create);
  /// An empty table: one from the pool, else a new one.
  std::unique_ptr<Table> take_empty();
  /// `t` emptied into the pool (bounded), or freed.
  void give_back(std::unique_ptr<Table> t);
  /// Erases the least recently used entry of `map` other than `keep` (counted).
  template <typename Map>
  void evict_lru(Map& map, typename Map::key_type keep);

  uint64_t miss_stub_;
  std::array<uint64_t, kIndirectTableSlots> empty_;  ///< a global table for modes with none
  std::vector<uint64_t> kick_ = std::vector<uint64_t>(kIndirectTableSlots);  ///< kick_slots()
  std::map<uint64_t, std::unique_ptr<Table>> tables_;  ///< by key(space, mode)
  std::map<uint32_t, std::unique_ptr<Table>> global_;  ///< by mode: blocks on global pages
  std::vector<std::unique_ptr<Table>> pool_;           ///< empty tables
  /// The two tables (per space and mode, and global by mode) looked up last: a guest going back
  /// and forth between two modes (a system call and its return) finds both without a map search.
  struct Recent {
    uint64_t key = UINT64_MAX;
    Table* table = nullptr;
  };
  std::array<Recent, 2> recent_{}, recent_global_{};
  /// `recent`'s table for `key`, or nullptr; a hit becomes the most recent.
  static Table* recall(std::array<Recent, 2>& recent, uint64_t key);
  static void note(std::array<Recent, 2>& recent, uint64_t key, Table* table);
  /// `map`'s table for `key` (tried in `recent` first), made when `create` (evicting the least
  /// recently used beyond `limit`), else null when absent; marked used.
  template <typename Map>
  Table* find_or_make(Map& map, std::array<Recent, 2>& recent, typename Map::key_type key,
                      size_t limit, bool create);
  uint64_t clock_ = 0;
  uint64_t evictions_ = 0;
  uint64_t created_ = 0;
};

}  // namespace vmbt::bt
