// tests/fuzz/fuzz_decoder.cpp — fuzz target: the x86-64 instruction decoder
// (core/cpu/decoder.h).
//
// Input: a run of code bytes, decoded instruction after instruction as a decoded block
// would be (an invalid or over-long one counts as one byte, as Core::decode_block turns
// it into a one-byte #UD / #GP). For each instruction start, the decoder must:
//   * never read past the bytes it is given: every decode runs on an exact-size heap copy,
//     so ASan reports a read one byte past the end;
//   * return a length of 1..15 on Ok (SDM Vol. 2A §2.3.11), and decode_length() must agree;
//   * not change its mind when given more bytes: the block decoder trusts any answer other
//     than NeedMore from the bytes left on a page, and asks again with the next page only
//     on NeedMore (Core::decode_block / decode_crossing). So for every prefix of k bytes,
//     the answer is NeedMore, or it is the answer for all 15 bytes — same status and, on
//     Ok, the same decoded instruction — and NeedMore never comes back once k >= 15;
//   * give op_name() a name for every decoded id.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "core/cpu/decoder.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using pvsim::cpu::DecodeStatus;
using pvsim::cpu::Insn;

bool same_insn(const Insn& a, const Insn& b) {
  return a.fn == b.fn && a.tfn == b.tfn && a.imm == b.imm && a.disp == b.disp && a.cost == b.cost &&
         a.id == b.id && a.len == b.len && a.osz == b.osz && a.asz == b.asz && a.reg == b.reg &&
         a.rm == b.rm && a.base == b.base && a.index == b.index && a.scale == b.scale && a.seg == b.seg &&
         a.pfx == b.pfx && a.cond == b.cond;
}

// decode() on exactly n bytes copied to the heap.
DecodeStatus decode_exact(const uint8_t* p, size_t n, Insn& out) {
  std::unique_ptr<uint8_t[]> buf(new uint8_t[n ? n : 1]);
  if (n) std::memcpy(buf.get(), p, n);
  return pvsim::cpu::decode(buf.get(), n, out);
}

std::string hex(const uint8_t* p, size_t n) {
  std::string s;
  for (size_t i = 0; i < n; ++i) s += fmt::format("{:02x}", p[i]);
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using pvsim::fuzz::fuzz_check;
  size_t off = 0;
  while (off < size) {
    const uint8_t* p = data + off;
    const size_t avail = size - off;
    const size_t window = avail < 15 ? avail : 15;
    Insn full;
    const DecodeStatus st = decode_exact(p, window, full);
    const std::string bytes = hex(p, window);
    if (st == DecodeStatus::Ok) {
      fuzz_check(full.len >= 1 && full.len <= window, "decoded length outside 1..available", bytes);
      fuzz_check(pvsim::cpu::decode_length(p, window) == full.len, "decode_length() disagrees with decode()", bytes);
      fuzz_check(pvsim::cpu::op_name(static_cast<pvsim::cpu::OpId>(full.id)) != nullptr, "op_name() is null", bytes);
      (void)pvsim::cpu::insn_ends_block(full);
    } else {
      fuzz_check(pvsim::cpu::decode_length(p, window) == 0, "decode_length() is not 0 for a failed decode", bytes);
      fuzz_check(st != DecodeStatus::NeedMore || window < 15, "NeedMore with 15 bytes available", bytes);
    }
    for (size_t k = 0; k < window; ++k) {
      Insn part;
      const DecodeStatus sk = decode_exact(p, k, part);
      if (sk == DecodeStatus::NeedMore) continue;
      fuzz_check(sk == st, "a shorter prefix gave a different answer than more bytes",
                 fmt::format("{} with {} bytes: status {} vs {}", bytes, k, static_cast<int>(sk), static_cast<int>(st)));
      if (st == DecodeStatus::Ok)
        fuzz_check(same_insn(part, full), "a shorter prefix decoded a different instruction",
                   fmt::format("{} with {} bytes", bytes, k));
    }
    // Like the block decoder: an invalid or over-long instruction is one byte (#UD / #GP);
    // NeedMore at the end of the input ends the walk.
    if (st == DecodeStatus::NeedMore) break;
    off += st == DecodeStatus::Ok ? full.len : 1;
  }
  return 0;
}
