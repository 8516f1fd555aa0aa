// tools/platform/explore.h — `pvsim explore`: run every variant of a scenario that differs
// in where one host action happens, from one snapshot, and group the variants by outcome
// (tools/platform/README.md "Exploring").
//
// A variant is the scenario plus one more schedule entry, so every variant can be replayed
// on its own with `pvsim run SCENARIO --schedule 'ENTRY'` and gives the same trace: the
// snapshot is taken at a point that changes nothing (Platform::run_to), and the entry is
// armed only after it, which is exactly where an entry armed from the start would first
// have had an effect.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tools/platform/scenario.h"
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

// One variant's result (a JSON Lines record of `pvsim explore --jsonl`).
struct VariantResult {
  std::string scenario;  // the scenario file as given (JSON Lines: for the merge's replay commands)
  uint64_t index = 0;
  // The schedule to replay it: the entries given with --schedule, then the variant's own,
  // canonical ("v1.insn=1234: preempt v1 50us").
  std::string entry;
  bool pass = false;    // every expectation of the scenario held
  std::string outcome;  // the outcome key
  uint64_t trace_hash = 0;
};

struct OutcomeGroup {
  bool pass = false;
  std::string outcome;
  uint64_t count = 0;
  VariantResult first;  // the lowest-numbered variant of the group
};

struct ExploreResult {
  uint64_t variants = 0;     // in the whole window (all shards)
  uint64_t ran = 0;          // by this process (its shard)
  std::vector<OutcomeGroup> groups;  // by first variant index
  uint64_t failing() const;
};

// Parses "v1.insn=1000..2000" into spec.vcpu/from/to; throws ExploreError.
void parse_window(std::string_view text, ExploreSpec& spec);

// Number of variants the spec describes (ExploreError when it exceeds 2^62).
uint64_t variant_count(const ExploreSpec& spec);

// PCT's guarantee (Burckhardt et al., ASPLOS 2010): one random schedule finds a given bug of
// depth d with probability at least 1 / (n k^(d-1)), n threads, k steps; `runs` schedules
// at least 1 - (1 - p)^runs. Here n = vCPUs taking part, k = the window's length.
double pct_bound_one(const ExploreSpec& spec);
double pct_bound_all(const ExploreSpec& spec);

// Runs the exploration. `on_result` sees every variant in index order (for JSON Lines);
// `progress(done, total)` is called now and then. Throws ExploreError for a window the
// run never reaches, ScenarioError for a bad scenario.
ExploreResult explore(const Scenario& s, const ExploreSpec& spec,
                      const std::function<void(const VariantResult&)>& on_result,
                      const std::function<void(uint64_t done, uint64_t total)>& progress);

// Groups results (from one run or from the JSON Lines of several shards).
std::vector<OutcomeGroup> group_results(const std::vector<VariantResult>& results);

// JSON Lines: one record per variant, and back (merge). parse throws ExploreError naming
// `origin` and the line.
std::string variant_json(const VariantResult& r);
VariantResult parse_variant_json(std::string_view line, std::string_view origin, uint64_t line_no);

// The human summary: one block per group with its count and replay command.
void print_groups(std::FILE* out, const std::string& scenario_file, const ExploreResult& r);

}  // namespace pvsim
