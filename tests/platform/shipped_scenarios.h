// The shipped scenario files the whole-VM tests walk (scenarios/**, bench and guest
// sources excluded), sorted so that failures come in a stable order.
#pragma once
#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

inline std::vector<std::filesystem::path> shipped_scenarios() {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::recursive_directory_iterator(PVSIM_SCENARIO_DIR)) {
    const std::filesystem::path& p = e.path();
    if (p.extension() != ".json" || p.filename() == "scenario.schema.json") continue;
    if (p.string().find("/bench/") != std::string::npos || p.string().find("/guest/") != std::string::npos) continue;
    files.push_back(p);
  }
  std::sort(files.begin(), files.end());
  return files;
}
