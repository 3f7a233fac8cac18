// The translator's code shapes: the host code for one guest instruction in the shape the
// instruction policy chose for it (bt/insn_policy.h; docs/bt.md "Code shapes").
#pragma once

#include "bt/block_emitter.h"
#include "bt/guest_insn.h"
#include "bt/insn_policy.h"

namespace vmbt::bt {

/// Emits `in` (at in.eip, within the block `e` emits) in `shape`. Shapes that end the block
/// (policy::ends_block) emit its exits. Throws vmbt::Error for a shape the instruction cannot
/// take (an internal inconsistency with policy::decide, never guest input).
void emit_shape(BlockEmitter& e, const GuestInsn& in, policy::Shape shape);

}  // namespace vmbt::bt
