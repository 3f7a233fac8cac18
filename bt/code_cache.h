// The translation cache: executable memory, the block index and the patching of chains.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "bt/translation_block.h"

namespace vmbt::bt {

/// Executable memory for translated code plus the indices that find blocks by guest address, by
/// guest page (for self-modifying-code invalidation) and by host address (for fault attribution).
/// Bounded: when the code or the blocks' records (instruction maps, decoded callout sites, chain
/// lists) outgrow their budgets, the whole cache is flushed (counted), as QEMU does.
class CodeCache {
 public:
  static constexpr size_t kDefaultBytes = 64u << 20;
  /// Host bytes the blocks' records may take before a flush: invalidated blocks (a guest
  /// rewriting or remapping its code, process after process) keep theirs until then.
  static constexpr size_t kRecordBudget = 96u << 20;
  /// The region holding stubs generated once at start-up; never flushed.
  static constexpr size_t kStubBytes = 64u << 10;

  explicit CodeCache(size_t bytes = kDefaultBytes);
  ~CodeCache();

  uint8_t* stub_area() const { return base_; }
  /// Where the next block's code will go and how many bytes remain.
  uint8_t* cursor() const { return cursor_; }
  size_t remaining() const { return static_cast<size_t>(end_ - cursor_); }
  /// Commits `size` bytes at cursor() for `tb` (already filled in by the translator).
  void commit(std::unique_ptr<TranslationBlock> tb);

  /// The live block for (eip, mode) whose first guest-physical page is `phys_page` (with paging,
  /// one linear address can hold different code in different address spaces).
  TranslationBlock* find(uint32_t eip, uint32_t key_flags, uint32_t phys_page,
                         uint32_t cs_base = 0) const;
  /// The block whose host code contains `host`, or nullptr. Async-signal-safe when the
  /// interrupted code was translated code (no concurrent mutation).
  TranslationBlock* find_by_host(const void* host) const;
  bool contains_host(const void* host) const { return host >= base_ && host < end_; }
  bool page_has_code(uint32_t page) const { return code_pages_.count(page) != 0; }
  /// A live block with code on a page, with what finding its page's blocks for one mode needs
  /// (read in a row, without visiting each block's record).
  struct PageBlock {
    TranslationBlock* tb;
    const uint8_t* host;  ///< its indirect entry
    uint32_t eip, key_flags, cs_base;
    bool one_page;  ///< its code lies on this page alone
  };
  /// The live blocks with code on guest-physical page `page` (nullptr: none).
  const std::vector<PageBlock>* blocks_on(uint32_t page) const {
    auto it = code_pages_.find(page);
    return it == code_pages_.end() ? nullptr : &it->second;
  }

  /// Removes every block on guest page `page` from the indices and unlinks chains into them.
  /// Their code stays in place until the next flush (a block may be executing). Returns them.
  std::vector<TranslationBlock*> invalidate_page(uint32_t page);
  /// Removes one block from the indices (its code stays until the next flush).
  void discard(TranslationBlock* tb);
  /// Drops every block and resets the cache.
  void flush();

  /// Points exit `index` of `from` at `to`'s entry (block chaining).
  void link(TranslationBlock* from, unsigned index, TranslationBlock* to);
  /// Points every exit of `tb` back at its stub (used by kicks and invalidation).
  void unlink_exits(TranslationBlock* tb);
  /// Re-points `tb`'s exits at the blocks they were linked to before unlink_exits.
  void relink_exits(TranslationBlock* tb);

  /// From now on, every committed block is appended to `map` as a perf JIT map line named
  /// "guest_LINEAR" (its first instruction's CS base + EIP, hex); nullptr stops.
  void set_perf_map(std::FILE* map) { perf_map_ = map; }

  size_t blocks_live() const { return by_key_.size(); }
  size_t bytes_used() const { return static_cast<size_t>(cursor_ - code_start_); }
  /// Approximate host bytes of the blocks' records (TranslationBlock and what it owns).
  size_t record_bytes() const { return record_bytes_; }
  bool over_budget() const { return record_bytes_ > kRecordBudget; }
  uint64_t flushes() const { return flushes_; }
  uint64_t blocks_translated() const { return blocks_translated_; }
  uint64_t invalidations() const { return invalidations_; }

 private:
  static uint64_t key(uint32_t eip, uint32_t flags) { return (uint64_t{flags} << 32) | eip; }
  static void patch_rel32(uint8_t* field, const uint8_t* target);

  uint8_t* base_ = nullptr;
  uint8_t* code_start_ = nullptr;
  uint8_t* cursor_ = nullptr;
  uint8_t* end_ = nullptr;
  size_t bytes_ = 0;
  std::vector<std::unique_ptr<TranslationBlock>> blocks_;  ///< in host-address order
  void erase_key(TranslationBlock* tb);

  std::unordered_multimap<uint64_t, TranslationBlock*> by_key_;
  std::unordered_map<uint32_t, std::vector<PageBlock>> code_pages_;
  /// In front of by_key_: the last block found or committed for a hash of (EIP, mode, page),
  /// checked against the block's own fields (and validity) before use; emptied by flush().
  static constexpr size_t kRecentBlocks = 4096;
  mutable std::vector<TranslationBlock*> recent_ = std::vector<TranslationBlock*>(kRecentBlocks);
  static size_t recent_index(uint32_t eip, uint32_t key_flags, uint32_t phys_page) {
    return (eip ^ (eip >> 12) ^ (phys_page * 0x9e37u) ^ key_flags) & (kRecentBlocks - 1);
  }
  uint64_t flushes_ = 0, blocks_translated_ = 0, invalidations_ = 0;
  size_t record_bytes_ = 0;
  std::FILE* perf_map_ = nullptr;
};

}  // namespace vmbt::bt
