// tests/trace_dat/trace_dat_test.cpp — the trace.dat writer (tools/platform/trace_dat.h), read
// back with a small reader of our own that follows trace-cmd.dat(5) version 6 and the ring
// buffer's page and record layout, independently of the writer's code.
#include <catch2/catch.hpp>

#include <array>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tools/platform/trace_dat.h"

using namespace pvsim;

namespace {

// ---- a hand-built event table (the real one is core/trace_events.cpp) ----
const TraceFieldDesc kMsrFields[] = {{"write", TraceType::U8, "bool"},
                                     {"ecx", TraceType::U32, "u32"},
                                     {"data", TraceType::U64, "u64"},
                                     {"exception", TraceType::U8, "u8"}};
const TraceFieldDesc kEoiFields[] = {{"apicid", TraceType::U32, "__u32"}, {"vector", TraceType::S32, "int"}};
const TraceFieldDesc kWhatFields[] = {{"what", TraceType::Str, "char[]"}, {"detail", TraceType::Str, "char[]"}};
const TraceFieldDesc kMixFields[] = {{"a", TraceType::U8, "u8"},
                                     {"b", TraceType::U64, "unsigned long"},
                                     {"c", TraceType::S32, "int"},
                                     {"s", TraceType::Str, "char[]"},
                                     {"d", TraceType::S16, nullptr}};
const TraceEventDesc kTable[] = {
    {0, "kvm", "kvm_msr", kMsrFields,
     "\"msr_%s %x = 0x%llx%s\", REC->write ? \"write\" : \"read\", REC->ecx, REC->data, REC->exception ? \" (#GP)\" : \"\""},
    {1, "kvm", "kvm_eoi", kEoiFields, "\"apicid %x vector %d\", REC->apicid, REC->vector"},
    {2, "pvsim", "pvsim_vcpu", kWhatFields,
     "\"%s%s%s\", __get_str(what), __get_dynamic_array_len(detail) > 1 ? \": \" : \"\", __get_str(detail)"},
    {3, "pvsim", "pvsim_mix", kMixFields, "\"a %u\", REC->a"},
};

// ---- the reader ----
struct Cursor {
  const std::string& f;
  size_t at = 0;
  uint64_t le(unsigned n) {
    REQUIRE(at + n <= f.size());
    uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v |= uint64_t{static_cast<unsigned char>(f[at + i])} << (8 * i);
    at += n;
    return v;
  }
  std::string bytes(size_t n) {
    REQUIRE(at + n <= f.size());
    std::string s = f.substr(at, n);
    at += n;
    return s;
  }
  std::string cstr() {
    const size_t end = f.find('\0', at);
    REQUIRE(end != std::string::npos);
    std::string s = f.substr(at, end - at);
    at = end + 1;
    return s;
  }
};

struct FieldFmt {
  std::string decl;
  unsigned offset = 0, size = 0;
  bool is_signed = false;
};
struct EventFmt {
  std::string system, name, print_fmt, text;
  unsigned id = 0;
  std::vector<std::pair<std::string, FieldFmt>> fields;  // by name, in order (common ones first)
  const FieldFmt& field(const std::string& n) const {
    for (const auto& [name, f] : fields)
      if (name == n) return f;
    FAIL("no field " << n << " in " << name);
    throw;
  }
};

// Parses one tracefs-style `format` text.
EventFmt parse_format(const std::string& sys, const std::string& text) {
  EventFmt e;
  e.system = sys;
  e.text = text;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("name: ", 0) == 0) e.name = line.substr(6);
    else if (line.rfind("ID: ", 0) == 0) e.id = static_cast<unsigned>(std::stoul(line.substr(4)));
    else if (line.rfind("print fmt: ", 0) == 0) e.print_fmt = line.substr(11);
    else if (line.rfind("\tfield:", 0) == 0) {
      // "\tfield:<decl>;\toffset:N;\tsize:N;\tsigned:N;"
      FieldFmt f;
      const size_t semi = line.find(';');
      f.decl = line.substr(7, semi - 7);
      unsigned sgn = 0;
      REQUIRE(std::sscanf(line.c_str() + semi, ";\toffset:%u;\tsize:%u;\tsigned:%u;", &f.offset, &f.size, &sgn) == 3);
      f.is_signed = sgn != 0;
      const std::string name = f.decl.substr(f.decl.rfind(' ') + 1);
      e.fields.emplace_back(name, f);
    }
  }
  return e;
}

