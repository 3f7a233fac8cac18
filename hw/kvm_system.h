// /dev/kvm access shared by every KVM back end (x86 now, arm64 later).
#pragma once

#include <string>

namespace vmbt {

/// An open /dev/kvm with the API version checked (KVM API doc §4.1, KVM_GET_API_VERSION == 12).
class KvmSystem {
 public:
  /// Throws vmbt::Error with a user-actionable message when /dev/kvm is missing, not accessible
  /// or speaks another API version.
  KvmSystem();
  ~KvmSystem();
  KvmSystem(const KvmSystem&) = delete;
  KvmSystem& operator=(const KvmSystem&) = delete;

  int fd() const { return fd_; }
  int api_version() const { return api_version_; }
  /// KVM_CHECK_EXTENSION on the system fd; <= 0 means absent.
  int check_extension(long capability) const;
  /// Size of the kvm_run mapping (KVM_GET_VCPU_MMAP_SIZE), bytes.
  int vcpu_mmap_size() const;

 private:
  int fd_ = -1;
  int api_version_ = 0;
};

/// Facts about the host's KVM that no ioctl reports.
struct KvmHostFacts {
  bool vmx = false;  ///< CPU flag vmx in /proc/cpuinfo (Intel VT-x)
  bool svm = false;  ///< CPU flag svm (AMD-V)
  bool pvm = false;  ///< the kvm_pvm module (software-emulating KVM, no VT-x/AMD-V) is loaded
  std::string ept;   ///< /sys/module/kvm_intel/parameters/ept ("Y"/"N"), empty if absent
  std::string npt;   ///< /sys/module/kvm_amd/parameters/npt, empty if absent
  static KvmHostFacts read();
};

}  // namespace vmbt
