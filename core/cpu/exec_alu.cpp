// core/cpu/exec_alu.cpp — integer arithmetic, logic, shifts/rotates, multiply/divide and
// bit instructions (SDM Vol. 2A/2B instruction pages; flags per Vol. 1 Appendix A).
#include "core/cpu/core.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {

using u128 = unsigned __int128;
using s128 = __int128;

// Read-modify-write of the r/m operand: f(old) -> new. Memory forms check writability
// first (probe_write) so a fault leaves registers and flags untouched.
template <class F>
__attribute__((noinline)) bool rmw_mem(Core& c, const Insn& i, unsigned size, F f) {
  const uint64_t la = c.ea(i);
  if (uint8_t* h = c.write_ptr(la, size)) [[likely]] {
    store_le(h, size, f(load_le(h, size)));
    return true;
  }
  if (!c.probe_write(la, size)) return false;
  uint64_t a;
  if (!c.read(la, size, a)) return false;
  return c.write(la, size, f(a));
}
// The register form stays inline and short; the memory form is out of line so the
// register path does not pay for its register saves.
template <class F>
PVSIM_ALWAYS_INLINE bool rmw_E(Core& c, const Insn& i, unsigned size, F f) {
  if (i.mod3()) [[likely]] {
    c.setr(i.rm, size, i, f(c.getr(i.rm, size, i)));
    return true;
  }
  return rmw_mem(c, i, size, f);
}

enum class Alu { Add, Or, Adc, Sbb, And, Sub, Xor, Cmp };

template <Alu OP>
PVSIM_ALWAYS_INLINE uint64_t alu(Core& c, uint64_t a, uint64_t b, unsigned size) {
  // ADD/SUB/CMP/AND/OR/XOR leave their flags lazy; ADC/SBB need CF in, so compute now.
  const uint64_t m = size_mask(size);
  uint64_t r = 0;
  if constexpr (OP == Alu::Add) {
    r = (a + b) & m;
    c.set_lazy(kLazyAdd, a, b, r, size);
  }
  if constexpr (OP == Alu::Sub || OP == Alu::Cmp) {
    r = (a - b) & m;
    c.set_lazy(kLazySub, a, b, r, size);
  }
  if constexpr (OP == Alu::And) {
    r = a & b;
    c.set_lazy(kLazyLogic, 0, 0, r, size);
  }
  if constexpr (OP == Alu::Or) {
    r = a | b;
    c.set_lazy(kLazyLogic, 0, 0, r, size);
  }
  if constexpr (OP == Alu::Xor) {
    r = a ^ b;
    c.set_lazy(kLazyLogic, 0, 0, r, size);
  }
  if constexpr (OP == Alu::Adc) c.set_arith(flags_add(a, b, c.flags() & fl::CF, size, r));
  if constexpr (OP == Alu::Sbb) c.set_arith(flags_sub(a, b, c.flags() & fl::CF, size, r));
  return r;
}

// Operand-size specialisation: the handler switches once on the operand size and every
// helper below is then compiled for a constant size (no masks or switches at run time).
#define PVSIM_SIZE_DISPATCH(size, call) \
  switch (size) {                       \
    case 1:                             \
      return call<1>(c, i);             \
    case 2:                             \
      return call<2>(c, i);             \
    case 4:                             \
      return call<4>(c, i);             \
    default:                            \
      return call<8>(c, i);             \
  }

enum class Src { Reg, Imm };

template <Alu OP, Src SRC>
struct AluForms {
  template <unsigned S>
  static PVSIM_ALWAYS_INLINE bool E(Core& c, const Insn& i) {
    const uint64_t src = SRC == Src::Reg ? c.getr(i.reg, S, i) : (i.imm & size_mask(S));
    if constexpr (OP == Alu::Cmp) {
      uint64_t a;
      if (!c.read_E(i, S, a)) return false;
      alu<OP>(c, a, src, S);
      return true;
    } else {
      return rmw_E(c, i, S, [&](uint64_t a) { return alu<OP>(c, a, src, S); });
    }
  }
  template <unsigned S>
  static PVSIM_ALWAYS_INLINE bool G(Core& c, const Insn& i) {
    uint64_t b;
    if (!c.read_E(i, S, b)) return false;
    const uint64_t r = alu<OP>(c, c.getr(i.reg, S, i), b, S);
    if constexpr (OP != Alu::Cmp) c.setr(i.reg, S, i, r);
    return true;
  }
  template <unsigned S>
  static PVSIM_ALWAYS_INLINE bool Acc(Core& c, const Insn& i) {
    const uint64_t r = alu<OP>(c, c.getr(0, S, i), i.imm & size_mask(S), S);
    if constexpr (OP != Alu::Cmp) c.setr(0, S, i, r);
    return true;
  }
};

