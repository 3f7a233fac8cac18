// The GDB stub's commands (vmm/gdb/gdb_stub.h) against a fake stopped guest. Oracles: the GDB
// manual's packet definitions (Appendix E.2, E.4), GDB's i386 register order (the 'g' image is
// eax ecx edx ebx esp ebp esi edi eip eflags cs ss ds es fs gs, st0-7, x87 control, xmm0-7,
// mxcsr; little-endian), the FXSAVE layout (Intel SDM Vol. 1 Table 10-2), and the fake's memory.
#include "vmm/gdb/gdb_stub.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "vmm/gdb/gdb_packet.h"

namespace vmbt::gdb {
namespace {

/// A stopped guest: registers, and 4 KiB pages of memory at chosen linear addresses.
class FakeTarget : public DebugTarget {
 public:
  VcpuState state;
  std::map<uint32_t, std::vector<uint8_t>> pages;  // linear page base -> 4096 bytes
  std::string last_monitor;

  VcpuState registers() override { return state; }
  void set_registers(const VcpuState& s) override { state = s; }
  bool access_memory(uint32_t linear, uint8_t* data, size_t size, bool write) override {
    for (size_t i = 0; i < size; ++i) {
      if (!pages.count((linear + i) & ~0xfffu)) return false;
    }
    for (size_t i = 0; i < size; ++i) {
      uint8_t& b = pages[(linear + i) & ~0xfffu][(linear + i) & 0xfff];
      if (write) {
        b = data[i];
      } else {
        data[i] = b;
      }
    }
    return true;
  }
  std::string monitor(std::string_view command) override {
    last_monitor = std::string(command);
    return "counters\n";
  }
};

std::string hex32(uint32_t v) {
  uint8_t b[4];
  std::memcpy(b, &v, 4);
  return to_hex(b, 4);
}

class GdbStubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (unsigned i = 0; i < 8; ++i) target.state.gpr[i] = 0x11110000u + i;
    target.state.eip = 0xc0100000;
    target.state.eflags = 0x246;
    target.state.seg[kCs].selector = 0x60;
    target.state.seg[kSs].selector = 0x68;
    target.state.seg[kDs].selector = 0x7b;
    target.state.seg[kEs].selector = 0x7b;
    target.state.seg[kFs].selector = 0xd8;
    target.state.seg[kGs].selector = 0xe0;
    target.state.cr0 = 0x80050033;
    target.state.cr3 = 0x1234000;
    const uint16_t fcw = 0x37f;
    std::memcpy(target.state.fxsave.data(), &fcw, 2);
    target.state.fxsave[4] = 0x01;             // abridged tag: ST(0)'s register valid
    target.state.fxsave[32] = 0xab;            // ST0's first byte
    target.state.fxsave[160 + 16 * 7] = 0xcd;  // XMM7's first byte
    target.pages[0x1000] = std::vector<uint8_t>(4096);
    target.pages[0x2000] = std::vector<uint8_t>(4096);
    for (unsigned i = 0; i < 4096; ++i) target.pages[0x1000][i] = static_cast<uint8_t>(i);
  }
  std::string send(const std::string& packet, Resume* resume = nullptr) {
    std::string reply;
    Resume r = stub.handle(packet, &reply);
    if (resume) *resume = r;
    return reply;
  }
  FakeTarget target;
  GdbStub stub{target};
};

TEST_F(GdbStubTest, RegisterImageFollowsGdbsI386Order) {
  const std::string g = send("g");
  // 16 dwords, 8 x 10-byte st, 8 x87 control dwords, 8 x 16-byte xmm, mxcsr, 4 control regs.
  ASSERT_EQ(g.size(), 2u * (16 * 4 + 8 * 10 + 8 * 4 + 8 * 16 + 4 + 4 * 4));
  for (unsigned i = 0; i < 8; ++i) EXPECT_EQ(g.substr(8 * i, 8), hex32(0x11110000u + i)) << i;
  EXPECT_EQ(g.substr(8 * 8, 8), hex32(0xc0100000));
  EXPECT_EQ(g.substr(8 * 9, 8), hex32(0x246));
  const uint32_t segs[6] = {0x60, 0x68, 0x7b, 0x7b, 0xd8, 0xe0};  // cs ss ds es fs gs
  for (unsigned i = 0; i < 6; ++i) EXPECT_EQ(g.substr(8 * (10 + i), 8), hex32(segs[i])) << i;
  EXPECT_EQ(g.substr(128, 2), "ab");                      // st0
  EXPECT_EQ(g.substr(128 + 160, 8), hex32(0x37f));        // fctrl
  EXPECT_EQ(g.substr(128 + 160 + 16, 8), hex32(0xfffc));  // ftag: st0 valid (00), rest empty
  EXPECT_EQ(g.substr(128 + 160 + 64 + 7 * 32, 2), "cd");  // xmm7
  const size_t crs = 128 + 160 + 64 + 256 + 8;
  EXPECT_EQ(g.substr(crs, 8), hex32(0x80050033));      // cr0
  EXPECT_EQ(g.substr(crs + 16, 8), hex32(0x1234000));  // cr3
}

