// Test support for the system emulator: a flat fake LinearMemory over a std::vector and a guest
// image with a GDT, IDT and TSS built in memory (used by tests/unit/bt_system_*_test.cpp).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <map>
#include <set>
#include <vector>

#include "bt/system/system_emulator.h"

namespace vmbt::bt::testing {

/// Flat guest memory with optional not-present and supervisor-only pages. Faults are #PF with the
/// architectural error code (P, W/R, U/S: Intel SDM Vol. 3A §4.7) and CR2 set in `state`.
class FakeMemory : public LinearMemory {
 public:
  explicit FakeMemory(size_t size) : bytes(size) {}

  void read(uint32_t linear, void* dst, unsigned size, bool user) override {
    check(linear, size, user, false);
    std::memcpy(dst, bytes.data() + linear, size);
  }
  void write(uint32_t linear, const void* src, unsigned size, bool user) override {
    check(linear, size, user, true);
    std::memcpy(bytes.data() + linear, src, size);
  }

  uint8_t u8(uint32_t a) const { return bytes.at(a); }
  uint16_t u16(uint32_t a) const { return static_cast<uint16_t>(u8(a) | (u8(a + 1) << 8)); }
  uint32_t u32(uint32_t a) const { return u16(a) | (uint32_t{u16(a + 2)} << 16); }
  uint64_t u64(uint32_t a) const { return u32(a) | (uint64_t{u32(a + 4)} << 32); }
  void put8(uint32_t a, uint8_t v) { bytes.at(a) = v; }
  void put16(uint32_t a, uint16_t v) {
    put8(a, static_cast<uint8_t>(v));
    put8(a + 1, static_cast<uint8_t>(v >> 8));
  }
  void put32(uint32_t a, uint32_t v) {
    put16(a, static_cast<uint16_t>(v));
    put16(a + 2, static_cast<uint16_t>(v >> 16));
  }
  void put64(uint32_t a, uint64_t v) {
    put32(a, static_cast<uint32_t>(v));
    put32(a + 4, static_cast<uint32_t>(v >> 32));
  }
  void put(uint32_t a, std::initializer_list<uint8_t> b) {
    for (uint8_t x : b) put8(a++, x);
  }

  std::vector<uint8_t> bytes;
  VcpuState* state = nullptr;
  std::set<uint32_t> not_present;      ///< page numbers
  std::set<uint32_t> supervisor_only;  ///< page numbers
  unsigned reads = 0, writes = 0;

 private:
  void check(uint32_t linear, unsigned size, bool user, bool write) {
    write ? ++writes : ++reads;
    for (uint64_t a = linear; a < uint64_t{linear} + size; a = (a | 0xfff) + 1) {
      const uint32_t page = static_cast<uint32_t>(a >> 12);
      const bool absent = not_present.count(page) || a + 1 > bytes.size() ||
                          (uint64_t{linear} + size > bytes.size());
      const bool denied = user && supervisor_only.count(page);
      if (absent || denied) {
        if (state) state->cr2 = static_cast<uint32_t>(a);
        uint32_t code = (absent ? 0 : 1) | (write ? 2 : 0) | (user ? 4 : 0);
        throw GuestFault{14, true, code};
      }
    }
  }
};

/// Records what the emulator told the engine.
class FakeHooks : public SystemHooks {
 public:
  uint64_t read_tsc() override { return tsc; }
  void write_tsc(uint64_t v) override { written_tsc.push_back(v); }
  void on_paging_changed(const VcpuState&) override { ++paging_changes; }
  bool load_pdptes(uint32_t cr3, std::array<uint64_t, 4>* pdpte) override {
    pdpte_loads.push_back(cr3);
    auto it = pdpts.find(cr3);
    if (it == pdpts.end()) return false;
    *pdpte = it->second;
    return true;
  }
  void on_invlpg(uint32_t linear) override { invlpg.push_back(linear); }
  std::optional<uint64_t> read_platform_msr(uint32_t index) override {
    auto it = platform_msrs.find(index);
    if (it == platform_msrs.end()) return std::nullopt;
    return it->second;
  }
  bool write_platform_msr(uint32_t index, uint64_t value) override {
    auto it = platform_msrs.find(index);
    if (it == platform_msrs.end()) return false;
    it->second = value;
    return true;
  }