struct Record {
  unsigned cpu = 0;
  uint64_t ts = 0;
  std::string payload;
  unsigned type_len = 0;
};

struct DatFile {
  uint32_t page_size = 0;
  std::string header_page, header_event, cmdlines;
  std::vector<EventFmt> events;
  unsigned cpus = 0;
  std::vector<std::pair<uint64_t, uint64_t>> cpu_table;
  std::vector<Record> records;  // per CPU in file order
  unsigned pages = 0, time_extends = 0, long_records = 0, page_starts_mid_stream = 0;

  const EventFmt& event_by_id(unsigned id) const {
    for (const EventFmt& e : events)
      if (e.id == id) return e;
    FAIL("no event with ID " << id);
    throw;
  }
};

DatFile read_dat(const std::string& f) {
  DatFile d;
  Cursor c{f};
  REQUIRE(c.bytes(3) == std::string("\x17\x08\x44", 3));
  REQUIRE(c.bytes(7) == "tracing");
  REQUIRE(c.cstr() == "6");
  REQUIRE(c.le(1) == 0);  // little-endian
  REQUIRE(c.le(1) == 8);  // long size
  d.page_size = static_cast<uint32_t>(c.le(4));
  REQUIRE(c.bytes(12) == std::string("header_page\0", 12));
  d.header_page = c.bytes(c.le(8));
  REQUIRE(c.bytes(13) == std::string("header_event\0", 13));
  d.header_event = c.bytes(c.le(8));
  const uint64_t ftrace = c.le(4);
  for (uint64_t i = 0; i < ftrace; ++i) c.bytes(c.le(8));
  const uint64_t systems = c.le(4);
  for (uint64_t s = 0; s < systems; ++s) {
    const std::string sys = c.cstr();
    const uint64_t n = c.le(4);
    for (uint64_t i = 0; i < n; ++i) d.events.push_back(parse_format(sys, c.bytes(c.le(8))));
  }
  c.bytes(c.le(4));  // kallsyms
  c.bytes(c.le(4));  // printk formats
  d.cmdlines = c.bytes(c.le(8));
  d.cpus = static_cast<unsigned>(c.le(4));
  std::string kind = c.bytes(10);
  if (kind == std::string("options  \0", 10)) {
    for (;;) {
      const uint64_t opt = c.le(2);
      if (opt == 0) break;
      c.bytes(c.le(4));
    }
    kind = c.bytes(10);
  }
  REQUIRE(kind == std::string("flyrecord\0", 10));
  for (unsigned i = 0; i < d.cpus; ++i) {
    const uint64_t off = c.le(8), size = c.le(8);
    d.cpu_table.emplace_back(off, size);
  }
  // Each CPU's pages: 8-byte time, 8-byte commit, then records.
  for (unsigned cpu = 0; cpu < d.cpus; ++cpu) {
    const auto [off, size] = d.cpu_table[cpu];
    REQUIRE(off % d.page_size == 0);
    REQUIRE(size % d.page_size == 0);
    REQUIRE(off + size <= f.size());
    for (uint64_t p = off; p < off + size; p += d.page_size) {
      ++d.pages;
      Cursor pc{f, static_cast<size_t>(p)};
      uint64_t ts = pc.le(8);
      const uint64_t commit = pc.le(8);
      REQUIRE(commit > 0);
      REQUIRE(commit <= d.page_size - 16);
      const size_t start = pc.at, end = start + commit;
      while (pc.at < end) {
        const uint32_t h = static_cast<uint32_t>(pc.le(4));
        const unsigned type_len = h & 31;
        const uint64_t delta = h >> 5;
        if (type_len == 30) {
          ts += delta | pc.le(4) << 27;
          ++d.time_extends;
          continue;
        }
        REQUIRE(type_len <= 28);  // no padding or absolute stamps from this writer
        size_t len;
        if (type_len == 0) {
          len = pc.le(4) - 4;
          ++d.long_records;
        } else {
          len = type_len * 4;
        }
        ts += delta;
        Record r;
        r.cpu = cpu;
        r.ts = ts;
        r.type_len = type_len;
        r.payload = pc.bytes(len);
        REQUIRE(pc.at <= end);
        d.records.push_back(std::move(r));
      }
      REQUIRE(pc.at == end);
    }
  }
  return d;
}

