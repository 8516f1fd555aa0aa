// tests/platform/scenario_fixture.h — shared helpers of the scenario-parsing tests
// (scenario_test.cpp, scenario_smp_test.cpp).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tools/platform/scenario.h"

namespace pvsim::test {

// A scratch directory with an image file, so "image not found" is not the first error.
struct ScenarioDir {
  std::filesystem::path path;
  explicit ScenarioDir(const std::string& tag) {
    path = std::filesystem::temp_directory_path() / ("pvsim-" + tag + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(path);
    std::ofstream(path / "img.bin", std::ios::binary) << '\xf4';
  }
  ~ScenarioDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path file() const { return path / "s.json"; }
};

inline const std::string kGuest = R"("guest": {"image": "img.bin"})";

// A complete scenario: the required description and guest, plus `body` (top-level keys).
inline std::string with(const std::string& body) {
  return "{\"description\": \"d\", " + kGuest + (body.empty() ? "" : ", " + body) + "}";
}

// The ScenarioError line that parsing `text` gives, or "(no error)".
inline std::string parse_error(const ScenarioDir& d, const std::string& text) {
  try {
    parse_scenario(text, d.file());
  } catch (const ScenarioError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace pvsim::test
