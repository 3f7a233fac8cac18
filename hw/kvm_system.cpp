#include "hw/kvm_system.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "vmm/error.h"

namespace vmbt {

KvmSystem::KvmSystem() {
  fd_ = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd_ < 0) {
    int e = errno;
    if (e == ENOENT) {
      throw Error(
          "/dev/kvm does not exist: this host has no KVM (load the kvm module, or enable "
          "virtualization for this VM); use --engine bt, which needs no KVM");
    }
    if (e == EACCES || e == EPERM) {
      throw Error(
          "permission denied opening /dev/kvm: run as root or add your user to the 'kvm' "
          "group; or use --engine bt, which needs no KVM");
    }
    throw Error(fmt::format("cannot open /dev/kvm: {}; use --engine bt", std::strerror(e)));
  }
  api_version_ = ioctl(fd_, KVM_GET_API_VERSION, 0);
  if (api_version_ != KVM_API_VERSION) {
    close(fd_);
    throw Error(fmt::format("/dev/kvm speaks API version {}, vmbt needs {}", api_version_,
                            KVM_API_VERSION));
  }
}

KvmSystem::~KvmSystem() {
  if (fd_ >= 0) close(fd_);
}

int KvmSystem::check_extension(long capability) const {
  return ioctl(fd_, KVM_CHECK_EXTENSION, capability);
}

int KvmSystem::vcpu_mmap_size() const {
  return ioctl(fd_, KVM_GET_VCPU_MMAP_SIZE, 0);
}

namespace {
std::string read_trimmed(const char* path) {
  std::ifstream f(path);
  std::string s;
  if (f) std::getline(f, s);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}
}  // namespace

KvmHostFacts KvmHostFacts::read() {
  KvmHostFacts facts;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) {
      facts.vmx |= w == "vmx";
      facts.svm |= w == "svm";
    }
    break;
  }
  facts.pvm = access("/sys/module/kvm_pvm", F_OK) == 0;
  facts.ept = read_trimmed("/sys/module/kvm_intel/parameters/ept");
  facts.npt = read_trimmed("/sys/module/kvm_amd/parameters/npt");
  return facts;
}

}  // namespace vmbt