uint64_t read_le(const std::string& p, unsigned off, unsigned size) {
  REQUIRE(off + size <= p.size());
  uint64_t v = 0;
  for (unsigned i = 0; i < size; ++i) v |= uint64_t{static_cast<unsigned char>(p[off + i])} << (8 * i);
  return v;
}

// A field's value, looked up by name through the file's own format text.
uint64_t int_field(const DatFile& d, const Record& r, const std::string& name) {
  const EventFmt& e = d.event_by_id(static_cast<unsigned>(read_le(r.payload, 0, 2)));
  const FieldFmt& f = e.field(name);
  uint64_t v = read_le(r.payload, f.offset, f.size);
  if (f.is_signed && f.size < 8 && (v >> (8 * f.size - 1)) & 1) v |= ~uint64_t{0} << (8 * f.size);
  return v;
}
std::string str_field(const DatFile& d, const Record& r, const std::string& name) {
  const EventFmt& e = d.event_by_id(static_cast<unsigned>(read_le(r.payload, 0, 2)));
  const FieldFmt& f = e.field(name);
  REQUIRE(f.decl.rfind("__data_loc char[] ", 0) == 0);
  const uint64_t loc = read_le(r.payload, f.offset, 4);
  const size_t off = loc & 0xffff, len = loc >> 16;
  REQUIRE(len >= 1);
  REQUIRE(off + len <= r.payload.size());
  REQUIRE(r.payload[off + len - 1] == '\0');
  return r.payload.substr(off, len - 1);
}

// What the test sent, to compare with what comes back.
struct Sent {
  unsigned cpu;
  uint64_t ts;
  const TraceEventDesc* desc;
  std::vector<uint64_t> u;
  std::vector<std::string> s;
  uint64_t order;
};

struct Feeder {
  explicit Feeder(TraceDatWriter& writer) : w(writer) {}
  TraceDatWriter& w;
  std::vector<Sent> sent;
  void send(unsigned cpu, uint64_t ts, const TraceEventDesc& d, std::vector<uint64_t> u, std::vector<std::string> s = {}) {
    std::vector<TraceValue> vals(d.fields.size());
    size_t ui = 0, si = 0;
    for (size_t i = 0; i < d.fields.size(); ++i) {
      if (d.fields[i].type == TraceType::Str) vals[i].s = s.at(si++);
      else vals[i].u = u.at(ui++);
    }
    TraceRecord r;
    r.index = sent.size();
    r.ts = Tick{ts};
    r.vcpu = cpu;
    r.desc = &d;
    r.values = vals;
    w.on_event(r);
    sent.push_back({cpu, ts, &d, std::move(u), std::move(s), sent.size()});
  }
};

}  // namespace

