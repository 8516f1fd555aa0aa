// tests/oracle/test_decoder_zydis.cpp — instruction lengths cross-checked with Zydis 4,
// in 64-bit mode, 32-bit protected mode (ZYDIS_MACHINE_MODE_LEGACY_32, stack width 32)
// and real mode (ZYDIS_MACHINE_MODE_REAL_16, stack width 16).
//
// 1. The oracle's own encoder: every encoding the differential suite generates (64-bit,
//    prot32 and real16 forms) must be a valid instruction to Zydis in the form's mode,
//    with the mnemonic the form names and the length the encoder computed (otherwise the
//    oracle would be testing something else).
// 2. pvsim's decoder, per mode: random prefix/(REX)/opcode/ModRM byte strings built
//    around the opcodes of the supported set (outside 64-bit mode also every one-byte and
//    0F opcode); decode(p, 15, insn, mode) is compared with Zydis both ways:
//    a. Zydis valid with a mnemonic of the supported set => pvsim Ok with the same length;
//    b. pvsim Ok => Zydis valid with the same length (pvsim never accepts what the CPU
//       refuses, and never mis-sizes an instruction it accepts).
//    The one allowed difference: an instruction Zydis knows but pvsim does not implement
//    (a mnemonic outside the supported set) is Invalid (#UD) in pvsim. Exceptions to (b)
//    are listed in kAcceptedByPvsimOnly with their reason.
#include <Zydis/Zydis.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <map>
#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "core/cpu/decoder.h"
#include "tests/oracle/forms.h"
#include "tests/oracle/harness.h"

using namespace pvsim::oracle;

namespace {

std::vector<Form> all_forms() {
  std::vector<Form> all;
  auto append = [&](std::vector<Form> v) { all.insert(all.end(), v.begin(), v.end()); };
  for (unsigned op = 0; op < 8; ++op) append(alu_forms(op));
  append(test_forms());
  append(inc_dec_neg_not_forms());
  for (unsigned ext : {0u, 1u, 2u, 3u, 4u, 5u, 7u}) append(shift_forms(ext));
  append(double_shift_forms());
  append(mul_forms());
  append(div_forms());
  append(bit_test_forms());
  append(bit_scan_forms());
  append(cmov_forms());
  append(setcc_forms());
  append(move_extend_forms());
  append(exchange_forms());
  append(convert_forms());
  append(lea_forms());
  append(addr32_forms());
  for (CpuMode m : {CpuMode::Prot32, CpuMode::Real16}) {
    append(legacy_alu_forms(m));
    append(legacy_shift_forms(m));
    append(legacy_muldiv_forms(m));
    append(legacy_bit_forms(m));
    append(legacy_cond_forms(m));
    append(legacy_move_forms(m));
    append(legacy_stack_forms(m));
    append(legacy_string_forms(m));
    append(legacy_bcd_forms(m));
  }
  return all;
}

std::string lower(std::string w) {
  for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return w;
}

// The mnemonic Zydis prints for a form: the name's first word after the mode prefix and a
// REP/REPE/REPNE word; string instructions carry their element size (movsb, movsw, movsd).
std::string form_mnemonic(const Form& f) {
  std::string n = f.name;
  if (f.mode != CpuMode::Long64) n = n.substr(n.find(' ') + 1);
  std::string w = n.substr(0, n.find(' '));
  if (w == "REP" || w == "REPE" || w == "REPNE") {
    n = n.substr(n.find(' ') + 1);
    w = n.substr(0, n.find(' '));
  }
  w = lower(w);
  if (f.special == Special::String) w += f.opsize == 8 ? "b" : f.opsize == 16 ? "w" : "d";
  return w;
}

struct Zydis {
  ZydisDecoder dec;
  explicit Zydis(CpuMode m = CpuMode::Long64) {
    switch (m) {
      case CpuMode::Long64:
        ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64);
        break;
      case CpuMode::Prot32:
        ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LEGACY_32, ZYDIS_STACK_WIDTH_32);
        break;
      case CpuMode::Real16:
        ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_REAL_16, ZYDIS_STACK_WIDTH_16);
        break;
    }
  }
  bool decode(const uint8_t* p, size_t n, ZydisDecodedInstruction& out) const {
    return ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&dec, nullptr, p, n, &out));
  }
};

uint8_t pv_mode(CpuMode m) {
  return m == CpuMode::Long64 ? pvsim::cpu::kMode64
         : m == CpuMode::Prot32 ? pvsim::cpu::kMode32
                                : pvsim::cpu::kMode16;
}

}  // namespace

