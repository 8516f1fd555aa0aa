#include "tools/platform/trace_check.h"

#include <fmt/format.h>

#include "tools/platform/text.h"
#include "tools/platform/trace_diff.h"

namespace pvsim {

bool trace_pattern_matches(std::string_view pattern, std::string_view text) {
  // Unanchored at both ends, so the leftmost match of each literal piece, in order, is a
  // match whenever one exists.
  size_t from = 0;
  while (!pattern.empty()) {
    const size_t star = pattern.find('*');
    const std::string_view piece = pattern.substr(0, star);
    if (!piece.empty()) {
      const size_t at = text.find(piece, from);
      if (at == std::string_view::npos) return false;
      from = at + piece.size();
    }
    if (star == std::string_view::npos) break;
    pattern.remove_prefix(star + 1);
  }
  return true;
}

namespace {

std::string_view strip_newline(std::string_view l) {
  return !l.empty() && l.back() == '\n' ? l.substr(0, l.size() - 1) : l;
}

std::string label(size_t i, const TraceExpect& x) { return fmt::format("expect.trace[{}] [{}]", i, x.name); }

std::string vcpu_words(const TraceExpect& x) { return x.vcpu ? fmt::format(" of vCPU {}", *x.vcpu) : std::string(); }

}  // namespace

TraceExpectChecker::TraceExpectChecker(const std::vector<TraceExpect>& expects) {
  for (const TraceExpect& x : expects) m_states.push_back(State{&x, 0, 0, {}, 0, 0, {}, false, 0, 0, {}});
}

void TraceExpectChecker::on_trace_line(unsigned vcpu, std::string_view line, size_t body) {
  ++m_line;
  const std::string_view text = strip_newline(line.substr(body));
  for (State& st : m_states) {
    const TraceExpect& x = *st.x;
    if (st.done || (x.vcpu && *x.vcpu != vcpu)) continue;
    switch (x.kind) {
      case TraceExpect::Kind::InOrder:
        if (!x.consecutive) {
          if (trace_pattern_matches(x.patterns[st.matched], text)) {
            ++st.matched;
            st.last_at = m_line;
          }
          st.done = st.matched == x.patterns.size();
        } else {
          // All partial matches advance together (a tiny NFA over the pattern list), so an
          // overlapping start is never missed.
          std::vector<std::pair<size_t, uint64_t>> next;
          for (const auto& [k, start] : st.runs) {
            if (trace_pattern_matches(x.patterns[k], text)) {
              next.emplace_back(k + 1, start);
            } else if (k > st.best || (k == st.best && st.best_break.empty())) {
              st.best = k;
              st.best_start = start;
              st.best_break = std::string(strip_newline(line));
            }
          }
          if (trace_pattern_matches(x.patterns[0], text)) next.emplace_back(1, m_line);
          for (const auto& [k, start] : next)
            if (k == x.patterns.size()) st.done = true;
          st.runs = std::move(next);
        }
        break;
      case TraceExpect::Kind::Absent:
      case TraceExpect::Kind::Count:
        if (trace_pattern_matches(x.patterns[0], text)) {
          if (st.count++ == 0) {
            st.first_line = m_line;
            st.first_text = std::string(strip_newline(line));
          }
        }
        break;
    }
  }
}

void TraceExpectChecker::failures(std::vector<std::string>& out) const {
  for (size_t i = 0; i < m_states.size(); ++i) {
    const State& st = m_states[i];
    const TraceExpect& x = *st.x;
    switch (x.kind) {
      case TraceExpect::Kind::InOrder:
        if (st.done) break;
        if (!x.consecutive) {
          const size_t k = st.matched;
          out.push_back(fmt::format(
              "{}: {} of {} patterns found in order{}; no line{} {}matches pattern {} {}", label(i, x), k,
              x.patterns.size(), k ? fmt::format(" (the last at line {})", st.last_at) : "", vcpu_words(x),
              k ? fmt::format("after line {} ", st.last_at) : "", k, quote_display(x.patterns[k], 120)));
        } else {
          size_t best = st.best;
          uint64_t start = st.best_start;
          std::string brk = st.best_break;
          for (const auto& [k, s] : st.runs)  // a run still open when the trace ended
            if (k > best) {
              best = k;
              start = s;
              brk.clear();
            }
          if (best == 0)
            out.push_back(fmt::format("{}: no line{} matches pattern 0 {}", label(i, x), vcpu_words(x),
                                      quote_display(x.patterns[0], 120)));
          else
            out.push_back(fmt::format(
                "{}: the longest run of consecutive lines{} matches {} of {} patterns (from line {}); then {} where "
                "pattern {} {} was expected",
                label(i, x), vcpu_words(x), best, x.patterns.size(), start,
                brk.empty() ? std::string("the trace ended") : "came " + quote_display(brk, 160),
                best, quote_display(x.patterns[best], 120)));
        }
        break;
      case TraceExpect::Kind::Absent:
        if (st.count)
          out.push_back(fmt::format("{}: {} matches {} line(s){}, the first at line {}: {}", label(i, x),
                                    quote_display(x.patterns[0], 120), st.count, vcpu_words(x), st.first_line,
                                    quote_display(st.first_text, 160)));
        break;
      case TraceExpect::Kind::Count:
        if (st.count < x.min || st.count > x.max) {
          const std::string range = x.max == UINT64_MAX ? fmt::format("at least {}", x.min)
                                    : x.min == x.max    ? fmt::format("exactly {}", x.min)
                                                        : fmt::format("{} to {}", x.min, x.max);
          out.push_back(fmt::format("{}: {} matches {} line(s){}, expected {}", label(i, x),
                                    quote_display(x.patterns[0], 120), st.count, vcpu_words(x), range));
        }
        break;
    }
  }
}

// ---- golden traces ------------------------------------------------------------------------

GoldenChecker::GoldenChecker(std::string golden_text, std::string shown_name)
    : m_golden(std::move(golden_text)), m_name(std::move(shown_name)) {}

std::string GoldenChecker::next_golden_line() {
  if (m_pos >= m_golden.size()) return {};
  const size_t nl = m_golden.find('\n', m_pos);
  const size_t end = nl == std::string::npos ? m_golden.size() : nl + 1;
  std::string l = m_golden.substr(m_pos, end - m_pos);
  m_pos = end;
  return l;
}

void GoldenChecker::on_trace_line(unsigned, std::string_view line, size_t) {
  ++m_line;
  if (m_differs) return;
  std::string want = next_golden_line();
  if (want == line) {
    m_context.push(m_line, strip_newline(line));
    return;
  }
  m_differs = true;
  m_diff_line = m_line;
  m_expected = std::string(strip_newline(want));
  m_got = std::string(strip_newline(line));
  if (want.empty()) m_expected.clear();
}

namespace {
// Two lines that differ late would look the same once cut to a readable length: show both
// from a little before the first differing character.
std::pair<std::string, std::string> around_difference(const std::string& a, const std::string& b) {
  size_t col = 0;
  while (col < a.size() && col < b.size() && a[col] == b[col]) ++col;
  if (col <= 100) return {quote_display(a, 160), quote_display(b, 160)};
  const size_t from = col - 40;
  return {"..." + quote_display(a.substr(from), 160), "..." + quote_display(b.substr(from), 160)};
}
}  // namespace

std::optional<std::string> GoldenChecker::failure() const {
  if (m_differs) {
    if (m_expected.empty())
      return fmt::format("expect.golden_trace: {} ends at line {}, but the trace goes on: {}", m_name,
                         m_diff_line - 1, quote_display(m_got, 160));
    const auto [want, got] = around_difference(m_expected, m_got);
    return fmt::format("expect.golden_trace: the trace differs from {} at line {}: expected {}, got {}", m_name,
                       m_diff_line, want, got);
  }
  if (m_pos < m_golden.size()) {
    const size_t nl = m_golden.find('\n', m_pos);
    const std::string next = m_golden.substr(m_pos, nl == std::string::npos ? std::string::npos : nl - m_pos);
    return fmt::format("expect.golden_trace: the trace ends at line {}, but {} goes on: {}", m_line, m_name,
                       quote_display(next, 160));
  }
  return std::nullopt;
}

std::string GoldenChecker::report() const {
  if (!failure()) return {};
  std::string out = fmt::format("  first difference from {} (- golden, + this run):\n", m_name);
  std::vector<NumberedLine> minus, plus;
  if (m_differs) {
    if (!m_expected.empty()) minus.push_back({m_diff_line, m_expected, false});
    plus.push_back({m_diff_line, m_got, false});
  } else {
    const size_t nl = m_golden.find('\n', m_pos);
    minus.push_back({m_line + 1, m_golden.substr(m_pos, nl == std::string::npos ? std::string::npos : nl - m_pos), false});
    plus.push_back({m_line + 1, {}, true});
  }
  return out + format_difference(m_context.lines(), minus, plus);
}

}  // namespace pvsim
