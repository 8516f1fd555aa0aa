// tools/platform/gdb_server.cpp — the gdb remote protocol server and its execution control
// (gdb_server.h; tools/platform/README.md "Debugging with gdb").
#include "tools/platform/gdb_server.h"

#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>

#include "tools/platform/inspect.h"

namespace pvsim {

namespace {

using gdb::parse_hex;

// ---- the register file gdb sees (target.xml below, in this order) ----
// gdb's numbering of the 16 GPRs (rax rbx rcx rdx rsi rdi rbp rsp r8..r15) to the SDM's
// (0 RAX, 1 RCX, 2 RDX, 3 RBX, 4 RSP, 5 RBP, 6 RSI, 7 RDI, core/vcpu.h).
constexpr unsigned kGdbToSdm[16] = {0, 3, 1, 2, 6, 7, 5, 4, 8, 9, 10, 11, 12, 13, 14, 15};
constexpr unsigned kRip = 16, kEflags = 17, kSeg0 = 18, kSt0 = 24, kFctrl = 32, kFsBase = 40, kGsBase = 41,
                   kKgsBase = 42, kCr0 = 43, kCr2 = 44, kCr3 = 45, kCr4 = 46, kCr8 = 47, kEfer = 48, kNumRegs = 49;
// Selectors in gdb's order cs ss ds es fs gs.
constexpr SegReg kSegOrder[6] = {SegReg::CS, SegReg::SS, SegReg::DS, SegReg::ES, SegReg::FS, SegReg::GS};
constexpr uint32_t kMsrKernelGsBase = 0xC0000102;

unsigned reg_bytes(unsigned r) {
  if (r >= kSt0 && r < kFctrl) return 10;  // x87 stack registers, 80 bits
  if (r == kEflags || (r >= kSeg0 && r < kSt0) || (r >= kFctrl && r < kFsBase)) return 4;
  return 8;
}

// The target description: gdb's own feature names for the general registers
// (org.gnu.gdb.i386.core, which must hold the x87 registers too, and .segments for the FS/GS
// bases), and a pvsim feature for the system registers, so that `info registers` shows CR0,
// CR3, CR4 and EFER beside them. pvsim has no x87 state: those read as their reset values.
std::string target_xml() {
  std::string x =
      "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n"
      "<architecture>i386:x86-64</architecture>\n<feature name=\"org.gnu.gdb.i386.core\">\n";
  const char* gprs[16] = {"rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
                          "r8",  "r9",  "r10", "r11", "r12", "r13", "r14", "r15"};
  for (unsigned r = 0; r < 16; ++r) {
    const char* type = r == 6 || r == 7 ? "data_ptr" : "int64";
    x += fmt::format("<reg name=\"{}\" bitsize=\"64\" type=\"{}\" regnum=\"{}\"/>\n", gprs[r], type, r);
  }
  x += fmt::format("<reg name=\"rip\" bitsize=\"64\" type=\"code_ptr\" regnum=\"{}\"/>\n", kRip);
  x += fmt::format("<reg name=\"eflags\" bitsize=\"32\" type=\"int32\" regnum=\"{}\"/>\n", kEflags);
  const char* segs[6] = {"cs", "ss", "ds", "es", "fs", "gs"};
  for (unsigned k = 0; k < 6; ++k)
    x += fmt::format("<reg name=\"{}\" bitsize=\"32\" type=\"int32\" regnum=\"{}\"/>\n", segs[k], kSeg0 + k);
  for (unsigned k = 0; k < 8; ++k)
    x += fmt::format("<reg name=\"st{}\" bitsize=\"80\" type=\"i387_ext\" regnum=\"{}\"/>\n", k, kSt0 + k);
  const char* fpc[8] = {"fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"};
  for (unsigned k = 0; k < 8; ++k)
    x += fmt::format("<reg name=\"{}\" bitsize=\"32\" type=\"int\" group=\"float\" regnum=\"{}\"/>\n", fpc[k],
                     kFctrl + k);
  x += "</feature>\n<feature name=\"org.gnu.gdb.i386.segments\">\n";
  x += fmt::format("<reg name=\"fs_base\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>\n", kFsBase);
  x += fmt::format("<reg name=\"gs_base\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>\n", kGsBase);
  x += "</feature>\n<feature name=\"org.pvsim.x86.system\">\n";
  const char* sys[7] = {"k_gs_base", "cr0", "cr2", "cr3", "cr4", "cr8", "efer"};
  for (unsigned k = 0; k < 7; ++k)
    x += fmt::format("<reg name=\"{}\" bitsize=\"64\" type=\"int\" regnum=\"{}\"/>\n", sys[k], kKgsBase + k);
  x += "</feature>\n</target>\n";
  return x;
}

uint64_t read_msr(Vcpu& v, uint32_t index, bool& ok) {
  uint64_t val = 0;
  ok = v.msrs().read(v, index, val) == MsrStatus::Ok;
  return val;
}

uint64_t reg_value(Vcpu& v, unsigned r) {
  if (r < 16) return v.gpr(kGdbToSdm[r]);
  if (r == kRip) return v.rip();
  if (r == kEflags) return v.rflags();
  if (r >= kSeg0 && r < kSt0) return v.seg(kSegOrder[r - kSeg0]).selector;
  if (r == kFctrl) return 0x37f;  // FNINIT's control word (SDM Vol. 1 §8.1.5)
  if (r == kFctrl + 2) return 0xffff;  // tag word: all empty
  if (r >= kSt0 && r < kFsBase) return 0;
  if (r == kFsBase) return v.seg(SegReg::FS).base;
  if (r == kGsBase) return v.seg(SegReg::GS).base;
  if (r == kKgsBase) {
    bool ok = false;
    return read_msr(v, kMsrKernelGsBase, ok);
  }
  if (r == kCr0) return v.cr(0);
  if (r == kCr2) return v.cr(2);
  if (r == kCr3) return v.cr(3);
  if (r == kCr4) return v.cr(4);
  if (r == kCr8) return v.cr(8);
  if (r == kEfer) return v.efer();
  return 0;
}

// False for a value the register cannot take from gdb (a selector change: the descriptor
// cache would not follow; the x87 registers pvsim does not have).
bool set_reg_value(Vcpu& v, unsigned r, uint64_t val) {
  if (r < 16) v.set_gpr(kGdbToSdm[r], val);
  else if (r == kRip) v.set_rip(val);
  else if (r == kEflags) v.set_rflags(val);
  else if (r >= kSeg0 && r < kSt0) return reg_value(v, r) == val;
  else if (r >= kSt0 && r < kFsBase) return reg_value(v, r) == val;
  else if (r == kFsBase || r == kGsBase) {
    const SegReg s = r == kFsBase ? SegReg::FS : SegReg::GS;
    SegmentCache c = v.seg(s);
    c.base = val;
    v.set_seg(s, c);
  } else if (r == kKgsBase) return v.msrs().write(v, kMsrKernelGsBase, val) == MsrStatus::Ok;
  else if (r >= kCr0 && r <= kCr8) {
    static constexpr unsigned kCrN[5] = {0, 2, 3, 4, 8};
    v.set_cr(kCrN[r - kCr0], val);
  } else if (r == kEfer) v.set_efer(val);
  else return false;
  return true;
}

// The PV MSRs by the names `monitor msr` accepts (pvmsr/README.md §2).
struct MsrAlias {
  const char* name;
  uint32_t index;
};
constexpr MsrAlias kMsrAliases[] = {
    {"tsc", 0x10},           {"wall-clock", 0x4b564d00}, {"system-time", 0x4b564d01}, {"kvmclock", 0x4b564d01},
    {"apf", 0x4b564d02},     {"steal-time", 0x4b564d03}, {"steal", 0x4b564d03},       {"pv-eoi", 0x4b564d04},
    {"poll-control", 0x4b564d05}, {"apf-int", 0x4b564d06}, {"apf-ack", 0x4b564d07},  {"efer", 0xC0000080},
    {"system-time-old", 0x12}, {"wall-clock-old", 0x11},
};

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> w;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) w.push_back(s.substr(i, j - i));
    i = j;
  }
  return w;
}

