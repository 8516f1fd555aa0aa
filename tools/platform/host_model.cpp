#include "tools/platform/host_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>
#include <stdexcept>

namespace pvsim {

namespace {

constexpr uint64_t kMax = UINT64_MAX;

uint64_t saturate(unsigned __int128 x) {
  return x > kMax ? kMax : static_cast<uint64_t>(x);
}

std::string plural(uint64_t n, std::string_view what) {
  return fmt::format("{} {}{}", n, what, n == 1 ? "" : "s");
}

// "3 ms", "250 us" or "1500 ns": the largest unit that divides the length exactly.
std::string show_duration(uint64_t ns) {
  if (ns % 1'000'000 == 0) return fmt::format("{} ms", ns / 1'000'000);
  if (ns % 1'000 == 0) return fmt::format("{} us", ns / 1'000);
  return fmt::format("{} ns", ns);
}

}  // namespace

HostModel::HostModel(const HostConfig& host, unsigned vcpus)
    : m_vcpus(vcpus),
      m_pcpus(host.pcpus == 0 ? vcpus : host.pcpus),
      m_policy(host.policy),
      m_slice_ns(host.slice_ns),
      m_wall_clock_ns(host.wall_clock_ns),
      m_monotonic_ns(host.monotonic_ns),
      m_preempt_count(host.preempt.size()),
      m_schedule(vcpus),
      m_preempt(vcpus) {
  if (vcpus == 0) throw std::invalid_argument("HostModel: no vCPUs");
  if (m_slice_ns == 0) throw std::invalid_argument("HostModel: slice_ns is 0");

  if (m_policy == HostPolicy::Pinned) {
    m_pin = host.pin;
    if (m_pin.empty())
      for (unsigned v = 0; v < vcpus; ++v) m_pin.push_back(v % m_pcpus);
    if (m_pin.size() != vcpus)
      throw std::invalid_argument("HostModel: pin needs one entry per vCPU");
    for (unsigned v = 0; v < vcpus; ++v)
      if (m_pin[v] >= m_pcpus)
        throw std::invalid_argument("HostModel: pin names a pCPU that does not exist");
    // The vCPUs pinned to one pCPU take turns in ascending vCPU order, one slice each:
    // with k of them, the j-th owns slot j of every period of k slices.
    for (unsigned p = 0; p < m_pcpus; ++p) {
      std::vector<unsigned> sharing;
      for (unsigned v = 0; v < vcpus; ++v)
        if (m_pin[v] == p) sharing.push_back(v);
      for (size_t j = 0; j < sharing.size(); ++j) {
        Schedule& s = m_schedule[sharing[j]];
        s.pcpu = p;
        if (sharing.size() > 1) {
          s.period = sharing.size();
          s.slots.push_back({j, p});
        }
      }
    }
  } else if (vcpus <= m_pcpus) {
    // Time-sliced with a pCPU for everyone: nothing to share, vCPU v stays on pCPU v.
    for (unsigned v = 0; v < vcpus; ++v) m_schedule[v].pcpu = v;
  } else {
    // Global round robin: in slot m, pCPU p runs vCPU (m*P + p) mod V. The pattern
    // repeats after L = V / gcd(V, P) slots (the first m > 0 with m*P = 0 mod V), and
    // each vCPU owns P / gcd(V, P) of those slots, so one period fits in at most 64
    // entries per vCPU. Consecutive slots of one vCPU are always on different pCPUs
    // (same pCPU would need P = 0 mod V, impossible with V > P): windows never merge
    // across slots, and every slot boundary a vCPU runs across is a migration.
    const uint64_t period = vcpus / std::gcd(vcpus, m_pcpus);
    for (unsigned v = 0; v < vcpus; ++v) m_schedule[v].period = period;
    for (uint64_t m = 0; m < period; ++m)
      for (unsigned p = 0; p < m_pcpus; ++p)
        m_schedule[(m * m_pcpus + p) % vcpus].slots.push_back({m, p});
  }

  // Preemption windows, pauses and noise: sorted and merged (overlapping or touching windows
  // are one longer descheduling), so window_at() can binary-search them. A pause stops every
  // vCPU, so it is cut out of each vCPU's schedule like a preemption window; the platform
  // tells the two apart with paused_at() for the accounting.
  auto check = [](uint64_t from, uint64_t to, const char* what) {
    if (from >= to) throw std::invalid_argument(std::string("HostModel: empty ") + what + " window");
    // A window to 2^64 - 1 would leave nothing to return; the parser stops at 10^18 ns.
    if (to == kMax) throw std::invalid_argument(std::string("HostModel: ") + what + " window never ends");
  };
  for (const PreemptWindow& w : host.preempt) {
    if (w.vcpu >= vcpus)
      throw std::invalid_argument("HostModel: preempt window for a vCPU that does not exist");
    check(w.from_ns, w.to_ns, "preempt");
    m_preempt[w.vcpu].push_back({w.from_ns, w.to_ns});
  }
  for (const PauseWindow& w : host.pause) {
    check(w.from_ns, w.to_ns, "pause");
    for (auto& spans : m_preempt) spans.push_back({w.from_ns, w.to_ns});
  }
  m_noise.resize(m_pcpus);
  for (const NoiseWindow& w : host.noise) {
    if (w.pcpu >= m_pcpus) throw std::invalid_argument("HostModel: noise on a pCPU that does not exist");
    check(w.from_ns, w.to_ns, "noise");
    m_noise[w.pcpu].push_back({w.from_ns, w.to_ns});
    ++m_noise_count;
  }
  for (auto& spans : m_preempt) merge(spans);
  for (auto& spans : m_noise) merge(spans);
  {
    std::vector<Span> pauses;
    for (const PauseWindow& w : host.pause) pauses.push_back({w.from_ns, w.to_ns});
    merge(pauses);
    for (const Span& sp : pauses) m_pause.push_back({sp.from, sp.to});
  }
  for (unsigned v = 0; v < vcpus; ++v)
    m_always.push_back(m_schedule[v].period == 0 && m_preempt[v].empty() && m_noise[m_schedule[v].pcpu].empty());
  m_moves.resize(vcpus);
}

const PauseWindow* HostModel::pause_containing(Tick t) const {
  auto w = std::upper_bound(m_pause.begin(), m_pause.end(), t.value(),
                            [](uint64_t a, const PauseWindow& s) { return a < s.to_ns; });
  return w != m_pause.end() && w->from_ns <= t.value() ? &*w : nullptr;
}

const PauseWindow* HostModel::next_pause_after(Tick t) const {
  auto w = std::upper_bound(m_pause.begin(), m_pause.end(), t.value(),
                            [](uint64_t a, const PauseWindow& s) { return a < s.from_ns; });
  return w != m_pause.end() ? &*w : nullptr;
}

void HostModel::add_preempt(unsigned v, uint64_t from_ns, uint64_t to_ns) {
  if (v >= m_vcpus || from_ns >= to_ns || to_ns == kMax) throw std::invalid_argument("HostModel::add_preempt");
  m_preempt[v].push_back({from_ns, to_ns});
  merge(m_preempt[v]);
  m_always[v] = 0;
}

void HostModel::add_pause(uint64_t from_ns, uint64_t to_ns) {
  if (from_ns >= to_ns || to_ns == kMax) throw std::invalid_argument("HostModel::add_pause");
  std::vector<Span> pauses;
  for (const PauseWindow& w : m_pause) pauses.push_back({w.from_ns, w.to_ns});
  pauses.push_back({from_ns, to_ns});
  merge(pauses);
  m_pause.clear();
  for (const Span& sp : pauses) m_pause.push_back({sp.from, sp.to});
  for (unsigned v = 0; v < m_vcpus; ++v) {
    m_preempt[v].push_back({from_ns, to_ns});
    merge(m_preempt[v]);
    m_always[v] = 0;
  }
}

void HostModel::migrate(unsigned v, unsigned pcpu, uint64_t from_ns) {
  if (v >= m_vcpus || pcpu >= m_pcpus) throw std::invalid_argument("HostModel::migrate");
  auto& moves = m_moves[v];
  // A later move replaces what an earlier one said from its instant on.
  while (!moves.empty() && moves.back().first >= from_ns) moves.pop_back();
  moves.emplace_back(from_ns, pcpu);
  m_always[v] = 0;  // the platform's fast path assumes vCPU v stays on pCPU v
}

void HostModel::merge(std::vector<Span>& spans) {
  std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
    return a.from < b.from || (a.from == b.from && a.to < b.to);
  });
  std::vector<Span> merged;
  for (const Span& s : spans) {
    if (!merged.empty() && s.from <= merged.back().to)
      merged.back().to = std::max(merged.back().to, s.to);
    else
      merged.push_back(s);
  }
  spans = std::move(merged);
}

