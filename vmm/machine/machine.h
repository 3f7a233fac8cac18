// The PC both engines run on: guest RAM, memory map, buses and the legacy devices.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vmm/devices/net_backend.h"
#include "vmm/engine.h"
#include "vmm/guest_config.h"
#include "vmm/machine/guest_memory.h"
#include "vmm/machine/io_bus.h"
#include "vmm/machine/irq.h"
#include "vmm/machine/memory_map.h"

namespace vmbt {

class CharBackend;
class Pic8259Pair;
class Uart16550;
class Pit8254;
class CmosRtc;
class DebugExit;
class PostPort;
class FwCfg;
class I8042;
class Port92;
class PciHost;
class LocalApic;
class IoApic;
class IsaIrqRouter;
class MsrModel;
class AcpiPm;
class Hpet;
class DiskImage;
class VirtioBlk;
class VirtioPci;
struct AcpiPlatform;
class VirtioNet;
class Piix3IsaBridge;
class FirmwareMemory;

/// A PC: RAM, the vCPU's local APIC at 0xFEE00000 (xAPIC, LINT0 virtual wire to the 8259s), an
/// I/O APIC at 0xFEC00000 seeing every ISA IRQ (IRQ0 on pin 2), COM1 16550A at 0x3f8/IRQ4, 8259A
/// pair, 8254 PIT with port 0x61, MC146818 RTC,
/// isa-debug-exit at 0xf4, POST port 0x80, fw_cfg at 0x510, 8042 keyboard controller at 0x60/0x64
/// (IRQ1/12, nothing attached), System Control Port A at 0x92, PCI configuration mechanism #1 at
/// 0xcf8-0xcff with an i440FX host bridge, an HPET at 0xFED00000, ACPI fixed hardware at 0x600
/// (PM1 blocks, PM timer), virtio-blk drives at 00:03.0 and on, a virtio-net NIC after them (IRQ 6;
/// transitional virtio-pci: legacy I/O BARs from 0xC000, modern memory BARs from 0xFE000000)
/// and the ACPI tables at 0xE0000 that describe it all. Both engines' exits are answered here,
/// so a guest sees the same devices whichever engine runs it.
///
/// A PIIX3 ISA bridge is at 00:01.0. Without a kernel (GuestConfig::firmware_boot) the machine
/// is a PC at power-on for its BIOS (docs/platform.md "Firmware boot"): the ROM image below
/// 4 GiB and in the PAM-controlled BIOS area (FirmwareMemory), the virtio functions' BARs
/// unassigned and their INTA# on the PIIX3's PIRQ lines, fw_cfg with the files SeaBIOS reads
/// (etc/e820, bootorder, etc/boot-fail-wait, etc/sercon-port, the ACPI tables through
/// etc/table-loader); no tables are written into RAM.
class Machine {
 public:
  /// The machine `guest` describes (its RAM, drives, network and I/O tracing to stderr; the
  /// kernel and the engine are the builder's), with COM1 on `console`. Throws vmbt::Error for a
  /// drive image that cannot be opened, more drives than there are slots, or (a firmware boot)
  /// a BIOS image that cannot be read.
  Machine(const GuestConfig& guest, CharBackend& console);
  ~Machine();

  GuestMemory& memory() { return memory_; }
  const MemoryMap& memory_map() const { return map_; }
  IoBus& io() { return io_; }
  MmioBus& mmio() { return mmio_; }
  /// The CPU's INTR: the local APIC (which passes the 8259's through LINT0).
  InterruptSource& interrupts();
  /// The platform's MSRs (IA32_APIC_BASE, MTRRs, PAT, ...) for the engines' RDMSR/WRMSR.
  MsrModel& msrs() { return *msrs_; }
  LocalApic& local_apic() { return *lapic_; }
  IoApic& ioapic() { return *ioapic_; }

  /// The platform's NMI line, as a PC's chipset raises it (or QEMU's `nmi` monitor command):
  /// an edge on the local APIC's LINT1 (LocalApic::raise_lint1). The console's Ctrl-A n.
  void raise_nmi_line();