std::string ns_text(uint64_t ns) { return fmt::format("{}.{:09} s", ns / 1'000'000'000u, ns % 1'000'000'000u); }

}  // namespace

// ---------------------------------------------------------------- endpoints

std::optional<GdbEndpoint> parse_gdb_endpoint(std::string_view text) {
  GdbEndpoint e;
  if (text.rfind("unix:", 0) == 0) {
    e.unix_socket = true;
    e.path = std::string(text.substr(5));
    if (e.path.empty() || e.path.size() >= sizeof(sockaddr_un{}.sun_path)) return std::nullopt;
    return e;
  }
  if (text.empty() || text.size() > 5) return std::nullopt;
  unsigned v = 0;
  for (const char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  e.port = static_cast<uint16_t>(v);
  return e;
}

GdbListener::GdbListener(const GdbEndpoint& e) : m_ep(e) {
  if (e.unix_socket) {
    m_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (m_fd < 0) throw std::runtime_error(fmt::format("--gdb: socket: {}", std::strerror(errno)));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, e.path.c_str(), e.path.size() + 1);
    if (::bind(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(m_fd, 1) != 0) {
      const int err = errno;
      ::close(m_fd);
      m_fd = -1;
      throw std::runtime_error(fmt::format("--gdb: cannot listen on {}: {}", e.path, std::strerror(err)));
    }
    return;
  }
  m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (m_fd < 0) throw std::runtime_error(fmt::format("--gdb: socket: {}", std::strerror(errno)));
  const int one = 1;
  ::setsockopt(m_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(e.port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // never reachable from another host
  if (::bind(m_fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(m_fd, 1) != 0) {
    const int err = errno;
    ::close(m_fd);
    m_fd = -1;
    throw std::runtime_error(fmt::format("--gdb: cannot listen on 127.0.0.1:{}: {}", e.port, std::strerror(err)));
  }
  socklen_t len = sizeof a;
  if (::getsockname(m_fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) m_ep.port = ntohs(a.sin_port);
}

GdbListener::~GdbListener() {
  if (m_fd >= 0) ::close(m_fd);
  if (m_ep.unix_socket) ::unlink(m_ep.path.c_str());
}

std::string GdbListener::where() const {
  return m_ep.unix_socket ? m_ep.path : fmt::format("127.0.0.1:{}", m_ep.port);
}

int GdbListener::accept_one() {
  for (;;) {
    const int fd = ::accept4(m_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno != EINTR) throw std::runtime_error(fmt::format("--gdb: accept: {}", std::strerror(errno)));
  }
}

// ---------------------------------------------------------------- session

GdbSession::GdbSession(Platform& p, int fd, GdbOptions opts)
    : m_p(p), m_fd(fd), m_opts(opts), m_interval(opts.checkpoint_interval ? opts.checkpoint_interval : 1) {
  m_p.set_debug_observer(this);
  m_p.keep_recent_trace(256);
  take_checkpoint();  // the start: reverse execution never goes further back
}

GdbSession::~GdbSession() {
  clear_debug_state();
  if (m_fd >= 0) ::close(m_fd);
}

void GdbSession::clear_debug_state() {
  m_bps.clear();
  m_watches.clear();
  m_p.set_debug_breakpoints({});
  m_p.set_step_mode_all(false);
  m_p.set_debug_watches({});
  m_p.set_debug_observer(nullptr);
}

GdbSession::StopInfo GdbSession::make_stop(StopInfo::Why why, unsigned vcpu) {
  StopInfo s;
  s.why = why;
  s.vcpu = vcpu;
  return s;
}

GdbSession::StopInfo GdbSession::watch_stop(unsigned vcpu, const Hit& h, bool reverse) {
  StopInfo s = make_stop(StopInfo::Why::Watch, vcpu);
  s.addr = h.addr;
  s.type = h.type;
  s.host = h.host;
  s.write = h.write;
  s.reverse = reverse;
  return s;
}

// ---- checkpoints ----

void GdbSession::take_checkpoint() {
  Checkpoint c;
  c.id = m_next_cp_id++;
  c.insns = m_p.instructions();
  for (unsigned i = 0; i < m_p.vcpu_count(); ++i) c.steps.push_back(m_p.vcpu_steps(i));
  c.snap = m_p.save();
  m_cps.push_back(std::move(c));
  m_hits_since_cp = 0;
  if (m_cps.size() > m_opts.max_checkpoints && m_cps.size() > 2) {
    // Bounded count: the interval doubles and every other checkpoint goes (never the first,
    // the start, nor the newest, which watch hits are counted from).
    m_interval *= 2;
    for (size_t k = m_cps.size() - 2; k >= 1; --k) {
      if (k % 2 == 1) {
        m_p.forget(*m_cps[k].snap);
        m_cps.erase(m_cps.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
  }
}

void GdbSession::restore_checkpoint(size_t index) {
  m_p.restore(*m_cps.at(index).snap);
  m_cps.resize(index + 1);
  m_hits_since_cp = 0;
  m_ended = false;
}

size_t GdbSession::checkpoint_for(unsigned vcpu, uint64_t steps) const {
  size_t best = 0;
  for (size_t k = 0; k < m_cps.size(); ++k)
    if (m_cps[k].steps[vcpu] <= steps) best = k;
  return best;
}

size_t GdbSession::checkpoint_index(uint64_t id) const {
  for (size_t k = 0; k < m_cps.size(); ++k)
    if (m_cps[k].id == id) return k;
  throw std::logic_error("gdb: a watch hit's checkpoint is gone");
}

bool GdbSession::poll_interrupt() {
  if (m_fd < 0) return false;
  pollfd pf{m_fd, POLLIN, 0};
  while (::poll(&pf, 1, 0) > 0 && (pf.revents & POLLIN)) {
    if (!read_more()) return false;
    while (auto in = m_in.next())
      if (in->kind == gdb::Incoming::Kind::Interrupt) return true;
  }
  return false;
}

Platform::DebugStop GdbSession::run_forward(const std::optional<Platform::StopPoint>& pt) {
  for (;;) {
    const uint64_t cp_at = m_cps.back().insns + m_interval;
    const uint64_t poll_at = m_p.instructions() + m_opts.poll_instructions;
    const Platform::DebugStop st = m_p.debug_run(pt, std::min(cp_at, poll_at));
    if (st != Platform::DebugStop::Alarm) return st;
    if (m_p.instructions() >= cp_at) take_checkpoint();
    if (m_mode != Mode::Seek && poll_interrupt()) {
      m_interrupted = true;
      return Platform::DebugStop::Break;
    }
  }
}

// ---- the observer ----

bool GdbSession::debug_boundary(unsigned vcpu) {
  const uint64_t s = m_p.vcpu_steps(vcpu);
  const bool bp = !m_bps.empty() && m_bps.count(m_p.vcpu(vcpu).rip()) != 0;
  const int v = static_cast<int>(vcpu);
  switch (m_mode) {
    case Mode::Run:
      if (!bp) return false;
      m_stop = make_stop(StopInfo::Why::Breakpoint, vcpu);
      return true;
    case Mode::Step:
      if (m_step_vcpu < 0) {  // Ctrl-C: the next boundary of anybody
        m_stop = make_stop(StopInfo::Why::Interrupt, vcpu);
        return true;
      }
      if (v == m_step_vcpu) {
        if (s <= m_step_from) return false;
        m_stop = make_stop(bp ? StopInfo::Why::Breakpoint : StopInfo::Why::Trap, vcpu);
        return true;
      }
      if (!bp || !m_step_others) return false;
      m_stop = make_stop(StopInfo::Why::Breakpoint, vcpu);
      return true;
    case Mode::Seek:
      if (v != m_step_vcpu) return false;
      if (s >= m_seek_steps) return true;
      m_seen.push_back({false, vcpu, s});
      return false;
    case Mode::Scan:
      if (m_seek_armed && v == m_step_vcpu && s >= m_seek_steps) return true;
      if (bp) m_scan_hits.emplace_back(Pos{false, vcpu, s}, std::nullopt);
      return false;
    case Mode::HitSeek:
      return m_hit_seen && (m_target_hit.vcpu < 0 || v == m_target_hit.vcpu);
  }
  return false;
}

void GdbSession::debug_watch(const GuestMemory::Watch& w, uint64_t, uint64_t, bool write, bool host, int vcpu) {
  ++m_hits_since_cp;
  if (m_mode == Mode::Seek) return;
  if (m_mode == Mode::HitSeek) {
    if (m_hits_since_cp == m_target_hit.ordinal) m_hit_seen = true;
    return;
  }
  Hit h;
  h.cp = m_cps.back().id;
  h.ordinal = m_hits_since_cp;
  h.vcpu = vcpu;
  h.vcpu_steps = vcpu >= 0 ? m_p.vcpu_steps(static_cast<unsigned>(vcpu)) : 0;
  h.insns = m_p.instructions();
  h.host = host;
  h.write = write;
  for (const WatchSpec& ws : m_watches)
    for (const GuestMemory::Watch& r : ws.ranges)
      if (r.gpa == w.gpa && r.len == w.len && r.access == w.access) {
        h.addr = ws.addr;
        h.type = ws.type;
      }
  if (m_mode == Mode::Scan) {
    m_scan_hits.emplace_back(Pos{}, h);
  } else if (!m_pending) {
    m_pending = h;
    m_p.debug_break();  // the step ends as it would have; the stop is then re-executed to
  }
}

// ---- moving ----

GdbSession::Pos GdbSession::current_pos() const {
  if (!m_p.paused()) return Pos{};
  const auto v = static_cast<unsigned>(m_p.paused_vcpu());
  return Pos{false, v, m_p.vcpu_steps(v)};
}

bool GdbSession::goto_pos(const Pos& p) {
  if (p.start) {
    restore_checkpoint(0);
    return true;
  }
  restore_checkpoint(checkpoint_for(p.vcpu, p.steps));
  m_mode = Mode::Seek;
  m_step_vcpu = static_cast<int>(p.vcpu);
  m_seek_steps = p.steps;
  m_seen.clear();
  // Up to the step of that vCPU that can reach the boundary at full speed (taking the
  // checkpoints on the way), then boundary by boundary.
  Platform::DebugStop st = run_forward(Platform::StopPoint{Platform::StopPoint::Kind::Steps, p.vcpu, p.steps});
  if (st == Platform::DebugStop::Point) {
    m_p.set_step_mode(p.vcpu, true);
    st = m_p.debug_run(std::nullopt);
    m_p.set_step_mode(p.vcpu, false);
  }
  m_mode = Mode::Run;
  return st == Platform::DebugStop::Paused && m_p.paused_vcpu() == static_cast<int>(p.vcpu) &&
         m_p.vcpu_steps(p.vcpu) == p.steps;
}

std::optional<GdbSession::Pos> GdbSession::previous_boundary(unsigned vcpu) {
  const uint64_t now = m_p.vcpu_steps(vcpu);
  if (now == 0) return std::nullopt;
  // The boundary one step back is the usual answer; an event delivered just before an
  // instruction makes it two or more, so the search widens until it finds one.
  for (uint64_t back = 1;; back *= 4) {
    const uint64_t t = now > back ? now - back : 0;
    if (goto_pos(Pos{false, vcpu, t})) {
      // A boundary exactly there: the last one before `now` unless one lies between.
      std::vector<Pos> seen;
      if (back == 1) return Pos{false, vcpu, t};
      // Look from there for a later one still before `now`.
      m_mode = Mode::Seek;
      m_step_vcpu = static_cast<int>(vcpu);
      m_seek_steps = now;
      m_seen.clear();
      m_p.set_step_mode(vcpu, true);
      m_p.debug_run(std::nullopt);
      m_p.set_step_mode(vcpu, false);
      m_mode = Mode::Run;
      uint64_t best = t;
      for (const Pos& q : m_seen)
        if (q.steps < now && q.steps > best) best = q.steps;
      return Pos{false, vcpu, best};
    }
    uint64_t best = 0;
    bool found = false;
    for (const Pos& q : m_seen)
      if (q.steps < now && (!found || q.steps > best)) {
        best = q.steps;
        found = true;
      }
    if (found) return Pos{false, vcpu, best};
    if (t == 0) return std::nullopt;
  }
}

bool GdbSession::goto_hit(const Hit& h, bool after) {
  restore_checkpoint(checkpoint_index(h.cp));
  m_mode = Mode::HitSeek;
  m_target_hit = h;
  m_hit_seen = false;
  // At full speed to a place before the access: before the step of its vCPU that could
  // bring it to one step less than it had then (that vCPU's count lags inside a step), or,
  // for an event's access, the first boundary between steps at the same instruction total.
  std::optional<Platform::StopPoint> pt;
  if (h.vcpu >= 0)
    pt = Platform::StopPoint{Platform::StopPoint::Kind::Steps, static_cast<unsigned>(h.vcpu),
                             h.vcpu_steps ? h.vcpu_steps - 1 : 0};
  Platform::DebugStop st = m_p.debug_run(pt, h.vcpu >= 0 ? UINT64_MAX : h.insns);
  if (st == Platform::DebugStop::Point || st == Platform::DebugStop::Alarm) {
    // Then every vCPU boundary by boundary, to the first boundary of its vCPU after it.
    m_p.set_step_mode_all(true);
    st = m_p.debug_run(std::nullopt);
    m_p.set_step_mode_all(false);
  }
  m_mode = Mode::Run;
  if (st != Platform::DebugStop::Paused) return false;
  if (after) return true;
  // Before it: the boundary of the same vCPU just before the one that follows it.
  const auto v = static_cast<unsigned>(m_p.paused_vcpu());
  const auto prev = previous_boundary(v);
  if (!prev) return goto_pos(Pos{});
  return goto_pos(*prev);
}

// ---- run control ----

std::string GdbSession::do_continue(int step_vcpu, bool others_run) {
  if (m_ended) return stop_reply();
  m_pending.reset();
  m_interrupted = false;
  if (step_vcpu >= 0) {
    m_mode = Mode::Step;
    m_step_vcpu = step_vcpu;
    m_step_from = m_p.vcpu_steps(static_cast<unsigned>(step_vcpu));
    m_step_others = others_run;
    m_p.set_step_mode(static_cast<unsigned>(step_vcpu), true);
  } else {
    m_mode = Mode::Run;
  }
  const Platform::DebugStop st = run_forward(std::nullopt);
  if (step_vcpu >= 0) m_p.set_step_mode(static_cast<unsigned>(step_vcpu), false);
  m_mode = Mode::Run;
  return after_forward_stop(st);
}

std::string GdbSession::after_forward_stop(Platform::DebugStop st) {
  if (m_pending) {
    // A watched access happened in the step that just ran: re-execute to the boundary of
    // its vCPU right after it (the step itself went on, unchanged, to its end).
    const Hit h = *m_pending;
    m_pending.reset();
    if (goto_hit(h, true)) {
      m_stop = watch_stop(static_cast<unsigned>(m_p.paused_vcpu()), h, false);
      return stop_reply();
    }
    st = m_p.paused() ? Platform::DebugStop::Paused : Platform::DebugStop::Ended;
  }
  if (st == Platform::DebugStop::Break) {
    // Ctrl-C between two steps: on to the next boundary of whichever vCPU runs next.
    m_mode = Mode::Step;
    m_step_vcpu = -1;
    m_p.set_step_mode_all(true);
    st = m_p.debug_run(std::nullopt);
    m_p.set_step_mode_all(false);
    m_mode = Mode::Run;
  }
  if (st == Platform::DebugStop::Paused) {
    m_g = m_stop.vcpu;
    return stop_reply();
  }
  m_ended = true;
  m_stop.why = StopInfo::Why::Exited;
  return stop_reply();
}

std::string GdbSession::resume(const std::vector<gdb::VContAction>& actions) {
  int step = -1;
  bool others = false;
  for (const gdb::VContAction& a : actions) {
    if (a.op == 's' || a.op == 'r') {
      if (step >= 0) continue;  // one stepping thread at a time; the first wins
      if (a.thread > 0) {
        if (!thread_ok(a.thread)) return "E02";
        step = static_cast<int>(a.thread - 1);
      } else {
        step = static_cast<int>(m_stop.vcpu);
      }
    } else if (a.op == 'c') {
      if (a.thread > 0 && !thread_ok(a.thread)) return "E02";
      others = true;
    }
  }
  if (step < 0 && !others) return "OK";  // only `t` actions: everything is stopped already
  return do_continue(step, others);
}

std::string GdbSession::reverse_step(unsigned vcpu) {
  const auto t0 = std::chrono::steady_clock::now();
  const uint64_t before = m_p.instructions();
  const auto prev = previous_boundary(vcpu);
  if (!prev) {
    goto_pos(Pos{});
    m_stop = make_stop(StopInfo::Why::Begin, vcpu);
  } else {
    if (!(m_p.paused() && m_p.paused_vcpu() == static_cast<int>(prev->vcpu) &&
          m_p.vcpu_steps(prev->vcpu) == prev->steps))
      goto_pos(*prev);
    m_stop = make_stop(StopInfo::Why::Trap, vcpu);
  }
  m_last_reverse_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  (void)before;
  m_g = vcpu;
  return stop_reply();
}

std::string GdbSession::reverse_continue() {
  const auto t0 = std::chrono::steady_clock::now();
  const Pos cur = current_pos();
  auto done = [&](std::string r) {
    m_last_reverse_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    return r;
  };
  if (cur.start) {
    m_stop = make_stop(StopInfo::Why::Begin, 0);
    return done(stop_reply());
  }
  // Segment by segment, newest first: from a checkpoint to the next one (or to here), the
  // re-execution notes every breakpoint boundary and watched access; the last one wins.
  const size_t last = checkpoint_for(cur.vcpu, cur.steps);
  std::vector<uint64_t> ends;
  for (size_t k = 0; k <= last; ++k) ends.push_back(k + 1 < m_cps.size() ? m_cps[k + 1].insns : 0);
  for (size_t seg = last + 1; seg-- > 0;) {
    restore_checkpoint(seg);
    m_mode = Mode::Scan;
    m_scan_hits.clear();
    m_seek_armed = false;
    m_step_vcpu = static_cast<int>(cur.vcpu);
    m_seek_steps = cur.steps;
    if (seg == last) {
      Platform::DebugStop st =
          m_p.debug_run(Platform::StopPoint{Platform::StopPoint::Kind::Steps, cur.vcpu, cur.steps});
      if (st == Platform::DebugStop::Point) {
        m_seek_armed = true;
        m_p.set_step_mode(cur.vcpu, true);
        m_p.debug_run(std::nullopt);
        m_p.set_step_mode(cur.vcpu, false);
      }
    } else {
      m_p.debug_run(std::nullopt, ends[seg]);
    }
    m_mode = Mode::Run;
    if (m_scan_hits.empty()) continue;
    const auto [pos, hit] = m_scan_hits.back();
    m_scan_hits.clear();
    if (hit) {
      if (goto_hit(*hit, false)) {
        m_stop = watch_stop(static_cast<unsigned>(std::max(0, m_p.paused_vcpu())), *hit, true);
        m_g = m_stop.vcpu;
        return done(stop_reply());
      }
    } else if (goto_pos(pos)) {
      m_stop = make_stop(StopInfo::Why::Breakpoint, pos.vcpu);
      m_g = pos.vcpu;
      return done(stop_reply());
    }
    break;  // could not be reached again: report the start rather than guess
  }
  goto_pos(Pos{});
  m_stop = make_stop(StopInfo::Why::Begin, 0);
  return done(stop_reply());
}

std::string GdbSession::stop_reply() {
  const std::string thread = fmt::format("thread:{:x};", m_stop.vcpu + 1);
  switch (m_stop.why) {
    case StopInfo::Why::Trap:
      return "T05" + thread;
    case StopInfo::Why::Interrupt:
      return "T02" + thread;
    case StopInfo::Why::Breakpoint:
      return "T05swbreak:;" + thread;
    case StopInfo::Why::Watch: {
      const char* kind = m_stop.type == 3 ? "rwatch" : m_stop.type == 4 ? "awatch" : "watch";
      return fmt::format("T05{}:{:x};{}", kind, m_stop.addr, thread);
    }
    case StopInfo::Why::Begin:
      return "T05replaylog:begin;" + thread;
    case StopInfo::Why::Exited:
      return fmt::format("W{:02x}", m_p.exit_status().value_or(0));
  }
  return "T05" + thread;
}

// ---- registers and memory ----

bool GdbSession::thread_ok(int64_t t) const { return t >= 1 && t <= static_cast<int64_t>(m_p.vcpu_count()); }

unsigned GdbSession::thread_vcpu(int64_t t, unsigned fallback) const {
  return t >= 1 ? static_cast<unsigned>(t - 1) : fallback;
}

std::string GdbSession::read_registers(unsigned vcpu) {
  Vcpu& v = m_p.vcpu(vcpu);
  std::string out;
  for (unsigned r = 0; r < kNumRegs; ++r) out += gdb::le_hex(reg_value(v, r), reg_bytes(r));
  return out;
}

std::string GdbSession::write_registers(unsigned vcpu, std::string_view hex) {
  size_t total = 0;
  for (unsigned r = 0; r < kNumRegs; ++r) total += 2 * reg_bytes(r);
  if (hex.size() != total) return "E01";
  Vcpu& v = m_p.vcpu(vcpu);
  std::vector<uint64_t> vals;
  size_t at = 0;
  for (unsigned r = 0; r < kNumRegs; ++r) {
    const unsigned n = reg_bytes(r);
    const auto val = gdb::parse_le_hex(hex.substr(at, 2 * n), n);
    if (!val) return "E01";
    vals.push_back(*val);
    at += 2 * n;
  }
  for (unsigned r = 0; r < kNumRegs; ++r)
    if (reg_value(v, r) != vals[r] && !set_reg_value(v, r, vals[r])) return "E01";
  return "OK";
}

std::string GdbSession::read_register(unsigned vcpu, unsigned reg) {
  if (reg >= kNumRegs) return "E01";
  return gdb::le_hex(reg_value(m_p.vcpu(vcpu), reg), reg_bytes(reg));
}

std::string GdbSession::write_register(unsigned vcpu, unsigned reg, std::string_view hex) {
  if (reg >= kNumRegs) return "E01";
  const auto val = gdb::parse_le_hex(hex, reg_bytes(reg));
  if (!val) return "E01";
  Vcpu& v = m_p.vcpu(vcpu);
  if (reg_value(v, reg) == *val) return "OK";
  return set_reg_value(v, reg, *val) ? "OK" : "E01";
}

std::optional<uint64_t> GdbSession::translate(unsigned vcpu, uint64_t la) const {
  if (m_phys) return la;
  Vcpu& v = m_p.vcpu(vcpu);
  // 4-level paging (SDM Vol. 3A §4.5): the only mode pvsim runs (core/README.md).
  if (!(v.cr(0) & (1ull << 31))) return la;
  const auto top = static_cast<int64_t>(la) >> 47;
  if (top != 0 && top != -1) return std::nullopt;  // not canonical
  constexpr uint64_t kAddr = 0x000ffffffffff000ull;
  uint64_t table = v.cr(3) & kAddr;
  for (int level = 4; level >= 1; --level) {
    const unsigned shift = 12 + 9 * static_cast<unsigned>(level - 1);
    uint64_t e = 0;
    if (!m_p.memory().read_obj(Gpa(table + ((la >> shift) & 511) * 8), e)) return std::nullopt;
    if (!(e & 1)) return std::nullopt;
    if ((level == 2 || level == 3) && (e & 0x80)) {
      const uint64_t size = 1ull << shift;
      return ((e & kAddr) & ~(size - 1)) | (la & (size - 1));
    }
    if (level == 1) return (e & kAddr) | (la & 0xfff);
    table = e & kAddr;
  }
  return std::nullopt;
}

std::string GdbSession::read_memory(std::string_view args) {
  const size_t comma = args.find(',');
  if (comma == std::string_view::npos) return "E01";
  const auto addr = parse_hex(args.substr(0, comma)), len = parse_hex(args.substr(comma + 1));
  if (!addr || !len) return "E01";
  const uint64_t n = std::min<uint64_t>(*len, (gdb::kMaxPacket - 8) / 2);
  std::string bytes;
  for (uint64_t done = 0; done < n;) {
    const uint64_t la = *addr + done;
    const uint64_t chunk = std::min<uint64_t>(n - done, 4096 - (la & 0xfff));
    const auto gpa = translate(m_g, la);
    std::string part(chunk, '\0');
    if (!gpa || !m_p.memory().read(Gpa(*gpa), part.data(), chunk)) break;
    bytes += part;
    done += chunk;
  }
  if (bytes.empty() && n > 0) return "E14";  // EFAULT: nothing readable there
  return gdb::to_hex(bytes);
}

std::string GdbSession::write_memory(std::string_view args, bool binary) {
  const size_t colon = args.find(':');
  if (colon == std::string_view::npos) return "E01";
  const std::string_view head = args.substr(0, colon), body = args.substr(colon + 1);
  const size_t comma = head.find(',');
  if (comma == std::string_view::npos) return "E01";
  const auto addr = parse_hex(head.substr(0, comma)), len = parse_hex(head.substr(comma + 1));
  if (!addr || !len) return "E01";
  std::string data;
  if (binary) {
    data = std::string(body);
  } else {
    const auto d = gdb::from_hex(body);
    if (!d) return "E01";
    data = *d;
  }
  if (data.size() != *len) return "E01";
  // Every page first, so a failing write changes nothing.
  std::vector<std::pair<uint64_t, uint64_t>> parts;  // (gpa, length)
  for (uint64_t done = 0; done < data.size();) {
    const uint64_t la = *addr + done;
    const uint64_t chunk = std::min<uint64_t>(data.size() - done, 4096 - (la & 0xfff));
    const auto gpa = translate(m_g, la);
    if (!gpa || !m_p.memory().contains(Gpa(*gpa), chunk)) return "E14";
    parts.emplace_back(*gpa, chunk);
    done += chunk;
  }
  // gdb's own writes are no watch hits; they also go through the undo log, so a reverse
  // move that restores a checkpoint from before them undoes them.
  m_p.memory().set_watch_muted(true);
  uint64_t off = 0;
  for (const auto& [gpa, chunk] : parts) {
    m_p.memory().write(Gpa(gpa), data.data() + off, chunk);
    off += chunk;
  }
  m_p.memory().set_watch_muted(false);
  return "OK";
}

void GdbSession::apply_watches() {
  std::vector<GuestMemory::Watch> all;
  for (const WatchSpec& w : m_watches) all.insert(all.end(), w.ranges.begin(), w.ranges.end());
  m_p.set_debug_watches(std::move(all));
}

std::string GdbSession::breakpoint(std::string_view args, bool insert) {
  // type,addr,kind
  const size_t c1 = args.find(',');
  if (c1 == std::string_view::npos || c1 != 1) return "E01";
  const size_t c2 = args.find(',', c1 + 1);
  if (c2 == std::string_view::npos) return "E01";
  const char type = args[0];
  const auto addr = parse_hex(args.substr(c1 + 1, c2 - c1 - 1));
  std::string_view kind_s = args.substr(c2 + 1);
  kind_s = kind_s.substr(0, kind_s.find(';'));  // conditions / commands are not supported
  const auto kind = parse_hex(kind_s);
  if (!addr || !kind) return "E01";
  if (type == '0' || type == '1') {
    if (insert) m_bps.insert(*addr);
    else m_bps.erase(*addr);
    m_p.set_debug_breakpoints(std::vector<uint64_t>(m_bps.begin(), m_bps.end()));
    return "OK";
  }
  if (type < '2' || type > '4') return "";
  const int t = type - '0';
  if (*kind == 0 || *kind > 4096) return "E22";
  if (!insert) {
    const auto it = std::find_if(m_watches.begin(), m_watches.end(),
                                 [&](const WatchSpec& w) { return w.type == t && w.addr == *addr && w.len == *kind; });
    if (it != m_watches.end()) m_watches.erase(it);
    apply_watches();
    return "OK";
  }
  // The watched bytes are guest-physical, found now through the current thread's page tables
  // (a later change of that mapping does not move the watchpoint).
  WatchSpec w;
  w.type = t;
  w.addr = *addr;
  w.len = *kind;
  const uint8_t access = t == 2 ? static_cast<uint8_t>(GuestMemory::WatchAccess::Write)
                         : t == 3 ? static_cast<uint8_t>(GuestMemory::WatchAccess::Read)
                                  : static_cast<uint8_t>(static_cast<uint8_t>(GuestMemory::WatchAccess::Read) |
                                                         static_cast<uint8_t>(GuestMemory::WatchAccess::Write));
  for (uint64_t done = 0; done < *kind;) {
    const uint64_t la = *addr + done;
    const uint64_t chunk = std::min<uint64_t>(*kind - done, 4096 - (la & 0xfff));
    const auto gpa = translate(m_g, la);
    if (!gpa || !m_p.memory().contains(Gpa(*gpa), chunk)) return "E14";
    w.ranges.push_back({*gpa, chunk, access});
    done += chunk;
  }
  m_watches.push_back(std::move(w));
  apply_watches();
  return "OK";
}

std::string GdbSession::xfer_features(std::string_view args) {
  // target.xml:OFFSET,LENGTH
  const size_t colon = args.find(':');
  if (colon == std::string_view::npos) return "E00";
  if (args.substr(0, colon) != "target.xml") return "E00";
  const std::string_view range = args.substr(colon + 1);
  const size_t comma = range.find(',');
  if (comma == std::string_view::npos) return "E00";
  const auto off = parse_hex(range.substr(0, comma)), len = parse_hex(range.substr(comma + 1));
  if (!off || !len) return "E00";
  const std::string x = target_xml();
  if (*off >= x.size()) return "l";
  const uint64_t n = std::min<uint64_t>({*len, x.size() - *off, gdb::kMaxPacket - 16});
  return (*off + n >= x.size() ? "l" : "m") + x.substr(*off, n);
}

std::string GdbSession::monitor(const std::string& cmd) {
  const std::vector<std::string> w = split_words(cmd);
  const std::string what = w.empty() ? "help" : w[0];
  // An optional vN argument selects the vCPU (default: the current thread's).
  unsigned vcpu = m_g;
  std::vector<std::string> rest;
  for (size_t k = 1; k < w.size(); ++k) {
    if (w[k].size() >= 2 && w[k][0] == 'v' && std::all_of(w[k].begin() + 1, w[k].end(), ::isdigit)) {
      const unsigned long n = std::stoul(w[k].substr(1));
      if (n >= m_p.vcpu_count()) return fmt::format("no vCPU {} (the machine has {})\n", n, m_p.vcpu_count());
      vcpu = static_cast<unsigned>(n);
    } else {
      rest.push_back(w[k]);
    }
  }
  if (what == "help")
    return "pvsim monitor commands (vN selects a vCPU, default: the current thread):\n"
           "  time                 virtual time, instructions and state of every vCPU\n"
           "  host                 the host model: pCPUs, where each vCPU runs, run delay\n"
           "  msr [vN] [NAME|0xN]  one MSR (tsc, system-time, wall-clock, steal-time, apf, apf-int,\n"
           "                       apf-ack, pv-eoi, poll-control, efer, or a number), or all of them\n"
           "  pv [vN]              the PV structures the vCPU registered, decoded (kvmclock, steal\n"
           "                       time, async PF, PV EOI)\n"
           "  regs [vN], lapic [vN] registers / local APIC as pvsim run --dump prints them\n"
           "  trace [last N]       the last N canonical trace lines (default 20)\n"
           "  trace on|off         keep the recent trace lines or not\n"
           "  phys [on|off]        m/M packets (x, set *) take guest-physical addresses\n"
           "  checkpoints          reverse-execution checkpoints and the last reverse move's cost\n"
           "  why                  why the machine stopped (a watchpoint: by the guest or the hypervisor)\n";
  if (what == "time") {
    std::string out;
    for (unsigned i = 0; i < m_p.vcpu_count(); ++i) {
      Vcpu& v = m_p.vcpu(i);
      out += fmt::format("vCPU {}: {} ({} cycles), {} instructions, {} steps, {}\n", i, ns_text(v.now().value()),
                         v.cycles().value(), v.instructions(), m_p.vcpu_steps(i), m_p.vcpu_state_name(i));
    }
    out += fmt::format("machine: {} instructions in all\n", m_p.instructions());
    return out;
  }
  if (what == "host") {
    std::string out = fmt::format("host: {} pCPUs\n", m_p.host_model().pcpus());
    for (unsigned i = 0; i < m_p.vcpu_count(); ++i) {
      const int pc = m_p.vcpu_pcpu(i);
      out += fmt::format("vCPU {}: {}, {}, run delay {}\n", i, m_p.vcpu_state_name(i),
                         pc < 0 ? std::string("has not run yet") : fmt::format("last on pCPU {}", pc),
                         ns_text(m_p.run_delay_ns(i)));
    }
    if (m_p.paused()) out += fmt::format("vCPU {} is inside its step (stopped at a boundary)\n", m_p.paused_vcpu());
    return out;
  }
  if (what == "msr") {
    Vcpu& v = m_p.vcpu(vcpu);
    if (rest.empty()) {
      DumpSpec d;
      d.msrs = true;
      return dump_machine(m_p, d, {vcpu});
    }
    std::optional<uint32_t> index;
    for (const MsrAlias& a : kMsrAliases)
      if (rest[0] == a.name) index = a.index;
    if (!index) {
      if (rest[0].rfind("0x", 0) == 0) {
        const auto n = parse_hex(rest[0].substr(2));
        if (n && *n <= 0xffffffffu) index = static_cast<uint32_t>(*n);
      } else {
        for (const MsrHandler& h : v.msrs().entries())
          if (rest[0] == h.name) index = h.index;
      }
    }
    if (!index) return fmt::format("unknown MSR '{}' (monitor help lists the names)\n", rest[0]);
    bool ok = false;
    const uint64_t val = read_msr(v, *index, ok);
    const MsrHandler* h = v.msrs().find(*index);
    if (!ok) return fmt::format("vCPU {}: MSR {:#x} cannot be read (#GP)\n", vcpu, *index);
    return fmt::format("vCPU {}: MSR {:#x} {} = {:#x}\n", vcpu, *index, h ? h->name : "", val);
  }
  if (what == "pv" || what == "regs" || what == "lapic") {
    DumpSpec d;
    d.pv = what == "pv";
    d.regs = what == "regs";
    d.lapic = what == "lapic";
    return dump_machine(m_p, d, {vcpu});
  }
  if (what == "trace") {
    if (!rest.empty() && rest[0] == "on") {
      m_p.keep_recent_trace(256);
      return "keeping the last 256 trace lines\n";
    }
    if (!rest.empty() && rest[0] == "off") {
      m_p.keep_recent_trace(0);
      return "not keeping trace lines\n";
    }
    size_t n = 20;
    if (rest.size() >= 2 && rest[0] == "last") n = static_cast<size_t>(std::strtoul(rest[1].c_str(), nullptr, 10));
    std::string out;
    for (const std::string& l : m_p.recent_trace(n)) out += l;
    return out.empty() ? "no trace lines kept\n" : out;
  }
  if (what == "phys") {
    if (!rest.empty()) m_phys = rest[0] == "on";
    return fmt::format("memory packets take guest-{} addresses\n", m_phys ? "physical" : "virtual");
  }
  if (what == "why") {
    const StopInfo& st = m_stop;
    switch (st.why) {
      case StopInfo::Why::Watch:
        return fmt::format("vCPU {}: watchpoint at {:#x}: {} by {}; stopped {} it\n", st.vcpu, st.addr,
                           st.write ? "written" : "read",
                           st.host ? "the hypervisor (a host-side write of guest memory)" : "a guest instruction",
                           st.reverse ? "before" : "after");
      case StopInfo::Why::Breakpoint:
        return fmt::format("vCPU {}: breakpoint\n", st.vcpu);
      case StopInfo::Why::Interrupt:
        return fmt::format("vCPU {}: interrupted (Ctrl-C)\n", st.vcpu);
      case StopInfo::Why::Begin:
        return "the start of the run (no more reverse-execution history)\n";
      case StopInfo::Why::Exited:
        return "the run is over\n";
      case StopInfo::Why::Trap:
        return fmt::format("vCPU {}: step\n", st.vcpu);
    }
  }
  if (what == "checkpoints") {
    std::string out = fmt::format("{} checkpoints, every {} instructions (at most {}); last reverse move {:.1f} ms\n",
                                  m_cps.size(), m_interval, m_opts.max_checkpoints, m_last_reverse_ms);
    for (const Checkpoint& c : m_cps)
      out += fmt::format("  #{} at {} instructions ({} pages to restore)\n", c.id, c.insns, m_p.restore_cost_pages(*c.snap));
    return out;
  }
  return fmt::format("unknown monitor command '{}' (monitor help)\n", what);
}

std::string GdbSession::query(std::string_view p) {
  if (p.rfind("qSupported", 0) == 0)
    return fmt::format("PacketSize={:x};qXfer:features:read+;swbreak+;hwbreak+;vContSupported+;QStartNoAckMode+;"
                       "ReverseStep+;ReverseContinue+",
                       gdb::kMaxPacket);
  if (p.rfind("qXfer:features:read:", 0) == 0) return xfer_features(p.substr(20));
  if (p == "qfThreadInfo") {
    std::string out = "m";
    for (unsigned i = 0; i < m_p.vcpu_count(); ++i) out += fmt::format("{}{:x}", i ? "," : "", i + 1);
    return out;
  }
  if (p == "qsThreadInfo") return "l";
  if (p == "qC") return fmt::format("QC{:x}", m_g + 1);
  if (p.rfind("qAttached", 0) == 0) return "1";
  if (p.rfind("qThreadExtraInfo,", 0) == 0) {
    const auto t = gdb::parse_thread_id(p.substr(17));
    if (!t || !thread_ok(*t)) return "E02";
    const auto i = static_cast<unsigned>(*t - 1);
    return gdb::to_hex(fmt::format("vCPU {} {}", i, m_p.vcpu_state_name(i)));
  }
  if (p.rfind("qRcmd,", 0) == 0) {
    const auto cmd = gdb::from_hex(p.substr(6));
    if (!cmd) return "E01";
    // The output as one O packet's payload is not needed: gdb prints a hex reply directly.
    return gdb::to_hex(monitor(*cmd));
  }
  if (p == "qSymbol::") return "OK";
  return "";
}

std::string GdbSession::handle(std::string_view p) {
  if (p.empty()) return "";
  switch (p[0]) {
    case '?':
      return stop_reply();
    case 'q':
      return query(p);
    case 'Q':
      if (p == "QStartNoAckMode") return "OK";
      return "";
    case 'H': {
      if (p.size() < 3) return "E01";
      const auto t = gdb::parse_thread_id(p.substr(2));
      if (!t || (*t > 0 && !thread_ok(*t))) return "E02";
      if (p[1] == 'g') m_g = thread_vcpu(*t, m_g);
      else if (p[1] == 'c') m_stop.vcpu = *t > 0 ? static_cast<unsigned>(*t - 1) : m_stop.vcpu;
      else return "E01";
      return "OK";
    }
    case 'T': {
      const auto t = gdb::parse_thread_id(p.substr(1));
      return t && thread_ok(*t) ? "OK" : "E02";
    }
    case 'g':
      return p.size() == 1 ? read_registers(m_g) : "E01";
    case 'G':
      return write_registers(m_g, p.substr(1));
    case 'p': {
      const auto r = parse_hex(p.substr(1));
      return r ? read_register(m_g, static_cast<unsigned>(std::min<uint64_t>(*r, kNumRegs))) : "E01";
    }
    case 'P': {
      const size_t eq = p.find('=');
      if (eq == std::string_view::npos) return "E01";
      const auto r = parse_hex(p.substr(1, eq - 1));
      return r ? write_register(m_g, static_cast<unsigned>(std::min<uint64_t>(*r, kNumRegs)), p.substr(eq + 1)) : "E01";
    }
    case 'm':
      return read_memory(p.substr(1));
    case 'M':
      return write_memory(p.substr(1), false);
    case 'X':
      return write_memory(p.substr(1), true);
    case 'Z':
      return breakpoint(p.substr(1), true);
    case 'z':
      return breakpoint(p.substr(1), false);
    case 'c':
      if (p.size() > 1) return "E01";  // resuming elsewhere is not supported
      return do_continue(-1, true);
    case 's':
      if (p.size() > 1) return "E01";
      return do_continue(static_cast<int>(m_stop.vcpu), false);
    case 'b':
      if (p == "bs") return reverse_step(m_stop.vcpu);
      if (p == "bc") return reverse_continue();
      return "";
    case 'v':
      if (p == "vCont?") return "vCont;c;C;s;S";
      if (p.rfind("vCont;", 0) == 0) {
        const auto a = gdb::parse_vcont(p.substr(5));
        if (!a) return "E01";
        return resume(*a);
      }
      if (p.rfind("vKill", 0) == 0) return "OK";
      return "";
    case 'D':
    case 'k':
      return "OK";
    default:
      return "";
  }
}

// ---- the connection ----

void GdbSession::send(std::string_view body) {
  m_last_reply = gdb::frame(body);
  size_t off = 0;
  while (off < m_last_reply.size()) {
    const ssize_t n = ::send(m_fd, m_last_reply.data() + off, m_last_reply.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the peer is gone: the next read says so
    off += static_cast<size_t>(n);
  }
}

bool GdbSession::read_more() {
  char buf[4096];
  for (;;) {
    const ssize_t n = ::recv(m_fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    m_in.feed(std::string_view(buf, static_cast<size_t>(n)));
    return true;
  }
}

GdbSession::End GdbSession::serve() {
  End end = End::Closed;
  for (bool going = true; going;) {
    auto in = m_in.next();
    if (!in) {
      if (!read_more()) break;
      continue;
    }
    switch (in->kind) {
      case gdb::Incoming::Kind::Ack:
      case gdb::Incoming::Kind::Interrupt:  // while stopped there is nothing to interrupt
        break;
      case gdb::Incoming::Kind::Nak:
        if (!m_last_reply.empty() && !m_noack)
          (void)::send(m_fd, m_last_reply.data(), m_last_reply.size(), MSG_NOSIGNAL);
        break;
      case gdb::Incoming::Kind::BadPacket:
        if (!m_noack) (void)::send(m_fd, "-", 1, MSG_NOSIGNAL);
        break;
      case gdb::Incoming::Kind::Packet: {
        if (!m_noack) (void)::send(m_fd, "+", 1, MSG_NOSIGNAL);
        const std::string& p = in->data;
        std::string reply;
        try {
          reply = handle(p);
        } catch (const std::exception& e) {
          // Never a crash: an internal problem is an error reply (and a line for the user).
          fmt::print(stderr, "pvsim: gdb: {}\n", e.what());
          reply = "E01";
        }
        if (p == "k") {
          end = End::Killed;
          going = false;
          break;
        }
        send(reply);
        if (p == "QStartNoAckMode") m_noack = true;
        if (p.rfind("vKill", 0) == 0) {
          end = End::Killed;
          going = false;
        } else if (!p.empty() && p[0] == 'D') {
          end = End::Detached;
          going = false;
        }
        break;
      }
    }
  }
  clear_debug_state();
  return end;
}

}  // namespace pvsim
