// tools/platform/scenario.h — a scenario file parsed and validated into typed values
// (scenarios/README.md is the format; scenario.schema.json its machine-readable twin).
//
// Every problem becomes one ScenarioError whose what() is a single line
//   FILE: /json/pointer: problem
// so a student sees exactly which key to fix. Nothing here runs the guest.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pvsim {

class ScenarioError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class ImageFormat : uint8_t { Auto, Elf, Flat };

// How a run ends (scenarios/README.md `expect.stop`).
enum class RunStop : uint8_t { Exit, Finished, Shutdown, Deadlock, Limit, UnhandledIo };
const char* run_stop_name(RunStop s);  // "exit", "finished", ...

struct RegisterExpect {
  unsigned vcpu = 0;
  std::string reg;  // lower-case name as written: rax..r15, rip, rflags, cr0, ..., efer
  uint64_t value = 0;
};

struct MsrExpect {
  unsigned vcpu = 0;
  uint32_t msr = 0;
  uint64_t value = 0;
};

struct Expectations {
  std::optional<RunStop> stop;
  std::optional<unsigned> exit_status;
  std::optional<std::string> console;
  std::vector<std::string> console_contains;
  std::vector<std::string> console_excludes;
  std::vector<RegisterExpect> registers;
  std::vector<MsrExpect> msrs;
  std::optional<uint64_t> trace_hash;
  bool any() const {
    return stop || exit_status || console || !console_contains.empty() ||
           !console_excludes.empty() || !registers.empty() || !msrs.empty() || trace_hash;
  }
};

struct MachineConfig {
  unsigned vcpus = 1;
  uint64_t ram_mib = 128;
  uint64_t tsc_khz = 2'500'000;
  uint64_t tsc_start = 0;
  uint64_t quantum = 10'000;
  uint32_t kvm_features = 0x01007efb;
  uint32_t kvm_hints = 0;
  uint32_t kvm_signature_eax = 0x40000001;
  bool ignore_unhandled_io = false;
  uint64_t ram_bytes() const { return ram_mib << 20; }
  uint64_t tsc_hz() const { return tsc_khz * 1000; }
};

struct GuestConfig {
  std::filesystem::path image;  // resolved against the scenario's directory
  std::string image_as_written;
  ImageFormat format = ImageFormat::Auto;
};

struct Limits {
  uint64_t max_instructions = 10'000'000'000ull;
  uint64_t max_virtual_ms = 60'000;
};

struct Scenario {
  std::filesystem::path file;  // as given by the user (used in messages)
  std::string name;
  std::string description;
  uint64_t seed = 0;
  MachineConfig machine;
  GuestConfig guest;
  Limits limits;
  Expectations expect;
};

// Reads and validates `file`; throws ScenarioError. Also checks that the image exists
// (it does not load it: see loader.h).
Scenario load_scenario(const std::filesystem::path& file);
// Same from text already in memory; `file` names it in messages and anchors relative paths.
Scenario parse_scenario(std::string_view text, const std::filesystem::path& file);

// Parses "0x..." hex, or a decimal string; nullopt when malformed or above 64 bits.
std::optional<uint64_t> parse_u64_string(std::string_view s);

}  // namespace pvsim
