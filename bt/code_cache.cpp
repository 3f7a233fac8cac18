#include "bt/code_cache.h"

#include <malloc.h>

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vmm/error.h"

namespace vmbt::bt {

CodeCache::CodeCache(size_t bytes) : bytes_(bytes) {
  // Translated code in 2 MiB pages where the host allows (transparent huge pages in "madvise"
  // mode: Debian's default): fewer instruction-TLB misses across blocks spread over the cache
  // (bench/bt_loops recursive_call 1.52-1.58x native before, 1.42-1.57x since: a small gain). So
  // the cache starts on a 2 MiB boundary (mapped with that much slack, then trimmed), stubs and
  // first blocks included. Refused or unsupported: 4 KiB pages.
  constexpr size_t kHugePage = 2u << 20;
  void* p = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE | PROT_EXEC,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    throw Error(fmt::format("cannot allocate the {} MiB translation cache: {}", bytes >> 20,
                            std::strerror(errno)));
  }
  auto* const raw = static_cast<uint8_t*>(p);
  base_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) &
                                     ~uintptr_t{kHugePage - 1});
  if (base_ > raw) munmap(raw, static_cast<size_t>(base_ - raw));
  if (const size_t tail = static_cast<size_t>(raw + bytes + kHugePage - (base_ + bytes))) {
    munmap(base_ + bytes, tail);
  }
  madvise(base_, bytes, MADV_HUGEPAGE);
  code_start_ = cursor_ = base_ + kStubBytes;
  end_ = base_ + bytes;
}

CodeCache::~CodeCache() {
  if (base_) munmap(base_, bytes_);
}

void CodeCache::commit(std::unique_ptr<TranslationBlock> tb) {
  TranslationBlock* raw = tb.get();
  cursor_ = tb->host_start + tb->host_size;
  cursor_ =
      reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(cursor_) + 15) & ~uintptr_t{15});
  record_bytes_ += sizeof(TranslationBlock) + tb->insns.capacity() * sizeof(InsnMap) +
                   tb->callout_sites.size() * sizeof(CalloutSite) +
                   tb->table_exits.capacity() * sizeof(TranslationBlock::TableExit);
  by_key_.emplace(key(tb->eip, tb->key_flags), raw);
  for (unsigned i = 0; i < tb->page_count; ++i) {
    code_pages_[tb->pages[i]].push_back(
        {raw, raw->host_start, raw->eip, raw->key_flags, raw->cs_base, raw->page_count == 1});
  }
  recent_[recent_index(raw->eip, raw->key_flags, raw->pages[0])] = raw;
  if (perf_map_) {
    std::fprintf(perf_map_, "%lx %x guest_%08x\n", reinterpret_cast<unsigned long>(raw->host_start),
                 raw->host_size, raw->cs_base + raw->eip);
  }
  blocks_.push_back(std::move(tb));
  ++blocks_translated_;
}

TranslationBlock* CodeCache::find(uint32_t eip, uint32_t key_flags, uint32_t phys_page,
                                  uint32_t cs_base) const {
  TranslationBlock*& recent = recent_[recent_index(eip, key_flags, phys_page)];
  if (recent && recent->valid && recent->eip == eip && recent->key_flags == key_flags &&
      recent->pages[0] == phys_page && recent->cs_base == cs_base) {
    return recent;
  }
  auto [lo, hi] = by_key_.equal_range(key(eip, key_flags));
  for (auto it = lo; it != hi; ++it) {
    if (it->second->pages[0] == phys_page && it->second->cs_base == cs_base) {
      recent = it->second;
      return it->second;
    }
  }
  return nullptr;
}

void CodeCache::erase_key(TranslationBlock* tb) {
  auto [lo, hi] = by_key_.equal_range(key(tb->eip, tb->key_flags));
  for (auto it = lo; it != hi; ++it) {
    if (it->second == tb) {
      by_key_.erase(it);
      return;
    }
  }
}

