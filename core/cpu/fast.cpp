// core/cpu/fast.cpp — whole-block execution: threaded handlers and block finishing.
//
// A decoded block runs as a chain of tail calls: every threaded handler does its work and
// jumps straight to the next instruction's handler (direct threading; no loop, no switch,
// no per-instruction bookkeeping). The run loop (core.cpp) takes this path only when the
// whole block fits in the instruction budget and its static costs cannot reach the
// deadline, so the only per-instruction state the handlers keep current is architectural
// (registers, flags, memory). RIP, cycles and the instruction count are derived from the
// block (Core::sync_to) whenever something needs them exactly:
//
//   - t_generic runs any instruction with its complete-semantics handler (Insn::fn, the
//     same code the per-instruction path uses) after sync_to(); it is the handler of every
//     form below that has no specialisation, and the fallback of every specialisation that
//     meets anything unusual (TLB miss, page-crossing access, non-canonical target). The
//     specialisations change nothing before they fall back, so the instruction runs
//     exactly once.
//   - After a complete-semantics handler, dynamic cycles (EPT exits, string elements, VM
//     exits) are folded into blk_cyc0, and the block is left at once if the handler asked
//     for a re-check (brk: self-modifying store, mode change, interrupt window, a REP that
//     ran more than one element, which Core::rep_next has counted in blk_insns0) or if
//     the rest of the block could now pass the deadline. The per-instruction path then
//     finishes the job, so the run still stops at exactly the first boundary where
//     cycles >= deadline or the budget is used up, as core/README.md specifies.
//
// Flags: the specialised register-only forms that write all six arithmetic flags come in a
// second variant that skips the flag work when a later instruction of the same block
// overwrites the flags before anything can observe them (finish_block's liveness pass).
// Anything that can leave the block (a memory form's fallback, a fault, a generic handler,
// the block end) counts as an observer, so RFLAGS is exact wherever the guest, an
// exception frame or the host can see it.
//
// Register forwarding: each handler passes the value it wrote to the next one in a host
// register (`last`, Insn::lr), and finish_block gives every operand the previous
// instruction wrote the handler variant that reads it from there (template parameter L),
// so dependent instructions do not wait for store-to-load forwarding through Core::gpr.
// Compare-and-branch fusion: a CMP/TEST before the block's Jcc is one handler that takes
// the condition from the operands (t_cmp_jcc, t_cmpm_jcc). core/README.md has the details.
#include <array>
#include <utility>

#include "core/cpu/core.h"
#include "core/cpu/decoder.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {

// The next instruction's threaded handler, as a tail call (a jump at -O2). `v` is what it
// receives as `last`: the new value of the register this handler wrote (finish_block set
// the next instruction's Insn::lr to it), or the incoming `last` when it wrote none.
#define PVSIM_NEXT(c, i, v)           \
  do {                                \
    const Insn* n_ = (i) + 1;         \
    return n_->tfn((c), n_, (v));     \
  } while (0)

// ---------------- block ends and the generic handler ----------------

// Block chaining: at the end of a block whose successor starts on the same linear page
// (so the fetch translation of the current block still holds: nothing in a block that
// reaches a fast terminator or the sentinel can change translations), the successor's
// decoded block is looked up by GPA and, when it is current and fits the budget and the
// deadline exactly as the run loop would require, entered directly. That is the run
// loop's boundary work (Core::run) minus the fetch translation; the loop still handles
// everything else (pending events, other pages, stepping near the deadline).
// run_insn_limit also bounds the length of a chain, which is a recursion in builds
// without tail calls (Core::run, kChainInsns).
// L: which of the running block's successor links caches this exit's target (0 = taken
// branch, 1 = fall-through); -1 for exits whose target varies (indirect jumps, RET).
template <int L>
PVSIM_ALWAYS_INLINE const Insn* chain(Core& c, const Insn* s) {
  const uint64_t nrip = c.next_rip;
  if (((nrip ^ c.blk_rip) >> 12) != 0) return s;
  const Block* cur = c.blk;
  const Block* nb = cur;
  if (nrip != c.blk_rip) {
    // A loop back to its own start needs no lookup: the running block is still current
    // (a store into it would have left the block through t_generic's brk check). Other
    // targets: the link, else the block cache. Same page, so the running block's
    // generation is the page's (checked on entry; a store into the page ends the block).
    const uint64_t gpa = c.blk_gpa_page | (nrip & 0xfff);
    if constexpr (L >= 0) nb = cur->link[L];
    if (L < 0 || !nb || nb->tag != gpa + 1 || nb->gen != cur->gen) {
      nb = &c.blocks[block_slot(gpa)];
      if (nb->tag != gpa + 1 || nb->gen != cur->gen) return s;
      if constexpr (L >= 0) cur->link[L] = nb;
    }
  }
  // The run loop's conditions for whole-block execution (pending events are excluded
  // on entry: Core::run sets run_insn_limit so that nothing chains then).
  const uint64_t cyc = c.blk_cyc0 + s->cum;
  const uint64_t ins = c.blk_insns0 + cur->count;  // s is the running block's sentinel
  if (cyc + nb->total > c.run_deadline || ins + nb->count > c.run_insn_limit) return s;
  c.blk = nb;
  c.blk_rip = nrip;
  c.blk_cyc0 = cyc;
  c.blk_insns0 = ins;
  return nb->insns[0].tfn(c, nb->insns, 0);  // a block's first Insn::lr is "none"
}

// Sentinel after a block whose last instruction falls through (page end, length limit).
const Insn* t_end(Core& c, const Insn* i, uint64_t) {
  c.next_rip = c.end_la(i);
  return chain<1>(c, i);
}
// Sentinel after a block terminator, which has set next_rip itself.
const Insn* t_end_term(Core&, const Insn* i, uint64_t) {
  return i;
}

__attribute__((noinline)) const Insn* t_generic(Core& c, const Insn* i, uint64_t) {
  c.sync_to(i);
  if (!i->fn(c, *i)) [[unlikely]] {
    c.xfail = true;
    return i;
  }
  c.blk_cyc0 = c.cycles - i->cum;
  if (c.brk || c.blk_cyc0 + c.blk->total > c.run_deadline) [[unlikely]]
    return i + 1;
  // The complete-semantics handler wrote the register file only: forward from there.
  PVSIM_NEXT(c, i, c.gpr[(i + 1)->lr]);
}

// ---------------- operands ----------------