  uint64_t tsc = 0x0123456789abcdefull;
  /// The platform's MSRs as the fake has them: those present, with their values.
  std::map<uint32_t, uint64_t> platform_msrs;
  std::vector<uint64_t> written_tsc;
  int paging_changes = 0;
  /// PAE: the PDPTs that load (CR3 -> PDPTEs; any other CR3 is a #GP), and the loads asked for.
  std::map<uint32_t, std::array<uint64_t, 4>> pdpts;
  std::vector<uint32_t> pdpte_loads;
  std::vector<uint32_t> invlpg;
};

/// An 8-byte segment descriptor (Intel SDM Vol. 3A Figure 3-8). `limit` is the raw 20-bit field.
constexpr uint64_t seg_desc(uint32_t base, uint32_t limit, uint8_t type, bool s, unsigned dpl,
                            bool present = true, bool db = true, bool g = true) {
  const uint32_t lo = ((base & 0xffff) << 16) | (limit & 0xffff);
  const uint32_t hi = ((base >> 16) & 0xff) | (uint32_t{type} << 8) | (s ? 1u << 12 : 0) |
                      (dpl << 13) | (present ? 1u << 15 : 0) | (limit & 0xf0000) |
                      (db ? 1u << 22 : 0) | (g ? 1u << 23 : 0) | (base & 0xff000000u);
  return lo | (uint64_t{hi} << 32);
}

/// An 8-byte gate descriptor (Intel SDM Vol. 3A Figures 5-8 and 6-2).
constexpr uint64_t gate_desc(uint16_t selector, uint32_t offset, uint8_t type, unsigned dpl,
                             bool present = true, unsigned params = 0) {
  const uint32_t lo = (uint32_t{selector} << 16) | (offset & 0xffff);
  const uint32_t hi = (offset & 0xffff0000u) | (uint32_t{type} << 8) | (dpl << 13) |
                      (present ? 1u << 15 : 0) | (params & 0x1f);
  return lo | (uint64_t{hi} << 32);
}

/// A loaded segment register (hidden part as the processor would cache it).
inline SegmentReg loaded(uint16_t selector, uint32_t base, uint32_t limit, uint8_t type,
                         uint8_t dpl, bool db = true, bool g = true) {
  SegmentReg r;
  r.selector = selector;
  r.base = base;
  r.limit = limit;
  r.type = type;
  r.dpl = dpl;
  r.s = true;
  r.present = true;
  r.db = db;
  r.g = g;
  return r;
}

/// The guest image every system-emulator test starts from: 32-bit protected mode, no paging.
class SystemEmulatorTest : public ::testing::Test {
 protected:
  // Memory layout.
  static constexpr uint32_t kGdt = 0x1000, kIdt = 0x2000, kTss = 0x4000, kLdt = 0x7000;
  static constexpr uint32_t kUserStackTop = 0x8000, kKernelStackTop = 0x9000;
  static constexpr uint32_t kCode = 0x10000, kHandlers = 0x30000, kGateTarget = 0x40000;
  static constexpr uint32_t kIoBitmap = 0x68;                ///< offset in the TSS
  static constexpr uint32_t kTssLimit = kIoBitmap + 0x2000;  ///< bitmap + trailing 0xFF byte
  // Selectors (GDT index * 8 | RPL).
  static constexpr uint16_t kKernelCs = 0x08, kKernelDs = 0x10, kUserCs = 0x1b, kUserDs = 0x23;
  static constexpr uint16_t kTssSel = 0x28, kTss2Sel = 0x30, kCallGate = 0x3b, kConfCs = 0x40;
  static constexpr uint16_t kAbsentDs = 0x48, kLdtSel = 0x50, kRoDs = 0x5b, kXoCs = 0x60;
  static constexpr uint16_t kByteDs = 0x73, kJmpGate = 0x7b, kAbsentSs = 0x83, kPageDs = 0x90;
  static constexpr uint16_t kCallGate16 = 0x9b, kExpandDownDs = 0xa3;

  static uint32_t handler(uint8_t vector) { return kHandlers + vector * 0x10u; }

  SystemEmulatorTest() : mem(0x200000), emu(mem, hooks) { mem.state = &s; }

