#include "tools/platform/trace_diff.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <iostream>

#include "core/trace_event.h"
#include "tools/platform/files.h"
#include "tools/platform/text.h"

namespace pvsim {

// ---- the difference block ----------------------------------------------------------------

std::string format_difference(const std::vector<NumberedLine>& context, const std::vector<NumberedLine>& minus,
                              const std::vector<NumberedLine>& plus) {
  std::string out;
  const auto put = [&out](char marker, const NumberedLine& l) {
    out += fmt::format("  {} {:>8}  {}\n", marker, l.number, l.end ? std::string("(end of trace)") : escape_display(l.text, 400));
  };
  for (const NumberedLine& l : context) put(' ', l);
  for (const NumberedLine& l : minus) put('-', l);
  for (const NumberedLine& l : plus) put('+', l);
  return out;
}

RecentLines::RecentLines(size_t keep) : m_ring(keep) {}

void RecentLines::push(uint64_t number, std::string_view text) {
  if (m_ring.empty()) return;
  NumberedLine& slot = m_ring[m_next];
  slot.number = number;
  slot.text.assign(text);  // reuses the slot's buffer
  m_next = (m_next + 1) % m_ring.size();
  m_size = std::min(m_size + 1, m_ring.size());
}

std::vector<NumberedLine> RecentLines::lines() const {
  std::vector<NumberedLine> out;
  out.reserve(m_size);
  const size_t first = (m_next + m_ring.size() - m_size) % std::max<size_t>(m_ring.size(), 1);
  for (size_t k = 0; k < m_size; ++k) out.push_back(m_ring[(first + k) % m_ring.size()]);
  return out;
}

// ---- the canonical text form -------------------------------------------------------------

namespace {

constexpr size_t kMaxLine = 1u << 20;

// Digits at `p` as a number (at most `max_digits` of them); false when there are none.
bool read_digits(std::string_view s, size_t& p, size_t max_digits, uint64_t& v) {
  const size_t from = p;
  v = 0;
  while (p < s.size() && s[p] >= '0' && s[p] <= '9' && p - from < max_digits) v = v * 10 + static_cast<uint64_t>(s[p++] - '0');
  return p > from;
}

bool is_event_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'; }

}  // namespace

std::optional<std::string> parse_trace_text_line(std::string_view line, TraceEvent& e) {
  // The shape the Tracer writes (trace_render_head, core/trace_events.cpp): "CPU <v>/KVM-<v>
  // [<v, 3 digits>] <s>.<ns, 9 digits>: <event>: <text>". The numbers are read, the header is printed
  // again and must match byte for byte, so only canonical lines pass.
  const auto bad = [&line]() {
    return fmt::format("not a pvsim trace line (\"CPU <n>/KVM-<n> [<nnn>] <seconds>: <event>: <text>\" or a JSON "
                       "object): {}",
                       quote_display(line, 100));
  };
  size_t p = 4;
  uint64_t vcpu = 0, sec = 0, ns = 0;
  if (line.substr(0, 4) != "CPU " || !read_digits(line, p, 9, vcpu) || vcpu > UINT_MAX) return bad();
  const size_t close = line.find("] ", p);
  if (close == std::string_view::npos) return bad();
  p = close + 2;
  // 11 digits of seconds cover every uint64_t nanosecond count (1.8e10 s).
  if (!read_digits(line, p, 11, sec) || p >= line.size() || line[p] != '.') return bad();
  ++p;
  const size_t ns_from = p;
  if (!read_digits(line, p, 9, ns) || p - ns_from != 9) return bad();
  if (sec > UINT64_MAX / 1'000'000'000u || sec * 1'000'000'000u > UINT64_MAX - ns) return bad();
  const std::string header = fmt::format("CPU {}/KVM-{} [{:03}] {}.{:09}: ", vcpu, vcpu, vcpu, sec, ns);
  if (line.substr(0, header.size()) != header) return bad();
  p = header.size();
  const size_t name_from = p;
  while (p < line.size() && is_event_char(line[p])) ++p;
  if (p == name_from || line.substr(p, 2) != ": ") return bad();
  e.ts_ns = sec * 1'000'000'000u + ns;
  e.vcpu = static_cast<unsigned>(vcpu);
  e.line.assign(line);
  e.body = header.size();
  return std::nullopt;
}

// ---- the JSON Lines form ------------------------------------------------------------------
//
// The Tracer writes one flat object per event (trace_render_json): "ts_ns", "vcpu", "event",
// then the event's fields (unsigned or signed integers, booleans, strings). Nothing else is a
// pvsim event, so this reads exactly that (any key order and JSON whitespace) and refuses the rest with
// the column where it went wrong; nested values are refused at their first byte, so no
// input can make the reader recurse.

namespace {

struct JsonValue {
  enum class Kind { Unsigned, Negative, Bool, String } kind = Kind::Unsigned;
  uint64_t u = 0;  // Unsigned: the value; Negative: the magnitude; Bool: 0/1
  std::string s;
  bool operator==(const JsonValue& o) const { return kind == o.kind && u == o.u && s == o.s; }
};

std::string describe(const JsonValue& v) {
  switch (v.kind) {
    case JsonValue::Kind::Unsigned: return std::to_string(v.u);
    case JsonValue::Kind::Negative: return fmt::format("-{}", v.u);  // not "-" + to_string: GCC 12 -Wrestrict false positive
    case JsonValue::Kind::Bool: return v.u ? "true" : "false";
    case JsonValue::Kind::String: return quote_display(v.s, 80);
  }
  return {};
}

using JsonObject = std::vector<std::pair<std::string, JsonValue>>;

class FlatJsonParser {
 public:
  explicit FlatJsonParser(std::string_view s) : m_s(s) {}

