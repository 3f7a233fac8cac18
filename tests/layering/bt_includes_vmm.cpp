// Must compile: bt sits on vmm (and shadow_mmu). The control for layering.vmm_cannot_include_bt:
// built the same way, it shows that test fails for the include alone.
#include "shadow_mmu/shadow_mmu.h"
#include "vmm/stats.h"
