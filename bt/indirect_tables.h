// The indirect-branch tables: where translated code finds the block for a computed target.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "bt/bt_context.h"

namespace vmbt::bt {

/// The tables translated code probes for the target of an indirect branch, a return or a branch
/// to another page (docs/bt.md, "Indirect branches"). A table answers for one guest address space
/// and one *mode*: the key flags the blocks in it were translated for plus whether the CPU is at
/// CPL 3 (fetch rights differ). A block translated for CPL 0 (inline CLI) or for a flat DS must
/// never be found where the CPU asks for more checks (issue 17: CPL 3 CLI without #GP, a
/// supervisor page run from CPL 3, a DS limit skipped), so each mode has its own table.
///
/// Bounded: at most kMaxTables tables (least recently used evicted) plus kMaxGlobalTables tables
/// of blocks on global pages, about 0.9 MiB each, whatever the guest does.
class IndirectTables {
 public:
  /// A guest kernel runs in a few modes (its GS and FS differ between processes), times the
  /// shadow MMU's kMaxSpaces + 1 spaces.
  static constexpr size_t kMaxTables = 32;
  static constexpr size_t kMaxGlobalTables = 8;
  /// Bytes of one table (slots, their pages, the page bitmap).
  static constexpr size_t kTableBytes =
      kIndirectTableSize * (sizeof(uint64_t) + sizeof(uint32_t)) + (1u << 20) / 8;

  /// `miss_stub`: the host address every empty slot holds (Stubs::indirect_miss).
  explicit IndirectTables(uint64_t miss_stub);

  /// The slots of the table for (space, mode): created on first use, starting with the mode's
  /// blocks on global pages (a guest kernel's text is the same in every space). Valid until
  /// the next call that creates a table or forgets whole spaces.
  uint64_t* slots(uint32_t space, uint32_t mode);
  /// Slots that always miss: for a context whose table was dropped.
  uint64_t* miss_slots() { return miss_.data(); }

  /// Enters a block (its indirect entry `host`) for `eip` at linear page `page` in the table of
  /// (space, mode), and in the mode's global table when the page is global.
  void remember(uint32_t space, uint32_t mode, uint32_t eip, uint32_t page, const void* host,
                bool global);
  /// Linear pages [first, first + pages) of `space` changed (ShadowMmu's drop hook): their
  /// blocks go from every mode's table of the space; from the global tables too when `global`.
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
  struct Table {
    std::array<uint64_t, kIndirectTableSize> slots;
    std::array<uint32_t, kIndirectTableSize> slot_page;  ///< linear page of each slot's block
    std::vector<uint64_t> pages = std::vector<uint64_t>((1u << 20) / 64);  ///< bit per page
    uint64_t last_used = 0;
  };
  static uint64_t key(uint32_t space, uint32_t mode) { return (uint64_t{space} << 32) | mode; }
  void clear(Table& t) const;
  /// Empties the slots of pages [first, first + pages) in `t`, except those `keep` holds too.
  void clear_pages(Table& t, uint32_t first, uint32_t pages, const Table* keep) const;
  static void enter(Table& t, uint32_t eip, uint32_t page, uint64_t host);
  Table* global_for(uint32_t mode, bool create);
  /// Erases the least recently used entry of `map` other than `keep` (counted).
  template <typename Map>
  void evict_lru(Map& map, typename Map::key_type keep);

  uint64_t miss_stub_;
  std::array<uint64_t, kIndirectTableSize> miss_;
  std::map<uint64_t, std::unique_ptr<Table>> tables_;  ///< by key(space, mode)
  std::map<uint32_t, std::unique_ptr<Table>> global_;  ///< by mode: blocks on global pages
  uint64_t cached_key_ = UINT64_MAX;
  Table* cached_ = nullptr;
  uint64_t clock_ = 0;
  uint64_t evictions_ = 0;
  uint64_t created_ = 0;
};

}  // namespace vmbt::bt
