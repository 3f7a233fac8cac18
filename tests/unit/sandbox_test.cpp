// The seccomp sandbox (vmm/sandbox.h): the run loop's calls pass, anything else ends the process
// with a message naming the call.
#include "vmm/sandbox.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <netinet/in.h>

#include <cerrno>
#include <cstdio>

namespace vmbt {
namespace {

/// The sanitizers' runtime makes system calls of its own inside the sandbox (and its interceptors
/// change how a refused call is reported): these checks run in the normal build.
#ifdef VMBT_SANITIZE_BUILD
#define SKIP_IN_SANITIZER_BUILD() GTEST_SKIP() << "checked in the build without sanitizers"
#else
#define SKIP_IN_SANITIZER_BUILD() (void)0
#endif

TEST(SandboxDeathTest, AllowsTheRunLoopsCallsAndStopsOthersWithTheirName) {
  SKIP_IN_SANITIZER_BUILD();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        enter_sandbox();
        // Mapping, protecting and writing are the run loop's own: they pass.
        void* p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ) != 0) _exit(3);
        if (write(STDERR_FILENO, "inside\n", 7) != 7) _exit(4);
        // A socket is not: the process ends with status 1, naming the call.
        (void)!socket(AF_INET, SOCK_STREAM, 0);
        _exit(5);
      },
      ::testing::ExitedWithCode(1), "inside\n.*the sandbox stopped system call socket");
}

TEST(SandboxDeathTest, OpeningAFileIsRefused) {
  SKIP_IN_SANITIZER_BUILD();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        enter_sandbox();
        std::FILE* f = std::fopen("/etc/hostname", "r");
        _exit(f ? 6 : 7);
      },
      ::testing::ExitedWithCode(1), "stopped system call openat");
}

TEST(SandboxDeathTest, UserNetworkingAllowsSocketsAndRefusesFilesQuietly) {
  SKIP_IN_SANITIZER_BUILD();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        enter_sandbox(false, /*user_network=*/true);
        // libslirp's calls: a socket, bound, listening, its name; a UDP socket sending.
        const int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) _exit(3);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(s, 1) != 0 ||
            getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
          _exit(4);
        }
        const int u = socket(AF_INET, SOCK_DGRAM, 0);
        if (u < 0 || sendto(u, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof a) != 1) {
          _exit(5);
        }
        // Opening a file (its DNS forwarder's /etc/resolv.conf) fails with EACCES, no more.
        std::FILE* f = std::fopen("/etc/hostname", "r");
        if (f || errno != EACCES) _exit(6);
        // Anything else still ends the run.
        (void)!fork();
        _exit(7);
      },
      ::testing::ExitedWithCode(1), "the sandbox stopped system call (fork|clone)");
}

}  // namespace
}  // namespace vmbt
