#include "vmm/machine/machine.h"

#include <algorithm>
#include <cstring>
#include <ctime>

#include <fmt/format.h>

#include "vmm/boot/acpi_tables.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/devices/cmos_rtc.h"
#include "vmm/devices/debug_exit.h"
#include "vmm/devices/fw_cfg.h"
#include "vmm/devices/hpet.h"
#include "vmm/devices/i440fx.h"
#include "vmm/devices/i8042.h"
#include "vmm/devices/ioapic.h"
#include "vmm/devices/local_apic.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/pic8259.h"
#include "vmm/devices/piix3.h"
#include "vmm/devices/pit8254.h"
#include "vmm/devices/port92.h"
#include "vmm/devices/slirp_backend.h"
#include "vmm/devices/uart16550.h"
#include "vmm/devices/virtio/virtio_blk.h"
#include "vmm/devices/virtio/virtio_net.h"
#include "vmm/devices/virtio/virtio_pci.h"
#include "vmm/error.h"
#include "vmm/machine/disk_image.h"
#include "vmm/machine/firmware_memory.h"
#include "vmm/msr_model.h"
#include "vmm/stats.h"

namespace vmbt {

namespace {
constexpr uint16_t kCom1Base = 0x3f8;
constexpr unsigned kCom1Irq = 4;
/// Where the drives go, as firmware would assign them: PCI device numbers from 3, I/O BARs from
/// 0xC000 (SeaBIOS's first PCI I/O address), an ISA interrupt line each (QEMU's PCI lines).
constexpr unsigned kFirstDriveSlot = 3;
constexpr uint16_t kFirstPciIo = 0xc000, kPciIoStride = 0x100;
/// The modern virtio interface's memory BARs (VirtioPci::kModernBarSize each), from 0xFE000000
/// (where SeaBIOS puts QEMU's virtio BARs; above any RAM, below the I/O APIC).
constexpr uint32_t kFirstPciMemory = 0xfe000000;
constexpr uint8_t kDriveIrqs[] = {11, 10, 5, 7};
/// The NIC: the PCI slot after the last drive, the I/O BAR after theirs, and an ISA line of its
/// own (6: no floppy controller here; the drives' lines are taken, and a level-triggered line is
/// not shared).
constexpr uint8_t kNetIrq = 6;
/// The PIIX3 at 00:01.0, as on QEMU's pc machine.
constexpr unsigned kIsaBridgeSlot = 1;
/// The ISA IRQs SeaBIOS routes PIRQA#-PIRQD# to (src/fw/pciinit.c, pci_irqs; the ELCR makes them
/// level-triggered): what a firmware boot's _PRT says.
constexpr uint8_t kFirmwarePirqIrqs[4] = {10, 10, 11, 11};
/// PAM0-PAM6 as firmware leaves them for an OS when there is no firmware: RAM, read/write,
/// everywhere in the BIOS area (which is what it is then).
constexpr uint8_t kNoFirmwarePam[7] = {0x30, 0x33, 0x33, 0x33, 0x33, 0x33, 0x33};

void append_le(std::vector<uint8_t>& out, uint64_t value, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}
}  // namespace

/// A PCI function's INTA# wired to a PIRQ line of the PIIX3 (whatever line number the function
/// names: its own Interrupt Line register says where firmware routed it).
struct Machine::PirqWire final : IrqSink {
  PirqWire(Piix3IsaBridge& b, unsigned p) : bridge(b), pirq(p) {}
  void set_irq(unsigned /*line*/, bool level) override { bridge.set_irq(pirq, level); }
  Piix3IsaBridge& bridge;
  unsigned pirq;
};

/// A virtio-blk drive: its image, the device and its PCI transport.
struct Machine::Drive {
  std::unique_ptr<DiskImage> image;
  std::unique_ptr<VirtioBlk> blk;
  std::unique_ptr<VirtioPci> pci;
};

Machine::Machine(const GuestConfig& config, CharBackend& console)
    : memory_(config.ram_bytes), map_(MemoryMap::pc_layout(config.ram_bytes)) {
  FILE* const trace = config.trace_io ? stderr : nullptr;
  io_.set_trace(trace);
  mmio_.set_trace(trace);

  pic_ = std::make_unique<Pic8259Pair>();
  pic_->register_ports(io_);
  // The local APIC's page first: it wins over the other MMIO windows wherever the guest moves
  // it (moved onto RAM, RAM wins: both engines map RAM before asking the MMIO bus).
  lapic_ = std::make_unique<LocalApic>(*pic_, host_now_ns, host_tsc_hz);
  mmio_.add(LocalApic::kDefaultBase, 0x1000, lapic_.get(), "local-apic");
  lapic_->set_on_base_change(
      [this] { mmio_.relocate(lapic_.get(), lapic_->base(), lapic_->hardware_enabled()); });
  ioapic_ = std::make_unique<IoApic>(*lapic_);
  mmio_.add(IoApic::kBase, IoApic::kWindow, ioapic_.get(), "ioapic");
  lapic_->set_eoi_listener([this](uint8_t vector) { ioapic_->eoi(vector); });
  isa_irqs_ = std::make_unique<IsaIrqRouter>(*pic_, *ioapic_);
  msrs_ = std::make_unique<MsrModel>(*lapic_);
  com1_ = std::make_unique<Uart16550>(kCom1Base, *isa_irqs_, kCom1Irq, console);
  com1_->register_ports(io_);
  pit_ = std::make_unique<Pit8254>(*isa_irqs_);
  pit_->register_ports(io_);
  rtc_ = std::make_unique<CmosRtc>(config.ram_bytes);
  io_.add(0x70, 2, rtc_.get(), "cmos-rtc");
  debug_exit_ = std::make_unique<DebugExit>();
  io_.add(0xf4, 1, debug_exit_.get(), "isa-debug-exit");
  post_ = std::make_unique<PostPort>();
  io_.add(0x80, 1, post_.get(), "post");
  fw_cfg_ = std::make_unique<FwCfg>(config.ram_bytes, 1);
  io_.add(0x510, 2, fw_cfg_.get(), "fw_cfg");
  i8042_ = std::make_unique<I8042>(*isa_irqs_);
  i8042_->register_ports(io_);
  port92_ = std::make_unique<Port92>();
  port92_->register_ports(io_);
  auto a20 = [this](bool enabled) {
    if (on_a20_change_) on_a20_change_(enabled);
  };
  i8042_->set_on_a20(a20);
  port92_->set_on_a20(a20);
  pci_host_ = std::make_unique<PciHost>();
  pci_host_->register_ports(io_);
  piix3_ = std::make_unique<Piix3IsaBridge>(*isa_irqs_);
  pci_host_->attach(kIsaBridgeSlot, *piix3_);
  if (config.firmware_boot()) {
    firmware_ = std::make_unique<FirmwareMemory>(memory_, FirmwareMemory::load_rom(config.bios),
                                                 pci_host_->host_bridge());
    firmware_->attach(mmio_);
    pci_host_->host_bridge().set_on_pam_change([this] {
      if (on_windows_change_) on_windows_change_(firmware_->windows());
    });
  } else {
    pci_host_->host_bridge().preset_pam(kNoFirmwarePam);
  }
  acpi_pm_ = std::make_unique<AcpiPm>(host_now_ns);
  acpi_pm_->register_ports(io_);
  hpet_ = std::make_unique<Hpet>(*isa_irqs_, *ioapic_, host_now_ns);
  mmio_.add(Hpet::kBase, Hpet::kWindow, hpet_.get(), "hpet");
  AcpiPlatform acpi;
  if (config.drives.size() > std::size(kDriveIrqs)) {
    throw Error(fmt::format("{} drives: vmbt attaches at most {}", config.drives.size(),
                            std::size(kDriveIrqs)));
  }
  for (size_t i = 0; i < config.drives.size(); ++i) {
    auto d = std::make_unique<Drive>();
    d->image = std::make_unique<DiskImage>(config.drives[i].path, config.drives[i].read_only,
                                           config.snapshot);
    d->blk = std::make_unique<VirtioBlk>(memory_, *d->image, static_cast<unsigned>(i));
    uint8_t irq = kDriveIrqs[i];
    IrqSink& sink = virtio_irq_sink(static_cast<unsigned>(i), &irq);
    d->pci =
        std::make_unique<VirtioPci>(memory_, *d->blk, sink, irq, 0x010000, fmt::format("blk{}", i));
    place_virtio(static_cast<unsigned>(i), *d->pci, irq, acpi);
    drives_.push_back(std::move(d));
  }
  if (config.net.user) {
    net_backend_ = std::make_unique<SlirpBackend>(config.net.forwards);
    net_ = std::make_unique<VirtioNet>(memory_, *net_backend_);
    uint8_t irq = kNetIrq;
    IrqSink& sink = virtio_irq_sink(static_cast<unsigned>(drives_.size()), &irq);
    net_pci_ = std::make_unique<VirtioPci>(memory_, *net_, sink, irq, 0x020000, "net0");
    place_virtio(static_cast<unsigned>(drives_.size()), *net_pci_, irq, acpi);
  }

  // The tables firmware would leave in the BIOS area (there is no firmware: the machine is it).
  acpi.local_apic_base = LocalApic::kDefaultBase;
  acpi.ioapic_base = IoApic::kBase;
  acpi.pm_base = AcpiPm::kBase;
  acpi.hpet_base = Hpet::kBase;
  acpi.hpet_block_id = Hpet::kCapabilitiesLow;
  acpi.pci_memory_base = static_cast<uint32_t>((config.ram_bytes + 0xfffff) & ~uint64_t{0xfffff});
  if (firmware_) {
    add_firmware_config(config, acpi);
  } else {
    write_acpi_tables(memory_, acpi);
  }

  polled_ = {pit_.get(), com1_.get(), lapic_.get(), hpet_.get()};
}

IrqSink& Machine::virtio_irq_sink(unsigned n, uint8_t* irq) {
  if (!firmware_) return *isa_irqs_;
  const unsigned pirq = Piix3IsaBridge::pirq_of(kFirstDriveSlot + n, 0);
  *irq = kFirmwarePirqIrqs[pirq];
  pirq_wires_.push_back(std::make_unique<PirqWire>(*piix3_, pirq));
  return *pirq_wires_.back();
}

void Machine::place_virtio(unsigned n, VirtioPci& pci, uint8_t irq, AcpiPlatform& acpi) {
  pci_host_->attach(kFirstDriveSlot + n, pci);
  pci.attach_io(io_);
  pci.attach_mmio(mmio_);
  if (!firmware_) {
    pci.assign_io_bar(0, static_cast<uint16_t>(kFirstPciIo + kPciIoStride * n));
    pci.assign_memory_bar(VirtioPci::kModernBar, kFirstPciMemory + VirtioPci::kModernBarSize * n);
  }
  acpi.pci_routes.push_back({static_cast<uint8_t>(kFirstDriveSlot + n), irq});
}

void Machine::add_firmware_config(const GuestConfig& config, const AcpiPlatform& acpi) {
  // QEMU docs/specs/fw_cfg.rst and what QEMU's pc machine adds (hw/i386/fw_cfg.c, pc.c).
  fw_cfg_->set_item(FwCfg::kNoGraphic, {1, 0});  // no display: SeaBIOS's console is COM1
  fw_cfg_->set_item(FwCfg::kBootMenu, {0, 0});
  fw_cfg_->set_item(FwCfg::kIrq0Override, {1, 0, 0, 0});  // IRQ0 is I/O APIC pin 2
  // etc/e820: struct e820_entry {u64 address, u64 length, u32 type} LE; QEMU lists RAM below
  // 4 GiB as one entry and SeaBIOS carves the BIOS areas out of it.
  std::vector<uint8_t> e820;
  append_le(e820, 0, 8);
  append_le(e820, config.ram_bytes, 8);
  append_le(e820, 1, 4);  // E820_RAM
  fw_cfg_->add_file("etc/e820", std::move(e820));
  // bootorder: one OpenFirmware device path a line, first to boot first (SeaBIOS src/boot.c
  // matches the drives' "/pci@i0cf8/*@SLOT" against them), QEMU's form for virtio-blk-pci.
  std::string order;
  for (size_t i = 0; i < drives_.size(); ++i) {
    order += fmt::format("/pci@i0cf8/scsi@{:x}/disk@0,0\n", kFirstDriveSlot + i);
  }
  fw_cfg_->add_file("bootorder", std::vector<uint8_t>(order.begin(), order.end()));
  // etc/boot-fail-wait: u32 LE milliseconds before a reboot when nothing boots; -1: never (the
  // BIOS says "No bootable device." and waits), QEMU's default (-boot reboot-timeout).
  std::vector<uint8_t> wait;
  append_le(wait, 0xffffffffu, 4);
  fw_cfg_->add_file("etc/boot-fail-wait", std::move(wait));
  // etc/sercon-port: u16 LE, the port of SeaBIOS's serial console (src/sercon.c).
  std::vector<uint8_t> sercon;
  append_le(sercon, kCom1Base, 2);
  fw_cfg_->add_file("etc/sercon-port", std::move(sercon));
  AcpiFirmwareFiles files = acpi_firmware_files(acpi);
  fw_cfg_->add_file(kAcpiTablesFile, std::move(files.tables));
  fw_cfg_->add_file(kAcpiRsdpFile, std::move(files.rsdp));
  fw_cfg_->add_file(kTableLoaderFile, std::move(files.table_loader));
}

std::vector<MemoryWindow> Machine::memory_windows() const {
  return firmware_ ? firmware_->windows() : std::vector<MemoryWindow>{};
}

Machine::~Machine() = default;

InterruptSource& Machine::interrupts() {
  return *lapic_;
}

void Machine::raise_nmi_line() {
  lapic_->raise_lint1();
}

void Machine::handle_io(IoAccess& a) {
  for (uint32_t i = 0; i < a.count; ++i) {
    uint8_t* d = a.data + static_cast<size_t>(i) * a.size;
    if (a.write) {
      uint32_t v = 0;
      for (unsigned b = 0; b < a.size; ++b) v |= uint32_t{d[b]} << (8 * b);
      io_.write(a.port, a.size, v);
    } else {
      uint32_t v = io_.read(a.port, a.size);
      for (unsigned b = 0; b < a.size; ++b) d[b] = static_cast<uint8_t>(v >> (8 * b));
    }
  }
}

void Machine::handle_mmio(MmioAccess& a) {
  uint64_t v = 0;
  if (a.write) {
    std::memcpy(&v, a.data, a.size);
    mmio_.write(a.gpa, a.size, v);
  } else {
    v = mmio_.read(a.gpa, a.size);
    std::memcpy(a.data, &v, a.size);
  }
}

void Machine::collect_stats(Stats& stats) const {
  for (const auto& d : drives_) d->pci->collect_stats(stats);
  if (net_pci_) net_pci_->collect_stats(stats);
}

void Machine::poll(uint64_t now_ns) {
  // The network first: a frame that arrives raises the NIC's line before the APIC is polled.
  if (net_backend_) net_backend_->poll(now_ns);
  for (auto* d : polled_) d->poll(now_ns);
}

uint64_t Machine::next_deadline_ns() const {
  uint64_t t = net_backend_ ? net_backend_->next_deadline_ns() : UINT64_MAX;
  for (auto* d : polled_) t = std::min(t, d->next_deadline_ns());
  return t;
}

void Machine::wait_until(uint64_t deadline_ns) {
  if (net_backend_) {
    net_backend_->wait_until(deadline_ns);  // wakes when a packet arrives
    return;
  }
  const uint64_t now = host_now_ns();
  if (deadline_ns <= now) return;
  timespec ts{static_cast<time_t>((deadline_ns - now) / 1'000'000'000),
              static_cast<long>((deadline_ns - now) % 1'000'000'000)};
  nanosleep(&ts, nullptr);  // a kick signal may cut it short: that is fine
}

std::optional<int> Machine::exit_requested() const {
  if (auto s = debug_exit_->exit_status()) return s;
  if (auto s = i8042_->reset_requested()) return s;
  if (auto s = acpi_pm_->power_off_requested()) return s;
  return port92_->reset_requested();
}

std::string Machine::exit_request_reason() const {
  if (auto s = debug_exit_->exit_status()) {
    return fmt::format("guest requested exit (isa-debug-exit), status {}", *s);
  }
  if (i8042_->reset_requested()) return I8042::kResetReason;
  if (acpi_pm_->power_off_requested()) return AcpiPm::kPowerOffReason;
  if (port92_->reset_requested()) return Port92::kResetReason;
  return {};
}

}  // namespace vmbt