template <Alu OP, Src SRC>
PVSIM_ALWAYS_INLINE bool alu_E(Core& c, const Insn& i, unsigned size) {
  using F = AluForms<OP, SRC>;
  PVSIM_SIZE_DISPATCH(size, F::template E)
}
template <Alu OP>
PVSIM_ALWAYS_INLINE bool alu_G(Core& c, const Insn& i, unsigned size) {
  using F = AluForms<OP, Src::Reg>;
  PVSIM_SIZE_DISPATCH(size, F::template G)
}
template <Alu OP>
PVSIM_ALWAYS_INLINE bool alu_acc(Core& c, const Insn& i, unsigned size) {
  using F = AluForms<OP, Src::Imm>;
  PVSIM_SIZE_DISPATCH(size, F::template Acc)
}

}  // namespace

#define PVSIM_ALU_HANDLERS(N, K)            \
  bool N##_EbGb(Core& c, const Insn& i) {   \
    return alu_E<K, Src::Reg>(c, i, 1);     \
  }                                         \
  bool N##_EvGv(Core& c, const Insn& i) {   \
    return alu_E<K, Src::Reg>(c, i, i.osz); \
  }                                         \
  bool N##_GbEb(Core& c, const Insn& i) {   \
    return alu_G<K>(c, i, 1);               \
  }                                         \
  bool N##_GvEv(Core& c, const Insn& i) {   \
    return alu_G<K>(c, i, i.osz);           \
  }                                         \
  bool N##_ALIb(Core& c, const Insn& i) {   \
    return alu_acc<K>(c, i, 1);             \
  }                                         \
  bool N##_rAXIz(Core& c, const Insn& i) {  \
    return alu_acc<K>(c, i, i.osz);         \
  }                                         \
  bool N##_EbIb(Core& c, const Insn& i) {   \
    return alu_E<K, Src::Imm>(c, i, 1);     \
  }                                         \
  bool N##_EvIz(Core& c, const Insn& i) {   \
    return alu_E<K, Src::Imm>(c, i, i.osz); \
  }                                         \
  bool N##_EvIb(Core& c, const Insn& i) {   \
    return alu_E<K, Src::Imm>(c, i, i.osz); \
  }                                         \
  /* 82 /r: 80 /r again outside 64-bit mode */ \
  bool N##_EbIb82(Core& c, const Insn& i) { \
    return alu_E<K, Src::Imm>(c, i, 1);     \
  }
PVSIM_ALU_HANDLERS(ADD, Alu::Add)
PVSIM_ALU_HANDLERS(OR, Alu::Or)
PVSIM_ALU_HANDLERS(ADC, Alu::Adc)
PVSIM_ALU_HANDLERS(SBB, Alu::Sbb)
PVSIM_ALU_HANDLERS(AND, Alu::And)
PVSIM_ALU_HANDLERS(SUB, Alu::Sub)
PVSIM_ALU_HANDLERS(XOR, Alu::Xor)
PVSIM_ALU_HANDLERS(CMP, Alu::Cmp)
#undef PVSIM_ALU_HANDLERS

// ---------------- TEST / INC / DEC / NOT / NEG ----------------
namespace {
inline bool test_E(Core& c, const Insn& i, unsigned size, uint64_t b) {
  uint64_t a;
  if (!c.read_E(i, size, a)) return false;
  c.set_lazy(kLazyLogic, 0, 0, a & b & size_mask(size), size);
  return true;
}
// INC/DEC leave CF alone (SDM Vol. 2A "INC").
inline uint64_t incdec(Core& c, uint64_t a, unsigned size, bool dec) {
  uint64_t r;
  const uint64_t f = dec ? flags_sub(a, 1, 0, size, r) : flags_add(a, 1, 0, size, r);
  const uint64_t old = c.flags();
  c.rf = (old & ~(fl::kArith & ~fl::CF)) | (f & ~fl::CF);
  return r;
}
inline bool incdec_E(Core& c, const Insn& i, unsigned size, bool dec) {
  return rmw_E(c, i, size, [&](uint64_t a) { return incdec(c, a, size, dec); });
}
inline bool neg_E(Core& c, const Insn& i, unsigned size) {
  return rmw_E(c, i, size, [&](uint64_t a) {
    uint64_t r;
    c.set_arith(flags_sub(0, a, 0, size, r));  // CF = (a != 0)
    return r;
  });
}
}  // namespace

