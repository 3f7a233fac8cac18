// Notices when the guest's console first shows a shell prompt, for --stats "time to prompt".
#pragma once

#include <cstdint>
#include <string>

#include "vmm/devices/char_backend.h"
#include "vmm/machine/irq.h"

namespace vmbt {

/// A CharBackend in front of another that records the host time (ns) at which the console
/// output first ends a line fragment with a shell prompt ("# " or "$ ", as busybox's and most
/// shells' prompts end). Everything else passes through unchanged.
class PromptWatch final : public CharBackend {
 public:
  explicit PromptWatch(CharBackend& inner) : inner_(inner) {}
  void write(uint8_t byte) override {
    inner_.write(byte);
    if (byte == '\n' || byte == '\r') {
      line_.clear();
      return;
    }
    if (line_.size() < 80) line_.push_back(static_cast<char>(byte));
    if (prompt_ns_ == 0 && line_.size() >= 2 && line_[line_.size() - 1] == ' ' &&
        (line_[line_.size() - 2] == '#' || line_[line_.size() - 2] == '$')) {
      prompt_ns_ = host_now_ns();
    }
  }
  size_t read(uint8_t* buf, size_t max) override { return inner_.read(buf, max); }
  /// Host time of the first prompt, or 0 if none was seen.
  uint64_t prompt_ns() const { return prompt_ns_; }

 private:
  CharBackend& inner_;
  std::string line_;
  uint64_t prompt_ns_ = 0;
};

}  // namespace vmbt
