// IA-32 architectural state of one vCPU, shared by both engines (Intel SDM Vol. 3A ch. 2-3).
#pragma once

#include <array>
#include <cstdint>

namespace vmbt {

/// General-purpose registers in the encoding order of ModRM.reg (Intel SDM Vol. 2A §2.1.5).
enum Gpr : unsigned { kEax, kEcx, kEdx, kEbx, kEsp, kEbp, kEsi, kEdi };
/// Segment registers in the encoding order of Sreg (Intel SDM Vol. 2A §3.1.1.3).
enum SegIndex : unsigned { kEs, kCs, kSs, kDs, kFs, kGs };

/// A segment register with its hidden part (descriptor cache), Intel SDM Vol. 3A §3.4.3.
struct SegmentReg {
  uint16_t selector = 0;
  uint32_t base = 0;
  uint32_t limit = 0;  ///< byte-granular limit (already scaled when G=1)
  uint8_t type = 0;    ///< descriptor type field (4 bits)
  uint8_t dpl = 0;
  bool s = false;  ///< 1 = code/data, 0 = system
  bool present = false;
  bool db = false;  ///< default operand size 32 / big
  bool g = false;
  bool avl = false;
  bool unusable = false;  ///< loaded with a null selector

  /// A flat 32-bit segment: base 0, limit 4 GiB - 1 (G=1), D/B=1, present, S=1, with descriptor
  /// `type` (0xb: execute/read code, accessed; 0x3: read/write data, accessed) and `dpl`, as a
  /// boot loader leaves CS and the data segments and as SYSENTER/SYSEXIT load CS and SS
  /// (Multiboot v1 §3.2; Intel SDM Vol. 2B SYSENTER, SYSEXIT).
  static SegmentReg flat(uint16_t selector, uint8_t type, uint8_t dpl = 0) {
    SegmentReg s;
    s.set_flat(selector, type, dpl);
    return s;
  }
  /// Makes this register flat(selector, type, dpl) in place. Where it matters (SYSENTER and
  /// SYSEXIT on every system call), prefer it to assigning flat(): that builds the value on the
  /// stack with narrow stores and copies it with wide loads, which cannot be forwarded from them
  /// (a stall of tens of cycles each, measured in bench micro's syscall_sysenter).
  void set_flat(uint16_t sel, uint8_t descriptor_type, uint8_t privilege = 0) {
    selector = sel;
    base = 0;
    limit = 0xffffffffu;
    type = descriptor_type;
    dpl = privilege;
    s = present = db = g = true;
    avl = unusable = false;
  }
  /// Whether this register is flat(sel, descriptor_type, privilege), field by field.
  bool is_flat(uint16_t sel, uint8_t descriptor_type, uint8_t privilege) const {
    return selector == sel && base == 0 && limit == 0xffffffffu && type == descriptor_type &&
           dpl == privilege && s && present && db && g && !avl && !unusable;
  }
};

/// GDTR or IDTR: 32-bit linear base and 16-bit limit.
struct TableReg {
  uint32_t base = 0;
  uint16_t limit = 0;
};

/// Exception vectors (Intel SDM Vol. 3A Table 6-1), for every engine and the tests.
namespace exc {
enum Vector : uint8_t {
  kDe = 0,   ///< divide error
  kDb = 1,   ///< debug
  kNmi = 2,  ///< non-maskable interrupt
  kBp = 3,   ///< breakpoint (INT3)
  kOf = 4,   ///< overflow (INTO)
  kBr = 5,   ///< BOUND range exceeded
  kUd = 6,   ///< invalid opcode
  kNm = 7,   ///< device not available
  kDf = 8,   ///< double fault
  kTs = 10,  ///< invalid TSS
  kNp = 11,  ///< segment not present
  kSs = 12,  ///< stack-segment fault
  kGp = 13,  ///< general protection
  kPf = 14,  ///< page fault
  kMf = 16,  ///< x87 floating-point error
  kAc = 17,  ///< alignment check
  kMc = 18,  ///< machine check
  kXm = 19,  ///< SIMD floating-point exception
};
}  // namespace exc

/// EFLAGS bits (Intel SDM Vol. 1 §3.4.3).
namespace eflags {
constexpr uint32_t kCf = 1u << 0, kFixed1 = 1u << 1, kPf = 1u << 2, kAf = 1u << 4, kZf = 1u << 6,
                   kSf = 1u << 7, kTf = 1u << 8, kIf = 1u << 9, kDf = 1u << 10, kOf = 1u << 11,
                   kIopl = 3u << 12, kNt = 1u << 14, kRf = 1u << 16, kVm = 1u << 17, kAc = 1u << 18,
                   kVif = 1u << 19, kVip = 1u << 20, kId = 1u << 21;
constexpr uint32_t kArith = kCf | kPf | kAf | kZf | kSf | kOf;
}  // namespace eflags

/// CR0 and CR4 bits used by the monitor (Intel SDM Vol. 3A §2.5).
namespace cr0 {
constexpr uint32_t kPe = 1u << 0, kMp = 1u << 1, kEm = 1u << 2, kTs = 1u << 3, kEt = 1u << 4,
                   kNe = 1u << 5, kWp = 1u << 16, kAm = 1u << 18, kNw = 1u << 29, kCd = 1u << 30,
                   kPg = 1u << 31;
}
namespace cr4 {
constexpr uint32_t kVme = 1u << 0, kPvi = 1u << 1, kTsd = 1u << 2, kDe = 1u << 3, kPse = 1u << 4,
                   kPae = 1u << 5, kPge = 1u << 7, kOsfxsr = 1u << 9, kOsxmmexcpt = 1u << 10;
}
/// IA32_EFER bits (Intel SDM Vol. 3A §2.2.1, Vol. 4 Table 2-2).
namespace efer {
constexpr uint64_t kSce = 1u << 0, kNxe = 1u << 11;
}

/// The architectural registers except the x87/MMX/SSE image: what the system-instruction
/// emulator can change, so a rollback copy of it costs a third of the whole state.
struct VcpuRegisters {
  std::array<uint32_t, 8> gpr{};  ///< indexed by Gpr
  uint32_t eip = 0;
  uint32_t eflags = eflags::kFixed1;
  std::array<SegmentReg, 6> seg{};  ///< indexed by SegIndex
  SegmentReg ldtr, tr;
  TableReg gdtr, idtr;
  uint32_t cr0 = cr0::kEt, cr2 = 0, cr3 = 0, cr4 = 0;
  uint64_t efer = 0;  ///< IA32_EFER as the engine's MMU sees it (NXE: execute-disable, §4.1.3)
  /// The PDPTE registers of PAE paging (Intel SDM Vol. 3A §4.4.1), loaded from the PDPT at CR3
  /// by MOV CR3, and by MOV CR0/CR4 where those turn on or modify PAE paging; meaningful only
  /// while CR0.PG=1 and CR4.PAE=1.
  std::array<uint64_t, 4> pdpte{};
  std::array<uint32_t, 8> dr{};  ///< DR0-DR7 (DR4/5 alias DR6/7)
  uint32_t sysenter_cs = 0, sysenter_esp = 0, sysenter_eip = 0;
  uint64_t tsc = 0;

  /// CPL: SS.DPL in protected mode (Intel SDM Vol. 3A §5.5; VT-x keeps it there too), 3 in
  /// virtual-8086 mode, 0 in real mode. The one place the monitor derives it.
  unsigned cpl() const {
    if (!(cr0 & cr0::kPe)) return 0;
    if (eflags & eflags::kVm) return 3;
    return seg[kSs].dpl;
  }
};

/// The complete architectural state an engine takes and gives back.
struct VcpuState : VcpuRegisters {
  alignas(16) std::array<uint8_t, 512> fxsave{};  ///< x87/MMX/SSE state in FXSAVE layout
};

}  // namespace vmbt