bool TEST_EbGb(Core& c, const Insn& i) {
  return test_E(c, i, 1, c.getr(i.reg, 1, i));
}
bool TEST_EvGv(Core& c, const Insn& i) {
  return test_E(c, i, i.osz, c.getr(i.reg, i.osz, i));
}
bool TEST_ALIb(Core& c, const Insn& i) {
  c.set_arith(flags_logic(c.getr(0, 1, i) & i.imm & 0xff, 1));
  return true;
}
bool TEST_rAXIz(Core& c, const Insn& i) {
  c.set_arith(flags_logic(c.getr(0, i.osz, i) & i.imm & size_mask(i.osz), i.osz));
  return true;
}
bool TEST_EbIb(Core& c, const Insn& i) {
  return test_E(c, i, 1, i.imm);
}
bool TEST_EbIb_1(Core& c, const Insn& i) {
  return test_E(c, i, 1, i.imm);
}
bool TEST_EvIz(Core& c, const Insn& i) {
  return test_E(c, i, i.osz, i.imm);
}
bool TEST_EvIz_1(Core& c, const Insn& i) {
  return test_E(c, i, i.osz, i.imm);
}
bool NOT_Eb(Core& c, const Insn& i) {
  return rmw_E(c, i, 1, [](uint64_t a) { return ~a & 0xff; });
}
bool NOT_Ev(Core& c, const Insn& i) {
  const uint64_t m = size_mask(i.osz);
  return rmw_E(c, i, i.osz, [m](uint64_t a) { return ~a & m; });
}
bool NEG_Eb(Core& c, const Insn& i) {
  return neg_E(c, i, 1);
}
bool NEG_Ev(Core& c, const Insn& i) {
  return neg_E(c, i, i.osz);
}
bool INC_Eb(Core& c, const Insn& i) {
  return incdec_E(c, i, 1, false);
}
bool DEC_Eb(Core& c, const Insn& i) {
  return incdec_E(c, i, 1, true);
}
bool INC_Ev(Core& c, const Insn& i) {
  return incdec_E(c, i, i.osz, false);
}
bool DEC_Ev(Core& c, const Insn& i) {
  return incdec_E(c, i, i.osz, true);
}
// 40+r / 48+r outside 64-bit mode (where 64-bit mode has REX): the register in the opcode.
bool INC_rv(Core& c, const Insn& i) {
  c.setr(i.reg, i.osz, i, incdec(c, c.getr(i.reg, i.osz, i), i.osz, false));
  return true;
}
bool DEC_rv(Core& c, const Insn& i) {
  c.setr(i.reg, i.osz, i, incdec(c, c.getr(i.reg, i.osz, i), i.osz, true));
  return true;
}

