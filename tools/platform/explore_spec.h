// tools/platform/explore_spec.h — what `pvsim explore` varies, apart from how it runs, so
// that a scenario's `explore` section (scenarios/README.md "explore") can carry one.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "tools/platform/schedule.h"

namespace pvsim {

class ExploreError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ExploreSpec {
  // What varies (tools/platform/README.md §10.3):
  //   Placement  — variant k puts `action` at boundary from + k of vCPU `vcpu`;
  //   Interleave — every way for `vcpus` to take turns with at most `bound` switches in the
  //                window: a first vCPU runs whenever it can (`run vN` at the window's
  //                start), and at each switch the running one hands over to another once it
  //                has retired k more instructions than at the window's start (1 <= k <=
  //                window length, increasing); `run auto` once any of them has run one more
  //                than the window's length;
  //   Pct        — `schedules` such turn orders drawn from `seed` as PCT does (random
  //                priorities, depth-1 change points at random steps of the window).
  enum class Vary : uint8_t { Placement, Interleave, Pct };
  Vary vary = Vary::Placement;
  // The window: vCPU `vcpu`'s instruction boundaries from..to (both included).
  unsigned vcpu = 0;
  uint64_t from = 0;
  uint64_t to = 0;
  HostAction action;            // Placement
  std::vector<unsigned> vcpus;  // Interleave, Pct: at least two, distinct
  unsigned bound = 1;           // Interleave: switches
  uint64_t schedules = 0;       // Pct
  unsigned depth = 2;           // Pct: d (d - 1 change points)
  uint64_t seed = 0;            // Pct
  // What tells outcomes apart besides pass/fail under the scenario's expectations:
  // "stop", "exit", "console", "failures", "reg:vN.NAME" (a register at the end).
  std::vector<std::string> outcome{"stop", "exit", "failures"};
  // This process runs the variants k with k % shards == shard - 1 (1-based shard).
  uint64_t shard = 1;
  uint64_t shards = 1;
  unsigned jobs = 1;  // threads, each with its own machine and snapshot
};

// Parses "v1.insn=1000..2000" into spec.vcpu/from/to; throws ExploreError whose message
// starts with `origin` ("--window", or "FILE: /explore/window" for a scenario).
void parse_window(std::string_view text, ExploreSpec& spec, std::string_view origin = "--window");
// Parses "v0,v1,v3" into {0, 1, 3}; throws ExploreError starting with `origin`.
std::vector<unsigned> parse_vcpu_list(std::string_view text, std::string_view origin);
// Checks outcome fields ("stop", "exit", "console", "failures", "reg:vN.NAME" with N below
// `vcpus` and a register name of expect.registers); throws ExploreError starting with `origin`.
void check_outcome_fields(unsigned vcpus, const std::vector<std::string>& fields, std::string_view origin);

// A scenario's `explore.expect`: the counts the exploration must give (scenarios/README.md
// "explore"); `pvsim explore SCENARIO` exits 1 when one differs.
struct ExploreExpect {
  std::optional<uint64_t> variants;
  std::optional<uint64_t> failing;
  std::optional<uint64_t> groups;
};

// A scenario's `explore` section: the spec (its shard and jobs fields unused) and the counts.
struct ExploreSection {
  ExploreSpec spec;
  ExploreExpect expect;
};

}  // namespace pvsim
