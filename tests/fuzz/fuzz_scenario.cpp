// tests/fuzz/fuzz_scenario.cpp — fuzz target: the scenario parser and checker.
//
// Input: the text of a scenario file. parse_scenario() must either return a Scenario that
// keeps the invariants scenario.h promises, or throw ScenarioError whose message is one
// line naming the file (README "Using it"). Anything else escaping — another exception
// type, a sanitizer report, a stack overflow, a hang — is a bug.
//
// The text is parsed as if it were tests/fuzz/anchor/scenario.json, so a relative
// "image": "guest.img" names a file that exists (tests/fuzz/anchor/guest.img) and the
// parser's last check passes; any other image path is only looked up with stat(), never
// read. Nothing is written.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/scenario_checks.h"
#include "tools/platform/scenario.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::filesystem::path file = PVSIM_FUZZ_ANCHOR;
  try {
    const pvsim::Scenario s = pvsim::parse_scenario(text, file);
    pvsim::fuzz::check_scenario(s);
  } catch (const pvsim::ScenarioError& e) {
    pvsim::fuzz::check_one_line_message(e.what(), file.string() + ": ");
  }
  return 0;
}