TranslationBlock* CodeCache::find_by_host(const void* host) const {
  auto h = static_cast<const uint8_t*>(host);
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), h,
                             [](const uint8_t* a, const std::unique_ptr<TranslationBlock>& b) {
                               return a < b->host_start;
                             });
  if (it == blocks_.begin()) return nullptr;
  TranslationBlock* tb = std::prev(it)->get();
  return h < tb->host_start + tb->host_size ? tb : nullptr;
}

void CodeCache::patch_rel32(uint8_t* field, const uint8_t* target) {
  int64_t rel = target - (field + 4);
  int32_t rel32 = static_cast<int32_t>(rel);
  std::memcpy(field, &rel32, 4);
}

void CodeCache::link(TranslationBlock* from, unsigned index, TranslationBlock* to) {
  TbExit& e = from->exits[index];
  if (e.linked == to) return;
  e.linked = to;
  patch_rel32(from->host_start + e.rel32_offset, to->entry);
  to->incoming.emplace_back(from, index);
  record_bytes_ += sizeof(to->incoming[0]);
}

void CodeCache::unlink_exits(TranslationBlock* tb) {
  for (unsigned i = 0; i < tb->exit_count; ++i) {
    patch_rel32(tb->host_start + tb->exits[i].rel32_offset,
                tb->host_start + tb->exits[i].stub_offset);
  }
}

void CodeCache::relink_exits(TranslationBlock* tb) {
  for (unsigned i = 0; i < tb->exit_count; ++i) {
    const TbExit& e = tb->exits[i];
    if (e.linked && e.linked->valid) patch_rel32(tb->host_start + e.rel32_offset, e.linked->entry);
  }
}

std::vector<TranslationBlock*> CodeCache::invalidate_page(uint32_t page) {
  auto it = code_pages_.find(page);
  if (it == code_pages_.end()) return {};
  std::vector<PageBlock> victims = std::move(it->second);
  code_pages_.erase(it);
  std::vector<TranslationBlock*> dead;
  for (const PageBlock& victim : victims) {
    TranslationBlock* tb = victim.tb;
    if (!tb->valid) continue;
    tb->valid = false;
    dead.push_back(tb);
    erase_key(tb);
    for (auto [from, index] : tb->incoming) {
      TbExit& e = from->exits[index];
      if (e.linked == tb) {
        e.linked = nullptr;
        patch_rel32(from->host_start + e.rel32_offset, from->host_start + e.stub_offset);
      }
    }
    tb->incoming.clear();
    // Its own outgoing links are dropped from their targets' incoming lists lazily: link()
    // ignores stale entries because `e.linked` is checked before patching.
    for (unsigned p = 0; p < tb->page_count; ++p) {
      if (tb->pages[p] == page) continue;
      auto other = code_pages_.find(tb->pages[p]);
      if (other != code_pages_.end()) {
        std::erase_if(other->second, [&](const PageBlock& b) { return b.tb == tb; });
      }
    }
  }
  invalidations_ += dead.size();
  return dead;
}

void CodeCache::discard(TranslationBlock* tb) {
  if (!tb->valid) return;
  tb->valid = false;
  erase_key(tb);
  for (unsigned p = 0; p < tb->page_count; ++p) {
    auto pages = code_pages_.find(tb->pages[p]);
    if (pages != code_pages_.end()) {
      std::erase_if(pages->second, [&](const PageBlock& b) { return b.tb == tb; });
    }
  }
  for (auto [from, index] : tb->incoming) {
    TbExit& e = from->exits[index];
    if (e.linked == tb) {
      e.linked = nullptr;
      patch_rel32(from->host_start + e.rel32_offset, from->host_start + e.stub_offset);
    }
  }
  tb->incoming.clear();
}

void CodeCache::flush() {
  blocks_.clear();
  by_key_.clear();
  code_pages_.clear();
  std::fill(recent_.begin(), recent_.end(), nullptr);
  cursor_ = code_start_;
  record_bytes_ = 0;
  ++flushes_;
  malloc_trim(0);  // the records' memory goes back to the host, not only to the heap
}

}  // namespace vmbt::bt
