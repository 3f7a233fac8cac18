// Guest symbols for `vmbt trace`: which function an address is in, from a System.map or an ELF.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace vmbt {

/// Code symbols sorted by address. An address belongs to the symbol with the greatest address at
/// or below it; a symbol with a size (ELF st_size) covers only [address, address + size), and
/// nothing covers addresses past the image's end (System.map `_end`, when known).
class SymbolTable {
 public:
  /// Loads an ELF file's symbol table (libelf) or, for a text file, a System.map ("ADDR TYPE NAME"
  /// lines; text symbols T/t/W/w are kept). Throws vmbt::Error when `path` is neither or has no
  /// code symbols.
  static SymbolTable load(const std::string& path);
  /// The code symbols of an ELF file, or an empty table when `path` is not an ELF file with a
  /// symbol table (never throws).
  static SymbolTable load_elf_if_any(const std::string& path);
  /// Parses System.map text.
  static SymbolTable parse_system_map(const std::string& text);

  /// Addresses at or above `end` belong to no symbol (a System.map's `_end`); 0 = no bound.
  void set_end(uint64_t end) { end_ = end; }

  /// Adds a symbol; `size` 0 = unknown. A better-ranked symbol at the same address wins (sized
  /// function over plain label, global over local).
  void add(uint64_t address, uint64_t size, std::string name, int rank = 0);

  struct Hit {
    const std::string* name;
    uint64_t offset;
  };
  std::optional<Hit> lookup(uint64_t address) const;
  /// "name+0xOFF" ("name" at offset 0), or "" when no symbol covers `address`.
  std::string describe(uint64_t address) const;

  size_t size() const {
    finish();
    return symbols_.size();
  }
  bool empty() const { return symbols_.empty(); }

 private:
  struct Symbol {
    uint64_t address;
    uint64_t size;
    std::string name;
    int rank;
  };
  /// Sorts and de-duplicates after add() (lazily, on the first lookup).
  void finish() const;
  mutable std::vector<Symbol> symbols_;
  mutable bool sorted_ = true;
  uint64_t end_ = 0;
};

}  // namespace vmbt