TEST_CASE("oracle encoder agrees with Zydis", "[decoder][zydis]") {
  const Zydis z64(CpuMode::Long64), z32(CpuMode::Prot32), z16(CpuMode::Real16);
  unsigned checked = 0, bad = 0;
  unsigned per_mode[3] = {};
  std::string samples;
  for (const Form& f : all_forms()) {
    const Zydis& z = f.mode == CpuMode::Long64 ? z64 : f.mode == CpuMode::Prot32 ? z32 : z16;
    SplitMix64 rng(oracle_seed_for(f.name));
    const std::string want = form_mnemonic(f);
    const uint64_t code_base = layout_of(f.mode).code_base;
    for (unsigned i = 0; i < 256; ++i) {
      const Encoded e = encode(f, rng, code_base + i * kSlotSize);
      ZydisDecodedInstruction insn;
      const bool ok = z.decode(e.bytes, e.len, insn);
      std::string got = ok ? ZydisMnemonicGetString(insn.mnemonic) : "(invalid)";
      // 90 / 66 90 / REX.W 90 without REX.B is NOP, not XCHG (SDM XCHG, NOP).
      const bool nop_ok = want == "xchg" && e.reg == 0 && got == "nop";
      ++checked;
      ++per_mode[static_cast<unsigned>(f.mode)];
      if (!ok || insn.length != e.len || (got != want && !nop_ok)) {
        ++bad;
        if (bad <= 10)
          samples += f.name + ": " + hex_bytes(e.bytes, e.len) + " encoder len " +
                     std::to_string(e.len) + ", zydis " + got + " len " +
                     std::to_string(ok ? insn.length : 0) + " (want " + want + ")\n";
      }
    }
  }
  INFO(samples);
  CHECK(checked > 100000);
  CHECK(per_mode[1] > 50000);
  CHECK(per_mode[2] > 20000);
  CHECK(bad == 0);
}