  JsonObject parse() {
    JsonObject out;
    ws();
    expect('{', "a JSON object starts with '{'");
    ws();
    if (peek() == '}') {
      ++m_p;
    } else {
      for (;;) {
        ws();
        if (peek() != '"') fail("expected a key in double quotes");
        const size_t key_at = m_p;
        std::string key = string();
        for (const auto& kv : out)
          if (kv.first == key) {
            m_p = key_at;
            fail(fmt::format("duplicate key {}", quote_display(key, 60)));
          }
        ws();
        expect(':', "expected ':' after the key");
        ws();
        out.emplace_back(std::move(key), value());
        ws();
        if (peek() == ',') {
          ++m_p;
          continue;
        }
        expect('}', "expected ',' or '}'");
        break;
      }
    }
    ws();
    if (m_p != m_s.size()) fail("text after the end of the object");
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw TraceDiffError(fmt::format("not a pvsim JSON Lines event: {} at column {}", what, m_p + 1));
  }
  char peek() const { return m_p < m_s.size() ? m_s[m_p] : '\0'; }
  void expect(char c, const char* what) {
    if (peek() != c || m_p >= m_s.size()) fail(what);
    ++m_p;
  }
  void ws() {
    while (m_p < m_s.size() && (m_s[m_p] == ' ' || m_s[m_p] == '\t' || m_s[m_p] == '\r' || m_s[m_p] == '\n')) ++m_p;
  }
  bool literal(std::string_view w) {
    if (m_s.substr(m_p, w.size()) != w) return false;
    m_p += w.size();
    return true;
  }
  unsigned hex4() {
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = peek();
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else fail("expected four hex digits after \\u");
      v = v * 16 + d;
      ++m_p;
    }
    return v;
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  // RFC 8259 §7; the bytes of a string are kept as they are (a guest's text may not be UTF-8).
  std::string string() {
    std::string out;
    ++m_p;  // the opening quote
    for (;;) {
      if (m_p >= m_s.size()) fail("unterminated string");
      const char c = m_s[m_p++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) {
        --m_p;
        fail("a control character inside a string");
      }
      if (c != '\\') {
        out += c;
        continue;
      }
      const char x = peek();
      ++m_p;
      switch (x) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xdc00 && cp < 0xe000) fail("a low surrogate without its high surrogate");
          if (cp >= 0xd800 && cp < 0xdc00) {
            if (!literal("\\u")) fail("a high surrogate without its low surrogate");
            const uint32_t lo = hex4();
            if (lo < 0xdc00 || lo >= 0xe000) fail("a high surrogate without its low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          }
          utf8(out, cp);
          break;
        }
        default:
          --m_p;
          fail("an unknown escape in a string");
      }
    }
  }
  JsonValue value() {
    JsonValue v;
    const char c = peek();
    if (c == '"') {
      v.kind = JsonValue::Kind::String;
      v.s = string();
    } else if (literal("true")) {
      v.kind = JsonValue::Kind::Bool;
      v.u = 1;
    } else if (literal("false")) {
      v.kind = JsonValue::Kind::Bool;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      const size_t from = m_p;
      const bool neg = c == '-';
      if (neg) ++m_p;
      if (peek() < '0' || peek() > '9') fail("expected a digit");
      if (peek() == '0' && m_p + 1 < m_s.size() && m_s[m_p + 1] >= '0' && m_s[m_p + 1] <= '9') fail("a number with a leading zero");
      uint64_t n = 0;
      while (peek() >= '0' && peek() <= '9') {
        const auto d = static_cast<uint64_t>(peek() - '0');
        if (n > (UINT64_MAX - d) / 10) {
          m_p = from;
          fail("an integer out of the 64-bit range");
        }
        n = n * 10 + d;
        ++m_p;
      }
      if (peek() == '.' || peek() == 'e' || peek() == 'E') fail("a number that is not an integer (pvsim writes integers)");
      if (neg && n > (1ull << 63)) {
        m_p = from;
        fail("an integer out of the 64-bit range");
      }
      v.kind = neg && n ? JsonValue::Kind::Negative : JsonValue::Kind::Unsigned;
      v.u = n;
    } else if (c == '{' || c == '[') {
      fail("a nested object or array (pvsim's fields are numbers, booleans and strings)");
    } else if (literal("null")) {
      m_p -= 4;
      fail("null (pvsim's fields are numbers, booleans and strings)");
    } else {
      fail("expected a value");
    }
    return v;
  }

