// vmbt: a virtual machine monitor for 32-bit x86 guests (binary translation and KVM).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <exception>

#include "cli/commands.h"
#include "vmm/error.h"

#ifdef VMBT_SANITIZE_BUILD
/// LeakSanitizer stops the world with clone and ptrace at exit, which the seccomp sandbox of
/// `vmbt run` refuses: the sanitizer build of the program checks everything else.
extern "C" const char* __asan_default_options() {
  return "detect_leaks=0";
}
#endif

namespace {

/// The guest flags `run`, `compare` and `trace` share (vmm/guest_config.h).
void add_guest_options(CLI::App* cmd, vmbt::GuestConfig& guest) {
  cmd->add_option("--kernel,-k", guest.kernel,
                  "kernel image (Multiboot ELF32 or Linux bzImage); without it the BIOS boots "
                  "the machine (--bios)");
  cmd->add_option("--bios", guest.bios,
                  "BIOS ROM image of a boot without --kernel (QEMU's -bios; Debian package "
                  "'seabios')")
      ->capture_default_str();
  cmd->add_option("--initrd", guest.initrd,
                  "initial ramdisk (a bzImage's initrd, or Multiboot module 0)");
  cmd->add_option("--append", guest.append, "kernel command line");
  // Flags with a spelling of their own are parsed as they are read (vmm/guest_config.h): a bad one
  // is a vmbt::Error before anything runs.
  cmd->add_option_function<std::string>(
         "--memory,-m",
         [&guest](const std::string& text) { guest.ram_bytes = vmbt::parse_ram_size(text); },
         "guest RAM, 2M to 3G (K/M/G suffixes)")
      ->default_str(vmbt::format_memory_size(guest.ram_bytes));
  cmd->add_option("--timeout", guest.timeout_seconds, "end the run after SECONDS (0: never)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option_function<std::vector<std::string>>(
         "--drive",
         [&guest](const std::vector<std::string>& specs) {
           for (const std::string& spec : specs) guest.drives.push_back(vmbt::parse_drive(spec));
         },
         "a raw disk image as a virtio-blk disk (/dev/vda, vdb, ...): "
         "[file=]PATH[,format=raw][,readonly=on]; repeatable, up to 4")
      ->allow_extra_args(false);
  cmd->add_flag("--snapshot", guest.snapshot,
                "write the drives' changes to a temporary overlay, dropped at exit");
  cmd->add_option_function<std::string>(
         "--net", [&guest](const std::string& spec) { guest.net = vmbt::parse_net(spec); },
         "a virtio-net NIC on user-mode networking (libslirp; the guest is 10.0.2.15, the host "
         "10.0.2.2): user[,hostfwd=tcp:HOSTADDR:HOSTPORT-:GUESTPORT]..., or none")
      ->default_str("none");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"vmbt: runs 32-bit x86 guests by binary translation (bt) or with KVM (kvm)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "vmbt 0.1");

  vmbt::RunArgs run;
  std::string run_engine = vmbt::engine_name(run.guest.engine);
  CLI::App* run_cmd = app.add_subcommand(
      "run", "boot a kernel on bt or kvm (auto: what this host runs best), or on both, switching");
  run_cmd
      ->add_option("--engine", run_engine,
                   "execution engine: auto (kvm where this host's KVM runs the guest, else bt), "
                   "bt or kvm")
      ->check(CLI::IsMember({"auto", "bt", "kvm"}))
      ->capture_default_str();
  add_guest_options(run_cmd, run.guest);
  run_cmd->add_flag("--stats", run.stats, "print counters to stderr at exit");
  run_cmd->add_option("--stats-json", run.stats_json, "write counters as JSON to FILE");
  run_cmd->add_flag("--trace-io", run.guest.trace_io, "log every port and MMIO access to stderr");
  run_cmd->add_flag("--no-sandbox", run.no_sandbox,
                    "do not confine vmbt to the run loop's system calls (seccomp) once the guest "
                    "is loaded");
  run_cmd->add_flag("--perfmap", run.perfmap,
                    "write /tmp/perf-PID.map so perf names translated code by guest address (bt)");
  run_cmd->add_flag("--switchable", run.guest.switchable,
                    "the other engine stands by: Ctrl-A s moves the running guest between bt and "
                    "kvm");
  run_cmd
      ->add_option("--switch-after", run.guest.switch_after_seconds,
                   "move the guest to the other engine after SECONDS of running")
      ->check(CLI::NonNegativeNumber);
  run_cmd
      ->add_option("--switch-at-instructions", run.guest.switch_after_instructions,
                   "move the guest to the other engine once, after N instructions (stepped one "
                   "at a time to there: for tests and demos)")
      ->check(CLI::NonNegativeNumber);
  run_cmd
      ->add_option("--switch-every", run.guest.switch_every_seconds,
                   "move it back and forth every SECONDS (after --switch-after, else from the "
                   "start)")
      ->check(CLI::NonNegativeNumber);
  run_cmd->add_option("--gdb", run.gdb,
                      "GDB stub on tcp::PORT or tcp:HOST:PORT (QEMU's -gdb; host 127.0.0.1 by "
                      "default): in gdb, 'target remote :PORT'");
  run_cmd->add_flag("-s", run.gdb_default, "shorthand for --gdb tcp::1234");
  run_cmd->add_flag("-S,--gdb-wait", run.gdb_wait,
                    "with a GDB stub (tcp::1234 unless --gdb says), the guest waits at its first "
                    "instruction until gdb continues it");

  vmbt::CompareArgs compare;
  CLI::App* compare_cmd =
      app.add_subcommand("compare", "run one guest on bt and on kvm and compare them side by side");
  add_guest_options(compare_cmd, compare.guest);
  compare_cmd->add_option("--json", compare.json, "also write the report as JSON to FILE");
  compare_cmd->add_flag("--live", compare.live,
                        "also run the guest moved between bt and kvm while it runs (a third "
                        "column)");
  compare_cmd
      ->add_option("--live-every", compare.live_every_seconds, "with --live: move it every SECONDS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  CLI::App* bench_cmd = app.add_subcommand("bench", "benchmarks");
  bench_cmd->require_subcommand(1);
  vmbt::BenchMicroArgs micro;
  CLI::App* micro_cmd = bench_cmd->add_subcommand(
      "micro", "time traps, exits and sensitive instructions inside guests, per engine");
  micro_cmd->add_option("--engine", micro.engine, "engines to measure")
      ->check(CLI::IsMember({"bt", "kvm", "qemu", "both", "all"}))
      ->capture_default_str();
  micro_cmd->add_option("--runs", micro.runs, "runs per benchmark and engine (median reported)")
      ->check(CLI::Range(1u, 1000u))
      ->capture_default_str();
  micro_cmd->add_flag("--quick", micro.quick, "few iterations: fast but noisy (for tests)");
  micro_cmd->add_option("--only", micro.only, "run only these benchmarks (comma-separated)")
      ->delimiter(',');
  micro_cmd->add_option("--json", micro.json, "also write the results as JSON to FILE");
  micro_cmd->add_option("--plot", micro.plot, "draw a bar chart (PNG, needs gnuplot) to FILE");
  micro_cmd->add_option("--guest-dir", micro.guest_dir,
                        "directory of the benchmark guests (default: bench/micro next to vmbt)");
  micro_cmd->add_option("--timeout", micro.timeout_seconds, "limit of each guest run, SECONDS")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();

  vmbt::TraceArgs trace;
  CLI::App* trace_cmd = app.add_subcommand(
      "trace", "run a guest on bt and report the sensitive and privileged instructions it runs");
  add_guest_options(trace_cmd, trace.guest);
  trace_cmd->add_flag("--trace-sensitive", trace.trace_sensitive,
                      "log every callout (EIP, CPL, instruction, function) to stderr");
  trace_cmd->add_option("--trace-every", trace.trace_every, "log only every Nth callout")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  trace_cmd->add_option("--symbols", trace.symbols,
                        "System.map or ELF with symbols (default: the kernel's own)");
  trace_cmd->add_option("--summary-json", trace.summary_json, "write the summary as JSON to FILE");
  trace_cmd->add_option("--top", trace.top, "rows of the by-function table (0: all)")
      ->capture_default_str();

  bool probe_json = false;
  CLI::App* probe_cmd = app.add_subcommand("probe", "report what this host's KVM can do");
  probe_cmd->add_flag("--json", probe_json, "print JSON instead of text");

  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
      return app.exit(e);
    }
    if (*run_cmd) {
      run.guest.engine = vmbt::parse_engine_kind(run_engine);
      return vmbt::run_command(run);
    }
    if (*compare_cmd) return vmbt::compare_command(compare);
    if (*micro_cmd) return vmbt::bench_micro_command(micro);
    if (*trace_cmd) return vmbt::trace_command(trace);
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
