// tools/platform/explore.cpp — see explore.h.
#include "tools/platform/explore.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

#include "core/prng.h"
#include "tools/platform/platform.h"
#include "tools/platform/text.h"

namespace pvsim {

namespace {

// Single quotes for a POSIX shell: the replay command is copied into one.
std::string shell_quote(std::string_view s) {
  bool plain = !s.empty();
  for (char c : s)
    plain = plain && (std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '.' || c == '_' || c == '-' ||
                      c == '+' || c == ',' || c == ':' || c == '=');
  if (plain) return std::string(s);
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += "'\\''";
    else out += c;
  }
  return out + "'";
}

std::string outcome_key(const Platform& p, const RunReport& r, const std::vector<std::string>& fields) {
  std::string key = r.success() ? "pass" : "FAIL";
  for (const std::string& f : fields) {
    if (f == "stop") {
      key += fmt::format(" stop={}", run_stop_name(r.stop));
    } else if (f == "exit") {
      key += r.exit_status ? fmt::format(" exit={}", *r.exit_status) : std::string(" exit=none");
    } else if (f == "console") {
      key += " console=" + quote_display(r.console, 200);
    } else if (f == "failures") {
      for (const std::string& x : r.expectation_failures) key += " [" + x + "]";
    } else if (f.rfind("reg:v", 0) == 0) {
      const size_t dot = f.find('.');
      const unsigned v = static_cast<unsigned>(std::stoul(f.substr(5, dot - 5)));
      key += fmt::format(" {}={:#x}", f.substr(4), p.register_value(v, f.substr(dot + 1)));
    }
  }
  return key;
}

}  // namespace

void check_outcome_fields(unsigned vcpus, const std::vector<std::string>& fields, std::string_view origin) {
  for (const std::string& f : fields) {
    if (f == "stop" || f == "exit" || f == "console" || f == "failures") continue;
    if (f.rfind("reg:v", 0) == 0) {
      const size_t dot = f.find('.');
      const std::string num = dot == std::string::npos ? "" : f.substr(5, dot - 5);
      const std::string reg = dot == std::string::npos ? "" : f.substr(dot + 1);
      const bool digits = !num.empty() && num.size() <= 4 &&
                          std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits && std::stoul(num) < vcpus && Platform::is_register_name(reg)) continue;
    }
    throw ExploreError(fmt::format("{}: {} is not an outcome field (stop, exit, console, failures, "
                                   "reg:vN.NAME with a vCPU of the machine and a register as in expect.registers)",
                                   origin, quote_display(f, 80)));
  }
}

