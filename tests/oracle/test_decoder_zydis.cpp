// tests/oracle/test_decoder_zydis.cpp — instruction lengths cross-checked with Zydis 4.
//
// 1. The oracle's own encoder: every encoding the differential suite generates must be
//    a valid 64-bit instruction to Zydis, with the mnemonic the form names and the length
//    the encoder computed (otherwise the oracle would be testing something else).
// 2. pvsim's decoder: random prefix/REX/opcode/ModRM byte strings built around the
//    opcodes of the supported set; whenever Zydis decodes one as a valid instruction whose
//    mnemonic is in that set, pvsim's decode_length() must report the same length.
#include <Zydis/Zydis.h>
#include <catch2/catch.hpp>

#include <algorithm>
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
  return all;
}

std::string lower_first_word(const std::string& s) {
  std::string w = s.substr(0, s.find(' '));
  for (char& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return w;
}

struct Zydis {
  ZydisDecoder dec;
  Zydis() { ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64); }
  bool decode(const uint8_t* p, size_t n, ZydisDecodedInstruction& out) const {
    return ZYAN_SUCCESS(ZydisDecoderDecodeInstruction(&dec, nullptr, p, n, &out));
  }
};

}  // namespace

TEST_CASE("oracle encoder agrees with Zydis", "[decoder][zydis]") {
  const Zydis z;
  unsigned checked = 0, bad = 0;
  std::string samples;
  for (const Form& f : all_forms()) {
    SplitMix64 rng(oracle_seed_for(f.name));
    const std::string want = lower_first_word(f.name);
    for (unsigned i = 0; i < 256; ++i) {
      const Encoded e = encode(f, rng, kCodeBase + i * kSlotSize);
      ZydisDecodedInstruction insn;
      const bool ok = z.decode(e.bytes, e.len, insn);
      std::string got = ok ? ZydisMnemonicGetString(insn.mnemonic) : "(invalid)";
      // 90 / 66 90 / REX.W 90 without REX.B is NOP, not XCHG (SDM XCHG, NOP).
      const bool nop_ok = want == "xchg" && e.reg == 0 && got == "nop";
      ++checked;
      if (!ok || insn.length != e.len || (got != want && !nop_ok)) {
        ++bad;
        if (bad <= 10)
          samples += f.name + ": " + hex_bytes(e.bytes, e.len) + " encoder len " +
                     std::to_string(e.len) + ", zydis " + got + " len " +
                     std::to_string(ok ? insn.length : 0) + "\n";
      }
    }
  }
  INFO(samples);
  CHECK(checked > 100000);
  CHECK(bad == 0);
}

TEST_CASE("pvsim decoder lengths agree with Zydis", "[decoder][zydis]") {
  const Zydis z;
  // Mnemonics of the supported set (the forms above), as Zydis spells them.
  std::set<std::string> supported;
  for (const Form& f : all_forms()) supported.insert(lower_first_word(f.name));
  supported.insert("nop");

  static const std::vector<std::vector<uint8_t>> kOpcodes = [] {
    std::vector<std::vector<uint8_t>> v;
    for (unsigned row = 0; row < 8; ++row)
      for (unsigned k = 0; k < 6; ++k) v.push_back({static_cast<uint8_t>(row * 8 + k)});
    for (uint8_t b : {0x63, 0x69, 0x6b, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x87, 0x8d, 0x90,
                      0x91, 0x97, 0x98, 0x99, 0xa8, 0xa9, 0xc0, 0xc1, 0xd0, 0xd1, 0xd2, 0xd3,
                      0xf6, 0xf7, 0xfe, 0xff})
      v.push_back({b});
    for (unsigned cc = 0; cc < 16; ++cc) {
      v.push_back({0x0f, static_cast<uint8_t>(0x40 + cc)});
      v.push_back({0x0f, static_cast<uint8_t>(0x90 + cc)});
    }
    for (uint8_t b : {0xa3, 0xa4, 0xa5, 0xab, 0xac, 0xad, 0xaf, 0xb0, 0xb1, 0xb3, 0xb6, 0xb7,
                      0xb8, 0xba, 0xbb, 0xbc, 0xbd, 0xbe, 0xbf, 0xc0, 0xc1, 0xc8, 0xcf})
      v.push_back({0x0f, b});
    return v;
  }();
  static constexpr uint8_t kPrefixes[] = {0x66, 0x67, 0xf2, 0xf3, 0x2e, 0x36,
                                          0x3e, 0x26, 0x64, 0x65, 0xf0};

  SplitMix64 rng(oracle_seed_for("decoder-lengths"));
  const uint64_t rounds = std::max<uint64_t>(oracle_case_count() * 2, 20000);
  uint64_t compared = 0, bad = 0;
  std::string samples;
  for (uint64_t n = 0; n < rounds; ++n) {
    uint8_t buf[32];
    for (uint8_t& b : buf) b = static_cast<uint8_t>(rng.next());
    unsigned len = 0;
    const unsigned npfx = static_cast<unsigned>(rng.below(4));
    for (unsigned i = 0; i < npfx; ++i) buf[len++] = kPrefixes[rng.below(sizeof kPrefixes)];
    if (rng.one_in(2)) buf[len++] = static_cast<uint8_t>(0x40 | rng.below(16));
    for (uint8_t b : kOpcodes[rng.below(kOpcodes.size())]) buf[len++] = b;
    // The rest (ModRM, SIB, displacement, immediate) stays random.

    ZydisDecodedInstruction insn;
    if (!z.decode(buf, 15, insn)) continue;
    const std::string m = ZydisMnemonicGetString(insn.mnemonic);
    if (!supported.count(m)) continue;
    ++compared;
    const size_t pv = pvsim::cpu::decode_length(buf, 15);
    if (pv != insn.length) {
      ++bad;
      if (bad <= 10)
        samples += hex_bytes(buf, insn.length) + ": zydis " + m + " len " +
                   std::to_string(insn.length) + ", pvsim len " + std::to_string(pv) + "\n";
    }
  }
  INFO(samples);
  CHECK(compared > rounds / 4);
  CHECK(bad == 0);
}
