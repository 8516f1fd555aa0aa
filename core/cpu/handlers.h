// core/cpu/handlers.h — one declaration per opcodes.def line (defined in exec_*.cpp).
#pragma once
#include "core/cpu/insn.h"

namespace pvsim::cpu {

#define OP(name, ...) bool name(Core& c, const Insn& i);
#include "core/cpu/opcodes.def"
#undef OP

// Not in the table: produced by the decoder for undecodable bytes.
bool raise_UD(Core& c, const Insn& i);   // #UD
bool raise_GP0(Core& c, const Insn& i);  // #GP(0), instruction longer than 15 bytes

}  // namespace pvsim::cpu