// ---------------- multiply / divide ----------------
namespace {
// One-operand MUL/IMUL: rDX:rAX (AX for bytes) = rAX * src. CF = OF = "upper half
// significant". SF/ZF/PF are undefined by the SDM: we derive them from the low half.
inline bool mul1(Core& c, const Insn& i, unsigned size, bool is_signed) {
  uint64_t src;
  if (!c.read_E(i, size, src)) return false;
  const uint64_t a = c.getr(0, size, i);
  bool wide;
  uint64_t lo, hi;
  if (is_signed) {
    const s128 p = static_cast<s128>(sext(a, size)) * static_cast<s128>(sext(src, size));
    lo = static_cast<uint64_t>(p) & size_mask(size);
    hi = static_cast<uint64_t>(p >> (size * 8)) & size_mask(size);
    wide = p != static_cast<s128>(sext(lo, size));
  } else {
    const u128 p = static_cast<u128>(a) * static_cast<u128>(src);
    lo = static_cast<uint64_t>(p) & size_mask(size);
    hi = static_cast<uint64_t>(p >> (size * 8)) & size_mask(size);
    wide = hi != 0;
  }
  if (size == 1) {
    c.setr(0, 2, i, lo | (hi << 8));
  } else {
    c.setr(0, size, i, lo);
    c.setr(2, size, i, hi);
  }
  uint64_t f = flags_szp(lo, size);
  if (wide) f |= fl::CF | fl::OF;
  c.set_arith(f);
  return true;
}

// DIV/IDIV: #DE on a zero divisor or a quotient that does not fit (SDM Vol. 2A "DIV").
// Flags are undefined; we leave them unchanged.
inline bool div1(Core& c, const Insn& i, unsigned size, bool is_signed) {
  uint64_t src;
  if (!c.read_E(i, size, src)) return false;
  if (src == 0) return c.raise(kDE);
  const unsigned bits = size * 8;
  u128 dividend;
  if (size == 1)
    dividend = c.getr(0, 2, i);
  else
    dividend = (static_cast<u128>(c.getr(2, size, i)) << bits) | c.getr(0, size, i);
  uint64_t q, r;
  if (is_signed) {
    // Sign-extend the 2*size-byte dividend.
    s128 sd = static_cast<s128>(dividend << (128 - 2 * bits)) >> (128 - 2 * bits);
    const s128 sv = sext(src, size);
    const s128 sq = sd / sv;
    const s128 sr = sd % sv;
    const s128 lim = static_cast<s128>(1) << (bits - 1);
    if (sq >= lim || sq < -lim) return c.raise(kDE);
    q = static_cast<uint64_t>(sq) & size_mask(size);
    r = static_cast<uint64_t>(sr) & size_mask(size);
  } else {
    const u128 uq = dividend / src;
    if (uq > size_mask(size)) return c.raise(kDE);
    q = static_cast<uint64_t>(uq);
    r = static_cast<uint64_t>(dividend % src);
  }
  if (size == 1) {
    c.setr(0, 2, i, q | (r << 8));
  } else {
    c.setr(0, size, i, q);
    c.setr(2, size, i, r);
  }
  return true;
}

// Two/three-operand IMUL: truncated product; CF = OF = it did not fit.
inline bool imul_into_G(Core& c, const Insn& i, uint64_t a, uint64_t b) {
  const unsigned size = i.osz;
  const s128 p = static_cast<s128>(sext(a, size)) * static_cast<s128>(sext(b, size));
  const uint64_t lo = static_cast<uint64_t>(p) & size_mask(size);
  uint64_t f = flags_szp(lo, size);
  if (p != static_cast<s128>(sext(lo, size))) f |= fl::CF | fl::OF;
  c.set_arith(f);
  c.setr(i.reg, size, i, lo);
  return true;
}
}  // namespace

bool MUL_Eb(Core& c, const Insn& i) {
  return mul1(c, i, 1, false);
}
bool IMUL_Eb(Core& c, const Insn& i) {
  return mul1(c, i, 1, true);
}
bool MUL_Ev(Core& c, const Insn& i) {
  return mul1(c, i, i.osz, false);
}
bool IMUL_Ev(Core& c, const Insn& i) {
  return mul1(c, i, i.osz, true);
}
bool DIV_Eb(Core& c, const Insn& i) {
  return div1(c, i, 1, false);
}
bool IDIV_Eb(Core& c, const Insn& i) {
  return div1(c, i, 1, true);
}
bool DIV_Ev(Core& c, const Insn& i) {
  return div1(c, i, i.osz, false);
}
bool IDIV_Ev(Core& c, const Insn& i) {
  return div1(c, i, i.osz, true);
}
bool IMUL_GvEv(Core& c, const Insn& i) {
  uint64_t b;
  if (!c.read_E(i, i.osz, b)) return false;
  return imul_into_G(c, i, c.getr(i.reg, i.osz, i), b);
}
bool IMUL_GvEvIz(Core& c, const Insn& i) {
  uint64_t b;
  if (!c.read_E(i, i.osz, b)) return false;
  return imul_into_G(c, i, b, i.imm);
}
bool IMUL_GvEvIb(Core& c, const Insn& i) {
  return IMUL_GvEvIz(c, i);
}

