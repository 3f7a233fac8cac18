// vmbt: a virtual machine monitor for 32-bit x86 guests (binary translation and KVM).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "vmm/cli/commands.h"
#include "vmm/error.h"

int main(int argc, char** argv) {
  CLI::App app{"vmbt: runs 32-bit x86 guests by binary translation (bt) or with KVM (kvm)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "vmbt 0.1");

  vmbt::RunArgs run;
  CLI::App* run_cmd = app.add_subcommand("run", "boot a kernel on one engine");
  run_cmd->add_option("--engine", run.engine, "execution engine")
      ->check(CLI::IsMember({"bt", "kvm"}))
      ->capture_default_str();
  run_cmd->add_option("--kernel,-k", run.kernel, "kernel image (Multiboot ELF32)")->required();
  run_cmd->add_option("--initrd", run.initrd, "initial ramdisk (Multiboot module 0)");
  run_cmd->add_option("--append", run.append, "kernel command line");
  run_cmd->add_option("--memory,-m", run.memory, "guest RAM, 2M to 3G (K/M/G suffixes)")
      ->capture_default_str();
  run_cmd->add_flag("--stats", run.stats, "print counters to stderr at exit");
  run_cmd->add_option("--stats-json", run.stats_json, "write counters as JSON to FILE");
  run_cmd->add_flag("--trace-io", run.trace_io, "log every port and MMIO access to stderr");
  run_cmd->add_option("--timeout", run.timeout_seconds, "end the run after SECONDS (0: never)")
      ->check(CLI::NonNegativeNumber);

  bool probe_json = false;
  CLI::App* probe_cmd = app.add_subcommand("probe", "report what this host's KVM can do");
  probe_cmd->add_flag("--json", probe_json, "print JSON instead of text");

  CLI11_PARSE(app, argc, argv);
  try {
    if (*run_cmd) return vmbt::run_command(run);
    if (*probe_cmd) return vmbt::probe_command(probe_json);
  } catch (const vmbt::Error& e) {
    fmt::print(stderr, "vmbt: error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "vmbt: internal error: {}\n", e.what());
    return 1;
  }
  return 0;
}
