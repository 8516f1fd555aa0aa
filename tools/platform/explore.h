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

#include "tools/platform/explore_spec.h"
#include "tools/platform/scenario.h"

namespace pvsim {

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
