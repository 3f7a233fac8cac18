// The vmbt program's handling of bad input: clear errors, non-zero exits, never a crash.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <string>

#include "cli/size_arg.h"
#include "vmm/error.h"

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
