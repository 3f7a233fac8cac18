// The platform MSRs against Intel SDM Vol. 4 (values, read-only and reserved bits) and the CPUID
// bits that follow them.
#include "vmm/msr_model.h"

#include <gtest/gtest.h>

#include "vmm/devices/local_apic.h"

namespace vmbt {
namespace {

class MsrModelTest : public ::testing::Test {
 protected:
  MsrModelTest()
      : apic(
            no_pic, [] { return uint64_t{0}; }, [] { return 1e9; }),
        msrs(apic) {}
  NoInterrupts no_pic;
  LocalApic apic;
  MsrModel msrs;
};

TEST_F(MsrModelTest, AbsentMsrsRaiseGp) {
  // Not implemented by the model (SDM Vol. 4 §2.1): TSC_ADJUST, FEATURE_CONTROL, SPEC_CTRL,
  // PRED_CMD, FLUSH_CMD, machine-check bank 0, the x2APIC range, the 64-bit mode MSRs.
  for (uint32_t index : {0x3Bu, 0x3Au, 0x48u, 0x49u, 0x10Bu, 0x400u, 0x802u, 0x830u, 0xC0000081u,
                         0xC0000082u, 0xC0000100u, 0xC0000102u}) {
    EXPECT_FALSE(msrs.read(index, 0)) << std::hex << index;
    EXPECT_FALSE(msrs.write(index, 0, 0)) << std::hex << index;
  }
  // Read-only ones refuse writes.
  EXPECT_EQ(msrs.read(MsrModel::kMtrrCap, 0), 0x508u);
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrCap, 0x508, 0));
  EXPECT_EQ(msrs.read(MsrModel::kMcgCap, 0), 0u);
  EXPECT_FALSE(msrs.write(MsrModel::kMcgCap, 0, 0));
  // IA32_PLATFORM_ID reads platform 0 and is read-only; IA32_BIOS_SIGN_ID reads 0 (no microcode
  // update loaded) and takes writes (the update trigger), which load nothing.
  EXPECT_EQ(msrs.read(MsrModel::kPlatformId, 0), 0u);
  EXPECT_FALSE(msrs.write(MsrModel::kPlatformId, 0, 0));
  EXPECT_TRUE(msrs.write(MsrModel::kBiosSignId, 0x1234, 0));
  EXPECT_EQ(msrs.read(MsrModel::kBiosSignId, 0), 0u);
}

TEST_F(MsrModelTest, MiscEnableWritableBitsReadBackOthersAreFixed) {
  const uint64_t orig = *msrs.read(MsrModel::kMiscEnable, 0);
  EXPECT_EQ(orig, (1u << 0) | (1u << 11) | (1u << 12));
  // Bits 0, 3, 16, 18, 22, 23, 34 are R/W (Table 2-2); 7, 11, 12 are read-only.
  const uint64_t v = (0x400C50809ull & ~0x1880ull) | (orig & 0x1880);
  ASSERT_TRUE(msrs.write(MsrModel::kMiscEnable, v, 0));
  EXPECT_EQ(msrs.read(MsrModel::kMiscEnable, 0), v);
  EXPECT_FALSE(msrs.write(MsrModel::kMiscEnable, v & ~(1ull << 11), 0));
  EXPECT_FALSE(msrs.write(MsrModel::kMiscEnable, v | (1ull << 7), 0));
  // XD_DISABLE (bit 34) hides NX from CPUID and refuses EFER.NXE.
  EXPECT_TRUE(msrs.cpuid_dynamic().xd_disabled);
  EXPECT_EQ(CpuModel::query(0x80000001u, 0, msrs.cpuid_dynamic()).edx & (1u << 20), 0u);
  EXPECT_FALSE(msrs.write(MsrModel::kEfer, MsrModel::kEferNxe, 0));
  ASSERT_TRUE(msrs.write(MsrModel::kMiscEnable, orig, 0));
  EXPECT_EQ(CpuModel::query(0x80000001u, 0, msrs.cpuid_dynamic()).edx & (1u << 20), 1u << 20);
}

TEST_F(MsrModelTest, EferHoldsSceAndNxeOnly) {
  EXPECT_EQ(msrs.read(MsrModel::kEfer, 0), 0u);
  ASSERT_TRUE(msrs.write(MsrModel::kEfer, MsrModel::kEferSce | MsrModel::kEferNxe, 0));
  EXPECT_EQ(msrs.read(MsrModel::kEfer, 0), MsrModel::kEferSce | MsrModel::kEferNxe);
  EXPECT_FALSE(msrs.write(MsrModel::kEfer, 1u << 8, 0));   // LME: no 64-bit mode
  EXPECT_FALSE(msrs.write(MsrModel::kEfer, 1u << 10, 0));  // LMA is read-only
}

