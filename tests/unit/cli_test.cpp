// The vmbt program's handling of bad input: clear errors, non-zero exits, never a crash.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "vmm/devices/net_backend.h"
#include "vmm/error.h"
#include "vmm/guest_config.h"
#include "vmm/machine/guest_memory.h"

namespace vmbt {
namespace {

struct Result {
  int status;
  std::string output;  // stdout and stderr together
};

Result run_vmbt(const std::string& args) {
  std::string cmd = std::string(VMBT_BINARY) + " " + args + " </dev/null 2>&1";
  Result r{-1, {}};
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

TEST(MemorySizeArg, AcceptsQemuStyleSuffixes) {
  EXPECT_EQ(parse_memory_size("256M"), 256ull << 20);
  EXPECT_EQ(parse_memory_size("256"), 256ull << 20);  // bare number: MiB, as QEMU's -m
  EXPECT_EQ(parse_memory_size("2048k"), 2048ull << 10);
  EXPECT_EQ(parse_memory_size("1G"), 1ull << 30);
  EXPECT_EQ(parse_memory_size("3GiB"), 3ull << 30);
  EXPECT_EQ(parse_memory_size("64MB"), 64ull << 20);
}

TEST(MemorySizeArg, RejectsGarbageAndOverflow) {
  for (const char* bad : {"", "M", "12X", "-5M", "1.5G", "99999999999999999999G", "5Gx"}) {
    EXPECT_THROW(parse_memory_size(bad), Error) << bad;
  }
}

TEST(MemorySizeArg, RamSizeIsWithinWhatAGuestMayHave) {
  EXPECT_EQ(parse_ram_size("2M"), GuestMemory::kMinBytes);
  EXPECT_EQ(parse_ram_size("3G"), GuestMemory::kMaxBytes);
  for (const char* bad : {"1M", "2047K", "4G", "3073M"}) {
    EXPECT_THROW(parse_ram_size(bad), Error) << bad;
  }
}

TEST(MemorySizeArg, FormatReadsBackAsTheSameSize) {
  EXPECT_EQ(format_memory_size(256ull << 20), "256M");
  EXPECT_EQ(format_memory_size(3ull << 30), "3G");
  EXPECT_EQ(format_memory_size(1536ull << 10), "1536K");
  for (uint64_t bytes : {2ull << 20, 1ull << 30, 3ull << 30, 3000ull << 10, 64ull << 20}) {
    EXPECT_EQ(parse_memory_size(format_memory_size(bytes)), bytes) << bytes;
  }
}

TEST(NetOption, QemusUserNetworkSpelling) {
  EXPECT_FALSE(parse_net("none").user);
  const NetConfig plain = parse_net("user");
  EXPECT_TRUE(plain.user);
  EXPECT_TRUE(plain.forwards.empty());
  const NetConfig n = parse_net(
      "user,hostfwd=tcp::2222-:22,hostfwd=udp:0.0.0.0:5353-10.0.2.20:53,hostfwd=:10.1.2.3:80-:"
      "8080");
  ASSERT_EQ(n.forwards.size(), 3u);
  // An empty host address is 127.0.0.1, an empty guest address 10.0.2.15 (the DHCP lease).
  EXPECT_FALSE(n.forwards[0].udp);
  EXPECT_EQ(n.forwards[0].host_addr, 0x7f000001u);
  EXPECT_EQ(n.forwards[0].host_port, 2222);
  EXPECT_EQ(n.forwards[0].guest_addr, 0x0a00020fu);
  EXPECT_EQ(n.forwards[0].guest_port, 22);
  EXPECT_TRUE(n.forwards[1].udp);
  EXPECT_EQ(n.forwards[1].host_addr, 0u);
  EXPECT_EQ(n.forwards[1].guest_addr, 0x0a000214u);
  EXPECT_EQ(n.forwards[1].guest_port, 53);
  EXPECT_FALSE(n.forwards[2].udp);  // an empty protocol is tcp, as in QEMU
  EXPECT_EQ(n.forwards[2].host_addr, 0x0a010203u);
  EXPECT_EQ(n.forwards[2].guest_port, 8080);
}

TEST(NetOption, MalformedSpecificationsAreClearErrors) {
  for (const char* bad :
       {"tap", "none,hostfwd=tcp::1-:2", "user,restrict=on", "user,hostfwd=tcp::2222:22",
        "user,hostfwd=sctp::1-:2", "user,hostfwd=tcp::0-:22", "user,hostfwd=tcp::65536-:22",
        "user,hostfwd=tcp::22x-:22", "user,hostfwd=tcp:1.2.3:22-:22",
        "user,hostfwd=tcp::22-192.168.1.2:22", "user,hostfwd=tcp::22-:", "user,hostfwd="}) {
    EXPECT_THROW(parse_net(bad), Error) << bad;
  }
  const Result r = run_vmbt("run --kernel /dev/null --net user,hostfwd=tcp::99999-:22");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("the host port is not a number from 1 to 65535"), std::string::npos)
      << r.output;
}

TEST(Cli, MissingKernelFileIsAClearError) {
  Result r = run_vmbt("run --engine bt --kernel /nonexistent/kernel.elf");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("vmbt: error:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("/nonexistent/kernel.elf"), std::string::npos) << r.output;
}

TEST(Cli, MemoryOutOfRangeIsRefused) {
  Result r = run_vmbt("run --engine bt --memory 4G --kernel /dev/null");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("2M to 3G"), std::string::npos) << r.output;
  r = run_vmbt("run --engine bt --memory 1M --kernel /dev/null");
  EXPECT_EQ(r.status, 1);
  r = run_vmbt("run --engine bt --memory lots --kernel /dev/null");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("invalid memory size"), std::string::npos) << r.output;
}

TEST(Cli, UnknownEngineAndUnknownFlagsAreRefused) {
  Result r = run_vmbt("run --engine qemu --kernel /dev/null");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("engine"), std::string::npos) << r.output;
  r = run_vmbt("run --frobnicate");
  EXPECT_NE(r.status, 0);
  r = run_vmbt("");
  EXPECT_NE(r.status, 0);
}

TEST(Cli, WrongAndTruncatedKernelImagesAreRefusedWithoutACrash) {
  std::string text = testing::TempDir() + "/vmbt_cli_text_kernel";
  std::ofstream(text) << "this is not a kernel\n";
  Result r = run_vmbt("run --engine bt --kernel " + text);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("vmbt: error:"), std::string::npos) << r.output;

  std::string empty = testing::TempDir() + "/vmbt_cli_empty_kernel";
  std::ofstream(empty).flush();
  r = run_vmbt("run --engine kvm --kernel " + empty);
  EXPECT_EQ(r.status, 1) << r.output;

  // The first 100 bytes of a real guest: an ELF header with its program headers cut off.
  std::string truncated = testing::TempDir() + "/vmbt_cli_truncated_kernel";
  {
    std::ifstream in(std::string(VMBT_GUEST_DIR) + "/hello.elf", std::ios::binary);
    std::string head(100, '\0');
    in.read(head.data(), 100);
    std::ofstream(truncated, std::ios::binary) << head;
  }
  r = run_vmbt("run --engine bt --kernel " + truncated);
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("vmbt: error:"), std::string::npos) << r.output;
}

TEST(Cli, ProbeReportsTheHostAndTheCpuModel) {
  Result r = run_vmbt("probe --json");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"kvm_available\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("GenuineIntel family 6 model 15"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace vmbt