  void SetUp() override {
    set_gdt(1, seg_desc(0, 0xfffff, 0xa, true, 0));  // kernel code, not yet accessed
    set_gdt(2, seg_desc(0, 0xfffff, 0x3, true, 0));  // kernel data
    set_gdt(3, seg_desc(0, 0xfffff, 0xb, true, 3));  // user code
    set_gdt(4, seg_desc(0, 0xfffff, 0x3, true, 3));  // user data
    set_gdt(5, seg_desc(kTss, kTssLimit, 0xb, false, 0, true, false, false));  // busy TSS (TR)
    set_gdt(6, seg_desc(kTss, 0x67, 0x9, false, 0, true, false, false));       // available TSS
    set_gdt(7, gate_desc(kKernelCs, kGateTarget, 0xc, 3, true, 2));            // call gate
    set_gdt(8, seg_desc(0, 0xfffff, 0xe, true, 0));                        // conforming code DPL0
    set_gdt(9, seg_desc(0, 0xfffff, 0x3, true, 0, false));                 // data, not present
    set_gdt(10, seg_desc(kLdt, 0x17, 0x2, false, 0, true, false, false));  // LDT
    set_gdt(11, seg_desc(0, 0xfffff, 0x1, true, 3));                       // read-only data DPL3
    set_gdt(12, seg_desc(0, 0xfffff, 0x9, true, 3));                       // execute-only code DPL3
    set_gdt(13, seg_desc(0, 0xfffff, 0xb, true, 0, true, false, true));    // 16-bit code DPL0
    set_gdt(14, seg_desc(0x50000, 0xfff, 0x3, true, 3, true, true, false));  // byte-granular
    set_gdt(15, gate_desc(kUserCs, kGateTarget, 0xc, 3));                // call gate to user code
    set_gdt(16, seg_desc(0, 0xfffff, 0x3, true, 3, false));              // DPL3 data, not present
    set_gdt(17, seg_desc(0, 0xfffff, 0x3, true, 1));                     // data DPL1
    set_gdt(18, seg_desc(0x12345678, 0x0000f, 0x2, true, 0));            // G=1, raw limit 0xF
    set_gdt(19, gate_desc(kKernelCs, 0x4000, 0x4, 3, true, 1));          // 16-bit call gate
    set_gdt(20, seg_desc(0, 0x00fff, 0x7, true, 3, true, true, false));  // expand-down data
    set_gdt(21, seg_desc(0, 0xfffff, 0xb, true, 1));                     // code DPL1
    set_gdt(22, seg_desc(0, 0xfffff, 0x3, true, 1));                     // data DPL1 (stack)
    s.gdtr = {kGdt, 23 * 8 - 1};

    for (unsigned v = 0; v < 256; ++v) set_idt(v, gate_desc(kKernelCs, handler(v), 0xe, 0));
    s.idtr = {kIdt, 256 * 8 - 1};

    mem.put32(kTss + 4, kKernelStackTop);  // ESP0
    mem.put16(kTss + 8, kKernelDs);        // SS0
    mem.put32(kTss + 12, 0x6000);          // ESP1
    mem.put16(kTss + 16, 0xb1);            // SS1 = GDT 22, RPL1
    mem.put16(kTss + 0x66, kIoBitmap);
    for (uint32_t i = 0; i <= 0x2000; ++i) mem.put8(kTss + kIoBitmap + i, 0xff);  // all denied
    SegmentReg tr;
    tr.selector = kTssSel;
    tr.base = kTss;
    tr.limit = kTssLimit;
    tr.type = 0xb;
    tr.present = true;
    s.tr = tr;
    s.ldtr.unusable = true;

    s.cr0 = cr0::kPe | cr0::kEt;
    s.eflags = eflags::kFixed1;
    s.eip = kCode;
  }

  void set_gdt(unsigned index, uint64_t desc) { mem.put64(kGdt + index * 8, desc); }
  void set_idt(unsigned vector, uint64_t desc) { mem.put64(kIdt + vector * 8, desc); }
  uint64_t gdt(unsigned index) const { return mem.u64(kGdt + index * 8); }

  void enter_cpl0() {
    s.seg[kCs] = loaded(kKernelCs, 0, 0xffffffff, 0xb, 0);
    s.seg[kSs] = loaded(kKernelDs, 0, 0xffffffff, 0x3, 0);
    for (unsigned i : {kDs, kEs, kFs, kGs}) s.seg[i] = loaded(kKernelDs, 0, 0xffffffff, 0x3, 0);
    s.gpr[kEsp] = kKernelStackTop - 0x100;
  }
  void enter_cpl3() {
    s.seg[kCs] = loaded(kUserCs, 0, 0xffffffff, 0xb, 3);
    s.seg[kSs] = loaded(kUserDs, 0, 0xffffffff, 0x3, 3);
    for (unsigned i : {kDs, kEs, kFs, kGs}) s.seg[i] = loaded(kUserDs, 0, 0xffffffff, 0x3, 3);
    s.gpr[kEsp] = kUserStackTop;
  }

  /// Places instruction bytes at the current CS:EIP.
  void code(std::initializer_list<uint8_t> bytes) { mem.put(s.seg[kCs].base + s.eip, bytes); }
  /// Doubleword i of the current stack (SS:ESP + 4*i).
  uint32_t stack32(unsigned i) const { return mem.u32(s.seg[kSs].base + s.gpr[kEsp] + 4 * i); }
  uint16_t stack16(unsigned i) const { return mem.u16(s.seg[kSs].base + s.gpr[kEsp] + 2 * i); }

  StepResult step() { return emu.execute(s); }

  /// Expects that the last step delivered `vector` through the default DPL0 interrupt gate.
  void expect_at_handler(uint8_t vector) {
    EXPECT_EQ(s.eip, handler(vector)) << "expected delivery of vector " << int{vector};
    EXPECT_EQ(s.seg[kCs].selector, kKernelCs);
    EXPECT_EQ(s.seg[kSs].dpl, 0);
  }

  FakeMemory mem;
  FakeHooks hooks;
  VcpuState s;
  SystemEmulator emu;
};

}  // namespace vmbt::bt::testing
