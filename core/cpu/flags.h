// core/cpu/flags.h — RFLAGS bits and the arithmetic-flag computations (SDM Vol. 1 §3.4.3).
//
// Flags are computed eagerly in portable C++ (no host pushf). Every instruction that
// defines arithmetic flags goes through the helpers in this one header, so a lazy-flags
// scheme (keep operands + op kind, materialise on read) can replace them in one place.
#pragma once
#include <cstdint>

#include "core/cpu/insn.h"

namespace pvsim::cpu {

namespace fl {
constexpr uint64_t CF = 1ull << 0;
constexpr uint64_t Reserved1 = 1ull << 1;  // always 1
constexpr uint64_t PF = 1ull << 2;
constexpr uint64_t AF = 1ull << 4;
constexpr uint64_t ZF = 1ull << 6;
constexpr uint64_t SF = 1ull << 7;
constexpr uint64_t TF = 1ull << 8;
constexpr uint64_t IF = 1ull << 9;
constexpr uint64_t DF = 1ull << 10;
constexpr uint64_t OF = 1ull << 11;
constexpr uint64_t IOPL = 3ull << 12;
constexpr uint64_t NT = 1ull << 14;
constexpr uint64_t RF = 1ull << 16;
constexpr uint64_t VM = 1ull << 17;
constexpr uint64_t AC = 1ull << 18;
constexpr uint64_t VIF = 1ull << 19;
constexpr uint64_t VIP = 1ull << 20;
constexpr uint64_t ID = 1ull << 21;
constexpr uint64_t kArith = CF | PF | AF | ZF | SF | OF;
// Bits software can ever see set (SDM Vol. 1 Figure 3-8); everything else reads as 0.
constexpr uint64_t kDefined =
    kArith | Reserved1 | TF | IF | DF | IOPL | NT | RF | VM | AC | VIF | VIP | ID;
}  // namespace fl

constexpr uint64_t size_mask(unsigned size) {
  return size >= 8 ? ~0ull : ((1ull << (size * 8)) - 1);
}
constexpr uint64_t sign_bit(unsigned size) {
  return 1ull << (size * 8 - 1);
}
constexpr unsigned size_bits(unsigned size) {
  return size * 8;
}
// Sign-extends the low `size` bytes of v to 64 bits.
constexpr int64_t sext(uint64_t v, unsigned size) {
  switch (size) {
    case 1:
      return static_cast<int8_t>(v);
    case 2:
      return static_cast<int16_t>(v);
    case 4:
      return static_cast<int32_t>(v);
    default:
      return static_cast<int64_t>(v);
  }
}

// PF reflects the low byte only: set when it has an even number of 1 bits.
PVSIM_ALWAYS_INLINE uint64_t parity_flag(uint64_t r) {
  return static_cast<uint64_t>(~__builtin_parity(static_cast<unsigned>(r & 0xff)) & 1) << 2;
}
// SF, ZF, PF of a result already truncated to `size` (branch-free: these run per ALU op).
PVSIM_ALWAYS_INLINE uint64_t flags_szp(uint64_t r, unsigned size) {
  return parity_flag(r) | (static_cast<uint64_t>(r == 0) << 6) | (((r >> (size * 8 - 1)) & 1) << 7);
}

// a + b + cin; result truncated to size. Returns the six arithmetic flags.
PVSIM_ALWAYS_INLINE uint64_t flags_add(uint64_t a, uint64_t b, uint64_t cin, unsigned size,
                                       uint64_t& out) {
  const uint64_t m = size_mask(size);
  const uint64_t full = a + b + cin;
  const uint64_t r = full & m;
  uint64_t carry;
  if (size == 8)
    carry = (r < a) | (cin & (r == a));
  else
    carry = (full >> size_bits(size)) & 1;
  out = r;
  return flags_szp(r, size) | carry | ((((a ^ r) & (b ^ r)) >> (size * 8 - 1)) & 1) << 11 |
         ((a ^ b ^ r) & fl::AF);
}

// a - b - cin (SUB/SBB/CMP/NEG). CF is the borrow out of the top bit.
PVSIM_ALWAYS_INLINE uint64_t flags_sub(uint64_t a, uint64_t b, uint64_t cin, unsigned size,
                                       uint64_t& out) {
  const uint64_t m = size_mask(size);
  const uint64_t r = (a - b - cin) & m;
  const uint64_t borrow = static_cast<uint64_t>(a < b) | (cin & (a == b));
  out = r;
  return flags_szp(r, size) | borrow | ((((a ^ b) & (a ^ r)) >> (size * 8 - 1)) & 1) << 11 |
         ((a ^ b ^ r) & fl::AF);
}

// AND/OR/XOR/TEST: CF = OF = 0; AF is undefined by the SDM, we clear it like current
// Intel parts do.
PVSIM_ALWAYS_INLINE uint64_t flags_logic(uint64_t r, unsigned size) {
  return flags_szp(r, size);
}

// ---- lazy arithmetic flags: the last flag-setting ALU op, recomputed on demand ----
enum : uint8_t {
  kLazyNone = 0,  // RFLAGS arithmetic bits are current
  kLazyAdd,       // r = a + b
  kLazySub,       // r = a - b (SUB, CMP, NEG with a = 0)
  kLazyLogic,     // r = a op b for AND/OR/XOR/TEST (CF = OF = AF = 0)
};
struct LazyFlags {
  uint64_t a = 0, b = 0, r = 0;  // operands and result, truncated to size
  uint8_t op = kLazyNone;
  uint8_t size = 8;
};
inline uint64_t lazy_arith(const LazyFlags& z) {
  uint64_t r;
  switch (z.op) {
    case kLazyAdd:
      return flags_add(z.a, z.b, 0, z.size, r);
    case kLazySub:
      return flags_sub(z.a, z.b, 0, z.size, r);
    default:
      return flags_logic(z.r, z.size);
  }
}

// Jcc/SETcc/CMOVcc condition codes (SDM Vol. 1 Appendix B, Table B-1), cc = low nibble.
PVSIM_ALWAYS_INLINE bool cond_holds(unsigned cc, uint64_t f) {
  bool r;
  switch (cc >> 1) {
    case 0:
      r = f & fl::OF;
      break;  // O
    case 1:
      r = f & fl::CF;
      break;  // B
    case 2:
      r = f & fl::ZF;
      break;  // E
    case 3:
      r = (f & fl::CF) || (f & fl::ZF);
      break;  // BE
    case 4:
      r = f & fl::SF;
      break;  // S
    case 5:
      r = f & fl::PF;
      break;  // P
    case 6:
      r = !!(f & fl::SF) != !!(f & fl::OF);
      break;  // L
    default:
      r = (f & fl::ZF) || (!!(f & fl::SF) != !!(f & fl::OF));
      break;  // LE
  }
  return (cc & 1) ? !r : r;
}

}  // namespace pvsim::cpu