// ---------------- shifts and rotates ----------------
namespace {
enum class Sh { Rol, Ror, Rcl, Rcr, Shl, Shr, Sar };

// SDM Vol. 2B "SAL/SAR/SHL/SHR" and "RCL/RCR/ROL/ROR": the count is masked to 5 bits (6
// with REX.W); a masked count of 0 changes nothing (not even flags). OF is defined only
// for 1-bit shifts and AF is undefined: we compute OF with the 1-bit formula and clear AF.
template <Sh K>
inline uint64_t shift(Core& c, uint64_t a, unsigned count, unsigned size) {
  const unsigned bits = size * 8;
  const uint64_t m = size_mask(size);
  const uint64_t msb = sign_bit(size);
  count &= size == 8 ? 63 : 31;
  if (count == 0) return a;
  uint64_t r = 0, f = c.flags() & fl::kArith;
  auto setf = [&](uint64_t mask, bool v) { f = v ? (f | mask) : (f & ~mask); };
  if constexpr (K == Sh::Shl) {
    r = count >= bits ? 0 : (a << count) & m;
    const bool cf = count <= bits && ((a >> (bits - count)) & 1);
    f = flags_szp(r, size);
    setf(fl::CF, cf);
    setf(fl::OF, ((r & msb) != 0) != cf);
  } else if constexpr (K == Sh::Shr) {
    r = count >= bits ? 0 : a >> count;
    const bool cf = count <= bits && ((a >> (count - 1)) & 1);
    f = flags_szp(r, size);
    setf(fl::CF, cf);
    setf(fl::OF, a & msb);
  } else if constexpr (K == Sh::Sar) {
    const int64_t sa = sext(a, size);
    r = static_cast<uint64_t>(sa >> (count >= bits ? bits - 1 : count)) & m;
    const bool cf = (sa >> (count - 1 >= bits ? bits - 1 : count - 1)) & 1;
    f = flags_szp(r, size);
    setf(fl::CF, cf);
  } else if constexpr (K == Sh::Rol || K == Sh::Ror) {
    const unsigned n = count % bits;
    if (K == Sh::Rol)
      r = n ? ((a << n) | (a >> (bits - n))) & m : a;
    else
      r = n ? ((a >> n) | (a << (bits - n))) & m : a;
    if (K == Sh::Rol) {
      setf(fl::CF, r & 1);
      setf(fl::OF, ((r & msb) != 0) != ((r & 1) != 0));
    } else {
      setf(fl::CF, r & msb);
      setf(fl::OF, ((r & msb) != 0) != ((r & (msb >> 1)) != 0));
    }
  } else {  // RCL / RCR: rotate through CF, modulo bits+1
    const unsigned n = count % (bits + 1);
    bool cf = c.rf & fl::CF;  // materialised above
    r = a;
    for (unsigned k = 0; k < n; ++k) {
      if constexpr (K == Sh::Rcl) {
        const bool out = r & msb;
        r = ((r << 1) | (cf ? 1 : 0)) & m;
        cf = out;
      } else {
        const bool out = r & 1;
        r = (r >> 1) | (cf ? msb : 0);
        cf = out;
      }
    }
    setf(fl::CF, cf);
    if constexpr (K == Sh::Rcl)
      setf(fl::OF, ((r & msb) != 0) != cf);
    else
      setf(fl::OF, ((r & msb) != 0) != ((r & (msb >> 1)) != 0));
  }
  c.set_arith(f & fl::kArith);
  return r;
}

template <Sh K>
inline bool shift_E(Core& c, const Insn& i, unsigned size, unsigned count) {
  return rmw_E(c, i, size, [&](uint64_t a) { return shift<K>(c, a, count, size); });
}
}  // namespace

#define PVSIM_SHIFT_HANDLERS(N, K)                                \
  bool N##_EbIb(Core& c, const Insn& i) {                         \
    return shift_E<K>(c, i, 1, static_cast<unsigned>(i.imm));     \
  }                                                               \
  bool N##_EvIb(Core& c, const Insn& i) {                         \
    return shift_E<K>(c, i, i.osz, static_cast<unsigned>(i.imm)); \
  }                                                               \
  bool N##_Eb1(Core& c, const Insn& i) {                          \
    return shift_E<K>(c, i, 1, 1);                                \
  }                                                               \
  bool N##_Ev1(Core& c, const Insn& i) {                          \
    return shift_E<K>(c, i, i.osz, 1);                            \
  }                                                               \
  bool N##_EbCL(Core& c, const Insn& i) {                         \
    return shift_E<K>(c, i, 1, c.gpr[1] & 0xff);                  \
  }                                                               \
  bool N##_EvCL(Core& c, const Insn& i) {                         \
    return shift_E<K>(c, i, i.osz, c.gpr[1] & 0xff);              \
  }
