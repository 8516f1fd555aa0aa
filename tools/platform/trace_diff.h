// tools/platform/trace_diff.h — `pvsim diff A B`: where two traces part (README.md "The
// trace", tools/platform/README.md §7).
//
// Both traces are read event by event, in step, and the first event where they differ is
// reported with the events before it (common to both) and a few after it on each side.
// Memory is O(context), so traces of gigabytes compare in constant space.
//
// Each file is either the canonical text (`pvsim run --trace`) or its JSON Lines copy
// (`--trace-jsonl`), told apart by the first line (a JSON line starts with '{'). A JSON Lines
// event carries its fields, not its text: its canonical line is rebuilt from the event table
// (core/trace_event.h) by the same renderer that wrote the text, after checking that the
// line has exactly the event's fields with their types, so a text trace and a JSON Lines
// trace of one run compare equal event for event, and a JSON line that is not a pvsim event
// is an error, never a silent guess.
//
// The difference block (context, '-' lines, '+' lines) is formatted by one function,
// format_difference(), which the golden-trace comparison (trace_check.h) prints too.
#pragma once
#include <cstdint>
#include <istream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pvsim {

// ---- the difference block, shared with GoldenChecker ---------------------------------------

// One line of a difference report: its number (line or event) and its text, or the end of
// a trace (printed "(end of trace)").
struct NumberedLine {
  uint64_t number = 0;
  std::string text;
  bool end = false;
};

// The lines of a first-difference report, each "  " + marker + " " + number (8 wide) + "  " +
// text (escaped for one line, at most 400 characters): first `context` (marker ' '), then
// `minus` ('-'), then `plus` ('+'). Ends in '\n' unless all three are empty.
std::string format_difference(const std::vector<NumberedLine>& context, const std::vector<NumberedLine>& minus,
                              const std::vector<NumberedLine>& plus);

// The last `keep` lines pushed, oldest first; buffers are reused, so pushing a line per
// event allocates nothing once every slot has held a line as long.
class RecentLines {
 public:
  explicit RecentLines(size_t keep);
  void push(uint64_t number, std::string_view text);
  std::vector<NumberedLine> lines() const;
  size_t size() const { return m_size; }

 private:
  std::vector<NumberedLine> m_ring;
  size_t m_next = 0, m_size = 0;
};

// ---- reading traces -------------------------------------------------------------------------

// Bad input: what() is one line, "NAME: line N: problem" or "NAME: problem".
class TraceDiffError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// One event, whichever form it was read in.
struct TraceEvent {
  uint64_t ts_ns = 0;
  unsigned vcpu = 0;
  std::string line;   // the canonical text line, without '\n' (rebuilt for JSON Lines)
  size_t body = 0;    // line.substr(body) is "event: text"
  uint64_t line_no = 0;  // 1-based, in its file
};

// Events of one trace file, in order. Lines are read in blocks and may be at most 1 MiB
// long (a canonical line is far shorter; the cap keeps /dev/zero from filling memory).
class TraceReader {
 public:
  enum class Format { Unknown, Text, JsonLines };
  // `name` is how messages name the file (already escaped for display).
  TraceReader(std::istream& in, std::string name);
  ~TraceReader();
  TraceReader(const TraceReader&) = delete;
  TraceReader& operator=(const TraceReader&) = delete;
  // The next event; false at the end of the file. Throws TraceDiffError on a line that is
  // neither a canonical trace line nor a pvsim JSON Lines event, or a read error.
  bool next(TraceEvent& e);
  Format format() const { return m_format; }
  const std::string& name() const { return m_name; }
  uint64_t lines_read() const { return m_line_no; }

 private:
  bool read_line(std::string& out);
  [[noreturn]] void fail(const std::string& what) const;
  std::istream& m_in;
  std::string m_name;
  Format m_format = Format::Unknown;
  uint64_t m_line_no = 0;
  std::vector<char> m_buf;
  size_t m_pos = 0, m_len = 0;
  bool m_eof = false;
  std::string m_raw;
  struct Rebuilder;
  std::unique_ptr<Rebuilder> m_rebuild;  // for JSON Lines
};

// Opens a trace file for TraceReader: "-" is standard input; a directory, a block device
// or a socket is refused, and so is a path that cannot be opened (FIFOs and pipes, as from
// `<(pvsim run ... --trace -)`, are read as they stream). Throws TraceDiffError
// "PATH: cannot open trace file: No such file or directory".
std::unique_ptr<std::istream> open_trace_file(const std::string& path);
// How messages name a trace file: "standard input" for "-", else the path, escaped.
std::string trace_display_name(const std::string& path);

// Parses a canonical text line (without '\n') into `e` (line_no untouched); nullopt when
// it is one, else what is wrong with it.
std::optional<std::string> parse_trace_text_line(std::string_view line, TraceEvent& e);

// Rebuilds the canonical text line of one JSON Lines event (without '\n') into `e`; throws
// TraceDiffError with the problem (no file name or line number) when the line is not a
// pvsim event.
void rebuild_trace_jsonl_line(std::string_view json, TraceEvent& e);

// The event names rebuild_trace_jsonl_line() knows (the whole event table), sorted (a test
// checks they cover every event method of core/trace.h).
std::vector<std::string_view> jsonl_rebuildable_events();

// ---- comparing ------------------------------------------------------------------------------

struct TraceDiffOptions {
  unsigned context = 3;            // common events shown before the difference, and events after it per side
  bool ignore_time = false;        // compare without the timestamp column
  std::optional<unsigned> vcpu;    // compare only this vCPU's events
};

struct TraceDiffResult {
  bool identical = true;
  uint64_t events = 0;  // events compared equal (all of them when identical)
  std::string report;   // what `pvsim diff` prints: the verdict line, then the block when they differ
};

// Reads both traces in step up to the first difference (and `context` events past it on
// each side). Throws TraceDiffError on bad input in what it reads.
TraceDiffResult diff_traces(TraceReader& a, TraceReader& b, const TraceDiffOptions& o);

}  // namespace pvsim
