// core/cpu/decoder.h — x86-64 instruction decoder driven by opcodes.def.
//
// decode() parses legacy prefixes, REX, the opcode map, ModRM/SIB/displacement and the
// immediate, picks the opcodes.def line that matches, and fills a pre-decoded Insn.
// It never reads past `avail` bytes, so it is safe on arbitrary guest bytes.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/cpu/insn.h"

namespace pvsim::cpu {

// One OpId per opcodes.def line.
enum class OpId : uint16_t {
  Invalid = 0,
#define OP(name, ...) name,
#include "core/cpu/opcodes.def"
#undef OP
  Count
};
const char* op_name(OpId id);

enum class DecodeStatus : uint8_t {
  Ok,
  Invalid,   // no such instruction (or LOCK where not allowed): #UD
  TooLong,   // more than 15 bytes: #GP(0) (SDM Vol. 2A §2.3.11)
  NeedMore,  // ran out of bytes: the caller supplies the rest (page-crossing fetch)
};

// Decodes at most `avail` bytes at p in code mode `mode` (kMode64, kMode32 or kMode16,
// insn.h). On Ok, `out` is complete (len, fn, operands).
DecodeStatus decode(const uint8_t* p, size_t avail, Insn& out, uint8_t mode = kMode64);

// Length of the instruction at p (1..15), or 0 when it is invalid (#UD), longer than 15
// bytes, or needs more than n bytes. Used by the decoder fuzz test and tools.
size_t decode_length(const uint8_t* p, size_t n, uint8_t mode = kMode64);

// True when the decoded instruction ends a decoded block (A_TERM in opcodes.def).
bool insn_ends_block(const Insn& i);

}  // namespace pvsim::cpu
