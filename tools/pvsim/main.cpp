// tools/pvsim/main.cpp — the pvsim command line: run, validate, bench.
//
// Exit codes: 0 success; 1 the run ended abnormally or an expectation failed; 2 bad
// scenario, bad image or bad usage. Output files are written to "<file>.partial" and
// renamed when complete, so a failed run never leaves a half-written trace behind.
#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "tools/platform/loader.h"
#include "tools/platform/platform.h"
#include "tools/platform/scenario.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace pvsim;

namespace {

constexpr int kExitOk = 0, kExitFail = 1, kExitUsage = 2;

const char* kTopHelp =
    "pvsim " PVSIM_VERSION " - deterministic x86-64 emulator with KVM's paravirtual interface\n"
    "\n"
    "usage: pvsim <command> [options]\n"
    "\n"
    "commands:\n"
    "  run SCENARIO       run a scenario, print a summary (exit 0 when expectations hold)\n"
    "  validate FILE...   check scenarios (and their images) without running them\n"
    "  bench [SCENARIO...] time the benchmark scenarios (default: scenarios/bench/*.json);\n"
    "                     --json FILE for scripts (tools/bench/compare.py adds QEMU/Bochs/native)\n"
    "\n"
    "options:\n"
    "  -h, --help         this text; `pvsim <command> --help` for a command's options\n"
    "  --version          print the version\n";

int usage_error(std::string_view cmd, std::string_view msg) {
  fmt::print(stderr, "pvsim{}{}: error: {}\n", cmd.empty() ? "" : " ", cmd, msg);
  fmt::print(stderr, "Try 'pvsim {}--help'.\n", cmd.empty() ? "" : std::string(cmd) + " ");
  return kExitUsage;
}

// An output file written under a temporary name and renamed into place by commit().
class AtomicOutput {
 public:
  bool open(const std::string& path) {
    m_path = path;
    m_tmp = path + ".partial";
    m_out.open(m_tmp, std::ios::binary | std::ios::trunc);
    return static_cast<bool>(m_out);
  }
  std::ostream* stream() { return m_out.is_open() ? &m_out : nullptr; }
  bool commit() {
    if (!m_out.is_open()) return true;
    m_out.close();
    if (!m_out) return false;
    std::error_code ec;
    fs::rename(m_tmp, m_path, ec);
    return !ec;
  }
  ~AtomicOutput() {
    if (m_out.is_open()) {  // not committed: drop the partial file
      m_out.close();
      std::error_code ec;
      fs::remove(m_tmp, ec);
    }
  }
  const std::string& path() const { return m_path; }