bool HostModel::paused_at(Tick t) const {
  auto w = std::upper_bound(m_pause.begin(), m_pause.end(), t.value(),
                            [](uint64_t a, const PauseWindow& s) { return a < s.to_ns; });
  return w != m_pause.end() && w->from_ns <= t.value();
}

uint64_t HostModel::paused_ns(Tick from, Tick to) const {
  uint64_t sum = 0;
  for (const PauseWindow& s : m_pause) {
    const uint64_t a = std::max(s.from_ns, from.value());
    const uint64_t b = std::min(s.to_ns, to.value());
    if (a < b) sum += b - a;
  }
  return sum;
}

RunWindow HostModel::base_window(unsigned v, uint64_t t) const {
  RunWindow w = slot_window(v, t);
  const auto& moves = m_moves[v];
  if (moves.empty()) [[likely]] return w;
  // A migration instant inside a window splits it there (the two halves touch on different
  // pCPUs: a migration, see RunWindow).
  const uint64_t x = std::max(t, w.start.value());
  auto after = std::upper_bound(moves.begin(), moves.end(), x,
                                [](uint64_t a, const std::pair<uint64_t, unsigned>& m) { return a < m.first; });
  if (after != moves.begin()) {
    const uint64_t from = std::prev(after)->first;
    if (from > w.start.value()) w.start = Tick(from);
    w.pcpu = std::prev(after)->second;
  }
  if (after != moves.end() && after->first < w.end.value()) w.end = Tick(after->first);
  return w;
}