template <unsigned S>
PVSIM_ALWAYS_INLINE uint64_t trunc(uint64_t v) {
  return v & size_mask(S);
}
// Register write of a 4- or 8-byte result (32-bit writes zero-extend, SDM Vol. 1 §3.4.1.1).
template <unsigned S>
PVSIM_ALWAYS_INLINE void put(Core& c, unsigned r, uint64_t v) {
  c.gpr[r] = trunc<S>(v);
}
// Operand-from-`last` bits of a handler variant (template parameter L; finish_block picks
// the variant): bit 0 = the first register operand, or the base of a memory operand;
// bit 1 = the second register operand, or the index; bit 2 = the register operand of a
// memory form. A set bit means the previous handler passed that register's value on.
constexpr unsigned kL0 = 1, kL1 = 2, kL2 = 4;
// Value of register operand r: `last` when the variant says the previous handler passed it.
template <bool FL>
PVSIM_ALWAYS_INLINE uint64_t rg(const Core& c, unsigned r, uint64_t last) {
  if constexpr (FL)
    return last;
  else
    return c.gpr[r];
}
// Effective address of a plain memory operand: 64-bit addressing, no FS/GS, not
// RIP-relative (finish_block only picks the memory specialisations for those).
template <unsigned L = 0>
PVSIM_ALWAYS_INLINE uint64_t fea(const Core& c, const Insn* i, uint64_t last = 0) {
  return static_cast<uint64_t>(static_cast<int64_t>(i->disp)) + rg<(L & kL0) != 0>(c, i->fb, last) +
         (rg<(L & kL1) != 0>(c, i->fi, last) << i->scale);
}
// Host pointer for an access of S bytes inside one page that hits the read / write TLB.
template <unsigned S>
PVSIM_ALWAYS_INLINE uint8_t* rd_ptr(Core& c, uint64_t la) {
  const TlbEntry& e = c.tlb[0][(la >> 12) & kTlbMask];
  const uint64_t off = la & 0xfff;
  return (e.tag == c.tlb_key(la) && off <= 4096 - S) ? e.host + off : nullptr;
}
template <unsigned S>
PVSIM_ALWAYS_INLINE uint8_t* wr_ptr(Core& c, uint64_t la) {
  const TlbEntry& e = c.tlb[1][(la >> 12) & kTlbMask];
  const uint64_t off = la & 0xfff;
  return (e.tag == c.tlb_wkey(la) && off <= 4096 - S) ? e.host + off : nullptr;
}

// ---------------- ALU ----------------

enum class Op { Add, Sub, And, Or, Xor, Cmp, Test };
constexpr bool writes_result(Op op) {
  return op != Op::Cmp && op != Op::Test;
}
// Result and (when F) the lazy flags of a two-operand ALU op, as exec_alu.cpp's alu().
template <Op OP, unsigned S, bool F>
PVSIM_ALWAYS_INLINE uint64_t alu(Core& c, uint64_t a, uint64_t b) {
  uint64_t r;
  if constexpr (OP == Op::Add) {
    r = trunc<S>(a + b);
    if constexpr (F) c.set_lazy(kLazyAdd, a, b, r, S);
  } else if constexpr (OP == Op::Sub || OP == Op::Cmp) {
    r = trunc<S>(a - b);
    if constexpr (F) c.set_lazy(kLazySub, a, b, r, S);
  } else {
    if constexpr (OP == Op::And || OP == Op::Test) r = a & b;
    if constexpr (OP == Op::Or) r = a | b;
    if constexpr (OP == Op::Xor) r = a ^ b;
    if constexpr (F) c.set_lazy(kLazyLogic, 0, 0, r, S);
  }
  return r;
}

// dst = rm (E form) or reg (G form); the other operand is the other register.
// L: kL0 = dst from `last`, kL1 = src from `last`.
template <Op OP, unsigned S, bool F, bool GDST, unsigned L>
const Insn* t_alu_rr(Core& c, const Insn* i, uint64_t last) {
  const unsigned d = GDST ? i->reg : i->rm, s = GDST ? i->rm : i->reg;
  const uint64_t r = alu<OP, S, F>(c, trunc<S>(rg<(L & kL0) != 0>(c, d, last)),
                                   trunc<S>(rg<(L & kL1) != 0>(c, s, last)));
  if constexpr (writes_result(OP)) {
    put<S>(c, d, r);
    PVSIM_NEXT(c, i, r);
  } else {
    PVSIM_NEXT(c, i, last);
  }
}
// rm (register) op immediate; rAX forms have rm = 0.
template <Op OP, unsigned S, bool F, unsigned L>
const Insn* t_alu_ri(Core& c, const Insn* i, uint64_t last) {
  const uint64_t r = alu<OP, S, F>(c, trunc<S>(rg<(L & kL0) != 0>(c, i->rm, last)), trunc<S>(i->imm));
  if constexpr (writes_result(OP)) {
    put<S>(c, i->rm, r);
    PVSIM_NEXT(c, i, r);
  } else {
    PVSIM_NEXT(c, i, last);
  }
}
// reg op [mem] (G form with a memory source; also CMP/TEST with memory on either side).
template <Op OP, unsigned S, unsigned L>
const Insn* t_alu_rm(Core& c, const Insn* i, uint64_t last) {
  const uint8_t* p = rd_ptr<S>(c, fea<L>(c, i, last));
  if (!p) [[unlikely]]
    return t_generic(c, i, last);
  const uint64_t r = alu<OP, S, true>(c, trunc<S>(rg<(L & kL2) != 0>(c, i->reg, last)), load_le(p, S));
  if constexpr (writes_result(OP)) {
    put<S>(c, i->reg, r);
    PVSIM_NEXT(c, i, r);
  } else {
    PVSIM_NEXT(c, i, last);
  }
}
// [mem] op reg / [mem] op imm: CMP/TEST only read, the others read-modify-write.
template <Op OP, unsigned S, bool IMM, unsigned L>
const Insn* t_alu_mx(Core& c, const Insn* i, uint64_t last) {
  const uint64_t la = fea<L>(c, i, last);
  const uint64_t src = IMM ? trunc<S>(i->imm) : trunc<S>(rg<(L & kL2) != 0>(c, i->reg, last));
  if constexpr (writes_result(OP)) {
    uint8_t* p = wr_ptr<S>(c, la);
    if (!p) [[unlikely]]
      return t_generic(c, i, last);
    store_le(p, S, alu<OP, S, true>(c, load_le(p, S), src));
  } else {
    const uint8_t* p = rd_ptr<S>(c, la);
    if (!p) [[unlikely]]
      return t_generic(c, i, last);
    alu<OP, S, true>(c, load_le(p, S), src);
  }
  PVSIM_NEXT(c, i, last);
}

// ---------------- moves ----------------

