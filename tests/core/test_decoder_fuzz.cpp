// tests/core/test_decoder_fuzz.cpp — the decoder on 10^6 random byte strings: it returns
// a length in 1..15 or "invalid", never reads past the buffer and never crashes (run it
// under ASan+UBSan for the memory part). Plus fixed lengths for known encodings.
#include <catch2/catch.hpp>
#include <cstring>
#include <memory>

#include "core/cpu/decoder.h"
#include "core/prng.h"

using pvsim::SplitMix64;

namespace {
}  // namespace

TEST_CASE("decoder fuzz: 10^6 random byte strings", "[decoder]") {
  SplitMix64 rng{0x5eed};
  uint64_t valid = 0, invalid = 0;
  for (int n = 0; n < 1'000'000; ++n) {
    // Exact-size heap buffer so ASan catches any read past the end.
    const size_t len = 1 + rng.next() % 15;
    std::unique_ptr<uint8_t[]> buf(new uint8_t[len]);
    for (size_t k = 0; k < len; ++k) {
      uint64_t r = rng.next();
      // Bias towards prefixes and escape bytes so deep paths are exercised.
      static const uint8_t hot[] = {0x66, 0x67, 0xf0, 0xf2, 0xf3, 0x48, 0x41, 0x0f, 0x64, 0x65};
      buf[k] = (r & 3) == 0 ? hot[(r >> 8) % sizeof(hot)] : static_cast<uint8_t>(r >> 16);
    }
    const size_t l = pvsim::cpu::decode_length(buf.get(), len);
    REQUIRE(l <= 15);
    REQUIRE(l <= len);
    if (l)
      ++valid;
    else
      ++invalid;
  }
  // Both outcomes must occur for the test to mean anything.
  CHECK(valid > 100000);
  CHECK(invalid > 10000);
}

TEST_CASE("decoder lengths of known encodings", "[decoder]") {
  using pvsim::cpu::decode_length;
  auto len = [](std::initializer_list<uint8_t> b) {
    std::vector<uint8_t> v(b);
    return decode_length(v.data(), v.size());
  };
  CHECK(len({0x90}) == 1);
  CHECK(len({0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8}) == 10);                   // movabs rax, imm64
  CHECK(len({0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00}) == 9);  // nopw 0(rax,rax,1)
  CHECK(len({0xf3, 0x0f, 0x1e, 0xfa}) == 4);                                // endbr64
  CHECK(len({0x48, 0x8b, 0x05, 0x10, 0x00, 0x00, 0x00}) == 7);              // mov rax,[rip+0x10]
  CHECK(len({0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0x00, 0x00, 0x00}) == 9);  // mov rax,fs:0x28
  CHECK(len({0x66, 0xc7, 0x00, 0x34, 0x12}) == 5);                          // mov word [rax], imm16
  CHECK(len({0xf6, 0xc3, 0x01}) == 3);                                      // test bl, 1
  CHECK(len({0x0f, 0x0b}) == 2);                                            // ud2
  CHECK(len({0x0f, 0xff}) == 0);                                            // invalid
  CHECK(len({0x06}) == 0);              // push es: #UD in 64-bit
  CHECK(len({0xf0, 0x01, 0xc0}) == 0);  // lock add reg,reg: #UD
  CHECK(len({0x48, 0x01}) == 0);        // truncated
  // 15 prefixes + opcode: too long.
  std::vector<uint8_t> longi(15, 0x66);
  longi.push_back(0x90);
  CHECK(decode_length(longi.data(), longi.size()) == 0);
  std::vector<uint8_t> ok14(14, 0x66);
  ok14.push_back(0x90);
  CHECK(decode_length(ok14.data(), ok14.size()) == 15);
}
