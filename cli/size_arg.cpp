#include "cli/size_arg.h"

#include <fmt/format.h>

#include <cctype>

#include "vmm/error.h"

namespace vmbt {

uint64_t parse_memory_size(const std::string& text) {
  auto bad = [&] {
    return Error(
        fmt::format("invalid memory size '{}': use a number with K, M or G (e.g. 256M)", text));
  };
  size_t i = 0;
  uint64_t n = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (n > (UINT64_MAX - 9) / 10) throw bad();
    n = n * 10 + static_cast<uint64_t>(text[i] - '0');
  }
  if (i == 0) throw bad();
  unsigned shift = 20;  // bare number: MiB
  if (i < text.size()) {
    switch (std::toupper(static_cast<unsigned char>(text[i]))) {
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      default:
        throw bad();
    }
    ++i;
    if (i < text.size() && std::toupper(static_cast<unsigned char>(text[i])) == 'I') ++i;
    if (i < text.size() && std::toupper(static_cast<unsigned char>(text[i])) == 'B') ++i;
    if (i != text.size()) throw bad();
  }
  if (n > (UINT64_MAX >> shift)) throw bad();
  return n << shift;
}

}  // namespace vmbt
