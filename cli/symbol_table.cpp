#include "cli/symbol_table.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <gelf.h>
#include <libelf.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "vmm/error.h"

namespace vmbt {

namespace {

/// Reads the code symbols of an ELF file; returns false when it is not ELF (or unreadable).
bool read_elf_symbols(const std::string& path, SymbolTable& table) {
  if (elf_version(EV_CURRENT) == EV_NONE) return false;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  Elf* elf = elf_begin(fd, ELF_C_READ, nullptr);
  bool is_elf = elf && elf_kind(elf) == ELF_K_ELF;
  if (is_elf) {
    for (Elf_Scn* scn = elf_nextscn(elf, nullptr); scn; scn = elf_nextscn(elf, scn)) {
      GElf_Shdr shdr;
      if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_SYMTAB || shdr.sh_entsize == 0) {
        continue;
      }
      Elf_Data* data = elf_getdata(scn, nullptr);
      if (!data) continue;
      size_t count = shdr.sh_size / shdr.sh_entsize;
      for (size_t i = 0; i < count; ++i) {
        GElf_Sym sym;
        if (!gelf_getsym(data, static_cast<int>(i), &sym)) continue;
        int type = GELF_ST_TYPE(sym.st_info);
        if (type != STT_FUNC && type != STT_NOTYPE) continue;
        if (sym.st_shndx == SHN_UNDEF || sym.st_shndx >= SHN_LORESERVE) continue;
        GElf_Shdr target;
        Elf_Scn* in = elf_getscn(elf, sym.st_shndx);
        if (!in || !gelf_getshdr(in, &target) || !(target.sh_flags & SHF_EXECINSTR)) continue;
        const char* name = elf_strptr(elf, shdr.sh_link, sym.st_name);
        if (!name || !*name) continue;
        int rank = (type == STT_FUNC ? 2 : 0) + (GELF_ST_BIND(sym.st_info) != STB_LOCAL ? 1 : 0);
        table.add(sym.st_value, type == STT_FUNC ? sym.st_size : 0, name, rank);
      }
    }
  }
  if (elf) elf_end(elf);
  close(fd);
  return is_elf;
}

}  // namespace

SymbolTable SymbolTable::load(const std::string& path) {
  std::ifstream probe(path, std::ios::binary);
  if (!probe) throw Error(fmt::format("cannot read symbol file '{}'", path));
  char magic[4] = {};
  probe.read(magic, 4);
  SymbolTable table;
  if (probe.gcount() == 4 && magic[0] == 0x7f && magic[1] == 'E' && magic[2] == 'L' &&
      magic[3] == 'F') {
    read_elf_symbols(path, table);
    if (table.empty()) throw Error(fmt::format("'{}' is an ELF file without code symbols", path));
  } else {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    table = parse_system_map(text.str());
    if (table.empty()) {
      throw Error(fmt::format(
          "'{}' is neither an ELF file with symbols nor a System.map (\"ADDRESS TYPE NAME\")",
          path));
    }
  }
  table.finish();
  return table;
}

SymbolTable SymbolTable::load_elf_if_any(const std::string& path) {
  SymbolTable table;
  read_elf_symbols(path, table);
  table.finish();
  return table;
}

SymbolTable SymbolTable::parse_system_map(const std::string& text) {
  SymbolTable table;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string addr, type, name;
    if (!(fields >> addr >> type >> name) || type.size() != 1) continue;
    char* end = nullptr;
    uint64_t a = std::strtoull(addr.c_str(), &end, 16);
    if (!end || *end != '\0' || addr.empty()) continue;
    if (name == "_end") table.set_end(a);
    if (std::string("TtWw").find(type[0]) == std::string::npos) continue;
    table.add(a, 0, name, (type[0] == 'T' || type[0] == 'W') ? 1 : 0);
  }
  table.finish();
  return table;
}

void SymbolTable::add(uint64_t address, uint64_t size, std::string name, int rank) {
  symbols_.push_back({address, size, std::move(name), rank});
  sorted_ = false;
}

void SymbolTable::finish() const {
  if (sorted_) return;
  std::stable_sort(symbols_.begin(), symbols_.end(), [](const Symbol& a, const Symbol& b) {
    return a.address != b.address ? a.address < b.address : a.rank > b.rank;
  });
  symbols_.erase(
      std::unique(symbols_.begin(), symbols_.end(),
                  [](const Symbol& a, const Symbol& b) { return a.address == b.address; }),
      symbols_.end());
  sorted_ = true;
}

std::optional<SymbolTable::Hit> SymbolTable::lookup(uint64_t address) const {
  finish();
  if (end_ != 0 && address >= end_) return std::nullopt;
  auto it = std::upper_bound(symbols_.begin(), symbols_.end(), address,
                             [](uint64_t a, const Symbol& s) { return a < s.address; });
  if (it == symbols_.begin()) return std::nullopt;
  --it;
  if (it->size != 0 && address - it->address >= it->size) return std::nullopt;
  return Hit{&it->name, address - it->address};
}

std::string SymbolTable::describe(uint64_t address) const {
  auto hit = lookup(address);
  if (!hit) return "";
  return hit->offset ? fmt::format("{}+{:#x}", *hit->name, hit->offset) : *hit->name;
}

}  // namespace vmbt