template <unsigned S, bool GDST, unsigned L>
const Insn* t_mov_rr(Core& c, const Insn* i, uint64_t last) {
  const uint64_t v = trunc<S>(rg<(L & kL0) != 0>(c, GDST ? i->rm : i->reg, last));
  put<S>(c, GDST ? i->reg : i->rm, v);
  PVSIM_NEXT(c, i, v);
}
// reg = zero/sign-extended load of SRC bytes (SX: sign), written with size S.
template <unsigned S, unsigned SRC, bool SX, unsigned L>
const Insn* t_load(Core& c, const Insn* i, uint64_t last) {
  const uint8_t* p = rd_ptr<SRC>(c, fea<L>(c, i, last));
  if (!p) [[unlikely]]
    return t_generic(c, i, last);
  const uint64_t v = load_le(p, SRC);
  const uint64_t r = trunc<S>(SX ? static_cast<uint64_t>(sext(v, SRC)) : v);
  put<S>(c, i->reg, r);
  PVSIM_NEXT(c, i, r);
}
// Register-source extension (MOVZX/MOVSX/MOVSXD from a register of SRC bytes; the byte
// forms only for registers that are not AH..BH).
template <unsigned S, unsigned SRC, bool SX, unsigned L>
const Insn* t_ext_rr(Core& c, const Insn* i, uint64_t last) {
  const uint64_t v = trunc<SRC>(rg<(L & kL0) != 0>(c, i->rm, last));
  const uint64_t r = trunc<S>(SX ? static_cast<uint64_t>(sext(v, SRC)) : v);
  put<S>(c, i->reg, r);
  PVSIM_NEXT(c, i, r);
}
// [mem] = reg (IMM: = immediate), S bytes.
template <unsigned S, bool IMM, unsigned L>
const Insn* t_store(Core& c, const Insn* i, uint64_t last) {
  uint8_t* p = wr_ptr<S>(c, fea<L>(c, i, last));
  if (!p) [[unlikely]]
    return t_generic(c, i, last);
  store_le(p, S, IMM ? i->imm : rg<(L & kL2) != 0>(c, i->reg, last));
  PVSIM_NEXT(c, i, last);
}
template <unsigned S>
const Insn* t_mov_ri(Core& c, const Insn* i, uint64_t) {  // MOV r, imm (B8+r) and MOV r/m(reg), imm32
  const uint64_t r = trunc<S>(i->imm);
  put<S>(c, i->rm, r);
  PVSIM_NEXT(c, i, r);
}
template <unsigned S, unsigned L>
const Insn* t_lea(Core& c, const Insn* i, uint64_t last) {
  const uint64_t r = trunc<S>(fea<L>(c, i, last));
  put<S>(c, i->reg, r);
  PVSIM_NEXT(c, i, r);
}
const Insn* t_nop(Core& c, const Insn* i, uint64_t last) {
  PVSIM_NEXT(c, i, last);
}
template <unsigned L>
const Insn* t_push(Core& c, const Insn* i, uint64_t last) {
  const uint64_t sp = c.gpr[4] - 8;
  uint8_t* p = wr_ptr<8>(c, sp);
  if (!p) [[unlikely]]
    return t_generic(c, i, last);
  store_le(p, 8, rg<(L & kL0) != 0>(c, i->reg, last));
  c.gpr[4] = sp;
  PVSIM_NEXT(c, i, last);  // RSP changed: finish_block forwards nothing past a PUSH
}
const Insn* t_pop(Core& c, const Insn* i, uint64_t last) {
  const uint8_t* p = rd_ptr<8>(c, c.gpr[4]);
  if (!p) [[unlikely]]
    return t_generic(c, i, last);
  const uint64_t v = load_le(p, 8);
  c.gpr[4] += 8;
  c.gpr[i->reg] = v;  // POP RSP: the popped value wins over the increment
  PVSIM_NEXT(c, i, last);  // two registers changed: finish_block forwards nothing past a POP
}
template <unsigned S, unsigned CC>
const Insn* t_cmov_rr(Core& c, const Insn* i, uint64_t last) {
  if (c.cond(CC))
    put<S>(c, i->reg, c.gpr[i->rm]);
  else if constexpr (S == 4)
    c.gpr[i->reg] &= 0xffffffff;  // the 32-bit form zero-extends even when not moving
  PVSIM_NEXT(c, i, last);  // not forwarded (finish_block: lr = none after it)
}
template <unsigned CC>
const Insn* t_setcc_r(Core& c, const Insn* i, uint64_t last) {
  c.gpr[i->rm] = (c.gpr[i->rm] & ~0xffull) | (c.cond(CC) ? 1 : 0);
  PVSIM_NEXT(c, i, last);  // not forwarded (finish_block: lr = none after it)
}

// ---------------- shifts, rotates, multiply (register forms, immediate count) ----------------

enum class Sh { Shl, Shr, Sar, Rol, Ror };
// Same results and flags as exec_alu.cpp's shift() for a count already known to be
// non-zero after masking (finish_block checks), so the flags are always written.
template <Sh K, unsigned S, bool F, unsigned L>
const Insn* t_shift_ri(Core& c, const Insn* i, uint64_t last) {
  constexpr unsigned bits = S * 8;
  const unsigned n = static_cast<unsigned>(i->imm) & (S == 8 ? 63 : 31);
  const uint64_t a = trunc<S>(rg<(L & kL0) != 0>(c, i->rm, last));
  uint64_t r;
  if constexpr (K == Sh::Shl) {
    r = trunc<S>(a << n);  // n < 64; for S == 4, n <= 31 < bits
    if constexpr (F) {
      const uint64_t cf = (a >> (bits - n)) & 1;
      const uint64_t of = ((r >> (bits - 1)) & 1) ^ cf;
      c.set_arith(flags_szp(r, S) | cf | (of << 11));
    }
  } else if constexpr (K == Sh::Shr) {
    r = a >> n;
    if constexpr (F) {
      const uint64_t cf = (a >> (n - 1)) & 1;
      const uint64_t of = (a >> (bits - 1)) & 1;
      c.set_arith(flags_szp(r, S) | cf | (of << 11));
    }
  } else if constexpr (K == Sh::Sar) {
    const int64_t sa = sext(a, S);
    r = trunc<S>(static_cast<uint64_t>(sa >> n));
    if constexpr (F) c.set_arith(flags_szp(r, S) | (static_cast<uint64_t>(sa >> (n - 1)) & 1));
  } else {
    const unsigned m = n % bits;
    if constexpr (K == Sh::Rol)
      r = m ? trunc<S>((a << m) | (a >> (bits - m))) : a;
    else
      r = m ? trunc<S>((a >> m) | (a << (bits - m))) : a;
    // Rotates write only CF and OF (SDM Vol. 2B "RCL/RCR/ROL/ROR") and keep the others, so
    // they read the old flags too; !F when no instruction can observe any of them
    // (finish_block, FlagUse::Modify).
    if constexpr (!F) {
      put<S>(c, i->rm, r);
      PVSIM_NEXT(c, i, r);
    }
    const uint64_t msb = (r >> (bits - 1)) & 1;
    uint64_t cf, of;
    if constexpr (K == Sh::Rol) {
      cf = r & 1;
      of = msb ^ cf;
    } else {
      cf = msb;
      of = msb ^ ((r >> (bits - 2)) & 1);
    }
    const uint64_t f = c.flags() & ~(fl::CF | fl::OF);
    c.set_arith((f | cf | (of << 11)) & fl::kArith);
  }
  put<S>(c, i->rm, r);
  PVSIM_NEXT(c, i, r);
}
// IMUL r, r/m(reg) [, imm]: truncated signed product; CF = OF = it did not fit.
// L: kL0 = the first factor (reg, or rm with an immediate), kL1 = rm (no immediate).
template <unsigned S, bool F, bool IMM, unsigned L>
const Insn* t_imul_rr(Core& c, const Insn* i, uint64_t last) {
  const uint64_t a = rg<(L & kL0) != 0>(c, IMM ? i->rm : i->reg, last);
  const uint64_t b = IMM ? i->imm : rg<(L & kL1) != 0>(c, i->rm, last);
  uint64_t lo;
  if constexpr (!F) {
    // The low half of a product does not depend on signedness: one 64-bit multiply (GCC
    // does not narrow the 128-bit product below on its own).
    lo = trunc<S>(a * b);
  } else if constexpr (S == 8) {
    const __int128 p = static_cast<__int128>(static_cast<int64_t>(a)) * static_cast<int64_t>(b);
    lo = static_cast<uint64_t>(p);
    const bool wide = p != static_cast<__int128>(static_cast<int64_t>(lo));
    c.set_arith(flags_szp(lo, 8) | (wide ? fl::CF | fl::OF : 0));
  } else {
    const int64_t p = static_cast<int64_t>(static_cast<int32_t>(a)) * static_cast<int32_t>(b);
    lo = static_cast<uint32_t>(p);
    c.set_arith(flags_szp(lo, 4) | (p != static_cast<int32_t>(p) ? fl::CF | fl::OF : 0));
  }
  put<S>(c, i->reg, lo);  // lo is already S bytes wide on every path
  PVSIM_NEXT(c, i, lo);
}

