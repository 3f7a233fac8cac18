// Runs the real vmbt binary for the CLI tests: its status and its output.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace vmbt::testing_cli {

struct VmbtResult {
  int status = -1;
  std::string output;  ///< stdout, plus stderr when asked for
};

/// Runs `VMBT_BINARY args` with stdin from /dev/null; `with_stderr` adds stderr to the output.
inline VmbtResult run_vmbt(const std::string& args, bool with_stderr = true,
                           const std::string& env = "") {
  std::string cmd = env + (env.empty() ? "" : " ") + std::string(VMBT_BINARY) + " " + args +
                    " </dev/null" + (with_stderr ? " 2>&1" : " 2>/dev/null");
  VmbtResult r;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

/// The value of counter `name` in `vmbt run --stats` output (its "  NAME  VALUE" line), or -1
/// when the output has no such line.
inline long long stat_value(const std::string& out, const std::string& name) {
  const size_t at = out.find("  " + name + " ");
  if (at == std::string::npos) return -1;
  return std::strtoll(out.c_str() + at + name.size() + 3, nullptr, 10);
}

/// The micro-benchmark guests: bench/micro next to the vmbt binary (the build tree's layout).
inline std::string micro_guest_dir() {
  return (std::filesystem::path(VMBT_BINARY).parent_path() / "bench" / "micro").string();
}

}  // namespace vmbt::testing_cli