namespace {

GuestPoint insn_point(unsigned vcpu, uint64_t n) {
  GuestPoint p;
  p.kind = GuestPoint::Kind::Insn;
  p.vcpu = vcpu;
  p.insn = n;
  return p;
}

ScheduleEntry entry_at(GuestPoint p, HostAction a) { return ScheduleEntry{std::move(p), a, ""}; }

HostAction run_action(unsigned vcpu) {
  HostAction a;
  a.kind = ActionKind::Run;
  a.vcpu = vcpu;
  return a;
}

constexpr uint64_t kMaxVariants = 1ull << 62;

// C(n, r), or kMaxVariants + 1 when it is larger.
uint64_t choose(uint64_t n, uint64_t r) {
  if (r > n) return 0;
  unsigned __int128 c = 1;
  for (uint64_t i = 0; i < r; ++i) {
    c = c * (n - i) / (i + 1);
    if (c > kMaxVariants) return kMaxVariants + 1;
  }
  return static_cast<uint64_t>(c);
}

// A turn order: the first vCPU, then (offset, next vCPU) per switch, offsets increasing.
struct Turns {
  unsigned first = 0;
  std::vector<std::pair<uint64_t, unsigned>> switches;
};

// The schedule entries of a turn order, given every vCPU's instruction count at the
// window's start: "vW.insn=FROM: run vF", then per switch "vCUR.insn=START+k+1: run vNEXT",
// and "run auto" when any of them has run the window's length.
std::vector<ScheduleEntry> turn_entries(const ExploreSpec& spec, const Turns& t, const std::vector<uint64_t>& start) {
  std::vector<ScheduleEntry> out;
  out.push_back(entry_at(insn_point(spec.vcpu, spec.from), run_action(t.first)));
  unsigned cur = t.first;
  for (const auto& [k, next] : t.switches) {
    // k + 1: a switch comes after at least one instruction of the window, so no point lies
    // at a count a vCPU may already have reached before the snapshot (explore.h).
    out.push_back(entry_at(insn_point(cur, start[cur] + k + 1), run_action(next)));
    cur = next;
  }
  // The window ends for everybody once any of them has run its length: a vCPU that spins
  // waiting for a starved one would otherwise hold the turn until a limit.
  HostAction a;
  a.kind = ActionKind::RunAuto;
  // (Switch points lie at most the window's length after a vCPU's start; these one after.)
  const uint64_t len = spec.to - spec.from + 1;
  for (unsigned v : spec.vcpus) out.push_back(entry_at(insn_point(v, start[v] + len + 1), a));
  return out;
}

// Interleave variant `idx`: first vCPU (idx mod n), then the bound offsets as the
// combination of that rank (combinatorial number system), then each switch's target among
// the other n - 1 vCPUs (mixed radix).
Turns interleave_turns(const ExploreSpec& spec, uint64_t idx) {
  const uint64_t n = spec.vcpus.size();
  const uint64_t w = spec.to - spec.from + 1;
  Turns t;
  t.first = spec.vcpus[idx % n];
  idx /= n;
  const uint64_t combos = choose(w, spec.bound);
  uint64_t rank = idx % combos;
  idx /= combos;
  std::vector<uint64_t> offs;
  uint64_t lo = 0;
  for (unsigned i = 0; i < spec.bound; ++i) {
    // The smallest offset whose remaining combinations cover `rank`.
    for (uint64_t x = lo;; ++x) {
      const uint64_t rest = choose(w - x - 1, spec.bound - i - 1);
      if (rank < rest) {
        offs.push_back(x);
        lo = x + 1;
        break;
      }
      rank -= rest;
    }
  }
  unsigned cur = t.first;
  for (uint64_t k : offs) {
    const uint64_t pick = idx % (n - 1);
    idx /= n - 1;
    std::vector<unsigned> others;
    for (unsigned v : spec.vcpus)
      if (v != cur) others.push_back(v);
    cur = others[pick];
    t.switches.emplace_back(k, cur);
  }
  return t;
}

// PCT schedule `idx`: a random priority order of the vCPUs and d - 1 distinct change
// points among the window's steps; at each, the running vCPU drops to the lowest priority
// and the highest of the others runs (Burckhardt et al., ASPLOS 2010). Drawn from the
// project's PRNG, seeded from the seed and the schedule's number.
Turns pct_turns(const ExploreSpec& spec, uint64_t idx) {
  SplitMix64 rng(spec.seed ^ (idx * 0x9e3779b97f4a7c15ull) ^ 0x5043545f73636865ull);
  std::vector<unsigned> order = spec.vcpus;  // highest priority first
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  const uint64_t w = spec.to - spec.from + 1;
  std::vector<uint64_t> points;
  while (points.size() + 1 < spec.depth && points.size() < w) {
    const uint64_t x = rng.below(w);
    if (std::find(points.begin(), points.end(), x) == points.end()) points.push_back(x);
  }
  std::sort(points.begin(), points.end());
  Turns t;
  t.first = order.front();
  for (uint64_t k : points) {
    // The running one (the front) goes to the back: lowest priority from now on.
    std::rotate(order.begin(), order.begin() + 1, order.end());
    t.switches.emplace_back(k, order.front());
  }
  return t;
}

}  // namespace

uint64_t variant_count(const ExploreSpec& spec) {
  const uint64_t w = spec.to - spec.from + 1;
  switch (spec.vary) {
    case ExploreSpec::Vary::Placement:
      return w;
    case ExploreSpec::Vary::Pct:
      return spec.schedules;
    case ExploreSpec::Vary::Interleave: {
      const uint64_t n = spec.vcpus.size();
      unsigned __int128 c = choose(w, spec.bound);
      c *= n;
      for (unsigned i = 0; i < spec.bound; ++i) c *= n - 1;
      if (c > kMaxVariants)
        throw ExploreError(fmt::format("--interleave: more than 2^62 variants; a shorter window or a lower --bound"));
      return static_cast<uint64_t>(c);
    }
  }
  return 0;
}

double pct_bound_one(const ExploreSpec& spec) {
  const double k = static_cast<double>(spec.to - spec.from + 1);
  double p = 1.0 / static_cast<double>(spec.vcpus.size());
  for (unsigned i = 1; i < spec.depth; ++i) p /= k;
  return p;
}