namespace {

// Mnemonics of the supported set, as Zydis spells them: the oracle's forms plus the
// instructions pvsim implements outside the oracle's reach (control transfers, system and
// segment instructions: core/cpu/opcodes.def), for check (a).
std::set<std::string> supported_mnemonics() {
  std::set<std::string> s;
  for (const Form& f : all_forms()) s.insert(form_mnemonic(f));
  for (const char* m : {"nop", "push", "pop", "pushf", "pushfd", "pushfq", "popf", "popfd",
                        "popfq", "pusha", "pushad", "popa", "popad", "leave", "jmp", "call",
                        "ret", "jb", "jbe", "jl", "jle", "jnb", "jnbe", "jnl", "jnle", "jno",
                        "jnp", "jns", "jnz", "jo", "jp", "js", "jz", "loop", "loope", "loopne",
                        "jcxz", "jecxz", "jrcxz", "int3", "int", "into", "iret", "iretd",
                        "iretq", "ud2", "movsb", "movsw", "movsd", "movsq", "cmpsb", "cmpsw",
                        "cmpsd", "cmpsq", "stosb", "stosw", "stosd", "stosq", "lodsb",
                        "lodsw", "lodsd", "lodsq", "scasb", "scasw", "scasd", "scasq",
                        "clc", "stc", "cmc", "cld", "std", "sahf", "lahf", "cli", "sti",
                        "hlt", "cpuid", "rdtsc", "xlat", "les", "lds", "lss", "lfs", "lgs",
                        "daa", "das", "aaa", "aas", "aam", "aad", "salc", "lfence", "mfence",
                        "sfence", "pause", "cmpxchg8b", "in", "out", "insb", "insw", "insd",
                        "outsb", "outsw", "outsd"})
    s.insert(m);
  return s;
}

// Structured opcodes: the oracle's set (64-bit mode's list), and outside 64-bit mode the
// legacy-only ones.
const std::vector<std::vector<uint8_t>>& structured_opcodes() {
  static const std::vector<std::vector<uint8_t>> v = [] {
    std::vector<std::vector<uint8_t>> o;
    for (unsigned row = 0; row < 8; ++row)
      for (unsigned k = 0; k < 6; ++k) o.push_back({static_cast<uint8_t>(row * 8 + k)});
    for (uint8_t b : {0x63, 0x69, 0x6b, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x87, 0x8d, 0x90,
                      0x91, 0x97, 0x98, 0x99, 0xa8, 0xa9, 0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3,
                      0xf6, 0xf7, 0xfe, 0xff})
      o.push_back({b});
    for (unsigned cc = 0; cc < 16; ++cc) {
      o.push_back({0x0f, static_cast<uint8_t>(0x40 + cc)});
      o.push_back({0x0f, static_cast<uint8_t>(0x90 + cc)});
    }
    for (uint8_t b : {0xa3, 0xa4, 0xa5, 0xab, 0xac, 0xad, 0xaf, 0xb0, 0xb1, 0xb3, 0xb6, 0xb7,
                      0xb8, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xc0, 0xc1, 0xc8, 0xcf})
      o.push_back({0x0f, b});
    return o;
  }();
  return v;
}

bool is_prefix(uint8_t b) {
  return b == 0x66 || b == 0x67 || b == 0xf2 || b == 0xf3 || b == 0xf0 || b == 0x2e ||
         b == 0x36 || b == 0x3e || b == 0x26 || b == 0x64 || b == 0x65;
}

struct Disagreement {
  uint64_t compared = 0, accepted = 0, bad = 0, allowed = 0;
  std::map<std::string, std::pair<uint64_t, std::string>> kinds;  // kind -> count, sample
  std::string samples() const {
    std::string s;
    for (const auto& [k, v] : kinds)
      s += k + " x" + std::to_string(v.first) + ", e.g. " + v.second + "\n";
    return s;
  }
};

// Why a disagreement is accepted (nullptr: it is not).
const char* accepted_difference(CpuMode mode, bool pvsim_side, const uint8_t* p, bool zok,
                                const ZydisDecodedInstruction& z, const pvsim::cpu::Insn& pi) {
  // Position of the opcode after the legacy prefixes.
  unsigned k = 0;
  while (k < 14 && is_prefix(p[k])) ++k;
  if (pvsim_side) {
    const std::string op = pvsim::cpu::op_name(static_cast<pvsim::cpu::OpId>(pi.id));
    // pvsim decodes these and the handler raises #UD (exec_system.cpp MOV_RdCd / MOV_CdRd:
    // no such control register; exec_move.cpp MOV_EvSw / MOV_SwEw: no such segment
    // register, or MOV to CS): the guest sees what the CPU does.
    if ((op == "MOV_RdCd" || op == "MOV_CdRd") && pi.reg != 0 && pi.reg != 2 && pi.reg != 3 &&
        pi.reg != 4 && pi.reg != 8)
      return "no such control register: #UD at execution";
    if (op == "MOV_EvSw" && (pi.reg & 7) > 5) return "no such segment register: #UD at execution";
    if (op == "MOV_SwEw" && ((pi.reg & 7) > 5 || (pi.reg & 7) == 1))
      return "no such segment register or MOV to CS: #UD at execution";
    // 0F 1A / 0F 1B: Zydis decodes MPX (BNDLDX, BNDMOV ...) and refuses some of those
    // forms; pvsim's CPU has no MPX (CPUID.(EAX=7):EBX[14] = 0), where the row is the
    // reserved hint NOP (SDM Vol. 2B "NOP", Vol. 2D Table A-3 0F 18-1F).
    if (op == "NOP_Ev" && (p[k + 1] == 0x1a || p[k + 1] == 0x1b))
      return "0F 1A/1B without MPX: hint NOP";
    // SLDT, STR, LLDT and LTR are #UD in real-address mode (SDM Vol. 2B, each one's
    // "Real-Address Mode Exceptions"): pvsim decodes them and the handler raises it
    // (exec_system.cpp).
    if (mode == CpuMode::Real16 && (op == "SLDT_Ew" || op == "STR_Ew" || op == "LLDT_Ew" || op == "LTR_Ew"))
      return "SLDT/STR/LLDT/LTR in real mode: #UD at execution";
    return nullptr;
  }
  (void)zok;
  (void)z;
  return nullptr;
}

Disagreement cross_check(CpuMode mode, uint64_t rounds) {
  const Zydis z(mode);
  const std::set<std::string> supported = supported_mnemonics();
  static constexpr uint8_t kPrefixes[] = {0x66, 0x67, 0xf2, 0xf3, 0x2e, 0x36,
                                          0x3e, 0x26, 0x64, 0x65, 0xf0};
  const bool leg = mode != CpuMode::Long64;
  SplitMix64 rng(oracle_seed_for(std::string("decoder-lengths ") + mode_name(mode)));
  Disagreement d;
  // Disagreements are grouped by kind (direction, instruction, opcode) so one message shows
  // every distinct problem.
  auto report = [&](const uint8_t* buf, unsigned n, const std::string& kind, const std::string& what) {
    ++d.bad;
    auto& k = d.kinds[std::string(mode_name(mode)) + " " + kind];
    if (k.first++ == 0) k.second = hex_bytes(buf, n) + ": " + what;
  };
  for (uint64_t n = 0; n < rounds; ++n) {
    uint8_t buf[32];
    for (uint8_t& b : buf) b = static_cast<uint8_t>(rng.next());
    unsigned len = 0;
    const unsigned npfx = static_cast<unsigned>(rng.below(4));
    for (unsigned i = 0; i < npfx; ++i) buf[len++] = kPrefixes[rng.below(sizeof kPrefixes)];
    // REX exists only in 64-bit mode (0x40-0x4F are INC/DEC elsewhere).
    if (!leg && rng.one_in(2)) buf[len++] = static_cast<uint8_t>(0x40 | rng.below(16));
    if (leg && rng.one_in(2)) {
      // Any opcode: one byte (not a prefix) or 0F xx.
      if (rng.one_in(2)) {
        buf[len++] = 0x0f;
        buf[len++] = static_cast<uint8_t>(rng.next());
      } else {
        uint8_t b;
        do b = static_cast<uint8_t>(rng.next()); while (is_prefix(b) || b == 0x0f);
        buf[len++] = b;
      }
    } else {
      const auto& ops = structured_opcodes();
      for (uint8_t b : ops[rng.below(ops.size())]) buf[len++] = b;
    }
    // The rest (ModRM, SIB, displacement, immediate) stays random.

    ZydisDecodedInstruction insn;
    const bool zok = z.decode(buf, 15, insn);
    pvsim::cpu::Insn pi;
    const bool pok = pvsim::cpu::decode(buf, 15, pi, pv_mode(mode)) == pvsim::cpu::DecodeStatus::Ok;
    const std::string m = zok ? ZydisMnemonicGetString(insn.mnemonic) : "(invalid)";
    char opc[16];
    if (zok) std::snprintf(opc, sizeof opc, "map%d/%02x", static_cast<int>(insn.opcode_map), insn.opcode);
    // Zydis names SSE2's F2 0F 10/11/C2 movsd/cmpsd like the string instructions, and the
    // 0F 0D register form (no instruction pvsim implements: #UD) nop: those are not the
    // supported set's.
    const bool same_name_other_insn =
        zok && insn.opcode_map != ZYDIS_OPCODE_MAP_DEFAULT &&
        (m == "movsd" || m == "cmpsd" || (m == "nop" && (insn.opcode < 0x18 || insn.opcode > 0x1f)));
    if (zok && supported.count(m) && !same_name_other_insn) {  // (a)
      ++d.compared;
      if (!pok && accepted_difference(mode, false, buf, zok, insn, pi)) {
        ++d.allowed;
      } else if (!pok)
        report(buf, insn.length, "(a) zydis " + m + " " + opc + ", pvsim Invalid",
               "zydis len " + std::to_string(insn.length));
      else if (pi.len != insn.length)
        report(buf, insn.length, "(a) zydis " + m + " " + opc + " length",
               "zydis len " + std::to_string(insn.length) + ", pvsim len " + std::to_string(pi.len));
    } else if (pok) {  // (b)
      ++d.accepted;
      const std::string op = pvsim::cpu::op_name(static_cast<pvsim::cpu::OpId>(pi.id));
      if ((!zok || pi.len != insn.length) && accepted_difference(mode, true, buf, zok, insn, pi))
        ++d.allowed;
      else if (!zok)
        report(buf, pi.len, "(b) pvsim " + op + ", zydis invalid", "pvsim len " + std::to_string(pi.len));
      else if (pi.len != insn.length)
        report(buf, pi.len, "(b) pvsim " + op + " length, zydis " + m,
               "pvsim len " + std::to_string(pi.len) + ", zydis len " + std::to_string(insn.length));
    }
  }
  return d;
}

}  // namespace