  std::string_view m_s;
  size_t m_p = 0;
};

const JsonValue* find(const JsonObject& o, std::string_view key) {
  for (const auto& kv : o)
    if (kv.first == key) return &kv.second;
  return nullptr;
}

// Typed access to the event's own keys (ts_ns, vcpu, event), named in every message.
class Fields {
 public:
  Fields(const JsonObject& o, std::string_view event) : m_o(o), m_event(event) {}
  uint64_t u(const char* key, uint64_t max = UINT64_MAX) const {
    const JsonValue& v = get(key);
    if (v.kind != JsonValue::Kind::Unsigned) type_error(key, "an unsigned integer", v);
    if (v.u > max) fail(fmt::format("field \"{}\" of {} is {}, above its largest value {}", key, m_event, v.u, max));
    return v.u;
  }
  const std::string& s(const char* key) const {
    const JsonValue& v = get(key);
    if (v.kind != JsonValue::Kind::String) type_error(key, "a string", v);
    return v.s;
  }

 private:
  [[noreturn]] static void fail(const std::string& what) { throw TraceDiffError(what); }
  [[noreturn]] void type_error(const char* key, const char* want, const JsonValue& got) const {
    fail(fmt::format("field \"{}\" of {} must be {}, got {}", key, m_event, want, describe(got)));
  }
  const JsonValue& get(const char* key) const {
    const JsonValue* v = find(m_o, key);
    if (!v) fail(fmt::format("{} has no field \"{}\"", m_event, key));
    return *v;
  }
  const JsonObject& m_o;
  std::string_view m_event;
};

// The value of one table field from its JSON value, checked against the field's type.
TraceValue table_value(const TraceEventDesc& d, const TraceFieldDesc& f, const JsonValue& v) {
  const auto fail = [&](const std::string& what) -> TraceValue { throw TraceDiffError(what); };
  const auto type_error = [&](const char* want) {
    return fail(fmt::format("field \"{}\" of {} must be {}, got {}", f.name, d.name, want, describe(v)));
  };
  if (f.type == TraceType::Str) {
    if (v.kind != JsonValue::Kind::String) return type_error("a string");
    return {0, v.s};
  }
  if (trace_field_is_bool(f)) {
    if (v.kind != JsonValue::Kind::Bool) return type_error("true or false");
    return {v.u, {}};
  }
  static constexpr unsigned kBits[] = {8, 16, 32, 64, 8, 16, 32, 64};
  const unsigned bits = kBits[static_cast<unsigned>(f.type)];
  if (!trace_type_signed(f.type)) {
    if (v.kind != JsonValue::Kind::Unsigned) return type_error("an unsigned integer");
    const uint64_t max = bits == 64 ? UINT64_MAX : (uint64_t{1} << bits) - 1;
    if (v.u > max) return fail(fmt::format("field \"{}\" of {} is {}, above its largest value {}", f.name, d.name, v.u, max));
    return {v.u, {}};
  }
  if (v.kind != JsonValue::Kind::Unsigned && v.kind != JsonValue::Kind::Negative) return type_error("an integer");
  const bool neg = v.kind == JsonValue::Kind::Negative;
  const uint64_t limit = uint64_t{1} << (bits - 1);  // |min|; max is one less
  if ((neg && v.u > limit) || (!neg && v.u >= limit)) {
    const int64_t hi = static_cast<int64_t>(limit - 1), lo = -hi - 1;
    return fail(fmt::format("field \"{}\" of {} is {}, outside {}..{}", f.name, d.name, describe(v), lo, hi));
  }
  return {neg ? 0 - v.u : v.u, {}};
}

// A JSON Lines event back to its canonical line, through the event table: every field of
// the event's description must be there with its type (and nothing else), "vcpu_id" (the
// fields KVM keeps the vCPU in) must name the event's vCPU, and the text is what the
// table's print format makes of the values, exactly as Tracer::emit_event wrote it.
class JsonlRebuilder {
 public:
  void rebuild(std::string_view json, TraceEvent& e) {
    const JsonObject o = FlatJsonParser(json).parse();
    const Fields top(o, "the event");
    const uint64_t ts = top.u("ts_ns");
    const auto vcpu = static_cast<unsigned>(top.u("vcpu", UINT_MAX));
    const std::string& event = top.s("event");
    const TraceEventDesc* d = find_trace_event(event);
    if (!d) throw TraceDiffError(fmt::format("event {} is not one pvsim writes", quote_display(event, 80)));
    for (const auto& kv : o) {
      const std::string& k = kv.first;
      if (k != "ts_ns" && k != "vcpu" && k != "event" && trace_field_index(*d, k) < 0)
        throw TraceDiffError(fmt::format("{} has a field {} that pvsim does not write", event, quote_display(k, 60)));
    }
    // The fields carrying the vCPU come last, so a line missing everything names a field
    // of the event's own first.
    m_values.assign(d->fields.size(), TraceValue{});
    for (int pass = 0; pass < 2; ++pass)
      for (size_t k = 0; k < d->fields.size(); ++k) {
        const TraceFieldDesc& f = d->fields[k];
        const bool is_vcpu = std::string_view(f.name) == "vcpu_id";
        if (is_vcpu != (pass == 1)) continue;
        const JsonValue* v = find(o, f.name);
        if (!v) throw TraceDiffError(fmt::format("{} has no field \"{}\"", event, f.name));
        m_values[k] = table_value(*d, f, *v);
        if (is_vcpu && m_values[k].u != vcpu)
          throw TraceDiffError(fmt::format("field \"vcpu_id\" of {} is {}, but pvsim writes {} (the event's vcpu)", event,
                                           m_values[k].u, vcpu));
      }
    e.line.clear();
    e.body = trace_render_line(Tick(ts), vcpu, *d, m_values, e.line);
    e.line.pop_back();  // the '\n'
    e.ts_ns = ts;
    e.vcpu = vcpu;
  }