double pct_bound_all(const ExploreSpec& spec) {
  const double p = pct_bound_one(spec);
  return 1.0 - std::pow(1.0 - p, static_cast<double>(spec.schedules));
}

uint64_t ExploreResult::failing() const {
  uint64_t n = 0;
  for (const OutcomeGroup& g : groups)
    if (!g.pass) n += g.count;
  return n;
}

void parse_window(std::string_view text, ExploreSpec& spec, std::string_view origin) {
  const size_t dots = text.find("..");
  if (dots == std::string_view::npos)
    throw ExploreError(fmt::format("{}: {} is not a window (expected vN.insn=FROM..TO, e.g. v1.insn=1000..2000)",
                                   origin, quote_display(text, 80)));
  GuestPoint from;
  try {
    from = parse_point(text.substr(0, dots), origin);
  } catch (const ScheduleError& e) {
    throw ExploreError(e.what());
  }
  if (from.kind != GuestPoint::Kind::Insn)
    throw ExploreError(fmt::format("{}: the window is a range of one vCPU's instruction counts (vN.insn=FROM..TO)", origin));
  const auto to = parse_u64_string(text.substr(dots + 2));
  if (!to)
    throw ExploreError(fmt::format("{}: position {}: expected the last instruction count after '..'", origin, dots + 3));
  if (*to < from.insn) throw ExploreError(fmt::format("{}: the window ends before it starts", origin));
  spec.vcpu = from.vcpu;
  spec.from = from.insn;
  spec.to = *to;
}

std::vector<unsigned> parse_vcpu_list(std::string_view text, std::string_view origin) {
  std::vector<unsigned> out;
  size_t at = 0;
  while (at <= text.size()) {
    size_t c = text.find(',', at);
    if (c == std::string_view::npos) c = text.size();
    const std::string_view item = text.substr(at, c - at);
    const std::string_view num = item.size() > 1 && item[0] == 'v' ? item.substr(1) : std::string_view();
    const bool digits = !num.empty() && num.size() <= 4 && num.find_first_not_of("0123456789") == std::string_view::npos;
    const std::optional<uint64_t> n =
        digits && std::stoull(std::string(num)) <= kMaxScheduleCpuIndex ? std::optional<uint64_t>(std::stoull(std::string(num)))
                                                                        : std::nullopt;
    if (!n)
      throw ExploreError(fmt::format("{}: {} is not a vCPU (vN, e.g. v0,v1)", origin, quote_display(item, 40)));
    out.push_back(static_cast<unsigned>(*n));
    at = c + 1;
  }
  return out;
}

std::vector<OutcomeGroup> group_results(const std::vector<VariantResult>& results) {
  std::map<std::pair<bool, std::string>, size_t> index;  // looked up only; groups keep first-seen order
  std::vector<OutcomeGroup> groups;
  std::vector<VariantResult> sorted = results;
  std::sort(sorted.begin(), sorted.end(), [](const VariantResult& a, const VariantResult& b) { return a.index < b.index; });
  for (const VariantResult& r : sorted) {
    auto [it, fresh] = index.emplace(std::make_pair(r.pass, r.outcome), groups.size());
    if (fresh) groups.push_back({r.pass, r.outcome, 0, r});
    ++groups[it->second].count;
  }
  return groups;
}

