// tests/oracle/form.h — what one instruction form is, and how a random instance of it is
// encoded (the oracle's own small x86-64 encoder; independent of the core's decoder on
// purpose, so a shared misunderstanding cannot hide a bug).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tests/oracle/flag_rules.h"
#include "tests/oracle/rng.h"

namespace pvsim::oracle {

// Operand shapes, in SDM Vol. 2 Appendix A notation.
enum class Operands : uint8_t {
  EG,     // ModRM rm = first operand, reg = second (ADD Ev,Gv)
  GE,     // reg = first, rm = second (ADD Gv,Ev; IMUL Gv,Ev; MOVZX Gv,Eb; LEA Gv,M)
  E,      // rm only, reg field = opcode extension (NEG Ev; SHL Ev,1/CL; SETcc Eb)
  EI,     // rm + immediate, reg field = extension (ADD Ev,Ib; SHL Ev,Ib; BT Ev,Ib)
  GEI,    // reg, rm, immediate (IMUL Gv,Ev,Iz)
  EGI,    // rm, reg, immediate (SHLD Ev,Gv,Ib)
  AccI,   // AL/AX/EAX/RAX, immediate, no ModRM (ADD eAX,Iz)
  OpReg,  // register in the opcode's low 3 bits (+REX.B): BSWAP, XCHG rAX,r
  None,   // implicit operands only (CBW, CQO); an immediate if imm_bytes (PUSH Iz, AAM Ib)
  Moffs,  // MOV AL/eAX <-> moffs (A0-A3): an address-size absolute offset, no ModRM
};

// The code mode a form is encoded for and run in (SDM Vol. 3A §5.2.1): 64-bit mode
// (long_mode.h), 32-bit protected mode with flat 4 GiB segments and paging off, or real
// mode (16-bit defaults, segment base = selector << 4). See harness.cpp "Modes".
enum class CpuMode : uint8_t { Long64, Prot32, Real16 };
const char* mode_name(CpuMode m);

enum class ImmKind : uint8_t { Value, Count };

// Where the expected result comes from. Unicorn unless a documented quirk in
// harness.cpp ("Oracle quirks") says it cannot be trusted for the form.
enum class Reference : uint8_t {
  Unicorn,
  PopcntModel,  // Unicorn 2.0.1 masks CPUID.01H:ECX.POPCNT for every CPU model: #UD
};

// Per-case constraints the harness applies to the random input state.
enum class Special : uint8_t {
  None,
  CountCl,       // the count is CL: bias CL to the count edge values
  Div,           // DIV: RDX:RAX / rm, bias to non-faulting inputs
  Idiv,          // IDIV, same, signed
  Cmpxchg,       // bias the accumulator to equal the destination
  BitOffsetReg,  // BT* Ev,Gv memory form: the register is a signed bit offset
  Stack,         // PUSH/POP: the stack pointer points into the data window
  String,        // MOVS..SCAS: rSI/rDI into the window, a small rCX, random DF
  Aam,           // AAM Ib: an immediate of 0 raises #DE (SDM AAM)
};

struct Form {
  std::string name;
  std::vector<uint8_t> opcode;  // without prefixes; OpReg: low 3 bits of the last byte are 0
  uint8_t mandatory = 0;        // 0xf3 / 0xf2 mandatory prefix, 0 = none
  Operands ops = Operands::EG;
  uint8_t ext = 0;              // ModRM.reg for E/EI forms; 0xff = random (SETcc ignores it)
  unsigned opsize = 32;         // operand size: decides 0x66 / REX.W
  unsigned rm_bits = 32;        // width of the rm operand (differs for MOVZX/MOVSX/MOVSXD)
  unsigned reg_bits = 32;       // width of the reg/opcode-register operand
  unsigned imm_bytes = 0;       // 0, 1, 2, 4
  ImmKind imm_kind = ImmKind::Value;
  bool mem = false;             // rm is memory (else register)
  bool lea = false;             // memory form without a memory access
  bool addr32 = false;          // 64-bit mode: 0x67 address-size override (32-bit addresses)
  CpuMode mode = CpuMode::Long64;
  unsigned asize = 64;          // address size: 64, 32 or 16 (16-bit ModRM, Table 2-1);
                                // a 67 prefix is emitted when it differs from the mode's default
  uint8_t rep = 0;              // 0xf3 / 0xf2 REP prefix of a string form, 0 = none
  FlagRule flags = FlagRule::AllDefined;
  Special special = Special::None;
  Reference reference = Reference::Unicorn;
};

// One concrete encoding of a form at a code address.
struct Encoded {
  uint8_t bytes[16] = {};
  unsigned len = 0;
  uint64_t addr = 0;  // where it is placed (RIP)
  bool rex = false;   // a REX prefix is present (selects SPL..DIL over AH..BH)
  int reg = -1;       // ModRM.reg / opcode register operand, -1 when none
  int rm = -1;        // register form: ModRM.rm register
  // Memory form.
  int base = -1;      // -1: no base (SIB base=101 with mod 00, or RIP-relative)
  int index = -1;     // -1: no index
  unsigned scale = 1;
  int64_t disp = 0;
  bool rip_rel = false;
  bool absolute = false;  // [disp32] / [disp16] / moffs: no base, no index
  uint64_t fixed_ea = 0;  // RIP-relative / absolute: the linear address baked into disp
  unsigned disp_offset = 0;  // where the displacement starts in bytes[]
  uint64_t imm = 0;       // immediate as encoded (zero-extended)
};

// Data window shared by both engines; memory operands always land inside it.
constexpr uint64_t kDataBase = 0x200000;
constexpr uint64_t kDataSize = 0x2000;
// Code pool: one 32-byte slot per encoding, each followed by HLT so Unicorn's
// translation blocks end right after the instruction under test.
constexpr uint64_t kCodeBase = 0x400000;
constexpr uint64_t kSlotSize = 32;
// Outside 64-bit mode the data window sits below 64 KiB so 16-bit addresses
// (SDM Vol. 2A Table 2-1) reach it; real-mode code runs at CS = kRealCs.
constexpr uint64_t kLegacyDataBase = 0x8000;
constexpr uint16_t kRealCs = 0x3000;   // CS.base 0x30000: the pool is IP 0..0xffff
constexpr uint16_t kRealDs = 0x0080;   // DS = ES = SS = FS = GS, base 0x800

// Where a mode keeps its code pool and data window, and the data segments' base (the
// linear address of offset 0; flat 0 except in real mode).
struct ModeLayout {
  uint64_t code_base, data_base, data_seg_base, code_seg_base;
};
constexpr ModeLayout layout_of(CpuMode m) {
  switch (m) {
    case CpuMode::Long64: return {kCodeBase, kDataBase, 0, 0};
    case CpuMode::Prot32: return {kCodeBase, kLegacyDataBase, 0, 0};
    case CpuMode::Real16: return {uint64_t{kRealCs} << 4, kLegacyDataBase, uint64_t{kRealDs} << 4,
                                  uint64_t{kRealCs} << 4};
  }
  return {kCodeBase, kDataBase, 0, 0};
}

Encoded encode(const Form& f, SplitMix64& rng, uint64_t addr);
std::string hex_bytes(const uint8_t* p, unsigned n);

}  // namespace pvsim::oracle