 private:
  std::vector<TraceValue> m_values;
};

}  // namespace

void rebuild_trace_jsonl_line(std::string_view json, TraceEvent& e) {
  JsonlRebuilder r;
  r.rebuild(json, e);
}

std::vector<std::string_view> jsonl_rebuildable_events() {
  std::vector<std::string_view> out;
  for (const TraceEventDesc& d : trace_event_table()) out.push_back(d.name);
  std::sort(out.begin(), out.end());
  return out;
}

// ---- reading a trace file -------------------------------------------------------------------

struct TraceReader::Rebuilder {
  JsonlRebuilder r;
};

TraceReader::TraceReader(std::istream& in, std::string name) : m_in(in), m_name(std::move(name)), m_buf(1u << 16) {}

TraceReader::~TraceReader() = default;

void TraceReader::fail(const std::string& what) const {
  throw TraceDiffError(fmt::format("{}: line {}: {}", m_name, m_line_no, what));
}

bool TraceReader::read_line(std::string& out) {
  out.clear();
  for (;;) {
    if (m_pos == m_len) {
      if (m_eof) return !out.empty();
      m_in.read(m_buf.data(), static_cast<std::streamsize>(m_buf.size()));
      m_len = static_cast<size_t>(m_in.gcount());
      m_pos = 0;
      if (m_in.bad()) throw TraceDiffError(fmt::format("{}: read error after line {}", m_name, m_line_no));
      if (!m_in) m_eof = true;  // a short read: end of file (or of the pipe)
      if (m_len == 0) {
        m_eof = true;
        return !out.empty();
      }
    }
    const char* from = m_buf.data() + m_pos;
    const auto* nl = static_cast<const char*>(std::memchr(from, '\n', m_len - m_pos));
    const size_t take = nl ? static_cast<size_t>(nl - from) : m_len - m_pos;
    if (out.size() + take > kMaxLine) {
      ++m_line_no;
      fail(fmt::format("longer than {}: not a pvsim trace line", size_words(kMaxLine)));
    }
    out.append(from, take);
    m_pos += take;
    if (nl) {
      ++m_pos;
      return true;
    }
  }
}

