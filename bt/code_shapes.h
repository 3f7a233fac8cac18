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

/// The access probes `probes` of `in` (policy::access_probes), before the instruction's own
/// code: each access's linear address into r8d, then its shadow entry checked inline, and the
/// monitor called only for an access that would fault (docs/bt.md "Access probes").
void emit_access_probes(BlockEmitter& e, const GuestInsn& in, const policy::AccessProbes& probes);

}  // namespace vmbt::bt