TEST_CASE("trace.dat: an event's format text and record layout", "[trace_dat]") {
  const TraceEventDesc& mix = kTable[3];
  // u8 a at 8; u64 b aligned to 16; s32 c at 24; the string's data_loc word at 28; s16 d at 32;
  // the fixed part padded to the u64's alignment: 40.
  const std::string expected =
      "name: pvsim_mix\n"
      "ID: 1003\n"
      "format:\n"
      "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
      "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n"
      "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n"
      "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n"
      "\n"
      "\tfield:u8 a;\toffset:8;\tsize:1;\tsigned:0;\n"
      "\tfield:unsigned long b;\toffset:16;\tsize:8;\tsigned:0;\n"
      "\tfield:int c;\toffset:24;\tsize:4;\tsigned:1;\n"
      "\tfield:__data_loc char[] s;\toffset:28;\tsize:4;\tsigned:1;\n"
      "\tfield:s16 d;\toffset:32;\tsize:2;\tsigned:1;\n"
      "\n"
      "print fmt: \"a %u\", REC->a\n";
  CHECK(trace_dat_format(mix) == expected);
  const TraceDatLayout l = trace_dat_layout(mix);
  CHECK(l.fixed_size == 40);

  const std::array<TraceValue, 5> v{{{0x1ff}, {0x1122334455667788}, {static_cast<uint64_t>(-7)}, {0, "hello"}, {static_cast<uint64_t>(-2)}}};
  const std::string p = trace_dat_payload(mix, l, 3, v);
  REQUIRE(p.size() == 40 + 6);
  CHECK(read_le(p, 0, 2) == 1003);                   // common_type = ID
  CHECK(read_le(p, 2, 2) == 0);                      // flags, preempt count
  CHECK(read_le(p, 4, 4) == static_cast<uint64_t>(kTraceDatPidBase + 3));   // common_pid of vCPU 3
  CHECK(read_le(p, 8, 1) == 0xff);                   // a: truncated to its size
  CHECK(read_le(p, 16, 8) == 0x1122334455667788);
  CHECK(read_le(p, 24, 4) == 0xfffffff9);
  CHECK(read_le(p, 28, 4) == (40u | 6u << 16));     // data after the fixed part, length with NUL
  CHECK(read_le(p, 32, 2) == 0xfffe);
  CHECK(p.substr(40) == std::string("hello\0", 6));
}

TEST_CASE("trace.dat: header, formats, cmdlines and the CPU table", "[trace_dat]") {
  std::ostringstream out;
  TraceDatWriter w(out, 3, kTable);
  Feeder f(w);
  f.send(0, 100, kTable[1], {1, 33});
  f.send(2, 50, kTable[0], {1, 0x4b564d01, 0xabc, 0});
  w.on_finish();
  const std::string file = out.str();
  const DatFile d = read_dat(file);

  CHECK(d.page_size == 4096u);
  // libtraceevent takes the page layout from header_page: commit is a long (8) and data starts at 16.
  CHECK(d.header_page.find("\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n") != std::string::npos);
  CHECK(d.header_page.find("\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;\n") != std::string::npos);
  CHECK(d.header_event.find("time_extend : type == 30") != std::string::npos);

  // Every event of the table, grouped by system in id order, with its own ID.
  REQUIRE(d.events.size() == 4);
  CHECK(d.events[0].system == "kvm");
  CHECK(d.events[0].name == "kvm_msr");
  CHECK(d.events[1].name == "kvm_eoi");
  CHECK(d.events[2].system == "pvsim");
  CHECK(d.events[3].name == "pvsim_mix");
  for (size_t i = 0; i < 4; ++i) {
    CHECK(d.events[i].id == static_cast<unsigned>(kTraceDatIdBase + kTable[i].id));
    CHECK(d.events[i].text == trace_dat_format(kTable[i]));
    CHECK(d.events[i].print_fmt == kTable[i].print_fmt);
  }
  CHECK(d.cmdlines == "1000 CPU 0/KVM\n1001 CPU 1/KVM\n1002 CPU 2/KVM\n");

  REQUIRE(d.cpus == 3);
  CHECK(d.cpu_table[1].second == 0);  // vCPU 1 traced nothing
  CHECK(d.cpu_table[0].second == 4096u);
  CHECK(d.cpu_table[2].second == 4096u);
  CHECK(d.cpu_table[2].first == d.cpu_table[0].first + 4096);
  CHECK(file.size() == d.cpu_table[2].first + 4096);
  REQUIRE(d.records.size() == 2);
  CHECK(d.records[0].cpu == 0);
  CHECK(d.records[0].ts == 100);
  CHECK(static_cast<int64_t>(int_field(d, d.records[0], "vector")) == 33);
  CHECK(int_field(d, d.records[0], "common_pid") == 1000);
  CHECK(d.records[1].cpu == 2);
  CHECK(d.records[1].ts == 50);
  CHECK(int_field(d, d.records[1], "ecx") == 0x4b564d01);
  CHECK(int_field(d, d.records[1], "common_pid") == 1002);

  // A record of a vCPU beyond the count given adds CPUs.
  std::ostringstream out2;
  TraceDatWriter w2(out2, 1, kTable);
  Feeder f2(w2);
  f2.send(4, 7, kTable[1], {4, static_cast<uint64_t>(-1)});
  w2.on_finish();
  const DatFile d2 = read_dat(out2.str());
  CHECK(d2.cpus == 5);
  REQUIRE(d2.records.size() == 1);
  CHECK(d2.records[0].cpu == 4);
  CHECK(static_cast<int64_t>(int_field(d2, d2.records[0], "vector")) == -1);
}