  /// A firmware boot: the BIOS ROM is mapped and the CPU starts at its reset state.
  bool firmware_boot() const { return firmware_ != nullptr; }
  /// The firmware's memory windows the engines map now (Engine::set_memory_windows): empty
  /// without firmware.
  std::vector<MemoryWindow> memory_windows() const;
  /// Called with memory_windows() whenever they change (a guest's PAM write), from the run
  /// loop's thread while the engine is stopped at an exit.
  /// Called with the A20 gate's state whenever port 0x92 or the 8042's output port changes it
  /// (the last write wins, as in QEMU: both drive the one A20 line).
  void set_on_a20_change(std::function<void(bool)> f) { on_a20_change_ = std::move(f); }
  void set_on_memory_windows_change(std::function<void(const std::vector<MemoryWindow>&)> f) {
    on_windows_change_ = std::move(f);
  }
  PciHost& pci() { return *pci_host_; }
  Piix3IsaBridge& isa_bridge() { return *piix3_; }

  /// Performs a port-I/O exit on the bus (every element of a string I/O).
  void handle_io(IoAccess& access);
  /// Performs an MMIO exit on the bus.
  void handle_mmio(MmioAccess& access);
  /// Adds the devices' counters (virtio.*) to `stats`.
  void collect_stats(Stats& stats) const;
  /// Advances time-driven and input-driven devices to `now_ns`.
  void poll(uint64_t now_ns);
  /// The earliest host time at which poll() has work, or UINT64_MAX.
  uint64_t next_deadline_ns() const;
  /// Sleeps until `deadline_ns` (host_now_ns's clock; a guest halted in HLT), or until host input
  /// a device waits for arrives (a network packet), whichever comes first; a signal may cut it
  /// short. The caller polls afterwards.
  void wait_until(uint64_t deadline_ns);
  /// Set when the guest asked to end the run: the isa-debug-exit status, or 0 for a CPU reset
  /// through the 8042 (pulse 0xfe) or port 0x92 (a reset is a normal end of the run).
  std::optional<int> exit_requested() const;
  /// What exit_requested() means, in a sentence for the user (empty when nothing was requested).
  std::string exit_request_reason() const;

 private:
  GuestMemory memory_;
  MemoryMap map_;
  IoBus io_;
  MmioBus mmio_;
  std::unique_ptr<Pic8259Pair> pic_;
  std::unique_ptr<LocalApic> lapic_;
  std::unique_ptr<IoApic> ioapic_;
  std::unique_ptr<IsaIrqRouter> isa_irqs_;
  std::unique_ptr<MsrModel> msrs_;
  std::unique_ptr<Uart16550> com1_;
  std::unique_ptr<Pit8254> pit_;
  std::unique_ptr<CmosRtc> rtc_;
  std::unique_ptr<DebugExit> debug_exit_;
  std::unique_ptr<PostPort> post_;
  std::unique_ptr<FwCfg> fw_cfg_;
  std::unique_ptr<I8042> i8042_;
  std::unique_ptr<Port92> port92_;
  std::unique_ptr<PciHost> pci_host_;
  std::unique_ptr<Piix3IsaBridge> piix3_;
  std::unique_ptr<FirmwareMemory> firmware_;
  std::function<void(const std::vector<MemoryWindow>&)> on_windows_change_;
  std::function<void(bool)> on_a20_change_;
  /// Adds the fw_cfg items and files a firmware boot's BIOS reads.
  void add_firmware_config(const GuestConfig& config, const AcpiPlatform& acpi);
  std::unique_ptr<AcpiPm> acpi_pm_;
  std::unique_ptr<Hpet> hpet_;
  struct Drive;
  /// Puts virtio function `pci` in the `n`-th virtio slot (PCI device number 3 + n) with its
  /// BARs where firmware would assign them (the n-th I/O and memory windows), and adds its
  /// INTA# route, ISA IRQ `irq`, to the ACPI tables' description.
  /// For a firmware boot the BARs stay unassigned (the firmware assigns them) and INTA#
  /// drives PIRQ (slot - 1) mod 4 through `wire`, the route SeaBIOS programs: ISA IRQ `irq`.
  void place_virtio(unsigned n, VirtioPci& pci, uint8_t irq, AcpiPlatform& acpi);
  struct PirqWire;
  /// The wire from the n-th virtio slot's INTA# to its PIRQ (firmware boots), and the ISA IRQ
  /// SeaBIOS routes that PIRQ to.
  IrqSink& virtio_irq_sink(unsigned n, uint8_t* irq);
  std::vector<std::unique_ptr<PirqWire>> pirq_wires_;
  std::vector<std::unique_ptr<Drive>> drives_;
  std::unique_ptr<NetBackend> net_backend_;
  std::unique_ptr<VirtioNet> net_;
  std::unique_ptr<VirtioPci> net_pci_;
  std::vector<PolledDevice*> polled_;
};

}  // namespace vmbt
