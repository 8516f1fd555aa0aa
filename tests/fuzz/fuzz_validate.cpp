// tests/fuzz/fuzz_validate.cpp — fuzz target: what `pvsim validate` does with a scenario
// (tools/pvsim/main.cpp validate_one): parse it, then load its image into a scratch guest
// RAM of the scenario's size with the scenario's "format".
//
// Input: the scenario text, a NUL byte, then the image bytes (no NUL: no image bytes).
// JSON text cannot contain a raw NUL, so the split is unambiguous. The scenario is parsed
// as tests/fuzz/anchor/scenario.json (see fuzz_scenario.cpp); whatever file its
// "image" names, the bytes loaded are the ones from the input, so nothing is read from
// disk. Nothing is written.
//
// Guest RAM above 64 MiB is capped at 64 MiB: an ELF segment's zero-filled tail is
// written byte by byte, so a few hundred bytes declaring a 60 GiB tail in a 64 GiB guest
// would make every such input touch 60 GiB of host memory (a resource problem of the
// loader itself, reported separately, not something to rediscover on every run).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/image_checks.h"
#include "tests/fuzz/scenario_checks.h"
#include "tools/platform/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr uint64_t kRamCap = 64ull << 20;
  const auto* nul = static_cast<const uint8_t*>(std::memchr(data, 0, size));
  const size_t text_len = nul ? static_cast<size_t>(nul - data) : size;
  const std::string_view text(reinterpret_cast<const char*>(data), text_len);
  const std::span<const uint8_t> image = nul ? std::span<const uint8_t>(nul + 1, size - text_len - 1)
                                             : std::span<const uint8_t>();
  const std::filesystem::path file = PVSIM_FUZZ_ANCHOR;
  pvsim::Scenario s;
  try {
    s = pvsim::parse_scenario(text, file);
  } catch (const pvsim::ScenarioError& e) {
    pvsim::fuzz::check_one_line_message(e.what(), file.string() + ": ");
    return 0;
  }
  pvsim::fuzz::check_scenario(s);
  pvsim::fuzz::load_and_check(std::min(s.machine.ram_bytes(), kRamCap), image, s.guest.image.string(),
                              s.guest.format);
  return 0;
}