 private:
  std::string m_path, m_tmp;
  std::ofstream m_out;
};

std::string seconds(uint64_t ns) { return fmt::format("{}.{:09}", ns / 1'000'000'000u, ns % 1'000'000'000u); }

void print_summary(const RunReport& r) {
  fmt::print("stop: {} ({})\n", run_stop_name(r.stop), r.stop_detail);
  if (!r.stop_dump.empty()) fmt::print("{}{}", r.stop_dump, r.stop_dump.back() == '\n' ? "" : "\n");
  fmt::print("exit status: {}\n", r.exit_status ? std::to_string(*r.exit_status) : std::string("none"));
  std::string per;
  for (const VcpuReport& v : r.vcpus)
    per += fmt::format("{}vCPU {}: {} insns, {} cycles", per.empty() ? "" : "; ", v.index, v.instructions, v.cycles);
  fmt::print("instructions: {} ({})\n", r.instructions, per);
  fmt::print("virtual time: {} s\n", seconds(r.virtual_ns));
  // Run delay (host model): only printed when the host took a pCPU away from some vCPU.
  std::string delay;
  for (const VcpuReport& v : r.vcpus)
    if (v.run_delay_ns) delay += fmt::format("{}vCPU {}: {} s", delay.empty() ? "" : "; ", v.index, seconds(v.run_delay_ns));
  if (!delay.empty()) fmt::print("run delay: {}\n", delay);
  fmt::print("trace xxh3 {:016x} ({} events)\n", r.trace_hash, r.trace_events);
  if (!r.expectations_given) fmt::print("expectations: none given\n");
  else if (r.expectation_failures.empty()) fmt::print("expectations: all met\n");
  else
    for (const std::string& f : r.expectation_failures) fmt::print("FAILED {}\n", f);
}

int cmd_run(const std::vector<std::string>& args) {
  po::options_description opts("pvsim run SCENARIO [options]");
  opts.add_options()("help,h", "this text")
      ("trace", po::value<std::string>(), "write the canonical trace (trace-cmd report text) to FILE")
      ("trace-jsonl", po::value<std::string>(), "write the trace as JSON Lines to FILE")
      ("quiet,q", "do not stream the guest's console output")
      ("console-only", "print only the guest's console output, no summary");
  po::options_description hidden;
  hidden.add_options()("scenario", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("scenario", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  } catch (const po::error& e) {
    return usage_error("run", e.what());
  }
  if (vm.count("help")) {
    std::cout << opts;
    return kExitOk;
  }
  if (!vm.count("scenario")) return usage_error("run", "missing SCENARIO");
  const auto& files = vm["scenario"].as<std::vector<std::string>>();
  if (files.size() != 1) return usage_error("run", "exactly one SCENARIO expected");
  const bool quiet = vm.count("quiet"), console_only = vm.count("console-only");
  if (quiet && console_only) return usage_error("run", "--quiet and --console-only exclude each other");

  AtomicOutput trace, jsonl;
  try {
    const Scenario s = load_scenario(files[0]);
    if (vm.count("trace") && !trace.open(vm["trace"].as<std::string>()))
      return usage_error("run", fmt::format("cannot write trace file {}", vm["trace"].as<std::string>()));
    if (vm.count("trace-jsonl") && !jsonl.open(vm["trace-jsonl"].as<std::string>()))
      return usage_error("run", fmt::format("cannot write trace file {}", vm["trace-jsonl"].as<std::string>()));
    PlatformOptions po_;
    po_.console_live = quiet ? nullptr : &std::cout;
    po_.trace_text = trace.stream();
    po_.trace_jsonl = jsonl.stream();
    const RunReport r = run_scenario(s, po_);
    std::cout.flush();
    for (AtomicOutput* o : {&trace, &jsonl})
      if (!o->commit()) {
        fmt::print(stderr, "pvsim run: error: cannot write {}\n", o->path());
        return kExitFail;
      }
    if (!console_only) {
      if (!quiet && !r.console.empty() && r.console.back() != '\n') fmt::print("\n");
      print_summary(r);
    }
    return r.success() ? kExitOk : kExitFail;
  } catch (const ScenarioError& e) {
    std::cout.flush();
    fmt::print(stderr, "{}\n", e.what());
    return kExitUsage;
  }
}

// Parses the scenario and loads its image into a scratch RAM, which catches every
// problem `run` would report before the first instruction.
std::optional<std::string> validate_one(const std::string& file) {
  try {
    const Scenario s = load_scenario(file);
    GuestMemory mem(s.machine.ram_bytes());
    try {
      (void)load_image_file(mem, s.guest.image, s.guest.format);
    } catch (const LoadError& e) {
      return fmt::format("{}: /guest/image: {}", file, e.what());
    }
  } catch (const ScenarioError& e) {
    return std::string(e.what());
  }
  return std::nullopt;
}

int cmd_validate(const std::vector<std::string>& args) {
  po::options_description opts("pvsim validate SCENARIO... [options]");
  opts.add_options()("help,h", "this text")("quiet,q", "print only errors");
  po::options_description hidden;
  hidden.add_options()("scenario", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("scenario", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  } catch (const po::error& e) {
    return usage_error("validate", e.what());
  }
  if (vm.count("help")) {
    std::cout << opts;
    return kExitOk;
  }
  if (!vm.count("scenario")) return usage_error("validate", "missing SCENARIO");
  int rc = kExitOk;
  for (const std::string& f : vm["scenario"].as<std::vector<std::string>>()) {
    if (auto err = validate_one(f)) {
      fmt::print(stderr, "{}\n", *err);
      rc = kExitUsage;
    } else if (!vm.count("quiet")) {
      fmt::print("{}: ok\n", f);
    }
  }
  return rc;
}

int cmd_bench(const std::vector<std::string>& args) {
  po::options_description opts("pvsim bench [SCENARIO...] [options]");
  const std::string default_dir = std::string(PVSIM_SOURCE_DIR) + "/scenarios/bench";
  opts.add_options()("help,h", "this text")
      ("runs,n", po::value<unsigned>()->default_value(5), "runs per scenario (the median is reported)")
      ("filter", po::value<std::string>(), "only scenarios whose name contains NAME")
      ("dir", po::value<std::string>()->default_value(default_dir), "where the default bench scenarios live")
      ("json", po::value<std::string>(), "also write the results as JSON to FILE (for scripts)")
      ("quiet,q", "no per-run progress lines on stderr");
  po::options_description hidden;
  hidden.add_options()("scenario", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("scenario", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error("bench", e.what());
  }
  if (vm.count("help")) {
    std::cout << opts;
    return kExitOk;
  }
  const unsigned runs = vm["runs"].as<unsigned>();
  if (runs == 0 || runs > 1000) return usage_error("bench", "--runs must be from 1 to 1000");
  const bool progress = !vm.count("quiet");
  std::vector<std::string> files;
  if (vm.count("scenario")) {
    files = vm["scenario"].as<std::vector<std::string>>();
  } else {
    const fs::path dir = vm["dir"].as<std::string>();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return usage_error("bench", fmt::format("no bench directory {}", dir.string()));
    for (const auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".json") files.push_back(e.path().string());
    std::sort(files.begin(), files.end());
  }
  std::vector<Scenario> scenarios;
  for (const std::string& f : files) {
    try {
      Scenario s = load_scenario(f);
      if (vm.count("filter") && s.name.find(vm["filter"].as<std::string>()) == std::string::npos) continue;
      scenarios.push_back(std::move(s));
    } catch (const ScenarioError& e) {
      fmt::print(stderr, "{}\n", e.what());
      return kExitUsage;
    }
  }
  if (scenarios.empty()) return usage_error("bench", "no scenarios to run");
  // Opened before the first run so a bad path fails in a second, not after minutes of work;
  // AtomicOutput drops the file unless every run got through.
  AtomicOutput json_out;
  if (vm.count("json") && !json_out.open(vm["json"].as<std::string>()))
    return usage_error("bench", fmt::format("cannot write JSON file {}", vm["json"].as<std::string>()));
  // Names and paths are the only strings in the JSON; RFC 8259 section 7 escaping.
  const auto json_string = [](std::string_view v) {
    std::string out = "\"";
    for (const char c : v) {
      if (c == '"' || c == '\\') out += fmt::format("\\{}", c);
      else if (static_cast<unsigned char>(c) < 0x20) out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
      else out += c;
    }
    return out + "\"";
  };
  std::string json = fmt::format("{{\n  \"pvsim_version\": {},\n  \"runs\": {},\n  \"workloads\": [", json_string(PVSIM_VERSION), runs);

  fmt::print("{:<20} {:>16} {:>12} {:>10}  {}\n", "workload", "guest insns", "host s", "MIPS", "checksum");
  std::cout.flush();
  int rc = kExitOk;
  for (size_t i = 0; i < scenarios.size(); ++i) {
    const Scenario& s = scenarios[i];
    std::vector<double> secs;
    uint64_t insns = 0;
    bool ok = true;
    std::string stop;
    for (unsigned k = 0; k < runs; ++k) {
      try {
        Platform p(s);
        // Host time is allowed here: it measures the emulator, it never reaches the guest.
        const auto t0 = std::chrono::steady_clock::now();
        const RunReport r = p.run();
        const auto t1 = std::chrono::steady_clock::now();
        secs.push_back(std::chrono::duration<double>(t1 - t0).count());
        insns = r.instructions;
        if (!r.success() && ok) stop = fmt::format("{} ({})", run_stop_name(r.stop), r.stop_detail);
        ok = ok && r.success();
        if (progress)
          fmt::print(stderr, "pvsim bench: {} run {}/{}: {} insns, {:.3f} s{}\n", s.name, k + 1, runs, r.instructions,
                     secs.back(), r.success() ? "" : " FAILED");
      } catch (const ScenarioError& e) {
        fmt::print(stderr, "{}\n", e.what());
        return kExitUsage;
      }
    }
    std::vector<double> sorted = secs;
    std::sort(sorted.begin(), sorted.end());
    // Median; for an even count the mean of the two middle runs.
    const size_t n = sorted.size();
    const double med = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
    const double mips = med > 0 ? static_cast<double>(insns) / med / 1e6 : 0.0;
    fmt::print("{:<20} {:>16} {:>12.3f} {:>10.1f}  {}\n", s.name, insns, med, mips, ok ? "OK" : "FAIL");
    std::cout.flush();
    if (!ok) rc = kExitFail;
    std::string run_list;
    for (const double t : secs) run_list += fmt::format("{}{:.6f}", run_list.empty() ? "" : ", ", t);
    json += fmt::format(
        "{}\n    {{\"name\": {}, \"scenario\": {}, \"guest_instructions\": {}, \"host_seconds\": [{}], "
        "\"median_seconds\": {:.6f}, \"mips\": {:.3f}, \"checksum_ok\": {}{}}}",
        i ? "," : "", json_string(s.name), json_string(s.file.string()), insns, run_list, med, mips, ok,
        ok ? "" : ", \"failure\": " + json_string(stop));
  }
  json += "\n  ]\n}\n";
  if (std::ostream* o = json_out.stream()) {
    *o << json;
    if (!json_out.commit()) {
      fmt::print(stderr, "pvsim bench: error: cannot write {}\n", json_out.path());
      return kExitFail;
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs(kTopHelp, stderr);
    return kExitUsage;
  }
  const std::string cmd = args[0];
  args.erase(args.begin());
  try {
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
      std::fputs(kTopHelp, stdout);
      return kExitOk;
    }
    if (cmd == "--version") {
      fmt::print("pvsim {}\n", PVSIM_VERSION);
      return kExitOk;
    }
    if (cmd == "run") return cmd_run(args);
    if (cmd == "validate") return cmd_validate(args);
    if (cmd == "bench") return cmd_bench(args);
    if (!cmd.empty() && cmd[0] == '-') return usage_error("", fmt::format("unknown option '{}'", cmd));
    return usage_error("", fmt::format("unknown command '{}'", cmd));
  } catch (const std::exception& e) {
    // Only internal errors get here (bad scenarios are ScenarioErrors above).
    fmt::print(stderr, "pvsim: internal error: {}\n", e.what());
    return kExitFail;
  }
}
