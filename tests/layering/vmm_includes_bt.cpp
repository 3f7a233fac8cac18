// Must not compile: vmm is below the engines, so bt's headers are not on its include path
// (CMakeLists.txt, vmbt_layer). ctest layering.vmm_cannot_include_bt builds it and expects failure.
#include "bt/bt_engine.h"
