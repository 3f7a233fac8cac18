// Runs an IA-32 snippet through the bt engine, laid out exactly as NativeRunner lays it out.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/difftest/native_runner.h"

namespace vmbt {
class GuestMemory;
namespace bt {
class BtEngine;
}
}  // namespace vmbt

namespace vmbt::difftest {

/// What the snippet did under bt.
struct BtResult {
  CpuSnapshot out;       ///< registers at the end, or at the fault (ESP: the faulting one)
  bool faulted = false;  ///< an exception was delivered to the harness's IDT
  int vector = -1;
  uint32_t error_code = 0;
  uint32_t fault_eip = 0;  ///< the EIP saved in the exception frame
  bool timed_out = false;
  /// The exception frame the guest's delivery wrote into the data arena (the native run has
  /// none): `frame_size` bytes from arena offset `frame_offset`, wrapping modulo kDataSize as a
  /// 16-bit stack does. 0 bytes when there was no fault.
  uint32_t frame_offset = 0, frame_size = 0;
  std::string engine_error;     ///< the engine stopped for another reason (message)
  std::vector<uint8_t> memory;  ///< the data arena afterwards
};

/// Where bt's outcome differs from the native run's in what both decide: whether and which
/// exception was raised and at which EIP, the eight registers, and the EFLAGS bits in
/// `flag_mask` (flag::kCompared minus what the instructions leave undefined). "" when they agree.
/// Timeouts, engine errors and memory are the caller's to judge.
std::string compare_registers(const NativeResult& n, const BtResult& b, uint32_t flag_mask);

/// A guest machine with the snippet at NativeRunner::kSnippetBase, the data arena at
/// NativeRunner::kDataBase, a flat GDT and an IDT whose 32 exception handlers each halt at a
/// known address, so a fault is reported with its vector, error code and saved EIP. A case with
/// NativeCase::code16 runs in real mode instead, in the segments NativeRunner gives it (CS:IP =
/// FFFF:1010, the linear kSnippetBase; DS = ES = SS = FS = GS = 0x100, the arena), with an IVT
/// whose 32 exception handlers halt (Intel SDM Vol. 3A §20.1.4).
class BtSnippetRunner {
 public:
  BtSnippetRunner();
  ~BtSnippetRunner();
  /// Runs `c` with `arena` (kDataSize bytes) as the initial data arena, at CPL 0, or at CPL 3
  /// when `user` (flat DPL-3 segments; exceptions switch to a ring-0 stack through a TSS); a
  /// NativeCase::code16 case in real mode (`user` ignored).
  BtResult run(const NativeCase& c, const uint8_t* arena, unsigned timeout_ms = 2000,
               bool user = false);

 private:
  std::unique_ptr<GuestMemory> ram_;
};

}  // namespace vmbt::difftest