bool TraceReader::next(TraceEvent& e) {
  if (!read_line(m_raw)) return false;
  ++m_line_no;
  e.line_no = m_line_no;
  if (m_raw.empty()) fail("an empty line (a pvsim trace has one event on every line)");
  const bool json = m_raw[0] == '{';
  if (m_format == Format::Unknown) {
    m_format = json ? Format::JsonLines : Format::Text;
    if (json) m_rebuild = std::make_unique<Rebuilder>();
  }
  if (m_format == Format::Text) {
    if (json) fail("a JSON line in a text trace (line 1 is text; JSON Lines and text cannot mix in one file)");
    if (auto err = parse_trace_text_line(m_raw, e)) fail(*err);
    return true;
  }
  if (!json)
    fail(fmt::format("not a JSON object (line 1 starts with '{{', so this file is JSON Lines): {}",
                     quote_display(m_raw, 100)));
  try {
    m_rebuild->r.rebuild(m_raw, e);
  } catch (const TraceDiffError& x) {
    fail(x.what());
  }
  return true;
}

std::string trace_display_name(const std::string& path) {
  return path == "-" ? std::string("standard input") : escape_display(path, 300);
}

std::unique_ptr<std::istream> open_trace_file(const std::string& path) {
  const std::string shown = trace_display_name(path);
  if (path.empty()) throw TraceDiffError("an empty path names no trace file");
  // FIFOs and character devices stream (a pipe from `pvsim run --trace -`); a directory and
  // the rest are named as what they are, as for every other input (tools/platform/files.h).
  if (auto kind = non_regular_kind(path)) {
    if (*kind == "missing") throw TraceDiffError(fmt::format("{}: cannot open trace file: {}", shown, std::strerror(ENOENT)));
    if (*kind != "a FIFO" && *kind != "a character device")
      throw TraceDiffError(fmt::format("{}: trace file is {}, not a trace", shown, *kind));
  }
  auto f = std::make_unique<std::ifstream>();
  errno = 0;
  f->open(path, std::ios::binary);
  if (!f->is_open())
    throw TraceDiffError(fmt::format("{}: cannot open trace file: {}", shown, errno ? std::strerror(errno) : "unknown error"));
  return f;
}