PVSIM_SHIFT_HANDLERS(ROL, Sh::Rol)
PVSIM_SHIFT_HANDLERS(ROR, Sh::Ror)
PVSIM_SHIFT_HANDLERS(RCL, Sh::Rcl)
PVSIM_SHIFT_HANDLERS(RCR, Sh::Rcr)
PVSIM_SHIFT_HANDLERS(SHL, Sh::Shl)
PVSIM_SHIFT_HANDLERS(SHR, Sh::Shr)
PVSIM_SHIFT_HANDLERS(SAL, Sh::Shl)
PVSIM_SHIFT_HANDLERS(SAR, Sh::Sar)
#undef PVSIM_SHIFT_HANDLERS

// SHLD/SHRD (SDM Vol. 2B): count masked to 5/6 bits; 0 = no change. For 16-bit operands a
// count above 16 is undefined; we shift the 32-bit concatenation like current parts.
namespace {
inline bool shxd(Core& c, const Insn& i, unsigned count, bool left) {
  const unsigned size = i.osz, bits = size * 8;
  count &= size == 8 ? 63 : 31;
  const uint64_t b = c.getr(i.reg, size, i);
  return rmw_E(c, i, size, [&](uint64_t a) -> uint64_t {
    if (count == 0) return a;
    uint64_t r;
    bool cf;
    if (left) {
      const u128 comb = (static_cast<u128>(a) << bits) | b;
      r = static_cast<uint64_t>((comb << count) >> bits) & size_mask(size);
      cf = count <= 2 * bits && static_cast<uint64_t>(comb >> (2 * bits - count)) & 1;
    } else {
      const u128 comb = (static_cast<u128>(b) << bits) | a;
      r = static_cast<uint64_t>(comb >> count) & size_mask(size);
      cf = static_cast<uint64_t>(comb >> (count - 1)) & 1;
    }
    uint64_t f = flags_szp(r, size);
    if (cf) f |= fl::CF;
    if (((r ^ a) & sign_bit(size)) != 0) f |= fl::OF;
    c.set_arith(f);
    return r;
  });
}
}  // namespace
bool SHLD_EvGvIb(Core& c, const Insn& i) {
  return shxd(c, i, static_cast<unsigned>(i.imm), true);
}
bool SHLD_EvGvCL(Core& c, const Insn& i) {
  return shxd(c, i, c.gpr[1] & 0xff, true);
}
bool SHRD_EvGvIb(Core& c, const Insn& i) {
  return shxd(c, i, static_cast<unsigned>(i.imm), false);
}
bool SHRD_EvGvCL(Core& c, const Insn& i) {
  return shxd(c, i, c.gpr[1] & 0xff, false);
}

// ---------------- bit test / scan / count ----------------
namespace {
enum class Bt { Test, Set, Reset, Complement };

// BT* with a register bit offset address a bit string: the offset is signed and may
// reach outside the operand (SDM Vol. 2A "BT", Figure 3-2). CF = the bit; ZF unchanged,
// OF/SF/AF/PF undefined (left unchanged here).
template <Bt K>
inline bool bt(Core& c, const Insn& i, uint64_t offset, bool reg_offset) {
  const unsigned size = i.osz, bits = size * 8;
  uint64_t bit;
  auto apply = [&](uint64_t a) {
    const bool v = (a >> bit) & 1;
    const uint64_t old = c.flags();
    c.rf = v ? (old | fl::CF) : (old & ~fl::CF);
    if constexpr (K == Bt::Set) a |= 1ull << bit;
    if constexpr (K == Bt::Reset) a &= ~(1ull << bit);
    if constexpr (K == Bt::Complement) a ^= 1ull << bit;
    return a;
  };
  if (i.mod3()) {
    bit = offset & (bits - 1);
    const uint64_t r = apply(c.getr(i.rm, size, i));
    if constexpr (K != Bt::Test) c.setr(i.rm, size, i, r);
    return true;
  }
  uint64_t la = c.ea(i);
  if (reg_offset) {
    const int64_t so = sext(offset, size);
    la += static_cast<uint64_t>((so >> (bits == 64   ? 6
                                        : bits == 32 ? 5
                                                     : 4)) *
                                static_cast<int64_t>(size));
  }
  bit = offset & (bits - 1);
  if constexpr (K == Bt::Test) {
    uint64_t a;
    if (!c.read(la, size, a)) return false;
    apply(a);
    return true;
  } else {
    if (!c.probe_write(la, size)) return false;
    uint64_t a;
    if (!c.read(la, size, a)) return false;
    return c.write(la, size, apply(a));
  }
}
}  // namespace