ExploreResult explore(const Scenario& s, const ExploreSpec& spec,
                      const std::function<void(const VariantResult&)>& on_result,
                      const std::function<void(uint64_t, uint64_t)>& progress) {
  if (spec.vcpu >= s.machine.vcpus)
    throw ExploreError(fmt::format("--window: vCPU {} does not exist (machine.vcpus is {})", spec.vcpu, s.machine.vcpus));
  if (spec.shards == 0 || spec.shard == 0 || spec.shard > spec.shards)
    throw ExploreError(fmt::format("--shard: {}/{} is not a shard (i/N with 1 <= i <= N)", spec.shard, spec.shards));
  check_outcome_fields(s.machine.vcpus, spec.outcome, "--outcome");
  if (spec.vary != ExploreSpec::Vary::Placement) {
    const char* opt = spec.vary == ExploreSpec::Vary::Pct ? "--pct" : "--interleave";
    if (spec.vcpus.size() < 2) throw ExploreError(fmt::format("{}: at least two vCPUs take turns", opt));
    for (size_t i = 0; i < spec.vcpus.size(); ++i) {
      if (spec.vcpus[i] >= s.machine.vcpus)
        throw ExploreError(fmt::format("{}: vCPU {} does not exist (machine.vcpus is {})", opt, spec.vcpus[i],
                                       s.machine.vcpus));
      for (size_t j = 0; j < i; ++j)
        if (spec.vcpus[j] == spec.vcpus[i]) throw ExploreError(fmt::format("{}: vCPU {} is named twice", opt, spec.vcpus[i]));
    }
    if (spec.vary == ExploreSpec::Vary::Interleave && (spec.bound == 0 || spec.bound > 8))
      throw ExploreError("--bound must be from 1 to 8");
    if (spec.vary == ExploreSpec::Vary::Pct && (spec.depth == 0 || spec.depth > 9))
      throw ExploreError("--depth must be from 1 to 9");
    if (spec.vary == ExploreSpec::Vary::Pct && (spec.schedules == 0 || spec.schedules > kMaxVariants))
      throw ExploreError("--pct: the number of schedules must be from 1 to 2^62");
  }
  if (spec.vary == ExploreSpec::Vary::Placement) {
    // The action is checked against the machine like any --schedule entry.
    Scenario probe = s;
    Schedule one;
    one.entries.push_back({insn_point(spec.vcpu, spec.from), spec.action, ""});
    try {
      add_schedule(probe, one, "--place");
    } catch (const ScenarioError& e) {
      throw ExploreError(e.what());
    }
  }
  // Entries added with --schedule are not in the scenario file: the replay command repeats them.
  std::string replay_prefix;
  for (size_t k = 0; k < s.schedule.entries.size(); ++k)
    if (k < s.schedule_where.size() && s.schedule_where[k].rfind("--schedule", 0) == 0)
      replay_prefix += format_point(s.schedule.entries[k].at) + ": " + format_action(s.schedule.entries[k].action) + "; ";
  ExploreResult res;
  res.variants = variant_count(spec);
  // This shard's variants, in index order.
  if (res.variants / spec.shards > 100'000'000)
    throw ExploreError(fmt::format("{} variants, more than 10^8 per process: split them with --shard i/N",
                                   res.variants));
  std::vector<uint64_t> mine;
  for (uint64_t k = spec.shard - 1; k < res.variants; k += spec.shards) mine.push_back(k);
  res.ran = mine.size();
  std::vector<VariantResult> results(mine.size());

  PlatformOptions opts;
  opts.keep_console = true;
  opts.trace_pins = false;  // a variant is not the scenario's own run (explore.h)
  const unsigned jobs = std::max(1u, std::min<unsigned>(spec.jobs, static_cast<unsigned>(std::max<size_t>(mine.size(), 1))));
  std::atomic<uint64_t> done{0};
  std::exception_ptr failure;
  std::mutex failure_lock;
  auto worker = [&](unsigned t) {
    try {
      Platform p(s, opts);
      if (!p.run_to({Platform::StopPoint::Kind::Insn, spec.vcpu, spec.from}))
        throw ExploreError(fmt::format("--window: the run ends before vCPU {} retires {} instructions", spec.vcpu,
                                       spec.from));
      const auto snap = p.save();
      // Every vCPU's instruction count at the window's start (turn orders count from it):
      // one probe run from the snapshot to that boundary.
      std::vector<uint64_t> start;
      if (spec.vary != ExploreSpec::Vary::Placement) {
        HostAction stop;
        stop.kind = ActionKind::Stop;
        p.arm(entry_at(insn_point(spec.vcpu, spec.from), stop), "explore");
        p.run();
        for (unsigned i = 0; i < p.vcpu_count(); ++i) start.push_back(p.vcpu(i).instructions());
        if (start[spec.vcpu] != spec.from)
          throw ExploreError(fmt::format("--window: the run ends before vCPU {} retires {} instructions", spec.vcpu,
                                         spec.from));
      }
      for (size_t j = t; j < mine.size(); j += jobs) {
        const uint64_t k = mine[j];
        p.restore(*snap);
        std::vector<ScheduleEntry> entries;
        if (spec.vary == ExploreSpec::Vary::Placement)
          entries.push_back(entry_at(insn_point(spec.vcpu, spec.from + k), spec.action));
        else
          entries = turn_entries(spec, spec.vary == ExploreSpec::Vary::Pct ? pct_turns(spec, k) : interleave_turns(spec, k),
                                 start);
        std::string text = replay_prefix;
        for (const ScheduleEntry& e : entries) {
          p.arm(e, "explore");
          text += format_point(e.at) + ": " + format_action(e.action) + "; ";
        }
        text.resize(text.size() - 2);
        const RunReport r = p.run();
        VariantResult& v = results[j];
        v.scenario = s.file.string();
        v.index = k;
        v.entry = std::move(text);
        v.pass = r.success();
        v.outcome = outcome_key(p, r, spec.outcome);
        v.trace_hash = r.trace_hash;
        done.fetch_add(1, std::memory_order_relaxed);
      }
    } catch (...) {
      std::lock_guard<std::mutex> g(failure_lock);
      if (!failure) failure = std::current_exception();
    }
  };
  // Workers 1.. on threads of their own, worker 0 on this one; progress comes from a
  // reporter thread woken at once when the work is done. Host time only paces the reports,
  // it never reaches a variant.
  std::mutex report_lock;
  std::condition_variable report_wake;
  bool finished = false;
  std::thread reporter;
  if (progress)
    reporter = std::thread([&] {
      std::unique_lock<std::mutex> g(report_lock);
      while (!finished) {
        progress(done.load(std::memory_order_relaxed), mine.size());
        report_wake.wait_for(g, std::chrono::milliseconds(1000), [&] { return finished; });
      }
    });
  std::vector<std::thread> threads;
  for (unsigned t = 1; t < jobs; ++t) threads.emplace_back(worker, t);
  worker(0);
  for (std::thread& t : threads) t.join();
  {
    std::lock_guard<std::mutex> g(report_lock);
    finished = true;
  }
  report_wake.notify_all();
  if (reporter.joinable()) reporter.join();
  if (failure) std::rethrow_exception(failure);
  if (progress) progress(mine.size(), mine.size());
  for (const VariantResult& v : results)
    if (on_result) on_result(v);
  res.groups = group_results(results);
  return res;
}