TEST_F(GdbStubTest, TheTargetDescriptionMatchesTheRegisterImage) {
  // Read target.xml in small pieces, as GDB does, and check its registers' sizes and count.
  std::string xml;
  for (size_t offset = 0;;) {
    char packet[64];
    std::snprintf(packet, sizeof packet, "qXfer:features:read:target.xml:%zx,100", offset);
    const std::string r = send(packet);
    ASSERT_FALSE(r.empty());
    xml += r.substr(1);
    offset += r.size() - 1;
    if (r[0] == 'l') break;
    ASSERT_EQ(r[0], 'm');
  }
  EXPECT_EQ(xml, std::string(target_xml()));
  EXPECT_NE(xml.find("<architecture>i386</architecture>"), std::string::npos);
  std::regex reg(R"re(<reg name="(\w+)" bitsize="(\d+)")re");
  size_t n = 0;
  for (auto it = std::sregex_iterator(xml.begin(), xml.end(), reg); it != std::sregex_iterator();
       ++it, ++n) {
    EXPECT_EQ(std::stoul((*it)[2]) / 8, register_size(n)) << (*it)[1];
  }
  EXPECT_EQ(n, kRegisterCount);
  EXPECT_EQ(send("qXfer:features:read:other.xml:0,100"), "E00");
}

TEST_F(GdbStubTest, WritingRegistersChangesOnlyWhatMayChange) {
  EXPECT_EQ(send("P0=" + hex32(0xdeadbeef)), "OK");
  EXPECT_EQ(target.state.gpr[kEax], 0xdeadbeefu);
  EXPECT_EQ(send("P8=" + hex32(0x1000)), "OK");
  EXPECT_EQ(target.state.eip, 0x1000u);
  EXPECT_EQ(send("p8"), hex32(0x1000));
  EXPECT_EQ(send("P9=" + hex32(0x246 | 0x20000)), "E02");  // EFLAGS.VM: a mode switch
  EXPECT_EQ(send("P9=" + hex32(0x1 | 0x100)), "OK");       // CF and TF
  EXPECT_EQ(target.state.eflags, 0x103u);                  // bit 1 stays set
  EXPECT_EQ(send("Pa=" + hex32(0x10)), "E02");             // CS
  EXPECT_EQ(send("Pa=" + hex32(0x60)), "OK");              // CS unchanged
  EXPECT_EQ(send("P99=" + hex32(0)), "E01");
  EXPECT_EQ(send("P0=12"), "E01");  // wrong size
  // G: the image g gave, with EDI changed.
  std::string g = send("g");
  g.replace(8 * 7, 8, hex32(0x77777777));
  EXPECT_EQ(send("G" + g), "OK");
  EXPECT_EQ(target.state.gpr[kEdi], 0x77777777u);
  EXPECT_EQ(send("Gxyz"), "E01");
}

TEST_F(GdbStubTest, MemoryReadsAndWritesGoThroughTheTarget) {
  EXPECT_EQ(send("m1ffe,2"), "feff");
  EXPECT_EQ(send("m1ffe,4"), "feff0000");  // crosses into the next mapped page
  EXPECT_EQ(send("m2ffe,4"), "E14");       // the next page is not mapped
  EXPECT_EQ(send("m5000,1"), "E14");
  EXPECT_EQ(send("mffffffff,2"), "E14");  // past 4 GiB
  EXPECT_EQ(send("m1000"), "E01");
  EXPECT_EQ(send("M2000,3:a1b2c3"), "OK");
  EXPECT_EQ(target.pages[0x2000][1], 0xb2);
  EXPECT_EQ(send("M2000,2:a1b2c3"), "E01");  // length and data disagree
  EXPECT_EQ(send("X2010,4:#$}*"), "OK");     // binary (already unescaped by the decoder)
  EXPECT_EQ(std::string(reinterpret_cast<char*>(&target.pages[0x2000][0x10]), 4), "#$}*");
  EXPECT_EQ(send("X2010,0:"), "OK");
  EXPECT_EQ(send("M2ffe,4:01020304"), "E14");
  EXPECT_EQ(target.pages[0x2000][0xffe], 0);  // nothing written when a page is missing
}

TEST_F(GdbStubTest, BreakpointsAreASortedSet) {
  EXPECT_EQ(send("Z0,c0100010,1"), "OK");
  EXPECT_EQ(send("Z0,c0100000,1"), "OK");
  EXPECT_EQ(send("Z1,c0100008,1"), "OK");
  EXPECT_EQ(send("Z0,c0100000,1"), "OK");  // twice: still one
  EXPECT_EQ(stub.breakpoints(), (std::vector<uint32_t>{0xc0100000, 0xc0100008, 0xc0100010}));
  EXPECT_EQ(send("z0,c0100008,1"), "OK");
  EXPECT_EQ(stub.breakpoints(), (std::vector<uint32_t>{0xc0100000, 0xc0100010}));
  EXPECT_EQ(send("Z5,1000,4"), "");  // no such kind
  EXPECT_EQ(send("Z0,zz,1"), "E01");
  EXPECT_EQ(send("Z0,100000000,1"), "E01");
}