TEST_CASE("trace.dat: time deltas, TIME_EXTEND, page boundaries, long records, per-CPU order", "[trace_dat]") {
  std::ostringstream out;
  TraceDatWriter w(out, 3, kTable);
  Feeder f(w);
  uint64_t t = 5;
  uint64_t x = 12345;  // a fixed LCG: the same events every run
  auto next = [&x] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 33;
  };
  for (unsigned i = 0; i < 6000; ++i) {
    const unsigned cpu = static_cast<unsigned>(next() % 3);
    // Mostly small steps; now and then a gap of more than 2^27 ns (one TIME_EXTEND) or more
    // than 2^32 ns (the extend word's upper bits used too).
    const uint64_t r = next() % 1000;
    t += r < 980 ? next() % 5000 : r < 995 ? (uint64_t{1} << 27) + next() % 1000000 : (uint64_t{5} << 32) + next();
    // Now and then an event stamped before the CPU's latest one (a hypervisor action on the
    // vCPU's behalf), and events at equal times, whose trace order must stay.
    const uint64_t ts = (i % 50 == 7 && t > 3000) ? t - 3000 : t;
    switch (next() % 4) {
      case 0: f.send(cpu, ts, kTable[0], {i & 1, 0x4b564d00 + i % 5, uint64_t{i} << 20, (i % 7) == 0}); break;
      case 1: f.send(cpu, ts, kTable[1], {i, static_cast<uint64_t>(-static_cast<int64_t>(i % 300))}); break;
      case 2: {
        // Short strings (type_len 1..28) and long ones (payload > 112 bytes: type_len 0).
        std::string detail(i % 3 == 0 ? 150 + i % 200 : i % 10, static_cast<char>('a' + i % 26));
        f.send(cpu, ts, kTable[2], {}, {"sched_out", detail});
        break;
      }
      default: f.send(cpu, ts, kTable[2], {}, {"", ""}); break;
    }
    if (i % 1000 == 999) f.send(cpu, ts, kTable[1], {i, 1});  // same time, after the previous one
  }
  w.on_finish();
  const std::string file = out.str();
  const DatFile d = read_dat(file);

  CHECK(w.records() == f.sent.size());
  CHECK(d.pages == w.pages());
  CHECK(d.pages > 30);            // many page boundaries
  CHECK(d.time_extends > 50);     // both kinds of large gap, and no extend for a page's first record
  CHECK(d.long_records > 500);    // type_len 0 records
  REQUIRE(d.records.size() == f.sent.size());

  // Expected: per CPU, stable-sorted by time.
  std::vector<Sent> expect = f.sent;
  std::stable_sort(expect.begin(), expect.end(), [](const Sent& a, const Sent& b) {
    return a.cpu != b.cpu ? a.cpu < b.cpu : a.ts < b.ts;
  });
  for (size_t i = 0; i < expect.size(); ++i) {
    const Sent& s = expect[i];
    const Record& r = d.records[i];
    INFO("record " << i << " (sent as #" << s.order << ", " << s.desc->name << ")");
    REQUIRE(r.cpu == s.cpu);
    REQUIRE(r.ts == s.ts);
    // Payload length in the header is the record rounded up to 4 bytes.
    const TraceDatLayout l = trace_dat_layout(*s.desc);
    size_t want_len = l.fixed_size;
    for (const std::string& str : s.s) want_len += str.size() + 1;
    CHECK(r.payload.size() == ((want_len + 3) & ~size_t{3}));
    CHECK((r.type_len == 0) == (r.payload.size() > 112));
    CHECK(read_le(r.payload, 0, 2) == static_cast<uint64_t>(kTraceDatIdBase + s.desc->id));
    CHECK(int_field(d, r, "common_pid") == static_cast<uint64_t>(kTraceDatPidBase) + s.cpu);
    size_t ui = 0, si = 0;
    for (const TraceFieldDesc& fd : s.desc->fields) {
      if (fd.type == TraceType::Str) {
        CHECK(str_field(d, r, fd.name) == s.s[si++]);
      } else {
        const uint64_t v = s.u[ui++];
        const unsigned size = trace_dat_layout(*s.desc).fields[&fd - s.desc->fields.data()].size;
        const uint64_t mask = size == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1;
        CHECK((int_field(d, r, fd.name) & mask) == (v & mask));
      }
    }
  }
  // Records never go backwards in time within a CPU.
  for (size_t i = 1; i < d.records.size(); ++i)
    if (d.records[i].cpu == d.records[i - 1].cpu) CHECK(d.records[i].ts >= d.records[i - 1].ts);

  // The same events give the same bytes.
  std::ostringstream again;
  TraceDatWriter w2(again, 3, kTable);
  for (const Sent& s : f.sent) {
    std::vector<TraceValue> vals(s.desc->fields.size());
    size_t ui = 0, si = 0;
    for (size_t k = 0; k < vals.size(); ++k) {
      if (s.desc->fields[k].type == TraceType::Str) vals[k].s = s.s[si++];
      else vals[k].u = s.u[ui++];
    }
    TraceRecord r;
    r.ts = Tick{s.ts};
    r.vcpu = s.cpu;
    r.desc = s.desc;
    r.values = vals;
    w2.on_event(r);
  }
  w2.on_finish();
  CHECK(again.str() == file);
}

TEST_CASE("trace.dat: a string too long for a page is cut, the record stays valid", "[trace_dat]") {
  std::ostringstream out;
  TraceDatWriter w(out, 1, kTable);
  Feeder f(w);
  const std::string huge(10000, 'r');
  f.send(0, 1, kTable[2], {}, {"dump", huge});
  f.send(0, 2, kTable[2], {}, {"after", "ok"});
  w.on_finish();
  const DatFile d = read_dat(out.str());
  REQUIRE(d.records.size() == 2);
  CHECK(d.pages == 2);  // the first record fills a page on its own
  const std::string cut = str_field(d, d.records[0], "detail");
  CHECK(str_field(d, d.records[0], "what") == "dump");
  CHECK(cut.size() > 3900);
  CHECK(cut == huge.substr(0, cut.size()));
  CHECK(d.records[0].payload.size() <= kTraceDatMaxPayload + 3);
  CHECK(str_field(d, d.records[1], "detail") == "ok");
  CHECK(d.records[1].ts == 2);
}
