// tools/platform/timeline_html.cpp — the HTML timeline page (timeline_html.h).
#include "tools/platform/timeline_html.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <set>

namespace pvsim {

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      switch (c) {
        case '&': out += "&amp;"; break;
        case '<': out += "&lt;"; break;
        case '>': out += "&gt;"; break;
        case '"': out += "&quot;"; break;
        case '\'': out += "&#39;"; break;
        case '\t': case '\n': out += static_cast<char>(c); break;
        default:
          // XML 1.0 allows no other C0 control character, even escaped.
          if (c < 0x20 || c == 0x7f) out += "\xEF\xBF\xBD";
          else out += static_cast<char>(c);
      }
      ++i;
      continue;
    }
    // A well-formed UTF-8 sequence (RFC 3629 §4: no overlong forms, no surrogates, at most
    // U+10FFFF) is copied; anything else becomes U+FFFD, one byte at a time.
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) len = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) len = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) len = 4, cp = c & 0x07;
    bool ok = len != 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) ok = false;
      else cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    if (ok) {
      if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        ok = false;
      // U+FFFE and U+FFFF are not XML characters either.
      if (cp == 0xfffe || cp == 0xffff) ok = false;
    }
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

namespace {

// Colours: vCPU states (legend order), and one hue per vCPU for the pCPU lanes.
const char* state_colour(VcpuState s) {
  switch (s) {
    case VcpuState::Running: return "#43a047";
    case VcpuState::Halted: return "#cfd8dc";
    case VcpuState::ApfHalted: return "#9575cd";
    case VcpuState::Preempted: return "#e53935";
    case VcpuState::WaitPcpu: return "#ff8a65";
    case VcpuState::Paused: return "#8d6e63";
    case VcpuState::Stalled: return "#ffb300";
    case VcpuState::WaitSipi: return "#eceff1";
  }
  return "#000000";
}
const char* const kVcpuHues[] = {"#1e88e5", "#fb8c00", "#8e24aa", "#00897b", "#c0ca33", "#6d4c41",
                                 "#d81b60", "#3949ab", "#00acc1", "#7cb342", "#f4511e", "#5e35b1"};
const char* vcpu_hue(int v) { return kVcpuHues[static_cast<unsigned>(v) % std::size(kVcpuHues)]; }
constexpr const char* kHostColour = "#455a64";
constexpr const char* kPausedColour = "#8d6e63";
constexpr const char* kApfColour = "#1565c0";
constexpr const char* kMarkerColour = "#ef6c00";

// Exits left out of the page by default: they are the bulk of most runs and say little
// on a timeline (port I/O is the console and the PIC; an EPT violation is a first touch of
// a page, and the ones that became async PFs are drawn as such). Counted in the notes.
bool exit_drawn(std::string_view reason) { return reason != "IO_INSTRUCTION" && reason != "EPT_VIOLATION"; }

// "259.324 µs": a duration or time for people.
std::string human_time(uint64_t ns) {
  if (ns < 1000) return fmt::format("{} ns", ns);
  if (ns < 1'000'000) return fmt::format("{:.3f} µs", static_cast<double>(ns) / 1e3);
  if (ns < 1'000'000'000) return fmt::format("{:.3f} ms", static_cast<double>(ns) / 1e6);
  return fmt::format("{:.3f} s", static_cast<double>(ns) / 1e9);
}

struct Layout {
  static constexpr double kWidth = 1360;
  static constexpr double kX0 = 210;      // plot starts here; labels on the left
  static constexpr double kPlotW = 1130;  // kX0 + kPlotW + right margin = kWidth
  uint64_t end = 1;
  double px(uint64_t t) const { return kX0 + kPlotW * (static_cast<double>(t) / static_cast<double>(end)); }
};

class Page {
 public:
  Page(const TimelineModel& m, std::ostream& os) : m_m(m), m_os(os) {
    m_l.end = std::max<uint64_t>(m.end, 1);
    unsigned lanes = 0;
    for (const VcpuLanes& v : m.vcpus) lanes += 2 + std::min(v.apf_lanes, kMaxApfLanes);
    lanes += static_cast<unsigned>(m.pcpus.size());
    // Every lane gets at most ~2 * kPlotW / merge_px marks (a mark is either wider than
    // merge_px or a merged run): keep the whole SVG near kElementBudget.
    m_merge_px = std::max(1.0, 2.0 * 2.0 * Layout::kPlotW * lanes / kElementBudget);
  }

  TimelineHtmlStats run() {
    head();
    svg();
    notes();
    out("</body>\n</html>\n");
    flush();
    return m_stats;
  }

 private:
  static constexpr unsigned kMaxApfLanes = 6;
  static constexpr double kElementBudget = 30000;
  static constexpr size_t kMaxApfArrows = 3000;

  template <typename... A>
  void out(fmt::format_string<A...> f, A&&... a) {
    fmt::format_to(std::back_inserter(m_buf), f, std::forward<A>(a)...);
    if (m_buf.size() > (1u << 20)) flush();
  }
  void out(std::string_view s) {
    m_buf.append(s);
    if (m_buf.size() > (1u << 20)) flush();
  }
  void flush() {
    m_os.write(m_buf.data(), static_cast<std::streamsize>(m_buf.size()));
    m_buf.clear();
  }

  void rect(double x, double y, double w, double h, std::string_view fill, std::string_view title) {
    ++m_stats.elements;
    if (title.empty()) {
      out("<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" fill=\"{}\"/>\n", x, y, std::max(w, 0.6), h, fill);
    } else {
      ++m_stats.elements;
      out("<rect x=\"{:.2f}\" y=\"{:.1f}\" width=\"{:.2f}\" height=\"{:.1f}\" fill=\"{}\"><title>{}</title></rect>\n", x, y,
          std::max(w, 0.6), h, fill, html_escape(title));
    }
  }
  void text(double x, double y, std::string_view s, std::string_view cls = "", std::string_view anchor = "start") {
    ++m_stats.elements;
    out("<text x=\"{:.1f}\" y=\"{:.1f}\"{}{}{}{}>{}</text>\n", x, y, cls.empty() ? "" : " class=\"",
        cls, cls.empty() ? "" : "\"", anchor == "start" ? "" : fmt::format(" text-anchor=\"{}\"", anchor),
        html_escape(s));
  }

  void head() {
    const TimelineInfo& info = m_m.info;
    const std::string name = info.name.empty() ? std::string("run") : info.name;
    out("<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n"
        "<meta charset=\"utf-8\"/>\n<title>pvsim timeline: {}</title>\n", html_escape(name));
    out(std::string_view("<style>\n"
        "body{font-family:sans-serif;margin:16px 20px;color:#212121;background:#ffffff}\n"
        "h1{font-size:20px;margin:0 0 6px 0}\n"
        "p{margin:4px 0;max-width:1340px;font-size:13px;line-height:1.35}\n"
        "p.desc{color:#37474f}\n"
        "p.sum{color:#546e7a}\n"
        ".legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:12px;margin:8px 0;max-width:1340px}\n"
        ".legend span.sw{display:inline-block;width:14px;height:10px;margin-right:4px;vertical-align:middle;"
        "border:1px solid #90a4ae}\n"
        "svg{display:block;margin-top:4px}\n"
        "svg text{font-size:11px;fill:#263238}\n"
        "svg text.lane{font-size:12px;font-weight:bold}\n"
        "svg text.sub{font-size:10px;fill:#607d8b}\n"
        "svg text.axis{font-size:10px;fill:#546e7a}\n"
        "svg text.mark{font-size:10px;fill:#bf360c}\n"
        "svg text.sec{font-size:12px;font-weight:bold;fill:#37474f}\n"
        "ul.notes{font-size:12px;color:#455a64;max-width:1340px}\n"
        "</style>\n</head>\n<body>\n"));
    out("<h1>pvsim timeline: {}</h1>\n", html_escape(name));
    if (!info.description.empty()) out("<p class=\"desc\">{}</p>\n", html_escape(info.description));
    uint64_t exits = 0;
    for (const auto& [r, n] : m_m.exit_counts) exits += n;
    size_t ready = 0;
    for (const TimelineApf& a : m_m.apfs) ready += a.ready;
    out("<p class=\"sum\">{} vCPU{}, {} pCPU{}{}; virtual time {}; {} trace events, {} VM exits, {} async PF{} "
        "({} with page ready).</p>\n",
        m_m.vcpus.size(), m_m.vcpus.size() == 1 ? "" : "s", m_m.pcpus.size(), m_m.pcpus.size() == 1 ? "" : "s",
        info.host.empty() ? std::string() : " (" + html_escape(info.host) + ")", human_time(m_m.end), m_m.events,
        exits, m_m.apfs.size(), m_m.apfs.size() == 1 ? "" : "s", ready);
    // Legend.
    out("<div class=\"legend\">\n");
    for (unsigned s = 0; s < kVcpuStateCount; ++s) {
      const auto st = static_cast<VcpuState>(s);
      out("<span><span class=\"sw\" style=\"background:{}\"></span>{}</span>\n", state_colour(st), vcpu_state_name(st));
    }
    out("<span><span class=\"sw\" style=\"background:{}\"></span>async PF: not present until page ready; the arrow "
        "points where page-ready was injected</span>\n", kApfColour);
    out("<span><span class=\"sw\" style=\"background:#263238;width:2px\"></span>VM exit</span>\n");
    out("<span><span class=\"sw\" style=\"background:{}\"></span>guest marker, schedule action, stop</span>\n",
        kMarkerColour);
    out("<span><span class=\"sw\" style=\"background:{}\"></span>pCPU: host work while a vCPU waited</span>\n",
        kHostColour);
    out("</div>\n");
  }

  // A lane of consecutive slices (key -> colour and name). Slices narrower than the merge
  // width are gathered into one mark per run.
  struct Seg {
    uint64_t start, end;
    int key;
  };
  template <typename Colour, typename Name>
  void lane(const std::vector<Seg>& segs, double y, double h, std::string_view lane_name, Colour colour, Name nm) {
    struct Group {
      double x0 = 0, x1 = 0;
      uint64_t t0 = 0, t1 = 0;
      size_t n = 0;
      std::map<int, uint64_t> time;
    } g;
    auto flush_group = [&] {
      if (g.n == 0) return;
      int best = g.time.begin()->first;
      uint64_t total = 0;
      for (auto [k, t] : g.time) {
        total += t;
        if (t > g.time[best]) best = k;
      }
      std::string title;
      if (g.n == 1) {
        title = fmt::format("{}: {} from {} for {}", lane_name, nm(best), human_time(g.t0), human_time(g.t1 - g.t0));
      } else {
        title = fmt::format("{}: {} slices from {} to {}, merged (each narrower than a pixel):", lane_name, g.n,
                            human_time(g.t0), human_time(g.t1));
        for (auto [k, t] : g.time)
          title += fmt::format(" {} {:.0f}%", nm(k), total ? 100.0 * static_cast<double>(t) / static_cast<double>(total) : 0.0);
        m_stats.merged_slices += g.n;
        ++m_stats.merged_marks;
      }
      rect(g.x0, y, g.x1 - g.x0, h, colour(best), title);
      g = Group{};
    };
    for (const Seg& s : segs) {
      if (s.end <= s.start) continue;
      const double x0 = m_l.px(s.start), x1 = m_l.px(s.end);
      if (x1 - x0 >= m_merge_px) {
        flush_group();
        rect(x0, y, x1 - x0, h, colour(s.key),
             fmt::format("{}: {} from {} for {}", lane_name, nm(s.key), human_time(s.start), human_time(s.end - s.start)));
        continue;
      }
      if (g.n == 0) {
        g.x0 = x0;
        g.t0 = s.start;
      }
      g.x1 = x1;
      g.t1 = s.end;
      ++g.n;
      g.time[s.key] += s.end - s.start;
      if (g.x1 - g.x0 >= m_merge_px) flush_group();
    }
    flush_group();
  }

  // Vertical positions, computed once so that arrows can point between lanes.
  struct VcpuRows {
    double marks = 0, exits = 0, state = 0, apf = 0, bottom = 0;
  };

  void axis(double y, bool top) {
    // 1, 2 or 5 times a power of ten, about ten ticks across.
    const double raw = static_cast<double>(m_l.end) / 10.0;
    double step = std::pow(10.0, std::floor(std::log10(std::max(raw, 1.0))));
    if (raw / step >= 5) step *= 5;
    else if (raw / step >= 2) step *= 2;
    const double unit = step < 1e3 ? 1 : step < 1e6 ? 1e3 : step < 1e9 ? 1e6 : 1e9;
    const char* uname = step < 1e3 ? "ns" : step < 1e6 ? "µs" : step < 1e9 ? "ms" : "s";
    const int decimals = std::max(0, -static_cast<int>(std::floor(std::log10(step / unit) + 1e-9)));
    ++m_stats.elements;
    out("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#90a4ae\"/>\n", Layout::kX0, y,
        Layout::kX0 + Layout::kPlotW, y);
    for (double t = 0; t <= static_cast<double>(m_l.end) + step / 2; t += step) {
      const double x = m_l.px(static_cast<uint64_t>(t));
      if (x > Layout::kX0 + Layout::kPlotW + 0.5) break;
      ++m_stats.elements;
      out("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"#90a4ae\"/>\n", x, y, x, top ? y + 5 : y - 5);
      text(x, top ? y - 4 : y + 12, fmt::format("{:.{}f} {}", t / unit, decimals, uname), "axis", "middle");
    }
    text(8, top ? y - 4 : y + 12, "virtual time", "axis");
  }

  void grid(double y0, double y1) {
    // Faint vertical lines at the axis ticks help reading times across lanes.
    const double raw = static_cast<double>(m_l.end) / 10.0;
    double step = std::pow(10.0, std::floor(std::log10(std::max(raw, 1.0))));
    if (raw / step >= 5) step *= 5;
    else if (raw / step >= 2) step *= 2;
    std::string d;
    for (double t = 0; t <= static_cast<double>(m_l.end) + step / 2; t += step) {
      const double x = m_l.px(static_cast<uint64_t>(t));
      if (x > Layout::kX0 + Layout::kPlotW + 0.5) break;
      d += fmt::format("M{:.1f} {:.1f}V{:.1f}", x, y0, y1);
    }
    ++m_stats.elements;
    out("<path d=\"{}\" stroke=\"#eceff1\" fill=\"none\"/>\n", d);
  }

  void svg() {
    const bool any_marks = std::any_of(m_m.vcpus.begin(), m_m.vcpus.end(), [](const VcpuLanes& v) {
      return std::any_of(v.instants.begin(), v.instants.end(), [](const Instant& i) {
        return i.kind != InstantKind::Exit && i.kind != InstantKind::NotPresent && i.kind != InstantKind::Ready;
      });
    });
    // Rows.
    double y = 30;
    std::vector<VcpuRows> rows(m_m.vcpus.size());
    for (size_t v = 0; v < m_m.vcpus.size(); ++v) {
      VcpuRows& r = rows[v];
      r.marks = y;
      if (any_marks) y += 14;
      r.exits = y;
      y += 7;
      r.state = y;
      y += 20;
      r.apf = y + 3;
      const unsigned lanes = std::min(m_m.vcpus[v].apf_lanes, kMaxApfLanes);
      y = r.apf + lanes * 9.0;
      r.bottom = y;
      y += 12;
    }
    const double pcpu_top = y + 8;
    y = pcpu_top + 6;
    std::vector<double> pcpu_y(m_m.pcpus.size());
    for (size_t p = 0; p < m_m.pcpus.size(); ++p) {
      pcpu_y[p] = y;
      y += 18;
    }
    // Counters that never change get a line in the notes instead of a flat chart.
    for (const CounterTrack& c : m_m.counters) {
      const bool varies = std::any_of(c.points.begin(), c.points.end(),
                                      [&](const auto& p) { return p.second != c.points.front().second; });
      if (varies) m_charts.push_back(&c);
      else if (!c.points.empty()) m_constant.push_back(&c);
    }
    const double counters_top = y + 10;
    y = counters_top + 8;
    std::vector<double> counter_y(m_charts.size());
    for (size_t c = 0; c < m_charts.size(); ++c) {
      counter_y[c] = y;
      y += 42;
    }
    const double height = y + 24;
    out("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0f}\" height=\"{:.0f}\" viewBox=\"0 0 {:.0f} {:.0f}\" "
        "role=\"img\" aria-label=\"timeline\">\n", Layout::kWidth, height, Layout::kWidth, height);
    grid(24, height - 22);
    axis(22, true);

    for (size_t v = 0; v < m_m.vcpus.size(); ++v) vcpu_block(static_cast<unsigned>(v), rows[v]);

    if (!m_m.pcpus.empty()) {
      text(8, pcpu_top + 2, "pCPUs (host)", "sec");
      for (size_t p = 0; p < m_m.pcpus.size(); ++p) {
        text(Layout::kX0 - 8, pcpu_y[p] + 11, fmt::format("pCPU {}", p), "lane", "end");
        std::vector<Seg> segs;
        segs.reserve(m_m.pcpus[p].size());
        for (const PcpuSlice& s : m_m.pcpus[p]) segs.push_back({s.start, s.end, s.vcpu});
        lane(segs, pcpu_y[p], 14, fmt::format("pCPU {}", p),
             [](int k) { return k >= 0 ? vcpu_hue(k) : k == kVmPaused ? kPausedColour : kHostColour; },
             [](int k) { return k >= 0 ? fmt::format("vCPU {} thread", k) : std::string(k == kVmPaused ? "VM paused" : "host work"); });
      }
    }
    if (!m_charts.empty()) {
      text(8, counters_top + 2, "Counters", "sec");
      for (size_t c = 0; c < m_charts.size(); ++c) counter_chart(*m_charts[c], counter_y[c]);
    }
    axis(height - 22, false);
    out("</svg>\n");
  }

  void vcpu_block(unsigned v, const VcpuRows& r) {
    const VcpuLanes& l = m_m.vcpus[v];
    const std::string lane_name = fmt::format("vCPU {}", v);
    // Label with the vCPU's hue (the colour of its thread on the pCPU lanes).
    rect(Layout::kX0 - 80, r.state + 4, 10, 10, vcpu_hue(static_cast<int>(v)), "");
    text(Layout::kX0 - 8, r.state + 14, lane_name, "lane", "end");
    if (l.apf_lanes) text(Layout::kX0 - 8, r.apf + 8, "async PFs", "sub", "end");
    // States.
    std::vector<Seg> segs;
    segs.reserve(l.states.size());
    for (const StateSlice& s : l.states) segs.push_back({s.start, s.end, static_cast<int>(s.state)});
    lane(segs, r.state, 18, lane_name, [](int k) { return state_colour(static_cast<VcpuState>(k)); },
         [](int k) { return std::string(vcpu_state_name(static_cast<VcpuState>(k))); });
    // Exits: one tick per merge-width bucket, its tooltip naming what it stands for.
    {
      double bucket_end = -1;
      std::map<std::string, unsigned> in_bucket;
      double bx = 0;
      uint64_t bt = 0;
      auto flush = [&] {
        if (in_bucket.empty()) return;
        std::string title = fmt::format("{} at {}: exit", lane_name, human_time(bt));
        unsigned total = 0;
        for (auto& [reason, n] : in_bucket) {
          title += fmt::format(" {}{}", reason, n > 1 ? fmt::format(" x{}", n) : "");
          total += n;
        }
        if (total > 1) title += " (nearby exits drawn as one tick)";
        rect(bx - 0.5, r.exits, 1.2, 6, "#263238", title);
        ++m_stats.exits_drawn;
        in_bucket.clear();
      };
      for (const Instant& i : l.instants) {
        if (i.kind != InstantKind::Exit) continue;
        const std::string& reason = m_m.strings[i.text];
        if (!exit_drawn(reason)) continue;
        const double x = m_l.px(i.ts);
        if (x >= bucket_end) {
          flush();
          bx = x;
          bt = i.ts;
          bucket_end = x + std::max(m_merge_px, 2.0);
        }
        ++in_bucket[reason];
      }
      flush();
    }
    // Markers, actions, stops and the rest: a flag on top of the state lane, a label in
    // the band above it where there is room.
    {
      double last_x = -1e9, label_end = -1e9;
      for (const Instant& i : l.instants) {
        if (i.kind == InstantKind::Exit || i.kind == InstantKind::NotPresent || i.kind == InstantKind::Ready) continue;
        const double x = m_l.px(i.ts);
        if (x - last_x < std::max(m_merge_px, 3.0)) continue;  // thinned, like exits
        last_x = x;
        const std::string& txt = m_m.strings[i.text];
        const char* colour = i.kind == InstantKind::Marker ? kMarkerColour
                             : i.kind == InstantKind::WakeAll ? kApfColour
                             : i.kind == InstantKind::Stop || i.kind == InstantKind::Action ? "#212121"
                                                                                              : "#78909c";
        m_stats.elements += 2;
        out("<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\" fill=\"{}\"><title>{}</title></polygon>\n",
            x - 4, r.state - 1, x + 4, r.state - 1, x, r.state + 6, colour,
            html_escape(fmt::format("{} at {}: {}", lane_name, human_time(i.ts), txt)));
        if (i.kind == InstantKind::Marker || i.kind == InstantKind::Action || i.kind == InstantKind::Stop) {
          if (x > label_end && r.exits > r.marks) {
            std::string shown = txt.size() > 40 ? txt.substr(0, 37) + "..." : txt;
            const double w = 6.0 * static_cast<double>(shown.size());
            if (x + 2 + w <= Layout::kWidth - 4) {
              text(x + 2, r.marks + 10, shown, "mark");
              label_end = x + w + 8;
            } else {
              text(x - 2, r.marks + 10, shown, "mark", "end");
              label_end = x + 8;
            }
          }
        }
      }
    }
    apf_block(v, r);
  }

  void apf_block(unsigned v, const VcpuRows& r) {
    if (m_m.apfs.size() > kMaxApfArrows) {
      // Too many to draw one by one: each lane as a merged lane of bars (no arrows).
      for (unsigned lane_i = 0; lane_i < std::min(m_m.vcpus[v].apf_lanes, kMaxApfLanes); ++lane_i) {
        std::vector<Seg> segs;
        for (const TimelineApf& a : m_m.apfs)
          if (a.vcpu == v && std::min(a.lane, kMaxApfLanes - 1) == lane_i) segs.push_back({a.start, a.end, 1});
        lane(segs, r.apf + lane_i * 9.0, 7, fmt::format("vCPU {} async PF", v),
             [](int) { return kApfColour; }, [](int) { return std::string("waiting for the page"); });
      }
      return;
    }
    for (const TimelineApf& a : m_m.apfs) {
      if (a.vcpu != v) continue;
      const double by = r.apf + std::min(a.lane, kMaxApfLanes - 1) * 9.0;
      const double x0 = m_l.px(a.start), x1 = m_l.px(a.end);
      const std::string title =
          a.ready ? fmt::format("vCPU {} async PF token {:#x} gva {:#x}: not present at {}, page ready at {} ({} later)",
                                v, a.token, a.gva, human_time(a.start), human_time(a.end), human_time(a.end - a.start))
                  : fmt::format("vCPU {} async PF token {:#x} gva {:#x}: not present at {}, no page ready before the end",
                                v, a.token, a.gva, human_time(a.start));
      rect(x0, by, x1 - x0, 7, kApfColour, title);
      // The fault: a thin line from the vCPU lane down to the bar's start. Page ready: an
      // arrow from the bar's end up to the vCPU lane, where it was injected.
      const double lane_bottom = r.state + 18;
      std::string d = fmt::format("M{:.2f} {:.1f}V{:.1f}", x0, lane_bottom, by);
      if (a.ready) d += fmt::format("M{:.2f} {:.1f}V{:.1f}", x1, by + 7, lane_bottom + 4);
      ++m_stats.elements;
      out("<path d=\"{}\" stroke=\"{}\" stroke-width=\"1\" fill=\"none\"/>\n", d, kApfColour);
      if (a.ready) {
        m_stats.elements += 2;
        out("<polygon points=\"{:.2f},{:.1f} {:.2f},{:.1f} {:.2f},{:.1f}\" fill=\"#0d47a1\"><title>{}</title></polygon>\n",
            x1 - 3, lane_bottom + 5, x1 + 3, lane_bottom + 5, x1, lane_bottom, html_escape(title));
      }
    }
  }

  void counter_chart(const CounterTrack& c, double y) {
    constexpr double h = 30;
    if (c.points.empty()) return;
    const std::string nm = c.vcpu < 0 ? c.name : fmt::format("vCPU {} {}", c.vcpu, c.name);
    text(Layout::kX0 - 8, y + 12, nm, "sub", "end");
    int64_t lo = c.points.front().second, hi = lo;
    for (const auto& [t, val] : c.points) {
      lo = std::min(lo, val);
      hi = std::max(hi, val);
    }
    // Time and counts start at zero; a clock value (tsc_timestamp) is shown over its range.
    if (c.unit == CounterUnit::Ns || c.name.find("outstanding") != std::string::npos) lo = std::min<int64_t>(lo, 0);
    const double span = hi > lo ? static_cast<double>(hi - lo) : 1.0;
    auto vy = [&](int64_t val) { return y + h - h * static_cast<double>(val - lo) / span; };
    ++m_stats.elements;
    out("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"#fafafa\" stroke=\"#eceff1\"/>\n",
        Layout::kX0, y, Layout::kPlotW, h);
    // A step line, at most a few points per pixel column (first, low, high, last).
    std::string pts;
    double col = -1;
    int64_t prev = c.points.front().second;
    pts += fmt::format("{:.1f},{:.1f}", std::floor(m_l.px(c.points.front().first)), vy(prev));
    int64_t cmin = 0, cmax = 0, clast = 0;
    bool open = false;
    auto close_col = [&] {
      if (!open) return;
      pts += fmt::format(" {:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}", col, vy(cmin), col, vy(cmax), col, vy(clast));
      open = false;
    };
    for (const auto& [t, val] : c.points) {
      const double x = std::floor(m_l.px(t));
      if (!open || x != col) {
        close_col();
        pts += fmt::format(" {:.1f},{:.1f}", x, vy(prev));  // the step up or down starts here
        col = x;
        cmin = cmax = val;
        open = true;
      }
      cmin = std::min(cmin, val);
      cmax = std::max(cmax, val);
      clast = val;
      prev = val;
    }
    close_col();
    pts += fmt::format(" {:.1f},{:.1f}", Layout::kX0 + Layout::kPlotW, vy(prev));
    m_stats.elements += 2;
    const std::string unit = c.unit == CounterUnit::Ns ? " ns" : "";
    out("<polyline points=\"{}\" fill=\"none\" stroke=\"#3949ab\" stroke-width=\"1.3\"><title>{}</title></polyline>\n",
        pts, html_escape(fmt::format("{}: {} values, from {}{} to {}{}; last {}{}", nm, c.points.size(), lo, unit, hi, unit, prev, unit)));
    const std::string range = c.unit == CounterUnit::Ns ? fmt::format("max {}", human_time(static_cast<uint64_t>(std::max<int64_t>(hi, 0))))
                                                        : fmt::format("{} .. {}", lo, hi);
    text(Layout::kX0 - 8, y + 24, range, "axis", "end");
  }

  void notes() {
    out("<ul class=\"notes\">\n");
    out("<li>Virtual time from the start of the run. A vCPU is <b>running</b> while its thread holds its pCPU and is "
        "not halted: guest code, or KVM handling one of its exits (those short stays in the host are not drawn "
        "apart).</li>\n");
    out("<li>Each async PF is a bar from <code>kvm_async_pf_not_present</code> to the "
        "<code>kvm_async_pf_ready</code> with the same token; pvsim traces page-ready when it injects it into the "
        "vCPU, so the arrow points at the moment the guest was told.</li>\n");
    // Exits not drawn.
    std::string left_out;
    for (const auto& [reason, n] : m_m.exit_counts)
      if (!exit_drawn(reason)) left_out += fmt::format("{}{} {}", left_out.empty() ? "" : ", ", reason, n);
    if (!left_out.empty())
      out("<li>VM exits not drawn: {} (port I/O is the console and the PIC; an EPT violation is the first touch of a "
          "page, and those that became async PFs are drawn as such). The Perfetto export (<code>--perfetto</code>) "
          "has every exit.</li>\n", html_escape(left_out));
    if (m_stats.merged_marks)
      out("<li>{} slices narrower than {:.1f} px were merged into {} marks, each coloured by the state that took most of "
          "its time; hover one to see the mix.</li>\n", m_stats.merged_slices, m_merge_px, m_stats.merged_marks);
    else
      out("<li>Nothing was merged: every slice is drawn on its own.</li>\n");
    if (!m_constant.empty()) {
      std::string list;
      for (const CounterTrack* c : m_constant)
        list += fmt::format("{}{} = {}", list.empty() ? "" : "; ",
                            c->vcpu < 0 ? c->name : fmt::format("vCPU {} {}", c->vcpu, c->name), c->points.front().second);
      out("<li>Counters that kept one value all run (not charted): {}.</li>\n", html_escape(list));
    }
    if (m_m.apfs.size() > kMaxApfArrows)
      out("<li>{} async PFs: drawn as bars without arrows (more than {}).</li>\n", m_m.apfs.size(), kMaxApfArrows);
    for (const VcpuLanes& l : m_m.vcpus)
      if (l.apf_lanes > kMaxApfLanes) {
        out("<li>Some vCPUs had more than {} async PFs outstanding at once; the excess shares the last lane.</li>\n",
            kMaxApfLanes);
        break;
      }
    out("<li>{} SVG elements. Written by <code>pvsim run --timeline</code>; the same tracks, zoomable, are in "
        "<code>--perfetto</code> files (ui.perfetto.dev).</li>\n", m_stats.elements + 1);
    out("</ul>\n");
  }

  const TimelineModel& m_m;
  std::ostream& m_os;
  std::vector<const CounterTrack*> m_charts, m_constant;
  Layout m_l;
  double m_merge_px = 1;
  std::string m_buf;
  TimelineHtmlStats m_stats;
};

}  // namespace

TimelineHtmlStats write_timeline_html(const TimelineModel& m, std::ostream& os) { return Page(m, os).run(); }

}  // namespace pvsim
