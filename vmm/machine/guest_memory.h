// Guest physical RAM: one memfd, mapped once into the monitor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>

namespace vmbt {

/// Guest RAM backed by a single memfd so that both engines (and KVM's user memory region) see the
/// same pages. Guest-physical address 0 is byte 0 of the memfd. Every accessor is bounds-checked:
/// a guest value never yields a host pointer outside the mapping.
class GuestMemory {
 public:
  static constexpr uint64_t kMinBytes = 2ull << 20;  ///< smallest RAM accepted (2 MiB)
  static constexpr uint64_t kMaxBytes = 3ull << 30;  ///< largest RAM accepted (3 GiB, below MMIO)

  /// Creates RAM of `bytes` bytes (a multiple of 4 KiB). Throws vmbt::Error outside
  /// [kMinBytes, kMaxBytes] or when the host cannot provide the memory.
  explicit GuestMemory(uint64_t bytes);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  uint8_t* host_base() const { return base_; }

  /// True when [gpa, gpa + len) lies inside RAM (overflow-safe).
  bool contains(uint64_t gpa, uint64_t len) const { return len <= size_ && gpa <= size_ - len; }
  /// Host pointer for [gpa, gpa + len), or nullptr when any byte is outside RAM.
  uint8_t* host_ptr(uint64_t gpa, uint64_t len) const {
    return contains(gpa, len) ? base_ + gpa : nullptr;
  }
  /// Copies out of / into guest RAM; returns false (and copies nothing) when out of range.
  bool read(uint64_t gpa, void* dst, uint64_t len) const;
  bool write(uint64_t gpa, const void* src, uint64_t len);
  /// Copies `size` bytes between `data` and guest *linear* address `linear` (write: into RAM),
  /// page by page: `translate(linear)` gives the guest-physical address of each page's first
  /// byte, or nullopt where nothing is mapped; `before_write(gpa, bytes)`, when given, runs
  /// ahead of each piece written. Every page is translated and checked to be RAM before
  /// anything is copied: false, with nothing copied, otherwise. (A debugger's accesses, which
  /// each engine translates its own way.)
  bool copy_linear(uint32_t linear, uint8_t* data, size_t size, bool write,
                   const std::function<std::optional<uint64_t>(uint32_t)>& translate,
                   const std::function<void(uint64_t, size_t)>& before_write = {});
  /// A device's write into guest RAM (DMA): as write(), then tells the observer which bytes
  /// changed, so an engine that derives state from guest memory (bt's translated code and shadow
  /// page tables) drops what the write made stale.
  bool dma_write(uint64_t gpa, const void* src, uint64_t len);
  /// The DMA observer: called with (gpa, bytes) after each dma_write; empty for none. One at a
  /// time (the engine running the guest).
  void set_dma_observer(std::function<void(uint64_t, uint64_t)> observer) {
    dma_observer_ = std::move(observer);
  }
  /// Little-endian scalar accessors; throw vmbt::Error when out of range (loader use only).
  uint32_t read32(uint64_t gpa) const;
  void write32(uint64_t gpa, uint32_t value);

 private:
  uint64_t size_;
  int fd_ = -1;
  uint8_t* base_ = nullptr;
  std::function<void(uint64_t, uint64_t)> dma_observer_;
};

}  // namespace vmbt