// One-operand MUL / IMUL r (register form): rDX:rAX = rAX * r, CF = OF = the upper half is
// significant; SF/ZF/PF from the low half, as exec_alu.cpp's mul1() (the SDM leaves them
// undefined). L: kL0 = rAX, kL1 = r from `last`. Passes rDX on (the high half is what
// compilers use next: division by a constant, 128-bit products).
template <unsigned S, bool SIGNED, bool F, unsigned L>
const Insn* t_mul_r(Core& c, const Insn* i, uint64_t last) {
  const uint64_t a = trunc<S>(rg<(L & kL0) != 0>(c, 0, last));
  const uint64_t b = trunc<S>(rg<(L & kL1) != 0>(c, i->rm, last));
  uint64_t lo, hi;
  bool wide;
  if constexpr (S == 8) {
    if constexpr (SIGNED) {
      const __int128 p = static_cast<__int128>(static_cast<int64_t>(a)) * static_cast<int64_t>(b);
      lo = static_cast<uint64_t>(p);
      hi = static_cast<uint64_t>(p >> 64);
      wide = p != static_cast<__int128>(static_cast<int64_t>(lo));
    } else {
      const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
      lo = static_cast<uint64_t>(p);
      hi = static_cast<uint64_t>(p >> 64);
      wide = hi != 0;
    }
  } else {
    if constexpr (SIGNED) {
      const int64_t p = static_cast<int64_t>(static_cast<int32_t>(a)) * static_cast<int32_t>(b);
      lo = static_cast<uint32_t>(p);
      hi = static_cast<uint32_t>(static_cast<uint64_t>(p) >> 32);
      wide = p != static_cast<int32_t>(p);
    } else {
      const uint64_t p = a * b;
      lo = static_cast<uint32_t>(p);
      hi = p >> 32;
      wide = hi != 0;
    }
  }
  c.gpr[0] = lo;
  c.gpr[2] = hi;
  if constexpr (F) c.set_arith(flags_szp(lo, S) | (wide ? fl::CF | fl::OF : 0));
  PVSIM_NEXT(c, i, hi);
}

// ---------------- block terminators ----------------
// They set next_rip and return to the run loop (the sentinel after them does nothing).
// A taken branch costs one more cycle (core/README.md "Cost model"): blk_cyc0 += 1.

// Condition CC from the lazy flags without materialising them, when that is cheap;
// otherwise -1 (the caller then materialises the flags out of line).
template <unsigned CC>
PVSIM_ALWAYS_INLINE int cond_fast(const Core& c) {
  constexpr unsigned k = CC >> 1;
  bool r;
  if (c.lz.op == kLazyNone) return cond_holds(CC, c.rf);
  if (c.lz.op == kLazySub && k != 0 && k != 4 && k != 5) {
    const uint64_t a = c.lz.a, b = c.lz.b;
    if constexpr (k == 1)
      r = a < b;
    else if constexpr (k == 2)
      r = a == b;
    else if constexpr (k == 3)
      r = a <= b;
    else if constexpr (k == 6)
      r = sext(a, c.lz.size) < sext(b, c.lz.size);
    else
      r = sext(a, c.lz.size) <= sext(b, c.lz.size);
    return (CC & 1) ? !r : r;
  }
  if constexpr (k == 2) return ((CC & 1) != 0) != (c.lz.r == 0);  // ZF of any lazy op
  return -1;
}

