// tests/oracle/flag_rules.h — the ONE table of architecturally undefined results.
//
// The oracle compares every RFLAGS bit and every destination exactly, except what the
// SDM (Vol. 2, each instruction's "Flags Affected" / "Operation") calls undefined. Unicorn
// (QEMU TCG) and real CPUs compute undefined bits in their own ways, so comparing them
// would only measure the oracle. "Unaffected" is NOT undefined: those flags must be kept
// and are compared.
//
//   rule         instructions                      undefined                       SDM Vol. 2
//   AllDefined   ADD ADC SUB SBB CMP NEG INC DEC   —                               ADD, SUB, INC...
//                XADD CMPXCHG NOT POPCNT CMOVcc                                     POPCNT: all
//                SETcc MOVZX MOVSX(D) BSWAP XCHG                                    six written
//                LEA CBW.. CQO
//   Logic        AND OR XOR TEST                   AF                              AND "Flags Affected"
//   Mul          MUL IMUL (1/2/3 operands)         SF ZF AF PF                     MUL, IMUL
//   Div          DIV IDIV                          CF OF SF ZF AF PF               DIV, IDIV
//   ShlShr       SHL SHR        count c≠0:         AF; OF if c≠1; CF if c≥width    SAL/SAR/SHL/SHR
//   Sar          SAR            count c≠0:         AF; OF if c≠1                   SAL/SAR/SHL/SHR
//                               count c=0: nothing (flags unaffected)
//   Rotate       ROL ROR RCL RCR                   OF if masked count ≠1 and ≠0    RCL/RCR/ROL/ROR
//                (SF ZF AF PF are unaffected; CF is written whenever the masked count ≠0)
//   DoubleShift  SHLD SHRD      count c≠0:         AF; OF if c≠1                   SHLD, SHRD
//                               c > width (16-bit forms only): all six AND the destination
//   BitTest      BT BTS BTR BTC                    OF SF AF PF (ZF unaffected)     BT "Flags Affected"
//   BitScan      BSF BSR                           CF OF SF AF PF; destination     BSF, BSR
//                                                  when the source is 0
//   CountZeros   TZCNT LZCNT                       OF SF AF PF                     TZCNT, LZCNT
//   Daa          DAA DAS (legacy modes only)       OF                              DAA, DAS
//   Aaa          AAA AAS                           OF SF ZF PF                     AAA, AAS
//   Aam          AAM AAD                           OF AF CF                        AAM, AAD
//                SALC (undocumented, AL := CF ? FF : 0) writes no flag: AllDefined
//                PUSH POP MOV and the string instructions: AllDefined (CMPS/SCAS
//                write all six like SUB)
//
// "count c" is the count after the CPU's mask (5 bits, 6 bits with REX.W).
// Forms whose result is undefined for every input are not generated: BSWAP r16 (SDM
// BSWAP: "the result is undefined"), SAL /6 (undocumented alias).
#pragma once
#include <cstdint>

namespace pvsim::oracle {

constexpr uint64_t kCF = 1u << 0, kPF = 1u << 2, kAF = 1u << 4, kZF = 1u << 6, kSF = 1u << 7,
                   kOF = 1u << 11;
constexpr uint64_t kArithFlags = kCF | kPF | kAF | kZF | kSF | kOF;

enum class FlagRule : uint8_t {
  AllDefined,
  Logic,
  Mul,
  Div,
  ShlShr,
  Sar,
  Rotate,
  DoubleShift,
  BitTest,
  BitScan,
  CountZeros,
  Daa,
  Aaa,
  Aam,
};

struct Undefined {
  uint64_t flags = 0;  // RFLAGS bits excluded from the comparison
  bool dest = false;   // the destination's low `width` bits are excluded too
};

// width: operand size in bits; raw_count: the count operand before masking (shifts);
// source: the source operand value (BSF/BSR).
constexpr Undefined undefined_for(FlagRule rule, unsigned width, unsigned raw_count,
                                  uint64_t source) {
  const unsigned c = raw_count & (width == 64 ? 63u : 31u);
  switch (rule) {
    case FlagRule::AllDefined: return {};
    case FlagRule::Logic: return {kAF, false};
    case FlagRule::Mul: return {kSF | kZF | kAF | kPF, false};
    case FlagRule::Div: return {kArithFlags, false};
    case FlagRule::ShlShr:
      if (c == 0) return {};
      return {kAF | (c != 1 ? kOF : 0) | (c >= width ? kCF : 0), false};
    case FlagRule::Sar:
      if (c == 0) return {};
      return {kAF | (c != 1 ? kOF : 0), false};
    case FlagRule::Rotate: return {(c > 1) ? kOF : 0, false};
    case FlagRule::DoubleShift:
      if (c == 0) return {};
      if (c > width) return {kArithFlags, true};
      return {kAF | (c != 1 ? kOF : 0), false};
    case FlagRule::BitTest: return {kOF | kSF | kAF | kPF, false};
    case FlagRule::BitScan: return {kCF | kOF | kSF | kAF | kPF, source == 0};
    case FlagRule::CountZeros: return {kOF | kSF | kAF | kPF, false};
    case FlagRule::Daa: return {kOF, false};
    case FlagRule::Aaa: return {kOF | kSF | kZF | kPF, false};
    case FlagRule::Aam: return {kOF | kAF | kCF, false};
  }
  return {kArithFlags, true};
}

}  // namespace pvsim::oracle
