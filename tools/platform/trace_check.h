// tools/platform/trace_check.h — checking the canonical trace while it is produced:
// `expect.trace` claims (scenarios/README.md "Trace expectations") and the golden trace
// (`expect.golden_trace`). Both are TraceObservers, so a trace of gigabytes is checked in
// constant memory (the golden text itself excepted).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace.h"
#include "tools/platform/trace_diff.h"
#include "tools/platform/scenario.h"

namespace pvsim {

// True when `text` contains `pattern`, where '*' in the pattern matches any run of
// characters (so "kvm_msr: msr_write 4b564d0*= 0x1" matches several MSRs).
bool trace_pattern_matches(std::string_view pattern, std::string_view text);

class TraceExpectChecker final : public TraceObserver {
 public:
  explicit TraceExpectChecker(const std::vector<TraceExpect>& expects);
  void on_trace_line(unsigned vcpu, std::string_view line, size_t body) override;
  // One line per expectation that does not hold, for RunReport::expectation_failures.
  void failures(std::vector<std::string>& out) const;

  // Snapshots (tools/platform/README.md "Snapshots"): how far every claim has got.
  struct Snapshot;
  Snapshot save() const;
  void restore(const Snapshot& s);

 private:
  struct State {
    const TraceExpect* x;
    // InOrder (not consecutive): patterns matched so far, and the line of the last one.
    size_t matched = 0;
    uint64_t last_at = 0;
    // InOrder consecutive: the active partial matches (how many patterns each has matched,
    // and the line where it started); the best one seen, for the failure message.
    std::vector<std::pair<size_t, uint64_t>> runs;
    size_t best = 0;
    uint64_t best_start = 0;
    std::string best_break;  // the line that ended the best run
    bool done = false;
    // Count / Absent.
    uint64_t count = 0;
    uint64_t first_line = 0;
    std::string first_text;
  };
  std::vector<State> m_states;
  uint64_t m_line = 0;

 public:
  struct Snapshot {
    std::vector<State> states;
    uint64_t line = 0;
  };
};

inline TraceExpectChecker::Snapshot TraceExpectChecker::save() const { return {m_states, m_line}; }
inline void TraceExpectChecker::restore(const Snapshot& s) {
  m_states = s.states;
  m_line = s.line;
}

// Compares the trace, line by line, with a golden trace text; keeps the first difference
// and the lines before it for a readable report, printed as `pvsim diff` prints its
// (format_difference, trace_diff.h).
class GoldenChecker final : public TraceObserver {
 public:
  // `shown_name` is the golden path as the scenario wrote it, for messages.
  GoldenChecker(std::string golden_text, std::string shown_name);
  void on_trace_line(unsigned vcpu, std::string_view line, size_t body) override;
  // nullopt when the whole trace equals the golden text; otherwise a first line for
  // expectation_failures and a multi-line context block (report()).
  std::optional<std::string> failure() const;
  // The first difference with up to three lines of context before it, "  " indented,
  // '-' golden, '+' this run; empty when equal.
  std::string report() const;

  // Snapshots: the position in the golden text and what has been found so far.
  struct Snapshot {
    size_t pos = 0;
    uint64_t line = 0;
    bool differs = false;
    uint64_t diff_line = 0;
    std::string expected, got;
    RecentLines context{3};
  };
  Snapshot save() const { return {m_pos, m_line, m_differs, m_diff_line, m_expected, m_got, m_context}; }
  void restore(const Snapshot& s) {
    m_pos = s.pos;
    m_line = s.line;
    m_differs = s.differs;
    m_diff_line = s.diff_line;
    m_expected = s.expected;
    m_got = s.got;
    m_context = s.context;
  }

 private:
  std::string next_golden_line();
  std::string m_golden;
  size_t m_pos = 0;
  std::string m_name;
  uint64_t m_line = 0;
  bool m_differs = false;
  uint64_t m_diff_line = 0;
  std::string m_expected, m_got;  // at the first difference ("" = nothing there)
  RecentLines m_context{3};  // up to 3 equal lines before it
};

}  // namespace pvsim