template <unsigned CC>
const Insn* t_jcc(Core& c, const Insn* i, uint64_t);
PVSIM_ALWAYS_INLINE const Insn* jcc_exit(Core& c, const Insn* j, bool taken);
// Materialises the flags (out of line, so t_jcc itself needs no saved registers) and
// retries: the retry takes cond_fast's lz.op == kLazyNone path.
template <unsigned CC>
__attribute__((noinline)) const Insn* t_jcc_flags(Core& c, const Insn* i, uint64_t) {
  c.flags();
  return t_jcc<CC>(c, i, 0);
}
template <unsigned CC>
const Insn* t_jcc(Core& c, const Insn* i, uint64_t) {
  const int taken = cond_fast<CC>(c);
  if (taken < 0) [[unlikely]]
    return t_jcc_flags<CC>(c, i, 0);
  return jcc_exit(c, i, taken != 0);
}
// Taken / not-taken exit of a Jcc whose condition is known (t_jcc, t_cmp_jcc).
PVSIM_ALWAYS_INLINE const Insn* jcc_exit(Core& c, const Insn* j, bool taken) {
  const uint64_t fall = c.end_la(j);
  if (taken) {
    const uint64_t t = fall + j->imm;
    if (!is_canonical(t)) [[unlikely]]
      return t_generic(c, j, 0);
    c.next_rip = t;
    c.blk_cyc0 += 1;
    return chain<0>(c, j + 1);
  }
  c.next_rip = fall;
  return chain<1>(c, j + 1);
}
// jcc_exit out of line, one per direction, shared by the hundreds of fused
// compare-and-branch variants (t_cmp_jcc, t_cmpm_jcc tail-call them: one direct jump each
// way), which keeps their code small.
__attribute__((noinline)) const Insn* jcc_taken(Core& c, const Insn* j) {
  return jcc_exit(c, j, true);
}
__attribute__((noinline)) const Insn* jcc_fall(Core& c, const Insn* j) {
  return jcc_exit(c, j, false);
}
// Condition CC after CMP (a - b = r) or TEST (a & b = r) of S bytes, from the operands.
template <Op OP, unsigned S, unsigned CC>
PVSIM_ALWAYS_INLINE bool cmp_cond(uint64_t a, uint64_t b, uint64_t r) {
  constexpr unsigned k = CC >> 1;
  const bool sf = (r >> (S * 8 - 1)) & 1;
  bool t;
  if constexpr (k == 5) {
    t = (~__builtin_parity(static_cast<unsigned>(r & 0xff))) & 1;  // PF: even parity
  } else if constexpr (k == 4) {
    t = sf;
  } else if constexpr (k == 2) {
    t = r == 0;
  } else if constexpr (OP == Op::Cmp) {
    if constexpr (k == 0)
      t = (((a ^ b) & (a ^ r)) >> (S * 8 - 1)) & 1;  // OF of a - b
    else if constexpr (k == 1)
      t = a < b;
    else if constexpr (k == 3)
      t = a <= b;
    else if constexpr (k == 6)
      t = sext(a, S) < sext(b, S);
    else
      t = sext(a, S) <= sext(b, S);
  } else {  // TEST: CF = OF = 0 (SDM Vol. 2B "TEST")
    if constexpr (k == 0 || k == 1)
      t = false;
    else if constexpr (k == 3)
      t = r == 0;
    else if constexpr (k == 6)
      t = sf;
    else
      t = r == 0 || sf;
  }
  return (CC & 1) ? !t : t;
}
// CMP or TEST of registers (or a register and an immediate) followed by the Jcc that ends
// the block, in one handler, as x86 front ends fuse them into one macro-op: the condition
// comes straight from the operands rather than from the lazy flags it also writes (they
// stay observable after the block). finish_block puts the compared registers in Insn::fb
// (a) and Insn::fi (b), which register forms do not otherwise use; L: kL0 / kL1 = a / b
// from `last`. The Jcc keeps its own Insn (its end, cum and target) and, if its target is
// non-canonical, runs generically after the CMP is complete, as t_jcc would.
template <Op OP, unsigned S, bool IMM, unsigned CC, unsigned L>
const Insn* t_cmp_jcc(Core& c, const Insn* i, uint64_t last) {
  const uint64_t a = trunc<S>(rg<(L & kL0) != 0>(c, i->fb, last));
  const uint64_t b = IMM ? trunc<S>(i->imm) : trunc<S>(rg<(L & kL1) != 0>(c, i->fi, last));
  const uint64_t r = alu<OP, S, true>(c, a, b);
  return cmp_cond<OP, S, CC>(a, b, r) ? jcc_taken(c, i + 1) : jcc_fall(c, i + 1);
}
// The same with a memory operand: [mem] op imm (MI), [mem] op reg (MR) or reg op [mem]
// (RM, CMP only). A TLB miss runs the CMP generically, which then goes on to the Jcc's own
// handler. L: kL0 = the base from `last` (finish_block fuses no other forwarding here).
enum class Cm { MI, MR, RM };
template <Op OP, unsigned S, Cm F, unsigned CC, unsigned L>
const Insn* t_cmpm_jcc(Core& c, const Insn* i, uint64_t last) {
  const uint8_t* p = rd_ptr<S>(c, fea<L>(c, i, last));
  if (!p) [[unlikely]]
    return t_generic(c, i, last);
  const uint64_t m = load_le(p, S);
  const uint64_t o = F == Cm::MI ? trunc<S>(i->imm) : trunc<S>(c.gpr[i->reg]);
  const uint64_t a = F == Cm::RM ? o : m, b = F == Cm::RM ? m : o;
  const uint64_t r = alu<OP, S, true>(c, a, b);
  return cmp_cond<OP, S, CC>(a, b, r) ? jcc_taken(c, i + 1) : jcc_fall(c, i + 1);
}
// A direct JMP the block continues through (Core::decode_block): its target is the next
// Insn, and its taken-branch cycle is in the static costs (finish_block).
const Insn* t_jmp_followed(Core& c, const Insn* i, uint64_t last) {
  PVSIM_NEXT(c, i, last);
}
const Insn* t_jmp(Core& c, const Insn* i, uint64_t) {
  const uint64_t t = c.end_la(i) + i->imm;
  if (!is_canonical(t)) [[unlikely]]
    return t_generic(c, i, 0);
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<0>(c, i + 1);
}
template <bool MEM>
const Insn* t_jmp_ind(Core& c, const Insn* i, uint64_t) {
  uint64_t t;
  if constexpr (MEM) {
    const uint8_t* p = rd_ptr<8>(c, fea(c, i));
    if (!p) [[unlikely]]
      return t_generic(c, i, 0);
    t = load_le(p, 8);
  } else {
    t = c.gpr[i->rm];
  }
  if (!is_canonical(t)) [[unlikely]]
    return t_generic(c, i, 0);
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<-1>(c, i + 1);
}
const Insn* t_call(Core& c, const Insn* i, uint64_t) {
  const uint64_t ret = c.end_la(i);
  const uint64_t t = ret + i->imm;
  const uint64_t sp = c.gpr[4] - 8;
  uint8_t* p = wr_ptr<8>(c, sp);
  if (!p || !is_canonical(t)) [[unlikely]]
    return t_generic(c, i, 0);
  store_le(p, 8, ret);
  c.gpr[4] = sp;
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<0>(c, i + 1);
}
const Insn* t_ret(Core& c, const Insn* i, uint64_t) {
  const uint8_t* p = rd_ptr<8>(c, c.gpr[4]);
  if (!p) [[unlikely]]
    return t_generic(c, i, 0);
  const uint64_t t = load_le(p, 8);
  if (!is_canonical(t)) [[unlikely]]
    return t_generic(c, i, 0);
  c.gpr[4] += 8;
  c.next_rip = t;
  c.blk_cyc0 += 1;
  return chain<-1>(c, i + 1);
}

// ---------------- selection ----------------

// What the liveness pass needs to know about an instruction's arithmetic flags.
enum class FlagUse : uint8_t {
  Observe,   // reads them, or may leave the block (fallback, fault, generic handler)
  Neutral,   // register-only, neither reads nor writes them, cannot leave the block
  WriteAll,  // register-only, writes all six without reading them, cannot leave the block
  Modify,    // register-only, writes some and keeps the others, cannot leave the block
};
// What a handler passes on as `last` (Pick::out): 0..15 = the new value of that register.
constexpr uint8_t kOutPass = 0xfe;  // writes no general register: passes `last` through
constexpr uint8_t kOutNone = 0xff;  // anything else: the next handler forwards nothing
constexpr uint8_t kNoSrc = 16;      // Pick::src: no register operand for that bit

// Handler variants, indexed by the operand-from-`last` bits (kL0..kL2).
#define PVSIM_V2(h, ...) {h<__VA_ARGS__, 0>, h<__VA_ARGS__, 1>}
#define PVSIM_V4(h, ...) {h<__VA_ARGS__, 0>, h<__VA_ARGS__, 1>, h<__VA_ARGS__, 2>, h<__VA_ARGS__, 3>}
#define PVSIM_V8(h, ...)                                                                            \
  {h<__VA_ARGS__, 0>, h<__VA_ARGS__, 1>, h<__VA_ARGS__, 2>, h<__VA_ARGS__, 3>, h<__VA_ARGS__, 4>, \
   h<__VA_ARGS__, 5>, h<__VA_ARGS__, 6>, h<__VA_ARGS__, 7>}
