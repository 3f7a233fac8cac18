// The host side of a character device (serial port): where guest output goes, where input comes
// from.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmbt {

/// A byte stream between a guest character device (the 16550 UART) and the host.
class CharBackend {
 public:
  virtual ~CharBackend() = default;
  /// Sends one byte from the guest to the host.
  virtual void write(uint8_t byte) = 0;
  /** non-blocking: returns bytes read, 0 if none */
  virtual size_t read(uint8_t* buf, size_t max) = 0;
};

}  // namespace vmbt