bool BT_EvGv(Core& c, const Insn& i) {
  return bt<Bt::Test>(c, i, c.getr(i.reg, i.osz, i), true);
}
bool BTS_EvGv(Core& c, const Insn& i) {
  return bt<Bt::Set>(c, i, c.getr(i.reg, i.osz, i), true);
}
bool BTR_EvGv(Core& c, const Insn& i) {
  return bt<Bt::Reset>(c, i, c.getr(i.reg, i.osz, i), true);
}
bool BTC_EvGv(Core& c, const Insn& i) {
  return bt<Bt::Complement>(c, i, c.getr(i.reg, i.osz, i), true);
}
bool BT_EvIb(Core& c, const Insn& i) {
  return bt<Bt::Test>(c, i, i.imm, false);
}
bool BTS_EvIb(Core& c, const Insn& i) {
  return bt<Bt::Set>(c, i, i.imm, false);
}
bool BTR_EvIb(Core& c, const Insn& i) {
  return bt<Bt::Reset>(c, i, i.imm, false);
}
bool BTC_EvIb(Core& c, const Insn& i) {
  return bt<Bt::Complement>(c, i, i.imm, false);
}

// BSF/BSR: source 0 sets ZF and leaves the destination unchanged (what Intel and AMD
// parts do; the SDM says "undefined"). Other flags undefined: unchanged here.
bool BSF_GvEv(Core& c, const Insn& i) {
  uint64_t s;
  if (!c.read_E(i, i.osz, s)) return false;
  const uint64_t old = c.flags();
  if (s == 0) {
    c.rf = old | fl::ZF;
    return true;
  }
  c.rf = old & ~fl::ZF;
  c.setr(i.reg, i.osz, i, static_cast<uint64_t>(__builtin_ctzll(s)));
  return true;
}
bool BSR_GvEv(Core& c, const Insn& i) {
  uint64_t s;
  if (!c.read_E(i, i.osz, s)) return false;
  const uint64_t old = c.flags();
  if (s == 0) {
    c.rf = old | fl::ZF;
    return true;
  }
  c.rf = old & ~fl::ZF;
  c.setr(i.reg, i.osz, i, static_cast<uint64_t>(63 - __builtin_clzll(s)));
  return true;
}
// TZCNT/LZCNT: CF = source was 0, ZF = result is 0 (SDM Vol. 2B); OF/SF/AF/PF undefined.
bool TZCNT_GvEv(Core& c, const Insn& i) {
  uint64_t s;
  if (!c.read_E(i, i.osz, s)) return false;
  const uint64_t r = s == 0 ? i.osz * 8u : static_cast<uint64_t>(__builtin_ctzll(s));
  c.rf = (c.flags() & ~(fl::CF | fl::ZF)) | (s == 0 ? fl::CF : 0) | (r == 0 ? fl::ZF : 0);
  c.setr(i.reg, i.osz, i, r);
  return true;
}
bool LZCNT_GvEv(Core& c, const Insn& i) {
  uint64_t s;
  if (!c.read_E(i, i.osz, s)) return false;
  const unsigned bits = i.osz * 8u;
  const uint64_t r = s == 0 ? bits : static_cast<uint64_t>(__builtin_clzll(s) - (64 - bits));
  c.rf = (c.flags() & ~(fl::CF | fl::ZF)) | (s == 0 ? fl::CF : 0) | (r == 0 ? fl::ZF : 0);
  c.setr(i.reg, i.osz, i, r);
  return true;
}
// POPCNT clears OF SF AF CF PF and sets ZF when the source is 0.
bool POPCNT_GvEv(Core& c, const Insn& i) {
  uint64_t s;
  if (!c.read_E(i, i.osz, s)) return false;
  c.set_arith(s == 0 ? fl::ZF : 0);
  c.setr(i.reg, i.osz, i, static_cast<uint64_t>(__builtin_popcountll(s)));
  return true;
}

bool SETcc_Eb(Core& c, const Insn& i) {
  return c.write_E(i, 1, c.cond(i.cond) ? 1 : 0);
}