TEST_CASE("pvsim decoder agrees with Zydis in 64-bit mode", "[decoder][zydis]") {
  const uint64_t rounds = std::max<uint64_t>(oracle_case_count() * 2, 20000);
  const Disagreement d = cross_check(CpuMode::Long64, rounds);
  INFO(d.samples());
  CHECK(d.compared > rounds / 4);
  CHECK(d.bad == 0);
}

TEST_CASE("pvsim decoder agrees with Zydis in 32-bit mode", "[decoder][zydis][prot32]") {
  const uint64_t rounds = std::max<uint64_t>(oracle_case_count() * 2, 20000);
  const Disagreement d = cross_check(CpuMode::Prot32, rounds);
  INFO(d.samples());
  CHECK(d.compared > rounds / 4);
  CHECK(d.accepted > 0);
  CHECK(d.bad == 0);
}

TEST_CASE("pvsim decoder agrees with Zydis in 16-bit mode", "[decoder][zydis][real16]") {
  const uint64_t rounds = std::max<uint64_t>(oracle_case_count() * 2, 20000);
  const Disagreement d = cross_check(CpuMode::Real16, rounds);
  INFO(d.samples());
  CHECK(d.compared > rounds / 4);
  CHECK(d.accepted > 0);
  CHECK(d.bad == 0);
}

