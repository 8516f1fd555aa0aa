// Helpers for whole-VM tests: a scenario around a hand-assembled flat image.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <vector>

#include "tools/platform/scenario.h"

namespace pvsim::test {

// Concatenates instruction byte strings into one flat image.
inline std::vector<uint8_t> cat(std::initializer_list<std::vector<uint8_t>> parts) {
  std::vector<uint8_t> r;
  for (auto& p : parts) r.insert(r.end(), p.begin(), p.end());
  return r;
}

// Writes `code` to a scratch file and returns a scenario that boots it as a flat image.
// The file is removed when the returned object dies.
struct FlatScenario {
  Scenario s;
  std::filesystem::path image;
  FlatScenario(const std::vector<uint8_t>& code, unsigned vcpus = 1) {
    static unsigned counter = 0;
    image = std::filesystem::temp_directory_path() /
            ("pvsim-vm-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".bin");
    std::ofstream(image, std::ios::binary).write(reinterpret_cast<const char*>(code.data()),
                                                  static_cast<std::streamsize>(code.size()));
    s.file = "test.json";
    s.name = "test";
    s.description = "test";
    s.machine.vcpus = vcpus;
    s.machine.ram_mib = 4;
    s.guest.image = image;
    s.guest.format = ImageFormat::Flat;
    s.limits.max_instructions = 100000;
  }
  ~FlatScenario() {
    std::error_code ec;
    std::filesystem::remove(image, ec);
  }
};

}  // namespace pvsim::test