// ---------------- exchange and compare ----------------
bool XADD_EbGb(Core& c, const Insn& i) {
  const uint64_t src = c.getr(i.reg, 1, i);
  uint64_t old = 0;
  if (!rmw_E(c, i, 1, [&](uint64_t a) {
        old = a;
        return alu<Alu::Add>(c, a, src, 1);
      }))
    return false;
  // The register gets the old destination; with a register destination the sum wins when
  // both name the same register (SDM: TEMP <- SRC+DEST; SRC <- DEST; DEST <- TEMP).
  if (i.mod3()) {
    const uint64_t sum = c.getr(i.rm, 1, i);
    c.setr(i.reg, 1, i, old);
    c.setr(i.rm, 1, i, sum);
  } else {
    c.setr(i.reg, 1, i, old);
  }
  return true;
}
bool XADD_EvGv(Core& c, const Insn& i) {
  const unsigned s = i.osz;
  const uint64_t src = c.getr(i.reg, s, i);
  uint64_t old = 0;
  if (!rmw_E(c, i, s, [&](uint64_t a) {
        old = a;
        return alu<Alu::Add>(c, a, src, s);
      }))
    return false;
  if (i.mod3()) {
    const uint64_t sum = c.getr(i.rm, s, i);
    c.setr(i.reg, s, i, old);
    c.setr(i.rm, s, i, sum);
  } else {
    c.setr(i.reg, s, i, old);
  }
  return true;
}

namespace {
inline bool cmpxchg(Core& c, const Insn& i, unsigned s) {
  const uint64_t acc = c.getr(0, s, i);
  const uint64_t src = c.getr(i.reg, s, i);
  if (i.mod3()) {
    // SDM Vol. 2A "CMPXCHG" operation: on a mismatch the accumulator gets DEST and DEST
    // is written back with its own value (so a 32-bit register destination is
    // zero-extended either way); on a match only DEST changes (RAX upper half kept).
    const uint64_t d = c.getr(i.rm, s, i);
    alu<Alu::Cmp>(c, acc, d, s);
    if (acc == d) {
      c.setr(i.rm, s, i, src);
    } else {
      c.setr(0, s, i, d);
      c.setr(i.rm, s, i, d);
    }
    return true;
  }
  // Memory: the destination is always written (with its own value on mismatch), so the
  // write-permission check happens either way (SDM Vol. 2A "CMPXCHG").
  uint64_t d = 0;
  if (!rmw_E(c, i, s, [&](uint64_t a) {
        d = a;
        return a == acc ? src : a;
      }))
    return false;
  alu<Alu::Cmp>(c, acc, d, s);
  if (acc != d) c.setr(0, s, i, d);
  return true;
}
}  // namespace
bool CMPXCHG_EbGb(Core& c, const Insn& i) {
  return cmpxchg(c, i, 1);
}
bool CMPXCHG_EvGv(Core& c, const Insn& i) {
  return cmpxchg(c, i, i.osz);
}

// CMPXCHG8B / CMPXCHG16B (REX.W): the 16-byte form needs a 16-byte-aligned operand, else #GP(0).
bool CMPXCHG8B_Mq(Core& c, const Insn& i) {
  const uint64_t la = c.ea(i);
  if (i.pfx & P_REXW) {
    if (la & 15) return c.gp(0);
    if (!c.probe_write(la, 16)) return false;
    uint64_t lo, hi;
    if (!c.read(la, 8, lo) || !c.read(la + 8, 8, hi)) return false;
    const bool eq = lo == c.gpr[0] && hi == c.gpr[2];
    const uint64_t wlo = eq ? c.gpr[3] : lo, whi = eq ? c.gpr[1] : hi;
    if (!c.write(la, 8, wlo) || !c.write(la + 8, 8, whi)) return false;
    if (!eq) {
      c.gpr[0] = lo;
      c.gpr[2] = hi;
    }
    const uint64_t old = c.flags();
    c.rf = eq ? (old | fl::ZF) : (old & ~fl::ZF);
    return true;
  }
  if (!c.probe_write(la, 8)) return false;
  uint64_t m;
  if (!c.read(la, 8, m)) return false;
  const uint64_t cmp = (c.gpr[0] & 0xffffffff) | (c.gpr[2] << 32);
  const bool eq = m == cmp;
  const uint64_t w = eq ? ((c.gpr[3] & 0xffffffff) | (c.gpr[1] << 32)) : m;
  if (!c.write(la, 8, w)) return false;
  if (!eq) {
    c.gpr[0] = m & 0xffffffff;
    c.gpr[2] = m >> 32;
  }
  const uint64_t old = c.flags();
  c.rf = eq ? (old | fl::ZF) : (old & ~fl::ZF);
  return true;
}

}  // namespace pvsim::cpu
