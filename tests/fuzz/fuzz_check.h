// tests/fuzz/fuzz_check.h — what a fuzz target does when a property fails.
//
// A sanitizer report or an uncaught exception already ends the process; a property that
// only the target can see (an error message on two lines, a decoder that changes its
// mind, block execution that disagrees with single-stepping) goes through fuzz_check(),
// which prints what was expected and aborts. abort() is a crash to libFuzzer (the input
// is saved as crash-<sha1>) and to ctest (the replay test fails).
#pragma once
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace pvsim::fuzz {

[[noreturn]] inline void fuzz_fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "fuzz property failed: %s%s%.*s\n", what, detail.empty() ? "" : ": ",
               static_cast<int>(detail.size()), detail.data());
  std::fflush(stderr);
  std::abort();
}

inline void fuzz_check(bool ok, const char* what, std::string_view detail = {}) {
  if (!ok) fuzz_fail(what, detail);
}

// The rule for every message pvsim prints about bad input: one line (README "Using it"),
// safe on a terminal (tools/platform/text.h escapes control characters), and not empty.
inline void check_one_line_message(std::string_view msg, std::string_view must_start_with) {
  fuzz_check(!msg.empty(), "error message is empty");
  fuzz_check(msg.substr(0, must_start_with.size()) == must_start_with,
             "error message does not start with the file name", msg);
  for (char c : msg) {
    const auto u = static_cast<unsigned char>(c);
    fuzz_check(u >= 0x20 && u != 0x7f, "error message contains a line break or a control character", msg);
  }
}

}  // namespace pvsim::fuzz
