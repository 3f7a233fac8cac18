// libFuzzer target: the GDB stub's packet decoder and command handler (vmm/gdb) fed the bytes a
// hostile or broken debugger could send: bad checksums, huge lengths, escapes, memory ranges
// outside the guest. Nothing may crash, trip a sanitizer or hang, and every reply must frame and
// decode back to itself (GDB manual, Appendix E.1).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "vmm/gdb/gdb_packet.h"
#include "vmm/gdb/gdb_stub.h"

namespace {

/// Two mapped guest pages (0x1000 and 0x3000); everything else is unmapped.
class TwoPages : public vmbt::gdb::DebugTarget {
 public:
  vmbt::VcpuState state;
  uint8_t page[2][4096] = {};
  vmbt::VcpuState registers() override { return state; }
  void set_registers(const vmbt::VcpuState& s) override { state = s; }
  bool access_memory(uint32_t linear, uint8_t* data, size_t size, bool write) override {
    for (size_t i = 0; i < size; ++i) {
      if (!slot(linear + static_cast<uint32_t>(i))) return false;
    }
    for (size_t i = 0; i < size; ++i) {
      uint8_t* b = slot(linear + static_cast<uint32_t>(i));
      if (write) {
        *b = data[i];
      } else {
        data[i] = *b;
      }
    }
    return true;
  }
  std::string monitor(std::string_view command) override { return std::string(command); }

 private:
  uint8_t* slot(uint32_t a) {
    if ((a & ~0xfffu) == 0x1000) return &page[0][a & 0xfff];
    if ((a & ~0xfffu) == 0x3000) return &page[1][a & 0xfff];
    return nullptr;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TwoPages target;
  vmbt::gdb::GdbStub stub(target);
  vmbt::gdb::PacketDecoder decoder;
  std::vector<vmbt::gdb::InputEvent> events;
  decoder.feed(data, size, events);
  for (const vmbt::gdb::InputEvent& e : events) {
    if (e.kind != vmbt::gdb::InputEvent::Kind::kPacket) continue;
    std::string reply;
    stub.handle(e.payload, &reply);
    // The reply survives framing: what GDB decodes is what the stub meant.
    const std::string framed = vmbt::gdb::frame_packet(reply);
    vmbt::gdb::PacketDecoder check;
    std::vector<vmbt::gdb::InputEvent> back;
    check.feed(reinterpret_cast<const uint8_t*>(framed.data()), framed.size(), back);
    if (reply.size() <= vmbt::gdb::kMaxPacketSize &&
        (back.size() != 1 || back[0].kind != vmbt::gdb::InputEvent::Kind::kPacket ||
         back[0].payload != reply)) {
      std::abort();
    }
  }
  return 0;
}