TEST_F(MsrModelTest, PatAndMtrrsCheckTheirMemoryTypes) {
  EXPECT_EQ(msrs.read(MsrModel::kPat, 0), 0x0007040600070406ull);  // the SDM's reset value
  ASSERT_TRUE(msrs.write(MsrModel::kPat, 0x07070707, 0));
  EXPECT_EQ(msrs.read(MsrModel::kPat, 0), 0x07070707u);
  EXPECT_FALSE(msrs.write(MsrModel::kPat, 0x02, 0));  // type 2 is reserved (Table 13-10)
  EXPECT_FALSE(msrs.write(MsrModel::kPat, 0x08, 0));  // reserved bits of an entry
  // Fixed ranges: a byte a range; UC- (7) is a PAT type only.
  ASSERT_TRUE(msrs.write(MsrModel::kMtrrFix4KC0000 + 7, 0x0605040100060504ull, 0));
  EXPECT_EQ(msrs.read(MsrModel::kMtrrFix4KC0000 + 7, 0), 0x0605040100060504ull);
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrFix64K, 0x07, 0));
  // Variable ranges: type in PHYSBASE, valid bit 11 in PHYSMASK, reserved bits refused.
  ASSERT_TRUE(msrs.write(MsrModel::kMtrrPhysBase0 + 4, 0x80000006, 0));
  ASSERT_TRUE(msrs.write(MsrModel::kMtrrPhysBase0 + 5, 0xF0000800, 0));
  EXPECT_EQ(msrs.read(MsrModel::kMtrrPhysBase0 + 5, 0), 0xF0000800u);
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrPhysBase0 + 4, 0x80000106, 0));  // bit 8 reserved
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrPhysBase0 + 4, 0x80000003, 0));  // type 3
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrPhysBase0 + 5, 0xF0000801, 0));  // bit 0 reserved
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrPhysBase0 + 5, 1ull << 36, 0));  // above MAXPHYADDR
  EXPECT_TRUE(msrs.write(MsrModel::kMtrrPhysBase0 + 5, (1ull << 35) | 0x800, 0));  // below it
  // MTRRdefType as firmware leaves it: enabled, fixed enabled, write-back.
  EXPECT_EQ(msrs.read(MsrModel::kMtrrDefType, 0), 0xC06u);
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrDefType, 0xC02, 0));
  EXPECT_FALSE(msrs.write(MsrModel::kMtrrDefType, 0x1C06, 0));
}

TEST_F(MsrModelTest, ApicBaseAndTscDeadlineReachTheApic) {
  EXPECT_EQ(msrs.read(MsrModel::kApicBase, 0), 0xFEE00900u);
  EXPECT_TRUE(msrs.cpuid_dynamic().apic_enabled);
  ASSERT_TRUE(msrs.write(MsrModel::kApicBase, 0xFEE00100, 0));
  // CPUID.1:EDX.APIC reads 0 while the APIC is globally disabled (SDM Vol. 3A §11.4.3).
  EXPECT_EQ(CpuModel::query(1, 0, msrs.cpuid_dynamic()).edx & (1u << 9), 0u);
  ASSERT_TRUE(msrs.write(MsrModel::kApicBase, 0xFEE00900, 0));
  EXPECT_EQ(CpuModel::query(1, 0, msrs.cpuid_dynamic()).edx & (1u << 9), 1u << 9);
  EXPECT_FALSE(msrs.write(MsrModel::kApicBase, 0xFEE00D00, 0));  // EXTD: no x2APIC
  // TSC deadline: outside TSC-deadline mode a write is ignored (§11.5.4.1).
  ASSERT_TRUE(msrs.write(MsrModel::kTscDeadline, 1234, 0));
  EXPECT_EQ(msrs.read(MsrModel::kTscDeadline, 0), 0u);
  apic.mmio_write(LocalApic::kSpiv, 4, 0x1FF);
  apic.mmio_write(LocalApic::kLvtTimer, 4, 0x40 | (2u << 17));
  ASSERT_TRUE(msrs.write(MsrModel::kTscDeadline, 1234, 0));
  EXPECT_EQ(msrs.read(MsrModel::kTscDeadline, 0), 1234u);
}

TEST(CpuModelTest, HypervisorLeavesReadZero) {
  for (uint32_t leaf : {0x40000000u, 0x40000001u, 0x40000003u, 0x4FFFFFFFu}) {
    const CpuidEntry e = CpuModel::query(leaf, 0);
    EXPECT_EQ(e.eax | e.ebx | e.ecx | e.edx, 0u) << std::hex << leaf;
  }
  // An out-of-range basic leaf still reads the highest basic leaf (SDM Vol. 2A CPUID).
  EXPECT_EQ(CpuModel::query(0x1000, 0).eax, CpuModel::query(2, 0).eax);
}

}  // namespace
}  // namespace vmbt