// ---- comparing --------------------------------------------------------------------------

TraceDiffResult diff_traces(TraceReader& a, TraceReader& b, const TraceDiffOptions& o) {
  const auto next = [&o](TraceReader& r, TraceEvent& e) {
    while (r.next(e))
      if (!o.vcpu || e.vcpu == *o.vcpu) return true;
    return false;
  };
  const auto body = [](const TraceEvent& e) { return std::string_view(e.line).substr(e.body); };
  const auto same = [&o, &body](const TraceEvent& x, const TraceEvent& y) {
    if (!o.ignore_time) return x.line == y.line;
    return x.vcpu == y.vcpu && body(x) == body(y);
  };
  const std::string which = o.vcpu ? fmt::format(" of vCPU {}", *o.vcpu) : std::string();
  RecentLines context(o.context);
  TraceEvent ea, eb;
  bool ha = false, hb = false;
  uint64_t n = 0;
  TraceDiffResult r;
  for (;;) {
    ha = next(a, ea);
    hb = next(b, eb);
    if (!(ha && hb && same(ea, eb))) break;
    ++n;
    context.push(n, ea.line);
  }
  r.events = n;
  if (!ha && !hb) {
    r.report = fmt::format("traces are identical: {} event{}{}{}\n", n, n == 1 ? "" : "s", which,
                           o.ignore_time ? " (timestamps ignored)" : "");
    return r;
  }
  r.identical = false;
  const uint64_t at = n + 1;
  const std::string where = fmt::format("traces differ at event {}{}{}", at, which, o.ignore_time ? " (timestamps ignored)" : "");
  const std::string names = fmt::format("(- A = {}, + B = {})", a.name(), b.name());
  const std::string events = fmt::format("{} event{}{}", n, n == 1 ? "" : "s", which);
  if (ha && hb)
    r.report = fmt::format("{}: A line {}, B line {} {}\n", where, ea.line_no, eb.line_no, names);
  else if (ha)
    r.report = fmt::format("{}: B ends after {}; A continues at line {} {}\n", where, events, ea.line_no, names);
  else
    r.report = fmt::format("{}: A ends after {}; B continues at line {} {}\n", where, events, eb.line_no, names);

  // The differing event of each side and up to `context` more, or where that side ended.
  const auto side = [&](TraceReader& rd, TraceEvent& e, bool has) {
    std::vector<NumberedLine> out;
    uint64_t k = at;
    for (bool more = has;; more = next(rd, e)) {
      if (!more) {
        out.push_back({k, {}, true});
        break;
      }
      out.push_back({k++, e.line, false});
      if (k > at + o.context) break;
    }
    return out;
  };
  // side() reads on into ea and eb, so the note's comparison comes first.
  const bool only_time = ha && hb && !o.ignore_time && ea.vcpu == eb.vcpu && body(ea) == body(eb);
  const std::vector<NumberedLine> minus = side(a, ea, ha);
  const std::vector<NumberedLine> plus = side(b, eb, hb);
  r.report += format_difference(context.lines(), minus, plus);
  if (only_time) r.report += "  (the same event at another time; --ignore-time compares without the timestamp)\n";
  return r;
}

}  // namespace pvsim