constexpr Threaded kGeneric[1] = {t_generic};
template <Op OP, unsigned S, bool F, bool GDST>
constexpr Threaded kAluRR[4] = PVSIM_V4(t_alu_rr, OP, S, F, GDST);
template <Op OP, unsigned S, bool F>
constexpr Threaded kAluRI[2] = PVSIM_V2(t_alu_ri, OP, S, F);
template <Op OP, unsigned S>
constexpr Threaded kAluRM[8] = PVSIM_V8(t_alu_rm, OP, S);
template <Op OP, unsigned S>
constexpr Threaded kAluMX[8] = PVSIM_V8(t_alu_mx, OP, S, false);
// Immediate forms have no register operand, so no kL2 variants.
template <Op OP, unsigned S>
constexpr Threaded kAluMXI[4] = PVSIM_V4(t_alu_mx, OP, S, true);
template <unsigned S, bool GDST>
constexpr Threaded kMovRR[2] = PVSIM_V2(t_mov_rr, S, GDST);
template <unsigned S, unsigned SRC, bool SX>
constexpr Threaded kLoad[4] = PVSIM_V4(t_load, S, SRC, SX);
template <unsigned S, unsigned SRC, bool SX>
constexpr Threaded kExtRR[2] = PVSIM_V2(t_ext_rr, S, SRC, SX);
template <unsigned S>
constexpr Threaded kStore[8] = PVSIM_V8(t_store, S, false);
template <unsigned S>
constexpr Threaded kStoreI[4] = PVSIM_V4(t_store, S, true);
template <unsigned S>
constexpr Threaded kMovRI[1] = {t_mov_ri<S>};
template <unsigned S>
constexpr Threaded kLea[4] = PVSIM_V4(t_lea, S);
constexpr Threaded kNop[1] = {t_nop};
constexpr Threaded kPush[2] = {t_push<0>, t_push<1>};
constexpr Threaded kPop[1] = {t_pop};
template <Sh K, unsigned S, bool F>
constexpr Threaded kShift[2] = PVSIM_V2(t_shift_ri, K, S, F);
template <unsigned S, bool F, bool IMM>
constexpr Threaded kImul[4] = PVSIM_V4(t_imul_rr, S, F, IMM);
template <unsigned S, bool SIGNED, bool F>
constexpr Threaded kMul[4] = PVSIM_V4(t_mul_r, S, SIGNED, F);
template <std::size_t... K>
constexpr auto make_jcc(std::index_sequence<K...>) {
  return std::array<std::array<Threaded, 1>, 16>{{{t_jcc<K>}...}};
}
template <unsigned S, std::size_t... K>
constexpr auto make_cmov(std::index_sequence<K...>) {
  return std::array<std::array<Threaded, 1>, 16>{{{t_cmov_rr<S, K>}...}};
}
template <std::size_t... K>
constexpr auto make_setcc(std::index_sequence<K...>) {
  return std::array<std::array<Threaded, 1>, 16>{{{t_setcc_r<K>}...}};
}
constexpr auto kJcc = make_jcc(std::make_index_sequence<16>{});
constexpr auto kCmov4 = make_cmov<4>(std::make_index_sequence<16>{});
constexpr auto kCmov8 = make_cmov<8>(std::make_index_sequence<16>{});
constexpr auto kSetcc = make_setcc(std::make_index_sequence<16>{});
// Fused compare-and-branch variants of one CMP/TEST form: by the Jcc's condition code and
// the CMP/TEST's from-`last` bits (all 8; bits a variant does not use are read from the
// register file, which always holds the same value).
using FuseTable = std::array<std::array<Threaded, 8>, 16>;
template <Op OP, unsigned S, bool IMM, std::size_t... K>
constexpr FuseTable make_cmp_jcc(std::index_sequence<K...>) {
  constexpr unsigned m = IMM ? kL0 : kL0 | kL1;  // the compared registers
  return {{{t_cmp_jcc<OP, S, IMM, K, 0 & m>, t_cmp_jcc<OP, S, IMM, K, 1 & m>, t_cmp_jcc<OP, S, IMM, K, 2 & m>,
            t_cmp_jcc<OP, S, IMM, K, 3 & m>, t_cmp_jcc<OP, S, IMM, K, 4 & m>, t_cmp_jcc<OP, S, IMM, K, 5 & m>,
            t_cmp_jcc<OP, S, IMM, K, 6 & m>, t_cmp_jcc<OP, S, IMM, K, 7 & m>}...}};
}
template <Op OP, unsigned S, bool IMM>
constexpr FuseTable kCmpJcc = make_cmp_jcc<OP, S, IMM>(std::make_index_sequence<16>{});
template <Op OP, unsigned S, Cm F, std::size_t... K>
constexpr FuseTable make_cmpm_jcc(std::index_sequence<K...>) {
  // Only the base comes from `last` (t_cmpm_jcc): variant kL0 & bits.
  return {{{t_cmpm_jcc<OP, S, F, K, 0>, t_cmpm_jcc<OP, S, F, K, 1>, t_cmpm_jcc<OP, S, F, K, 0>,
            t_cmpm_jcc<OP, S, F, K, 1>, t_cmpm_jcc<OP, S, F, K, 0>, t_cmpm_jcc<OP, S, F, K, 1>,
            t_cmpm_jcc<OP, S, F, K, 0>, t_cmpm_jcc<OP, S, F, K, 1>}...}};
}
template <Op OP, unsigned S, Cm F>
constexpr FuseTable kCmpmJcc = make_cmpm_jcc<OP, S, F>(std::make_index_sequence<16>{});
constexpr Threaded kJmp[1] = {t_jmp};
constexpr Threaded kJmpFollowed[1] = {t_jmp_followed};
constexpr Threaded kJmpInd[2][1] = {{t_jmp_ind<false>}, {t_jmp_ind<true>}};
constexpr Threaded kCall[1] = {t_call};
constexpr Threaded kRet[1] = {t_ret};
#undef PVSIM_V2
#undef PVSIM_V4
#undef PVSIM_V8

struct Pick {
  const Threaded* with_flags = kGeneric;  // variants, indexed by the from-`last` bits
  const Threaded* without_flags = nullptr;  // set for WriteAll picks
  FlagUse use = FlagUse::Observe;
  uint8_t src[3] = {kNoSrc, kNoSrc, kNoSrc};  // the register read under each from-`last` bit
  uint8_t out = kOutNone;                      // what the handler passes on as `last`
  // CMP/TEST: its fused compare-and-branch variants, used when it comes right before the
  // block's Jcc (finish_block); fuse_regs: a register form, whose compared registers
  // (src[0], src[1]) go to Insn::fb / fi for t_cmp_jcc.
  const FuseTable* fuse = nullptr;
  bool fuse_regs = false;
};

// A register-only form: operands s0 (kL0) and s1 (kL1), result in `out` (or kOutPass).
Pick reg_form(const Threaded* wf, const Threaded* nf, FlagUse use, uint8_t s0, uint8_t s1, uint8_t out) {
  return {wf, nf, use, {s0, s1, kNoSrc}, out};
}
// A plain memory form: base (kL0), index (kL1) and an optional register operand (kL2).
Pick mem_form(const Threaded* t, const Insn& in, uint8_t reg_src, uint8_t out) {
  return {t, nullptr, FlagUse::Observe, {in.fb, in.fi, reg_src}, out};
}

template <Op OP, unsigned S>
Pick pick_alu_rr(const Insn& in, bool gdst) {
  const uint8_t d = gdst ? in.reg : in.rm, s = gdst ? in.rm : in.reg;
  const uint8_t out = writes_result(OP) ? d : kOutPass;
  if (gdst) return reg_form(kAluRR<OP, S, true, true>, kAluRR<OP, S, false, true>, FlagUse::WriteAll, d, s, out);
  return reg_form(kAluRR<OP, S, true, false>, kAluRR<OP, S, false, false>, FlagUse::WriteAll, d, s, out);
}
template <Op OP, unsigned S>
Pick pick_alu_s(const Insn& in, bool e_form, bool g_form, bool imm_form) {
  constexpr bool compare = !writes_result(OP);
  const uint8_t out = writes_result(OP) ? in.reg : kOutPass;
  Pick p;
  if (in.mod3() || (!e_form && !g_form && imm_form)) {  // register forms (rAX forms: rm = 0)
    if (imm_form) {
      p = reg_form(kAluRI<OP, S, true>, kAluRI<OP, S, false>, FlagUse::WriteAll, in.rm, kNoSrc,
                   writes_result(OP) ? in.rm : kOutPass);
      if constexpr (compare) p.fuse = &kCmpJcc<OP, S, true>;
    } else {
      p = pick_alu_rr<OP, S>(in, g_form);
      if constexpr (compare) p.fuse = &kCmpJcc<OP, S, false>;
    }
    p.fuse_regs = true;
    return p;
  }
  if (imm_form) {
    p = mem_form(kAluMXI<OP, S>, in, kNoSrc, kOutPass);
    if constexpr (compare) p.fuse = &kCmpmJcc<OP, S, Cm::MI>;
  } else if (g_form) {
    p = mem_form(kAluRM<OP, S>, in, in.reg, out);
    if constexpr (OP == Op::Cmp) p.fuse = &kCmpmJcc<OP, S, Cm::RM>;  // TEST has no G form
  } else {
    p = mem_form(kAluMX<OP, S>, in, in.reg, kOutPass);
    if constexpr (compare) p.fuse = &kCmpmJcc<OP, S, Cm::MR>;
  }
  return p;
}
template <Op OP>
Pick pick_alu(const Insn& in, bool e_form, bool g_form, bool imm_form) {
  if (in.osz == 8) return pick_alu_s<OP, 8>(in, e_form, g_form, imm_form);
  if (in.osz == 4) return pick_alu_s<OP, 4>(in, e_form, g_form, imm_form);
  return {};
}

