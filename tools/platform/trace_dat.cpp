// tools/platform/trace_dat.cpp — trace.dat version 6 writer (see trace_dat.h for the layout).
#include "tools/platform/trace_dat.h"

#include <fmt/format.h>

#include <algorithm>
#include <ostream>

namespace pvsim {

namespace {

// Everything in the file is little-endian (the endianness byte says 0).
void put_le(std::string& out, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}
void store_le(std::string& out, size_t at, uint64_t v, unsigned bytes) {
  for (unsigned i = 0; i < bytes; ++i) out[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

unsigned type_size(TraceType t) {
  switch (t) {
    case TraceType::U8:
    case TraceType::S8: return 1;
    case TraceType::U16:
    case TraceType::S16: return 2;
    case TraceType::U32:
    case TraceType::S32:
    case TraceType::Str: return 4;
    case TraceType::U64:
    case TraceType::S64: return 8;
  }
  return 8;
}

bool type_signed(TraceType t) {
  switch (t) {
    case TraceType::S8:
    case TraceType::S16:
    case TraceType::S32:
    case TraceType::S64: return true;
    // A string is an array of char, which is signed on x86-64 (what tracefs reports for it).
    case TraceType::Str: return true;
    default: return false;
  }
}

// The declared type when the table gives none: the kernel's fixed-size type names.
const char* default_c_type(TraceType t) {
  switch (t) {
    case TraceType::U8: return "u8";
    case TraceType::U16: return "u16";
    case TraceType::U32: return "u32";
    case TraceType::U64: return "u64";
    case TraceType::S8: return "s8";
    case TraceType::S16: return "s16";
    case TraceType::S32: return "s32";
    case TraceType::S64: return "s64";
    case TraceType::Str: return "char[]";
  }
  return "u64";
}

constexpr unsigned kCommonSize = 8;  // common_type u16, common_flags u8, common_preempt_count u8, common_pid s32

unsigned align_up(unsigned v, unsigned a) { return (v + a - 1) / a * a; }

// Ring-buffer record header (the kernel's struct ring_buffer_event, include/linux/ring_buffer.h).
constexpr uint32_t kTypeLenMaxData = 28;  // type_len 1..28: payload of type_len * 4 bytes
constexpr uint32_t kTypeTimeExtend = 30;
constexpr unsigned kDeltaBits = 27;
constexpr uint64_t kDeltaLimit = uint64_t{1} << kDeltaBits;
// A TIME_EXTEND carries 27 + 32 bits of delta.
constexpr uint64_t kExtendLimit = uint64_t{1} << (kDeltaBits + 32);

uint32_t record_header(uint32_t type_len, uint64_t delta) {
  return type_len | static_cast<uint32_t>(delta << 5);
}

// Bytes a payload takes in a page with its header (not counting a TIME_EXTEND before it).
uint32_t record_bytes(uint32_t payload) {
  const uint32_t body = (payload + 3) & ~3u;
  return 4 + (body > kTypeLenMaxData * 4 ? 4 : 0) + body;
}

}  // namespace

TraceDatLayout trace_dat_layout(const TraceEventDesc& d) {
  TraceDatLayout l;
  unsigned off = kCommonSize;
  unsigned max_align = 4;  // common_pid
  l.fields.reserve(d.fields.size());
  for (const TraceFieldDesc& f : d.fields) {
    const unsigned size = type_size(f.type);
    off = align_up(off, size);  // natural alignment, as the C struct the kernel declares
    l.fields.push_back({off, size, type_signed(f.type)});
    off += size;
    max_align = std::max(max_align, size);
  }
  l.fixed_size = align_up(off, max_align);
  return l;
}

std::string trace_dat_format(const TraceEventDesc& d) {
  const TraceDatLayout l = trace_dat_layout(d);
  std::string s = fmt::format("name: {}\nID: {}\nformat:\n", d.name, kTraceDatIdBase + d.id);
  s += "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n";
  s += "\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;\n";
  s += "\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;\n";
  s += "\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n";
  for (size_t i = 0; i < d.fields.size(); ++i) {
    const TraceFieldDesc& f = d.fields[i];
    std::string decl;
    if (f.type == TraceType::Str) decl = fmt::format("__data_loc char[] {}", f.name);
    else decl = fmt::format("{} {}", f.c_type && *f.c_type ? f.c_type : default_c_type(f.type), f.name);
    fmt::format_to(std::back_inserter(s), "\tfield:{};\toffset:{};\tsize:{};\tsigned:{};\n", decl,
                   l.fields[i].offset, l.fields[i].size, l.fields[i].is_signed ? 1 : 0);
  }
  fmt::format_to(std::back_inserter(s), "\nprint fmt: {}\n", d.print_fmt);
  return s;
}

std::string trace_dat_payload(const TraceEventDesc& d, const TraceDatLayout& l, unsigned vcpu,
                              std::span<const TraceValue> values) {
  std::string p(l.fixed_size, '\0');
  store_le(p, 0, kTraceDatIdBase + d.id, 2);
  // common_flags and common_preempt_count stay 0: no irq or preemption context in a vCPU thread
  // as pvsim models it.
  store_le(p, 4, static_cast<uint32_t>(kTraceDatPidBase + static_cast<int32_t>(vcpu)), 4);
  for (size_t i = 0; i < d.fields.size(); ++i) {
    const TraceValue v = i < values.size() ? values[i] : TraceValue{};
    const TraceDatField& f = l.fields[i];
    if (d.fields[i].type != TraceType::Str) {
      store_le(p, f.offset, v.u, f.size);
      continue;
    }
    // The string's bytes and a NUL go after what is there; a record must fit in a page, so a
    // string that would not is cut (still NUL-terminated).
    const size_t room = p.size() + 1 < kTraceDatMaxPayload ? kTraceDatMaxPayload - p.size() - 1 : 0;
    const std::string_view s = v.s.substr(0, std::min(v.s.size(), room));
    const uint32_t loc = static_cast<uint32_t>(p.size()) | static_cast<uint32_t>(s.size() + 1) << 16;
    store_le(p, f.offset, loc, 4);
    p.append(s);
    p += '\0';
  }
  return p;
}

TraceDatWriter::TraceDatWriter(std::ostream& out, unsigned vcpus, std::span<const TraceEventDesc> events)
    : m_out(out), m_cpus(std::max(vcpus, 1u)) {
  for (const TraceEventDesc& d : events) event(&d);
}

TraceDatWriter::~TraceDatWriter() = default;

const TraceDatWriter::Event& TraceDatWriter::event(const TraceEventDesc* d) {
  auto it = m_events.find(d->id);
  if (it == m_events.end()) it = m_events.emplace(d->id, Event{d, trace_dat_layout(*d)}).first;
  return it->second;
}

void TraceDatWriter::on_event(const TraceRecord& r) {
  if (!r.desc) return;
  const Event& e = event(r.desc);
  if (r.vcpu >= m_cpus.size()) m_cpus.resize(r.vcpu + 1);
  Cpu& c = m_cpus[r.vcpu];
  const std::string p = trace_dat_payload(*e.desc, e.layout, r.vcpu, r.values);
  c.recs.push_back({r.ts.value(), c.arena.size(), static_cast<uint32_t>(p.size())});
  c.arena += p;
  ++m_records;
}

std::string TraceDatWriter::header() const {
  std::string h;
  h.append("\x17\x08\x44" "tracing" "6", 11);
  h += '\0';    // the version string's end
  h += '\0';    // little-endian
  h += '\x08';  // sizeof(long)
  put_le(h, kTraceDatPageSize, 4);

  // The two descriptions a 64-bit kernel publishes (tracefs events/header_page and
  // events/header_event). Readers take the page layout from the first: the commit word's size
  // is the long size, data starts at offset 16.
  const std::string page = fmt::format(
      "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;\n"
      "\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;\n"
      "\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;\n"
      "\tfield: char data;\toffset:16;\tsize:{};\tsigned:1;\n",
      kTraceDatPageData);
  h.append("header_page", 12);  // with its NUL
  put_le(h, page.size(), 8);
  h += page;
  const std::string event_header =
      "# compressed entry header\n"
      "\ttype_len    :    5 bits\n"
      "\ttime_delta  :   27 bits\n"
      "\tarray       :   32 bits\n"
      "\n"
      "\tpadding     : type == 29\n"
      "\ttime_extend : type == 30\n"
      "\ttime_stamp : type == 31\n"
      "\tdata max type_len  == 28\n";
  h.append("header_event", 13);
  put_le(h, event_header.size(), 8);
  h += event_header;

  put_le(h, 0, 4);  // ftrace's own event formats: none

  // Event systems in the order their first event (by id) comes.
  std::vector<std::pair<std::string, std::vector<const TraceEventDesc*>>> systems;
  for (const auto& entry : m_events) {
    const TraceEventDesc* d = entry.second.desc;
    auto it = std::find_if(systems.begin(), systems.end(), [d](const auto& s) { return s.first == d->system; });
    if (it == systems.end()) it = systems.insert(systems.end(), {d->system, {}});
    it->second.push_back(d);
  }
  put_le(h, systems.size(), 4);
  for (const auto& [name, events] : systems) {
    h.append(name);
    h += '\0';
    put_le(h, events.size(), 4);
    for (const TraceEventDesc* d : events) {
      const std::string f = trace_dat_format(*d);
      put_le(h, f.size(), 8);
      h += f;
    }
  }

  put_le(h, 0, 4);  // kallsyms: none (no kernel addresses)
  put_le(h, 0, 4);  // trace_printk formats: none

  std::string cmdlines;
  for (size_t i = 0; i < m_cpus.size(); ++i)
    fmt::format_to(std::back_inserter(cmdlines), "{} CPU {}/KVM\n", kTraceDatPidBase + static_cast<int32_t>(i), i);
  put_le(h, cmdlines.size(), 8);
  h += cmdlines;

  put_le(h, m_cpus.size(), 4);
  h.append("options  ", 10);
  put_le(h, 0, 2);  // option 0 ends the (empty) list
  h.append("flyrecord", 10);
  return h;
}

// One vCPU's buffer as ring-buffer pages. Its records are sorted first (see trace_dat.h).
std::string TraceDatWriter::cpu_pages(Cpu& c) {
  std::stable_sort(c.recs.begin(), c.recs.end(), [](const Rec& a, const Rec& b) { return a.ts < b.ts; });
  std::string out;
  std::string page;
  uint32_t used = 0;  // data bytes in `page`
  uint64_t last = 0;  // time of the page's latest record
  auto flush = [&] {
    if (page.empty()) return;
    store_le(page, 8, used, 8);
    page.resize(kTraceDatPageSize, '\0');
    out += page;
    page.clear();
    ++m_pages;
  };
  for (const Rec& r : c.recs) {
    const uint32_t need = record_bytes(r.size);
    uint64_t delta = r.ts - last;
    uint32_t extend = delta >= kDeltaLimit ? 8 : 0;
    if (!page.empty() && (delta >= kExtendLimit || used + extend + need > kTraceDatPageData)) flush();
    if (page.empty()) {
      // A new page's timestamp is its first record's time, which then has delta 0.
      put_le(page, r.ts, 8);
      put_le(page, 0, 8);  // commit, set by flush()
      used = 0;
      delta = 0;
      extend = 0;
    }
    if (extend) {
      put_le(page, record_header(kTypeTimeExtend, delta & (kDeltaLimit - 1)), 4);
      put_le(page, delta >> kDeltaBits, 4);
      delta = 0;
    }
    const uint32_t body = (r.size + 3) & ~3u;
    if (body > kTypeLenMaxData * 4) {
      put_le(page, record_header(0, delta), 4);
      put_le(page, body + 4, 4);  // the length word counts itself
    } else {
      put_le(page, record_header(body / 4, delta), 4);
    }
    page.append(c.arena, r.offset, r.size);
    page.append(body - r.size, '\0');
    used += extend + need;
    last = r.ts;
  }
  flush();
  return out;
}

void TraceDatWriter::on_finish() {
  if (m_finished) return;
  m_finished = true;
  // The buffers are laid out first (each vCPU's records freed as its pages are made), so the
  // file is written front to back: the output may be a pipe.
  std::vector<std::string> data;
  data.reserve(m_cpus.size());
  for (Cpu& c : m_cpus) {
    data.push_back(cpu_pages(c));
    std::string().swap(c.arena);
    std::vector<Rec>().swap(c.recs);
  }
  std::string h = header();
  // The CPU table (offset and size per CPU), then the buffers, each page-aligned in the file
  // (readers mmap them page by page).
  uint64_t at = h.size() + 16 * data.size();
  at = (at + kTraceDatPageSize - 1) / kTraceDatPageSize * kTraceDatPageSize;
  const uint64_t first = at;
  for (const std::string& d : data) {
    put_le(h, at, 8);
    put_le(h, d.size(), 8);
    at += d.size();
  }
  h.append(first - h.size(), '\0');
  m_out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const std::string& d : data) m_out.write(d.data(), static_cast<std::streamsize>(d.size()));
  m_out.flush();
}

}  // namespace pvsim