std::string variant_json(const VariantResult& r) {
  nlohmann::ordered_json j;
  j["scenario"] = r.scenario;
  j["variant"] = r.index;
  j["entry"] = r.entry;
  j["pass"] = r.pass;
  j["outcome"] = r.outcome;
  j["trace_hash"] = fmt::format("{:016x}", r.trace_hash);
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

VariantResult parse_variant_json(std::string_view line, std::string_view origin, uint64_t line_no) {
  auto bad = [&](std::string_view what) {
    return ExploreError(fmt::format("{}: line {}: {}", origin, line_no, what));
  };
  nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw bad("not a JSON object");
  VariantResult r;
  try {
    r.scenario = j.at("scenario").get<std::string>();
    r.index = j.at("variant").get<uint64_t>();
    r.entry = j.at("entry").get<std::string>();
    r.pass = j.at("pass").get<bool>();
    r.outcome = j.at("outcome").get<std::string>();
    const auto h = parse_u64_string("0x" + j.at("trace_hash").get<std::string>());
    if (!h) throw bad("trace_hash is not 16 hex digits");
    r.trace_hash = *h;
  } catch (const nlohmann::json::exception&) {
    throw bad("expected the keys scenario, entry, outcome, trace_hash (strings), variant (number) and pass "
              "(true/false)");
  }
  return r;
}

void print_groups(std::FILE* out, const std::string& scenario_file, const ExploreResult& r) {
  size_t n = 0;
  for (const OutcomeGroup& g : r.groups) {
    ++n;
    fmt::print(out, "group {}: {} variant{}, {}\n", n, g.count, g.count == 1 ? "" : "s", g.outcome);
    fmt::print(out, "  replay variant {}: pvsim run {} --schedule {}\n", g.first.index, shell_quote(scenario_file),
               shell_quote(g.first.entry));
    fmt::print(out, "  trace xxh3 {:016x}\n", g.first.trace_hash);
  }
  uint64_t ran = 0;
  for (const OutcomeGroup& g : r.groups) ran += g.count;
  fmt::print(out, "{} variant{} in {} group{}; {} failing\n", ran, ran == 1 ? "" : "s", r.groups.size(),
             r.groups.size() == 1 ? "" : "s", r.failing());
}

}  // namespace pvsim
