// tools/platform/explore.cpp — see explore.h.
#include "tools/platform/explore.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>

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

void check_outcome_fields(const Scenario& s, const std::vector<std::string>& fields) {
  for (const std::string& f : fields) {
    if (f == "stop" || f == "exit" || f == "console" || f == "failures") continue;
    if (f.rfind("reg:v", 0) == 0) {
      const size_t dot = f.find('.');
      const std::string num = dot == std::string::npos ? "" : f.substr(5, dot - 5);
      const std::string reg = dot == std::string::npos ? "" : f.substr(dot + 1);
      const bool digits = !num.empty() && num.size() <= 4 &&
                          std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (digits && std::stoul(num) < s.machine.vcpus && Platform::is_register_name(reg)) continue;
    }
    throw ExploreError(fmt::format("--outcome: {} is not an outcome field (stop, exit, console, failures, "
                                   "reg:vN.NAME with a vCPU of the machine and a register as in expect.registers)",
                                   quote_display(f, 80)));
  }
}

GuestPoint insn_point(unsigned vcpu, uint64_t n) {
  GuestPoint p;
  p.kind = GuestPoint::Kind::Insn;
  p.vcpu = vcpu;
  p.insn = n;
  return p;
}

}  // namespace

uint64_t ExploreResult::failing() const {
  uint64_t n = 0;
  for (const OutcomeGroup& g : groups)
    if (!g.pass) n += g.count;
  return n;
}

void parse_window(std::string_view text, ExploreSpec& spec) {
  const size_t dots = text.find("..");
  if (dots == std::string_view::npos)
    throw ExploreError(fmt::format("--window: {} is not a window (expected vN.insn=FROM..TO, e.g. v1.insn=1000..2000)",
                                   quote_display(text, 80)));
  GuestPoint from;
  try {
    from = parse_point(text.substr(0, dots), "--window");
  } catch (const ScheduleError& e) {
    throw ExploreError(e.what());
  }
  if (from.kind != GuestPoint::Kind::Insn)
    throw ExploreError("--window: the window is a range of one vCPU's instruction counts (vN.insn=FROM..TO)");
  const auto to = parse_u64_string(text.substr(dots + 2));
  if (!to)
    throw ExploreError(fmt::format("--window: position {}: expected the last instruction count after '..'", dots + 3));
  if (*to < from.insn) throw ExploreError("--window: the window ends before it starts");
  spec.vcpu = from.vcpu;
  spec.from = from.insn;
  spec.to = *to;
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
  check_outcome_fields(s, spec.outcome);
  {
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
  res.variants = spec.to - spec.from + 1;
  // This shard's variants, in index order.
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
      for (size_t j = t; j < mine.size(); j += jobs) {
        const uint64_t k = mine[j];
        p.restore(*snap);
        ScheduleEntry e{insn_point(spec.vcpu, spec.from + k), spec.action, ""};
        p.arm(e, "explore");
        const RunReport r = p.run();
        VariantResult& v = results[j];
        v.scenario = s.file.string();
        v.index = k;
        v.entry = replay_prefix + format_point(e.at) + ": " + format_action(e.action);
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