template <Sh K>
Pick pick_shift(const Insn& in) {
  if (!in.mod3() || (in.osz != 4 && in.osz != 8)) return {};
  if ((in.imm & (in.osz == 8 ? 63 : 31)) == 0) return {};  // count 0: flags unchanged
  const bool w = in.osz == 8;
  if constexpr (K == Sh::Rol || K == Sh::Ror)
    return w ? reg_form(kShift<K, 8, true>, kShift<K, 8, false>, FlagUse::Modify, in.rm, kNoSrc, in.rm)
             : reg_form(kShift<K, 4, true>, kShift<K, 4, false>, FlagUse::Modify, in.rm, kNoSrc, in.rm);
  return w ? reg_form(kShift<K, 8, true>, kShift<K, 8, false>, FlagUse::WriteAll, in.rm, kNoSrc, in.rm)
           : reg_form(kShift<K, 4, true>, kShift<K, 4, false>, FlagUse::WriteAll, in.rm, kNoSrc, in.rm);
}

constexpr Pick neutral(const Threaded* t, uint8_t s0, uint8_t out) {
  return {t, nullptr, FlagUse::Neutral, {s0, kNoSrc, kNoSrc}, out};
}
constexpr Pick plain(const Threaded* t) {
  return {t, nullptr, FlagUse::Observe, {kNoSrc, kNoSrc, kNoSrc}, kOutNone};
}
// A followed JMP: no flags, no registers, cannot leave the block.
constexpr Pick kFollowPick = {kJmpFollowed, nullptr, FlagUse::Neutral, {kNoSrc, kNoSrc, kNoSrc}, kOutPass};

// The threaded handler for one decoded instruction. Memory specialisations need a plain
// operand (64-bit addressing, no FS/GS, not RIP-relative); byte-register forms are left
// to the generic handler (AH..BH need the REX rules of Core::getr).
Pick pick(const Insn& in) {
  const auto id = static_cast<OpId>(in.id);
  const bool mem = !in.mod3();
  const bool plain_mem = mem && in.asz == 8 && in.seg == 0 && in.base != kRegRip;
  if (mem && !plain_mem) {
    // LEA ignores segments but still needs the RIP / 32-bit address rules: generic.
    return {};
  }
  const bool w = in.osz == 8, d = in.osz == 4;
  switch (id) {
#define PVSIM_PICK_ALU(N, OP)                    \
  case OpId::N##_EvGv:                           \
    return pick_alu<OP>(in, true, false, false); \
  case OpId::N##_GvEv:                           \
    return pick_alu<OP>(in, false, true, false); \
  case OpId::N##_EvIz:                           \
  case OpId::N##_EvIb:                           \
    return pick_alu<OP>(in, true, false, true);  \
  case OpId::N##_rAXIz:                          \
    return pick_alu<OP>(in, false, false, true);
    PVSIM_PICK_ALU(ADD, Op::Add)
    PVSIM_PICK_ALU(SUB, Op::Sub)
    PVSIM_PICK_ALU(AND, Op::And)
    PVSIM_PICK_ALU(OR, Op::Or)
    PVSIM_PICK_ALU(XOR, Op::Xor)
    PVSIM_PICK_ALU(CMP, Op::Cmp)
#undef PVSIM_PICK_ALU
    case OpId::TEST_EvGv:
      return pick_alu<Op::Test>(in, true, false, false);
    case OpId::TEST_rAXIz:
      return pick_alu<Op::Test>(in, false, false, true);
    case OpId::TEST_EvIz:
      return pick_alu<Op::Test>(in, true, false, true);
    case OpId::CMP_EbIb:
      if (mem) {
        Pick p = mem_form(kAluMXI<Op::Cmp, 1>, in, kNoSrc, kOutPass);
        p.fuse = &kCmpmJcc<Op::Cmp, 1, Cm::MI>;
        return p;
      }
      return {};
    case OpId::MOV_EvGv:
      if (!w && !d) return {};
      if (mem) return mem_form(w ? kStore<8> : kStore<4>, in, in.reg, kOutPass);
      return neutral(w ? kMovRR<8, false> : kMovRR<4, false>, in.reg, in.rm);
    case OpId::MOV_GvEv:
      if (!w && !d) return {};
      if (mem) return mem_form(w ? kLoad<8, 8, false> : kLoad<4, 4, false>, in, kNoSrc, in.reg);
      return neutral(w ? kMovRR<8, true> : kMovRR<4, true>, in.rm, in.reg);
    case OpId::MOV_EbGb:
      // A byte store of a low register (with REX any of the 16; without, AL..BL only).
      if (mem && ((in.pfx & P_REX) || in.reg < 4)) return mem_form(kStore<1>, in, in.reg, kOutPass);
      return {};
    case OpId::MOV_EbIb:
      if (mem) return mem_form(kStoreI<1>, in, kNoSrc, kOutPass);
      return {};
    case OpId::MOV_EvIz:
      if (!w && !d) return {};
      if (mem) return mem_form(w ? kStoreI<8> : kStoreI<4>, in, kNoSrc, kOutPass);
      return neutral(w ? kMovRI<8> : kMovRI<4>, kNoSrc, in.rm);
    case OpId::MOV_rvIv: {
      if (!w && !d) return {};
      // The register is in the opcode (Insn::reg); t_mov_ri writes Insn::rm.
      return neutral(w ? kMovRI<8> : kMovRI<4>, kNoSrc, in.rm);
    }
#define PVSIM_PICK_EXT(N, SRC, SX, REGOK)                                                     \
  case OpId::N:                                                                               \
    if (!w && !d) return {};                                                                  \
    if (mem) return mem_form(w ? kLoad<8, SRC, SX> : kLoad<4, SRC, SX>, in, kNoSrc, in.reg); \
    if (REGOK) return neutral(w ? kExtRR<8, SRC, SX> : kExtRR<4, SRC, SX>, in.rm, in.reg);   \
    return {};
      PVSIM_PICK_EXT(MOVZX_GvEb, 1, false, (in.pfx & P_REX) || in.rm < 4)
      PVSIM_PICK_EXT(MOVZX_GvEw, 2, false, true)
      PVSIM_PICK_EXT(MOVSX_GvEb, 1, true, (in.pfx & P_REX) || in.rm < 4)
      PVSIM_PICK_EXT(MOVSX_GvEw, 2, true, true)
#undef PVSIM_PICK_EXT
    case OpId::MOVSXD_GvEd:
      if (!w) return {};
      if (mem) return mem_form(kLoad<8, 4, true>, in, kNoSrc, in.reg);
      return neutral(kExtRR<8, 4, true>, in.rm, in.reg);
    case OpId::LEA_GvM: {
      if (!w && !d) return {};
      Pick p = mem_form(w ? kLea<8> : kLea<4>, in, kNoSrc, in.reg);
      p.use = FlagUse::Neutral;
      return p;
    }
    case OpId::NOP_Ev:
      return {kNop, nullptr, FlagUse::Neutral, {kNoSrc, kNoSrc, kNoSrc}, kOutPass};
    case OpId::PUSH_rv:
      if (!w) return {};
      return {kPush, nullptr, FlagUse::Observe, {in.reg, kNoSrc, kNoSrc}, kOutNone};
    case OpId::POP_rv:
      return w ? plain(kPop) : Pick{};
    case OpId::CMOVcc_GvEv:
      if (mem || (!w && !d)) return {};
      return plain(w ? kCmov8[in.cond].data() : kCmov4[in.cond].data());
    case OpId::SETcc_Eb:
      if (mem || !((in.pfx & P_REX) || in.rm < 4)) return {};
      return plain(kSetcc[in.cond].data());
    case OpId::SHL_EvIb:
    case OpId::SAL_EvIb:
      return pick_shift<Sh::Shl>(in);
    case OpId::SHR_EvIb:
      return pick_shift<Sh::Shr>(in);
    case OpId::SAR_EvIb:
      return pick_shift<Sh::Sar>(in);
    case OpId::ROL_EvIb:
      return pick_shift<Sh::Rol>(in);
    case OpId::ROR_EvIb:
      return pick_shift<Sh::Ror>(in);
    case OpId::IMUL_GvEv:
      if (mem || (!w && !d)) return {};
      return w ? reg_form(kImul<8, true, false>, kImul<8, false, false>, FlagUse::WriteAll, in.reg, in.rm, in.reg)
               : reg_form(kImul<4, true, false>, kImul<4, false, false>, FlagUse::WriteAll, in.reg, in.rm, in.reg);
    case OpId::IMUL_GvEvIz:
    case OpId::IMUL_GvEvIb:
      if (mem || (!w && !d)) return {};
      return w ? reg_form(kImul<8, true, true>, kImul<8, false, true>, FlagUse::WriteAll, in.rm, kNoSrc, in.reg)
               : reg_form(kImul<4, true, true>, kImul<4, false, true>, FlagUse::WriteAll, in.rm, kNoSrc, in.reg);
    case OpId::MUL_Ev:
    case OpId::IMUL_Ev: {
      if (mem || (!w && !d)) return {};
      const bool sg = id == OpId::IMUL_Ev;
      if (w)
        return sg ? reg_form(kMul<8, true, true>, kMul<8, true, false>, FlagUse::WriteAll, 0, in.rm, 2)
                  : reg_form(kMul<8, false, true>, kMul<8, false, false>, FlagUse::WriteAll, 0, in.rm, 2);
      return sg ? reg_form(kMul<4, true, true>, kMul<4, true, false>, FlagUse::WriteAll, 0, in.rm, 2)
                : reg_form(kMul<4, false, true>, kMul<4, false, false>, FlagUse::WriteAll, 0, in.rm, 2);
    }
    case OpId::Jcc_Jb:
    case OpId::Jcc_Jz:
      return plain(kJcc[in.cond].data());
    case OpId::JMP_Jb:
    case OpId::JMP_Jz:
      return plain(kJmp);
    case OpId::JMP_Ev:
      return plain(kJmpInd[mem ? 1 : 0]);
    case OpId::CALL_Jz:
      return plain(kCall);
    case OpId::RET:
      return plain(kRet);
    default:
      return {};
  }
}

