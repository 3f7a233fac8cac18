// A recording IrqSink for device unit tests.
#pragma once

#include <utility>
#include <vector>

#include "vmm/machine/irq.h"

namespace vmbt::testing {

/// Remembers each line's level, counts rising edges per line and logs every call.
class FakeIrqSink : public IrqSink {
 public:
  void set_irq(unsigned line, bool level) override {
    if (level && !levels[line]) ++rises[line];
    levels[line] = level;
    events.emplace_back(line, level);
  }
  bool levels[16] = {};
  unsigned rises[16] = {};
  std::vector<std::pair<unsigned, bool>> events;
};

}  // namespace vmbt::testing
