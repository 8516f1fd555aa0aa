// core/cpu/insn.h — the pre-decoded instruction and the opcode-table vocabulary.
//
// The decoder (decoder.cpp) turns bytes into an Insn once; the run loop then executes
// Insns straight out of the decoded-block cache with a direct call through `fn`.
// All per-form knowledge (operand kinds, sizes, costs, lockability, block ends) lives
// in opcodes.def; this header only names the column values.
#pragma once
#include <cstddef>
#include <cstdint>

// Hot helpers are forced inline: GCC's heuristics otherwise leave the per-instruction
// paths (flags, register access, TLB hits) as calls.
#define PVSIM_ALWAYS_INLINE inline __attribute__((always_inline))

namespace pvsim::cpu {

class Core;
struct Insn;
// A handler executes one decoded instruction. false = it raised a fault or a stop
// (recorded in the Core); architectural state must then be as before the instruction,
// except for the documented progress of REP string instructions.
using Handler = bool (*)(Core&, const Insn&);
// A threaded handler (fast.cpp) executes the instruction and then jumps straight to the
// next one's threaded handler (a tail call: direct-threaded dispatch). It returns the
// first instruction of its block that did not complete; Core::xfail says whether that one
// failed (fault, stop, abandon) or was simply not reached (end of block, early exit).
// `last` forwards the value of general register Insn::lr (see there) from the previous
// handler in a host register, so a dependent instruction does not wait for a store to the
// register file to be forwarded to its load (core/README.md "Execution model").
using Threaded = const Insn* (*)(Core&, const Insn*, uint64_t last);

// Opcode maps.
enum : uint8_t { MAP_1B = 0, MAP_0F = 1, MAP_0F38 = 2, MAP_0F3A = 3 };
// Mandatory-prefix column: PANY = any (F2/F3 are REP prefixes or ignored), PF3 = only with F3,
// PNONE = only without F2/F3 (with them the opcode is another instruction, not modelled: #UD).
enum : uint8_t { PANY = 0, PF3 = 1, PNONE = 2 };
// ModRM column: NOMODRM, or MODRM with a required mod class.
enum : uint8_t { NOMODRM = 0, MODRM = 1 };
enum : uint8_t { MANY = 0, MMEM = 1, MREG = 2 };
constexpr uint8_t NA = 8;  // "any" for the reg / rm columns
// Immediate kinds.
enum : uint8_t {
  I_NONE,
  I_B,      // imm8, zero-extended
  I_BS,     // imm8, sign-extended to 64 bits
  I_W,      // imm16, zero-extended
  I_Z,      // imm16 (osz 2) or imm32 sign-extended to 64 bits
  I_V,      // imm16/imm32/imm64 by operand size (MOV r, imm: movabs with REX.W)
  I_J8,     // rel8, sign-extended
  I_J32,    // rel32, sign-extended (66 is ignored for near branches in 64-bit mode)
  I_MOFFS,  // absolute offset, address-size wide (A0-A3)
  I_AP,     // far pointer ptr16:16 / ptr16:32 (9A, EA): offset in imm, selector in disp
};
// Operand-size kinds (SDM Vol. 2A §2.2.1.2, Table 2-4 and "default 64" rules).
enum : uint8_t {
  SB,    // byte
  SV,    // 16/32/64: 66 -> 16, REX.W -> 64, else 32
  SD64,  // default 64: 66 -> 16, else 64 (PUSH/POP, LEAVE...)
  SF64,  // forced 64 (near branches)
  SW,    // 16
};
// Attribute bits.
enum : uint8_t {
  A_NONE = 0,
  A_LOCK = 1,  // LOCK allowed (memory destination form only)
  A_TERM = 2,  // ends a decoded block (control transfer or state the loop must re-check)
  A_NO64 = 4,    // invalid in 64-bit mode (#UD): the legacy-only opcodes (SDM Vol. 2 A.2.5 "i64")
  A_ONLY64 = 8,  // valid only in 64-bit mode ("o64"); outside it the opcode is #UD or another
                 // instruction (0x63 is ARPL there)
};

// The code-segment mode the decoder works in (SDM Vol. 3A §5.2.1 / Vol. 1 §3.6): 64-bit mode,
// or a legacy mode (real, protected or compatibility) whose CS.D gives 32- or 16-bit
// default operand and address sizes. Core::cmode holds the current one.
enum : uint8_t { kMode64 = 0, kMode32 = 1, kMode16 = 2 };

// Operand register codes beyond the 16 GPRs.
constexpr uint8_t kRegNone = 0xff;
constexpr uint8_t kRegRip = 16;

// Insn::pfx bits.
enum : uint8_t {
  P_MOD3 = 1,   // ModRM register form
  P_REX = 2,    // a REX prefix was present (byte registers 4-7 are SPL..DIL)
  P_REP = 4,    // F3
  P_REPNE = 8,  // F2
  P_LOCK = 16,
  P_REXW = 32,
  P_LEG = 64,   // decoded outside 64-bit mode: Insn::seg is the effective segment register
                // (0-5, override or default) and every memory operand adds its base
};

struct Insn {
  Handler fn = nullptr;     // complete semantics; the per-instruction (stepping) path
  Threaded tfn = nullptr;   // threaded handler for whole-block execution (fast.cpp)
  uint64_t imm = 0;   // immediate, extended per the table's immediate kind
  int32_t disp = 0;   // memory displacement
  uint16_t cost = 1;  // cycles charged before execution (opcodes.def "cost")
  uint16_t id = 0;    // OpId, for disassembly and debugging
  uint8_t len = 0;    // instruction length in bytes, 1..15
  uint8_t osz = 4;    // operand size in bytes
  uint8_t asz = 8;    // address size in bytes: 8, 4 (67 in 64-bit mode) or, outside 64-bit
                      // mode, 4 or 2 (16-bit ModRM forms, SDM Vol. 2A Table 2-1)
  uint8_t reg = 0;    // ModRM.reg | REX.R<<3, or the register in the opcode | REX.B<<3
  uint8_t rm = 0;     // ModRM.rm | REX.B<<3 (register form)
  uint8_t base = kRegNone;
  uint8_t index = kRegNone;
  uint8_t scale = 0;  // shift count 0..3
  uint8_t seg = 0;    // 64-bit mode: 0 = default; 4 = FS, 5 = GS override (others are no-ops).
                      // With P_LEG: the effective segment (ES 0, CS 1, SS 2, DS 3, FS 4, GS 5)
  uint8_t pfx = 0;    // P_* bits
  uint8_t cond = 0;   // condition code (Jcc/SETcc/CMOVcc) = low opcode nibble
  // Filled when the instruction is placed in a block (Core::finish_block):
  uint8_t fb = 16, fi = 16;  // base / index as Core::gpr slots for the threaded memory
                             // forms; 16 is a slot that always holds 0 ("none")
  uint8_t lr = 16;           // the register whose current value the threaded handler
                             // receives as `last` (16: none; `last` is then meaningless)
  int16_t end = 0;           // where the next instruction starts, from the block's first
                             // byte; negative after a backward JMP followed in the block
  uint32_t cum = 0;          // cycles of the block's instructions up to and including this one
  bool followed = false;     // a direct JMP the block continues through (Core::decode_block)
  // Linear address of the next instruction, for a block that starts at block_la.
  uint64_t end_from(uint64_t block_la) const {
    return block_la + static_cast<uint64_t>(static_cast<int64_t>(end));
  }
  bool mod3() const { return pfx & P_MOD3; }
  // A memory operand whose segment is SS: RSP or RBP as base and no FS/GS override
  // (SDM Vol. 1 §3.7.4, default segment selection rules).
  // Outside 64-bit mode: any memory operand whose effective segment is SS (its limit
  // violations are #SS(0), Core::seg_linear).
  bool ss_operand() const {
    if (pfx & P_LEG) return !mod3() && seg == 2;
    return !mod3() && seg == 0 && (base == 4 || base == 5);
  }
  bool legacy() const { return pfx & P_LEG; }
};

}  // namespace pvsim::cpu