RunWindow HostModel::slot_window(unsigned v, uint64_t t) const {
  const Schedule& s = m_schedule[v];
  if (s.period == 0) return {Tick(0), kForever, s.pcpu};
  const uint64_t slot = t / m_slice_ns;
  uint64_t cycle = slot / s.period;
  const uint64_t in_cycle = slot % s.period;
  // The first owned slot at or after the current one; past the last, the next period's
  // first. When it is the current slot itself, t lies inside it.
  auto it = std::lower_bound(s.slots.begin(), s.slots.end(), in_cycle,
                             [](const Slot& a, uint64_t i) { return a.index < i; });
  if (it == s.slots.end()) {
    it = s.slots.begin();
    ++cycle;
  }
  const unsigned __int128 first =
      (static_cast<unsigned __int128>(cycle) * s.period + it->index) * m_slice_ns;
  uint64_t start = saturate(first);
  const uint64_t end = saturate(first + m_slice_ns);
  // Only reachable within one period of 2^64 ns: keep the promise "never empty".
  if (start == kMax) start = kMax - 1;
  return {Tick(start), Tick(end), it->pcpu};
}

RunWindow HostModel::window_at(unsigned v, Tick t) const {
  const std::vector<Span>& spans = m_preempt[v];
  uint64_t cur = t.value();
  // Each pass either returns or jumps past one preemption window, one noise window, or the
  // part of one base window that noise covers (spans are merged, so the next pass finds a
  // later one): the passes are bounded by the windows that lie between t and the result.
  for (;;) {
    const RunWindow b = base_window(v, cur);
    const std::vector<Span>& noise = m_noise[b.pcpu];
    const uint64_t x = std::max(cur, b.start.value());  // first instant the base schedule runs v
    // First window ending after x; its predecessor (if any) ends at or before x.
    auto after = [x](const std::vector<Span>& sp) {
      return std::upper_bound(sp.begin(), sp.end(), x, [](uint64_t a, const Span& s) { return a < s.to; });
    };
    auto w = after(spans);
    if (w != spans.end() && w->from <= x) {
      cur = w->to;  // x is inside a preemption window: continue where it ends
      continue;
    }
    auto n = after(noise);
    if (n != noise.end() && n->from <= x) {
      // A host thread holds the pCPU: the vCPU waits until it is done, or until this base
      // window ends (its next one may be on another pCPU, free of that noise).
      cur = std::min(n->to, b.end.value());
      continue;
    }
    uint64_t start = b.start.value();
    if (w != spans.begin() && std::prev(w)->to > start) start = std::prev(w)->to;
    if (n != noise.begin() && std::prev(n)->to > start) start = std::prev(n)->to;
    uint64_t end = b.end.value();
    if (w != spans.end() && w->from < end) end = w->from;
    if (n != noise.end() && n->from < end) end = n->from;
    return {Tick(start), Tick(end), b.pcpu};
  }
}



std::string HostModel::describe() const {
  std::string out = fmt::format("{} on {}", plural(m_vcpus, "vCPU"), plural(m_pcpus, "pCPU"));
  if (m_policy == HostPolicy::TimeSliced) {
    if (m_vcpus <= m_pcpus)
      out += ", time-sliced (a pCPU each)";
    else
      out += fmt::format(", time-sliced {}", show_duration(m_slice_ns));
  } else {
    bool shared = false;
    bool identity = true;
    for (unsigned v = 0; v < m_vcpus; ++v) {
      shared |= m_schedule[v].period != 0;
      identity &= m_pin[v] == v;
    }
    if (!shared) {
      out += identity ? ", pinned 1:1" : ", pinned";
    } else {
      // Name each shared pCPU's vCPUs: that is what a reader needs to predict the gaps.
      std::string groups;
      for (unsigned p = 0; p < m_pcpus; ++p) {
        std::string members;
        unsigned count = 0;
        for (unsigned v = 0; v < m_vcpus; ++v)
          if (m_pin[v] == p) {
            members += fmt::format("{}{}", count == 0 ? "" : ",", v);
            ++count;
          }
        if (count > 1)
          groups += fmt::format("{}pCPU {}: vCPUs {}", groups.empty() ? "" : "; ", p, members);
      }
      out += fmt::format(", pinned ({}), slice {}", groups, show_duration(m_slice_ns));
    }
  }
  if (m_preempt_count > 0) out += fmt::format(", {}", plural(m_preempt_count, "preemption window"));
  if (m_noise_count > 0) out += fmt::format(", {}", plural(m_noise_count, "host noise window"));
  if (!m_pause.empty()) out += fmt::format(", {}", plural(m_pause.size(), "pause"));
  return out;
}

}  // namespace pvsim
