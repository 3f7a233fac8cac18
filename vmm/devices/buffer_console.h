// An in-memory character backend for tests and captured runs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "vmm/devices/char_backend.h"

namespace vmbt {

/// Guest output accumulates in a string; guest input comes from a queue filled by push_input().
class BufferConsole : public CharBackend {
 public:
  void write(uint8_t byte) override { output_.push_back(static_cast<char>(byte)); }
  size_t read(uint8_t* buf, size_t max) override {
    size_t n = 0;
    while (n < max && !input_.empty()) {
      buf[n++] = input_.front();
      input_.pop_front();
    }
    return n;
  }

  /// Queues bytes for the guest to receive.
  void push_input(std::string_view bytes) {
    input_.insert(input_.end(), bytes.begin(), bytes.end());
  }
  /// Bytes queued and not yet taken by the device.
  size_t pending_input() const { return input_.size(); }
  /// Everything the guest wrote so far.
  const std::string& output() const { return output_; }
  void clear_output() { output_.clear(); }

 private:
  std::string output_;
  std::deque<uint8_t> input_;
};

}  // namespace vmbt
