// tests/fuzz/fuzz_trace_check.cpp — fuzz target: the trace claims of `expect.trace` and the
// golden-trace comparison (tools/platform/trace_check.h), whose patterns come straight from
// scenario files.
//
// Input: the first line is a pattern, the rest are trace lines ("event: text", vCPU taken
// from the line's first byte). Properties:
//   * trace_pattern_matches() agrees with a plain dynamic-programming glob matcher on every
//     line (the pattern is unanchored: "*" + pattern + "*");
//   * every claim form (in_order, in_order consecutive, absent, count) over the lines
//     finishes, and each failure it reports is one line without control characters;
//   * the golden comparison of the lines against themselves holds, and against a copy with
//     one line changed reports that line, in one line, with a well-formed context report.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/trace.h"
#include "tests/fuzz/fuzz_check.h"
#include "tools/platform/trace_check.h"

namespace {

using namespace pvsim;
using pvsim::fuzz::fuzz_check;

// Reference: does `text` contain a match of `pattern` ('*' = any run)? O(n*m) table.
bool glob_contains(std::string_view pattern, std::string_view text) {
  std::string p(1, '*');  // (not "*" + ...: g++ 12 warns falsely, -Wrestrict)
  p.append(pattern);
  p += '*';
  std::vector<char> prev(text.size() + 1, 0), cur(text.size() + 1, 0);
  prev[0] = 1;
  for (size_t i = 1; i <= p.size(); ++i) {
    cur.assign(text.size() + 1, 0);
    if (p[i - 1] == '*') {
      char any = 0;
      for (size_t j = 0; j <= text.size(); ++j) {
        any = any || prev[j];
        cur[j] = any;
      }
    } else {
      for (size_t j = 1; j <= text.size(); ++j) cur[j] = prev[j - 1] && text[j - 1] == p[i - 1];
    }
    prev.swap(cur);
  }
  return prev[text.size()] != 0;
}

void check_lines(const std::vector<std::string>& msgs) {
  for (const std::string& m : msgs) {
    fuzz_check(!m.empty(), "empty failure message");
    for (char c : m) {
      const auto u = static_cast<unsigned char>(c);
      fuzz_check(u >= 0x20 && u != 0x7f, "failure message has a control character", m);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;  // keep an execution in the milliseconds (the table is n*m)
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const size_t nl = in.find('\n');
  const std::string pattern(in.substr(0, nl));
  std::vector<std::pair<unsigned, std::string>> lines;
  if (nl != std::string_view::npos) {
    std::string_view rest = in.substr(nl + 1);
    while (!rest.empty() && lines.size() < 64) {
      const size_t e = rest.find('\n');
      std::string_view l = rest.substr(0, e);
      const unsigned vcpu = l.empty() ? 0u : static_cast<unsigned char>(l[0]) % 4;
      lines.emplace_back(vcpu, std::string(l));
      if (e == std::string_view::npos) break;
      rest.remove_prefix(e + 1);
    }
  }

  for (const auto& [v, l] : lines)
    fuzz_check(trace_pattern_matches(pattern, l) == glob_contains(pattern, l), "pattern matcher disagrees",
               pattern + " | " + l);
  if (pattern.empty() || pattern.find_first_not_of('*') == std::string::npos) return 0;  // the parser refuses these

  std::vector<TraceExpect> xs;
  for (int form = 0; form < 5; ++form) {
    TraceExpect x;
    x.name = std::string(1, 'f');
    x.name += std::to_string(form);
    x.patterns = {pattern};
    if (form <= 1) {
      x.kind = TraceExpect::Kind::InOrder;
      x.patterns = {pattern, pattern};
      x.consecutive = form == 1;
    } else if (form == 2) {
      x.kind = TraceExpect::Kind::Absent;
    } else {
      x.kind = TraceExpect::Kind::Count;
      x.min = 1;
      x.max = 2;
      if (form == 4) x.vcpu = 1;
    }
    xs.push_back(x);
  }
  // Each input line as an event: "event: text" split where Tracer::emit would join it.
  const auto emit_all = [&lines](Tracer& tr) {
    for (const auto& [v, l] : lines) {
      const std::string_view sv(l);
      const size_t c = sv.find(": ");
      tr.emit(Tick(1), v, sv.substr(0, c), c == std::string_view::npos ? std::string_view() : sv.substr(c + 2), {});
    }
  };
  Tracer t;
  TraceExpectChecker checker(xs);
  std::string golden;
  {
    Tracer g;
    struct Copy final : TraceObserver {
      std::string* out;
      void on_trace_line(unsigned, std::string_view line, size_t) override { out->append(line); }
    } copy;
    copy.out = &golden;
    g.add_observer(&copy);
    emit_all(g);
  }
  GoldenChecker same(golden, "g");
  std::string changed = golden;
  if (!changed.empty()) changed[changed.size() / 2] = changed[changed.size() / 2] == 'x' ? 'y' : 'x';
  GoldenChecker other(changed, "g");
  t.add_observer(&checker);
  t.add_observer(&same);
  t.add_observer(&other);
  emit_all(t);
  std::vector<std::string> msgs;
  checker.failures(msgs);
  check_lines(msgs);
  fuzz_check(!same.failure(), "a trace differs from its own golden copy");
  if (changed != golden) {
    const auto f = other.failure();
    fuzz_check(f.has_value(), "a changed golden trace compares equal");
    check_lines({*f});
    fuzz_check(!other.report().empty(), "no report for a golden difference");
  }
  return 0;
}