bool is_jcc(const Insn& in) {
  const auto id = static_cast<OpId>(in.id);
  return id == OpId::Jcc_Jb || id == OpId::Jcc_Jz;
}

}  // namespace

void Core::finish_block(Block& b, unsigned n) {
  Pick picks[kBlockMaxInsns];
  uint8_t from_last[kBlockMaxInsns];
  uint32_t cum = 0;
  uint8_t lr = 16;  // the register whose value the next handler receives as `last`
  for (unsigned k = 0; k < n; ++k) {
    Insn& in = b.insns[k];
    // A followed JMP (decode_block) is never the block's last instruction; if decoding
    // stopped right after one, it ends the block as an ordinary JMP.
    if (in.followed && k + 1 == n) in.followed = false;
    cum += in.cost + (in.followed ? 1 : 0);  // its taken-branch cycle is static
    in.cum = cum;
    in.fb = in.base < 16 ? in.base : 16;
    in.fi = in.index < 16 ? in.index : 16;
    if (in.id == static_cast<uint16_t>(OpId::MOV_rvIv)) in.rm = in.reg;  // see pick()
    const Pick& p = picks[k] = in.followed ? kFollowPick : in.id ? pick(in) : Pick{};
    // Operands the previous handler passed on (register forwarding, Threaded): only when
    // it is known which register `last` holds.
    uint8_t bits = 0;
    if (lr < 16)
      for (unsigned bit = 0; bit < 3; ++bit)
        if (p.src[bit] == lr) bits |= static_cast<uint8_t>(1u << bit);
    from_last[k] = bits;
    in.lr = lr;
    lr = p.out < 16 ? p.out : (p.out == kOutPass ? lr : 16);
  }
  // Flag liveness, backwards: the flags are observable after the block and at every
  // instruction that reads them or may leave the block.
  bool live = true;
  for (unsigned k = n; k-- > 0;) {
    Insn& in = b.insns[k];
    const Pick& p = picks[k];
    in.tfn = p.with_flags[from_last[k]];
    switch (p.use) {
      case FlagUse::WriteAll:
        if (!live && p.without_flags) in.tfn = p.without_flags[from_last[k]];
        live = false;
        break;
      case FlagUse::Modify:  // dead after it: skip it all (it then neither reads nor writes)
        if (!live && p.without_flags)
          in.tfn = p.without_flags[from_last[k]];
        else
          live = true;
        break;
      case FlagUse::Neutral:
        break;
      case FlagUse::Observe:
        live = true;
        break;
    }
  }
  // Compare-and-branch fusion (t_cmp_jcc, t_cmpm_jcc): a CMP/TEST right before the Jcc
  // that ends the block.
  if (n >= 2 && is_jcc(b.insns[n - 1]) && picks[n - 2].fuse) {
    Insn& in = b.insns[n - 2];
    const Pick& p = picks[n - 2];
    if (p.fuse_regs) {
      in.fb = p.src[0];
      in.fi = p.src[1];
    }
    in.tfn = (*p.fuse)[b.insns[n - 1].cond][from_last[n - 2]];
  }
  Insn& s = b.insns[n];
  s = Insn{};
  s.end = n > 0 ? b.insns[n - 1].end : 0;
  s.cum = cum;
  s.lr = 16;
  s.tfn = (n > 0 && insn_ends_block(b.insns[n - 1])) ? t_end_term : t_end;
  b.count = n;
  b.total = cum;
}

}  // namespace pvsim::cpu