TEST_F(GdbStubTest, WriteWatchpointsAndTheirStopReply) {
  EXPECT_EQ(send("Z2,2004,4"), "OK");
  EXPECT_EQ(send("Z2,2010,2"), "OK");
  EXPECT_EQ(send("Z2,2004,4"), "OK");  // twice: still one
  ASSERT_EQ(stub.watchpoints().size(), 2u);
  EXPECT_EQ(stub.watchpoints()[0].linear, 0x2004u);
  EXPECT_EQ(stub.watchpoints()[0].length, 4u);
  EXPECT_EQ(send("z2,2004,4"), "OK");
  ASSERT_EQ(stub.watchpoints().size(), 1u);
  EXPECT_EQ(stub.watchpoints()[0].linear, 0x2010u);
  EXPECT_EQ(send("Z2,2004,0"), "E01");      // empty range
  EXPECT_EQ(send("Z2,fffffffe,4"), "E01");  // past 4 GiB
  // Read and access watchpoints on the same range are other watchpoints.
  EXPECT_EQ(send("Z3,2010,2"), "OK");
  EXPECT_EQ(send("Z4,2010,2"), "OK");
  ASSERT_EQ(stub.watchpoints().size(), 3u);
  using Kind = DebugSettings::Watch::Kind;
  EXPECT_EQ(stub.watchpoints()[0].kind, Kind::kWrite);
  EXPECT_EQ(stub.watchpoints()[1].kind, Kind::kRead);
  EXPECT_EQ(stub.watchpoints()[2].kind, Kind::kAccess);
  EXPECT_EQ(send("z3,2010,2"), "OK");
  ASSERT_EQ(stub.watchpoints().size(), 2u);
  EXPECT_EQ(stub.watchpoints()[1].kind, Kind::kAccess);
  // §E.3: "watch:ADDR", "rwatch:ADDR", "awatch:ADDR" name the data address.
  EXPECT_EQ(stub.stop_reply(StopSignal::kTrap, WatchStop{Kind::kWrite, 0x2012}),
            "T05watch:2012;thread:01;");
  EXPECT_EQ(stub.stop_reply(StopSignal::kTrap, WatchStop{Kind::kRead, 0x2010}),
            "T05rwatch:2010;thread:01;");
  EXPECT_EQ(stub.stop_reply(StopSignal::kTrap, WatchStop{Kind::kAccess, 0x2011}),
            "T05awatch:2011;thread:01;");
}

TEST_F(GdbStubTest, ResumptionPackets) {
  Resume r;
  EXPECT_EQ(send("c", &r), "");
  EXPECT_EQ(r, Resume::kContinue);
  send("s", &r);
  EXPECT_EQ(r, Resume::kStep);
  send("vCont;s:1;c", &r);
  EXPECT_EQ(r, Resume::kStep);
  send("vCont;c", &r);
  EXPECT_EQ(r, Resume::kContinue);
  EXPECT_EQ(send("vCont?"), "vCont;c;C;s;S");
  send("c1000", &r);  // resume at an address
  EXPECT_EQ(r, Resume::kContinue);
  EXPECT_EQ(target.state.eip, 0x1000u);
  send("S05;2000", &r);
  EXPECT_EQ(r, Resume::kStep);
  EXPECT_EQ(target.state.eip, 0x2000u);
  send("k", &r);
  EXPECT_EQ(r, Resume::kKill);
  EXPECT_EQ(send("D", &r), "OK");
  EXPECT_EQ(r, Resume::kDetach);
}

TEST_F(GdbStubTest, QueriesAndStopReplies) {
  EXPECT_NE(send("qSupported:multiprocess+;swbreak+").find("PacketSize=4000"), std::string::npos);
  EXPECT_EQ(send("?"), "T05thread:01;");
  EXPECT_EQ(stub.stop_reply(StopSignal::kInt), "T02thread:01;");
  EXPECT_EQ(send("?"), "T02thread:01;");
  EXPECT_EQ(send("qC"), "QC1");
  EXPECT_EQ(send("qfThreadInfo"), "m1");
  EXPECT_EQ(send("qsThreadInfo"), "l");
  EXPECT_EQ(send("Hg0"), "OK");
  EXPECT_FALSE(stub.no_ack_mode());
  EXPECT_EQ(send("QStartNoAckMode"), "OK");
  EXPECT_TRUE(stub.no_ack_mode());
  // monitor stats: the command arrives hex-encoded, the output goes back hex-encoded.
  const std::string cmd = "stats";
  EXPECT_EQ(send("qRcmd," + to_hex(reinterpret_cast<const uint8_t*>(cmd.data()), cmd.size())),
            to_hex(reinterpret_cast<const uint8_t*>("counters\n"), 9));
  EXPECT_EQ(target.last_monitor, "stats");
  EXPECT_EQ(send("qRcmd,7"), "E01");
  EXPECT_EQ(send("vMustReplyEmpty"), "");
  EXPECT_EQ(send("unknown"), "");
}

}  // namespace
}  // namespace vmbt::gdb
