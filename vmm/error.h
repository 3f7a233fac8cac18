// Error type for conditions a user can fix (bad flags, bad images, missing /dev/kvm).
#pragma once

#include <stdexcept>
#include <string>

namespace vmbt {

/// A user-facing error: the message says what went wrong and, where it can, what to do.
/// The CLI prints it as "vmbt: error: <message>" and exits with status 1.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace vmbt
