// tools/pvsim/main.cpp — the pvsim command line: run, validate, bench, diff, explore, bugs, trace.
//
// Exit codes: 0 success; 1 the run ended abnormally or an expectation failed (for diff:
// the traces differ); 2 bad scenario, bad image, bad output path, bad trace or bad usage; 128 + N when signal N (SIGINT,
// SIGTERM, SIGHUP) ended it. Output files go through OutputFile (tools/platform/files.h):
// checked before the run, written to a temporary and renamed when complete, never onto an
// input, and removed if a signal ends the run.
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

#include "tools/platform/explore.h"
#include "tools/platform/gdb_server.h"
#include "tools/platform/loader.h"
#include "tools/platform/platform.h"
#include "tools/platform/scenario.h"
#include "tools/platform/files.h"
#include "tools/platform/inspect.h"
#include "tools/platform/perfetto.h"
#include "tools/platform/qemu_front.h"
#include "tools/platform/schedule.h"
#include "tools/platform/timeline_html.h"
#include "tools/platform/text.h"
#include "tools/platform/trace_dat.h"
#include "tools/platform/trace_diff.h"

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
    "  bench [SCENARIO...] time the benchmark scenarios (default: the scenarios/bench/*.json\n"
    "                     installed with pvsim or in the source tree it was built from);\n"
    "                     --json FILE for scripts (tools/bench/compare.py adds QEMU/Bochs/native)\n"
    "  diff A B           the first event where two traces (text or JSON Lines) differ, with\n"
    "                     context (exit 0 identical, 1 different)\n"
    "  explore SCENARIO   run every placement of a host action in a window of guest\n"
    "                     instructions from one snapshot; group the variants by outcome,\n"
    "                     with a replay command for each group (exit 1 when any failed)\n"
    "  bugs               the historic KVM bugs a scenario can turn back on\n"
    "                     (machine.kvm.bugs), with their kernels and fixes\n"
    "  trace --list-events [--format] [GLOB]\n"
    "                     the events a trace holds, with their fields (--format: as ftrace's\n"
    "                     `format` files describe them)\n"
    "  qemu [QEMU OPTIONS] run a Multiboot kernel from a qemu-system-x86_64 command line\n"
    "                     (kvm-unit-tests' subset; also as a `pvsim-qemu` symlink; `pvsim qemu -h`)\n"
    "\n"
    "options:\n"
    "  -h, --help         this text; `pvsim <command> --help` for a command's options\n"
    "  --version          print the version\n";

// A decimal option value up to `max`. Read as text: program_options turns "-1" into
// 4294967295 for an unsigned option.
std::optional<uint64_t> decimal(const std::string& v, uint64_t max) {
  if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const uint64_t n = std::stoull(v);
  return n <= max ? std::optional<uint64_t>(n) : std::nullopt;
}

// The entries of every --schedule option, after the scenario's own (run and explore). A
// syntax error comes back as the message; one that does not fit the machine is a
// ScenarioError, as for the scenario's own entries.
std::optional<std::string> add_schedule_option(const po::variables_map& vm, Scenario& s) {
  if (!vm.count("schedule")) return std::nullopt;
  for (const std::string& text : vm["schedule"].as<std::vector<std::string>>()) {
    try {
      add_schedule(s, parse_schedule(text, "--schedule"), "--schedule");
    } catch (const ScheduleError& e) {
      return std::string(e.what());
    }
  }
  return std::nullopt;
}

int usage_error(std::string_view cmd, std::string_view msg) {
  // One line, the hint included, so scripts and CI logs get the whole story in one place.
  fmt::print(stderr, "pvsim{}{}: error: {} (see 'pvsim {}--help')\n", cmd.empty() ? "" : " ", cmd, msg,
             cmd.empty() ? "" : std::string(cmd) + " ");
  return kExitUsage;
}

// "16M", "1G", "4096", "64KiB": a byte count with an optional binary suffix (K, M, G, T;
// "iB" or "B" may follow). nullopt when malformed or above 2^53 (JSON's exact integers,
// the same bound as the scenario keys these options override).
std::optional<uint64_t> parse_size(std::string_view v) {
  uint64_t n = 0;
  size_t i = 0;
  if (v.empty()) return std::nullopt;
  for (; i < v.size() && v[i] >= '0' && v[i] <= '9'; ++i) {
    if (n > (1ull << 53) / 10) return std::nullopt;
    n = n * 10 + static_cast<uint64_t>(v[i] - '0');
  }
  if (i == 0) return std::nullopt;
  std::string_view suffix = v.substr(i);
  unsigned shift = 0;
  if (!suffix.empty()) {
    switch (suffix[0]) {
      case 'k': case 'K': shift = 10; break;
      case 'm': case 'M': shift = 20; break;
      case 'g': case 'G': shift = 30; break;
      case 't': case 'T': shift = 40; break;
      case 'b': case 'B': if (suffix.size() == 1) break; return std::nullopt;
      default: return std::nullopt;
    }
    if (shift) {
      suffix.remove_prefix(1);
      if (!(suffix.empty() || suffix == "B" || suffix == "iB")) return std::nullopt;
    }
  }
  if (shift && n > ((1ull << 53) >> shift)) return std::nullopt;
  n <<= shift;
  if (n > (1ull << 53)) return std::nullopt;
  return n;
}

std::string seconds(uint64_t ns) { return fmt::format("{}.{:09}", ns / 1'000'000'000u, ns % 1'000'000'000u); }

void print_summary(std::FILE* out, const RunReport& r) {
  fmt::print(out, "stop: {} ({})\n", run_stop_name(r.stop), r.stop_detail);
  if (!r.stop_dump.empty()) fmt::print(out, "{}{}", r.stop_dump, r.stop_dump.back() == '\n' ? "" : "\n");
  fmt::print(out, "exit status: {}\n", r.exit_status ? std::to_string(*r.exit_status) : std::string("none"));
  std::string per;
  for (const VcpuReport& v : r.vcpus)
    per += fmt::format("{}vCPU {}: {} insns, {} cycles", per.empty() ? "" : "; ", v.index, v.instructions, v.cycles);
  fmt::print(out, "instructions: {} ({})\n", r.instructions, per);
  fmt::print(out, "virtual time: {} s\n", seconds(r.virtual_ns));
  // Run delay (host model): only printed when the host took a pCPU away from some vCPU.
  std::string delay;
  for (const VcpuReport& v : r.vcpus)
    if (v.run_delay_ns) delay += fmt::format("{}vCPU {}: {} s", delay.empty() ? "" : "; ", v.index, seconds(v.run_delay_ns));
  if (!delay.empty()) fmt::print(out, "run delay: {}\n", delay);
  fmt::print(out, "trace xxh3 {:016x} ({} events)\n", r.trace_hash, r.trace_events);
  if (!r.expectations_given) fmt::print(out, "expectations: none given\n");
  else if (r.expectation_failures.empty()) fmt::print(out, "expectations: all met\n");
  else
    for (const std::string& f : r.expectation_failures) fmt::print(out, "FAILED {}\n", f);
  if (!r.golden_report.empty()) fmt::print(out, "{}", r.golden_report);
}

// Applies a --max-console / --max-trace value to the scenario's limit.
bool size_option(const po::variables_map& vm, const char* name, uint64_t& limit, std::string& err) {
  if (!vm.count(name)) return true;
  const std::string v = vm[name].as<std::string>();
  const auto n = parse_size(v);
  if (!n) {
    err = fmt::format("--{}: {} is not a size (bytes, or a number with K, M, G or T; 0 = no cap)",
                      name, quote_display(v, 40));
    return false;
  }
  limit = *n;
  return true;
}

int cmd_run(const std::vector<std::string>& args) {
  po::options_description opts("pvsim run SCENARIO [options]");
  opts.add_options()("help,h", "this text")
      ("trace", po::value<std::string>()->value_name("FILE"), "write the canonical trace (trace-cmd report text) to FILE ('-': standard output)")
      ("trace-jsonl", po::value<std::string>()->value_name("FILE"), "write the trace as JSON Lines to FILE ('-': standard output)")
      ("quiet,q", "do not stream the guest's console output")
      ("console-only", "print only the guest's console output, no summary")
      ("max-console", po::value<std::string>()->value_name("SIZE"),
       "end the run when the guest console passes SIZE bytes (K/M/G suffixes; 0 = no cap; default: the "
       "scenario's limits.max_console_bytes, else 16M)")
      ("max-trace", po::value<std::string>()->value_name("SIZE"),
       "end the run when the canonical trace passes SIZE bytes (0 = no cap; default: limits.max_trace_bytes, "
       "else 1G)")
      ("update-golden", "rewrite the scenario's expect.golden_trace file with this run's trace instead of comparing")
      ("schedule", po::value<std::vector<std::string>>()->value_name("ENTRIES"),
       "host actions at guest points, e.g. 'v0.insn=1200: preempt v1 50us; t=2ms: pause 100us' (scenarios/README.md "
       "\"schedule\"); they come after the scenario's own entries; may be repeated");
  // Option groups, in the order --help prints them.
  po::options_description sink_opts("trace outputs and filters");
  sink_opts.add_options()
      ("events", po::value<std::string>()->value_name("GLOBS"),
       "write only these events to --trace and --trace-jsonl: comma-separated globs over event names, '-' "
       "before one leaves its events out, e.g. 'kvm_async_pf*,kvm_msr' or 'kvm_*,-kvm_apic' (pvsim trace "
       "--list-events lists them; the trace hash, expectations and golden trace still see every event)")
      ("time-order", "write --trace and --trace-jsonl sorted by virtual time (ties in emission order) instead of "
       "in emission order, where timestamps go back between vCPUs; the lines are kept in memory until the run ends")
      ("trace-dat", po::value<std::string>()->value_name("FILE"),
       "write the trace as trace-cmd's trace.dat (version 6; vCPUs are its CPUs) to FILE, for `trace-cmd report FILE` "
       "and KernelShark (tools/platform/README.md \"trace.dat\"); --events applies")
      ("perfetto", po::value<std::string>()->value_name("FILE"),
       "write the run's timeline (vCPU states, exits, async PFs, pCPUs, counters) as a Perfetto trace to FILE, "
       "for ui.perfetto.dev (tools/platform/README.md \"Seeing a run\")")
      ("timeline", po::value<std::string>()->value_name("FILE.html"),
       "write the run's timeline as one self-contained HTML page (inline SVG, no external files) to FILE.html")
      ;
  po::options_description stop_opts("stopping, inspecting and debugging");
  stop_opts.add_options()
      ("stop-at", po::value<std::string>()->value_name("POINT"),
       "end the run at a guest point: vN.insn=COUNT, vN.rip=ADDRESS|SYMBOL[+OFF][#K] or t=TIME (scenarios/README.md "
       "\"Guest points\"); the scenario's trace pins are not checked")
      ("dump", po::value<std::string>()->value_name("WHAT"),
       "at the stop (or the end), print WHAT: comma-separated regs, msrs, lapic, pv (kvmclock, steal time, async PF, "
       "PV EOI decoded), all, mem=GPA+LEN or mem=GPA..END")
      ("dump-vcpu", po::value<std::string>()->value_name("N,..."),
       "the vCPUs --dump shows: indices or all (default: the --stop-at point's vCPU; all for t= points and run ends)")
      ("dump-file", po::value<std::string>()->value_name("FILE"), "write the --dump text to FILE instead of the summary's stream")
      ("junit", po::value<std::string>()->value_name("FILE"),
       "write a JUnit XML report to FILE: one test case per expectation, plus \"run\" ('-': standard output)")
      ("tap", po::value<std::string>()->value_name("FILE"), "write the same report as TAP version 13 to FILE ('-': standard output)")
      ("gdb", po::value<std::string>()->value_name("PORT|unix:PATH"),
       "wait for gdb on 127.0.0.1:PORT (0: a free port, printed) or a Unix socket, and let it drive the run: "
       "vCPUs are threads, breakpoints, watchpoints, reverse-stepi/continue (tools/platform/README.md "
       "\"Debugging with gdb\")")
      ;
  opts.add(sink_opts).add(stop_opts);
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
    return usage_error("run", escape_display(e.what(), 300));
  }
  if (vm.count("help")) {
    std::cout << opts;
    std::cout << "\nOutput files are written only when the run completes (a temporary is renamed into place);\n"
                 "a FIFO, a character device or '-' is written directly. An output may not be one of the\n"
                 "inputs. SIGINT, SIGTERM and SIGHUP remove unfinished outputs (exit 130, 143, 129).\n";
    return kExitOk;
  }
  if (!vm.count("scenario")) return usage_error("run", "missing SCENARIO");
  const auto& files = vm["scenario"].as<std::vector<std::string>>();
  if (files.size() != 1) return usage_error("run", "exactly one SCENARIO expected");
  const bool quiet = vm.count("quiet"), console_only = vm.count("console-only");
  if (quiet && console_only) return usage_error("run", "--quiet and --console-only exclude each other");
  const bool update_golden = vm.count("update-golden");

  try {
    Scenario s = load_scenario(files[0]);
    std::string err;
    if (!size_option(vm, "max-console", s.limits.max_console_bytes, err) ||
        !size_option(vm, "max-trace", s.limits.max_trace_bytes, err))
      return usage_error("run", err);
    if (auto err = add_schedule_option(vm, s)) return usage_error("run", *err);
    // --stop-at is one more schedule entry, "POINT: stop" (tools/platform/inspect.h).
    const bool stop_at = vm.count("stop-at") != 0;
    std::optional<GuestPoint> stop_point;
    std::optional<DumpSpec> dump;
    std::optional<std::vector<unsigned>> dump_vcpus;
    try {
      if (stop_at) {
        Schedule one;
        one.entries.push_back(parse_stop_at(vm["stop-at"].as<std::string>(), "--stop-at"));
        stop_point = one.entries[0].at;
        add_schedule(s, one, "--stop-at");
      }
      if (vm.count("dump")) dump = parse_dump(vm["dump"].as<std::string>(), "--dump");
      if (vm.count("dump-vcpu")) {
        if (!dump) return usage_error("run", "--dump-vcpu needs --dump");
        dump_vcpus = parse_vcpu_selection(vm["dump-vcpu"].as<std::string>(), "--dump-vcpu", s.machine.vcpus);
      }
      if (vm.count("dump-file") && !dump) return usage_error("run", "--dump-file needs --dump");
    } catch (const InspectError& e) {
      return usage_error("run", e.what());
    }
    const bool extra_schedule = vm.count("schedule") != 0 || stop_at;
    if (update_golden && extra_schedule)
      return usage_error("run", "--update-golden excludes --schedule and --stop-at (the golden trace is the "
                                "scenario's own run)");
    if (update_golden && !s.expect.golden_trace)
      return usage_error("run", fmt::format("--update-golden: {} has no expect.golden_trace",
                                            escape_display(files[0], 300)));

    // Every output is checked and created before the first instruction runs.
    std::vector<OutputFile::Input> inputs{{s.file, "the scenario file"}, {s.guest.image, "the guest image"}};
    if (s.expect.golden_trace && !update_golden) inputs.push_back({*s.expect.golden_trace, "the golden trace"});
    OutputFile trace, jsonl, golden;
    OutputFile junit, tap, dumpf;  // --junit, --tap, --dump-file
    OutputFile perfetto_out, timeline_out;  // --perfetto, --timeline
    OutputFile dat_out;                     // --trace-dat
    // Every output opened so far (OutputFile::open refuses a target one of them writes).
    auto all_outputs = [&]() {
      std::vector<const OutputFile*> v;
      for (const OutputFile* o : {&trace, &jsonl, &golden, &dat_out, &perfetto_out, &timeline_out, &junit, &tap, &dumpf})
        if (o->is_open()) v.push_back(o);
      return v;
    };
    try {
      if (vm.count("trace")) trace.open(vm["trace"].as<std::string>(), "--trace", inputs, {});
      if (vm.count("trace-jsonl")) jsonl.open(vm["trace-jsonl"].as<std::string>(), "--trace-jsonl", inputs, {&trace});
      if (update_golden)
        golden.open(s.expect.golden_trace->string(), "--update-golden", inputs, {&trace, &jsonl});
      if (vm.count("trace-dat")) {
        // trace-cmd seeks in and maps the file: a pipe would be of no use to it.
        if (vm["trace-dat"].as<std::string>() == "-")
          return usage_error("run", "--trace-dat: give a file name (trace-cmd cannot read a trace.dat from a pipe)");
        dat_out.open(vm["trace-dat"].as<std::string>(), "--trace-dat", inputs, {&trace, &jsonl, &golden});
      }
      if (vm.count("perfetto"))
        perfetto_out.open(vm["perfetto"].as<std::string>(), "--perfetto", inputs, all_outputs());
      if (vm.count("timeline"))
        timeline_out.open(vm["timeline"].as<std::string>(), "--timeline", inputs, all_outputs());
      if (vm.count("junit")) junit.open(vm["junit"].as<std::string>(), "--junit", inputs, all_outputs());
      if (vm.count("tap")) tap.open(vm["tap"].as<std::string>(), "--tap", inputs, all_outputs());
      if (vm.count("dump-file"))
        dumpf.open(vm["dump-file"].as<std::string>(), "--dump-file", inputs, all_outputs());
    } catch (const FileError& e) {
      return usage_error("run", e.what());
    }
    // With a trace on standard output, the console and the summary go to standard error, so
    // that `pvsim run s.json --trace - | grep kvm_msr` sees only trace lines.
    const bool stdout_taken = trace.is_stdout() || jsonl.is_stdout() || junit.is_stdout() || tap.is_stdout() ||
                              dumpf.is_stdout() || perfetto_out.is_stdout() || timeline_out.is_stdout();
    std::ostream& human = stdout_taken ? std::cerr : std::cout;
    std::FILE* human_c = stdout_taken ? stderr : stdout;

    PlatformOptions po_;
    po_.console_live = quiet ? nullptr : &human;
    po_.trace_text = trace.stream();
    po_.trace_jsonl = jsonl.stream();
    po_.keep_console = s.expect.needs_console();
    po_.golden_update = golden.stream();
    // A --schedule run is not the scenario's own run: its trace pins do not apply.
    po_.trace_pins = !extra_schedule;
    if (vm.count("events")) {
      if (auto bad = parse_trace_event_filter(vm["events"].as<std::string>(), po_.trace_events))
        return usage_error("run", fmt::format("--events: {} matches no event (pvsim trace --list-events lists them)",
                                              quote_display(*bad, 80)));
    }
    po_.trace_time_order = vm.count("time-order") != 0;
    // Filtered like --trace; it describes every event of the table, and writes at the end.
    std::optional<TraceDatWriter> trace_dat;
    if (dat_out.is_open()) {
      trace_dat.emplace(*dat_out.stream(), s.machine.vcpus, trace_event_table());
      po_.trace_filtered_sinks.push_back(&*trace_dat);
    }
    // Both exporters draw from one model, built from every event (unfiltered: the states
    // come from the whole stream) and written once the run has ended.
    std::optional<TimelineBuilder> timeline;
    if (perfetto_out.is_open() || timeline_out.is_open()) {
      timeline.emplace(timeline_info_for(s));
      po_.trace_sinks.push_back(&*timeline);
    }
    std::optional<GdbEndpoint> gdb_endpoint;
    if (vm.count("gdb")) {
      gdb_endpoint = parse_gdb_endpoint(vm["gdb"].as<std::string>());
      if (!gdb_endpoint)
        return usage_error("run", fmt::format("--gdb: {} is neither a port (0-65535) nor unix:PATH",
                                              quote_display(vm["gdb"].as<std::string>(), 60)));
    }
    // The machine is built here (not by run_scenario) so that a dump after the run and a
    // debugger during it can see it.
    Platform machine(s, po_);
    std::optional<RunReport> ran;  // set when something other than a plain run() drove the machine
    if (gdb_endpoint) {
      try {
        GdbListener listener(*gdb_endpoint);
        fmt::print(stderr, "pvsim: waiting for gdb on {}\n", listener.where());
        std::fflush(stderr);
        GdbSession session(machine, listener.accept_one());
        if (session.serve() == GdbSession::End::Killed) {
          fmt::print(stderr, "pvsim: gdb ended the run after {} instructions\n", machine.instructions());
          return kExitOk;
        }
      } catch (const std::runtime_error& e) {
        return usage_error("run", e.what());
      }
      // Detached (or gone): the run goes on to its end as it would have without gdb.
      ran = machine.run();
    }
    RunReport r = ran ? std::move(*ran) : machine.run();
    // A run cut short by --stop-at is not the scenario's run: its end-of-run expectations
    // (stop, exit status, console, registers) do not apply, and reaching the point is success.
    const bool point_reached = r.stop == RunStop::Point;
    if (stop_at) {
      r.expectation_failures.clear();
      r.golden_report.clear();
      r.expectations_given = false;
    }
    const bool ok = stop_at ? point_reached : r.success();
    std::string dump_text;
    if (dump) {
      std::vector<unsigned> sel;
      if (dump_vcpus) sel = *dump_vcpus;
      else if (stop_point && stop_point->kind != GuestPoint::Kind::Time) sel = {stop_point->vcpu};
      else for (unsigned i = 0; i < machine.vcpu_count(); ++i) sel.push_back(i);
      dump_text = dump_machine(machine, *dump, sel);
    }
    std::vector<CaseResult> cases;
    if (junit.is_open() || tap.is_open()) {
      cases = case_results(s, r, !extra_schedule);
      if (stop_at) {
        for (CaseResult& c : cases) {
          c.skipped = true;
          c.message = "not checked: --stop-at ends the run before the scenario's end";
        }
        cases.back().skipped = false;
        cases.back().ok = point_reached;
        cases.back().message = point_reached ? "" : fmt::format("the run ended by \"{}\" before --stop-at {}",
                                                                run_stop_name(r.stop), format_point(*stop_point));
      }
      if (junit.is_open()) *junit.stream() << junit_report(s, r, cases);
      if (tap.is_open()) *tap.stream() << tap_report(s, r, cases);
    }
    if (dumpf.is_open()) *dumpf.stream() << dump_text;
    human.flush();
    try {
      for (OutputFile* o : {&trace, &jsonl, &golden}) o->commit();
      if (trace_dat) {
        trace_dat->on_finish();  // once: the Tracer's own finish() then finds it done
        dat_out.commit();
      }
      if (timeline) {
        timeline->finish();
        if (perfetto_out.is_open()) write_perfetto(timeline->model(), *perfetto_out.stream());
        if (timeline_out.is_open()) write_timeline_html(timeline->model(), *timeline_out.stream());
        perfetto_out.commit();
        timeline_out.commit();
      }
      for (OutputFile* o : {&junit, &tap, &dumpf}) o->commit();
    } catch (const FileError& e) {
      fmt::print(stderr, "pvsim run: error: {}\n", e.what());
      return kExitFail;
    }
    if (!console_only) {
      if (!quiet && !r.console_ends_with_newline) fmt::print(human_c, "\n");
      print_summary(human_c, r);
      if (stop_at)
        fmt::print(human_c, "{}\n", point_reached
                                        ? fmt::format("stopped at --stop-at {} (the scenario's expectations were not checked)",
                                                      format_point(*stop_point))
                                        : fmt::format("the run ended before --stop-at {} was reached", format_point(*stop_point)));
      else if (extra_schedule && (s.expect.trace_hash || s.expect.golden_trace))
        fmt::print(human_c, "(expect.trace_hash and expect.golden_trace were not checked: --schedule changes the run)\n");
      if (update_golden)
        fmt::print(human_c, "golden trace written: {} ({} lines)\n", escape_display(golden.path(), 300), r.trace_events);
    }
    if (dump && !dumpf.is_open()) {
      if (!console_only) fmt::print(human_c, "\n");
      std::fputs(dump_text.c_str(), human_c);
    }
    std::fflush(human_c);
    return ok ? kExitOk : kExitFail;
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
    std::optional<GuestMemory> mem;
    try {
      mem.emplace(s.machine.ram_bytes());
    } catch (const GuestMemory::ReserveError& e) {
      return ram_reserve_message(s, e);
    }
    LoadedImage image;
    try {
      image = load_guest(*mem, s);
    } catch (const ScenarioError& e) {
      return e.what();
    }
    // RIP points given as symbols resolve against the image, as `run` resolves them.
    for (size_t k = 0; k < s.schedule.entries.size(); ++k) {
      const GuestPoint& p = s.schedule.entries[k].at;
      if (p.kind != GuestPoint::Kind::Rip || p.symbol.empty()) continue;
      if (!image.find(p.symbol))
        return fmt::format("{}: {}", s.schedule_where[k], image.missing_symbol(p.symbol));
    }
    if (s.expect.golden_trace)
      if (auto kind = non_regular_kind(*s.expect.golden_trace))
        return fmt::format("{}: /expect/golden_trace: {} is {} (pvsim run --update-golden writes it)",
                           escape_display(file, 400), escape_display(s.expect.golden_trace->string(), 300),
                           *kind);
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
      fmt::print("{}: ok\n", escape_display(f, 400));
    }
  }
  return rc;
}

// Where `pvsim bench` looks for its scenarios when neither files nor --dir are given, in
// this order: an installed tree (<prefix>/bin/pvsim → <prefix>/share/pvsim/scenarios/bench,
// what `cmake --install` lays out); the source tree the binary sits in (a build directory
// inside the checkout: build/tools/pvsim → scenarios/bench two or more levels up); and
// scenarios/bench under the current directory. Nothing is baked in at build time, so a
// moved checkout or an installed binary still finds its own scenarios.
std::vector<fs::path> bench_dir_candidates() {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path bin = exe.parent_path();
    out.push_back(bin.parent_path() / "share" / "pvsim" / "scenarios" / "bench");
    for (fs::path d = bin; !d.empty() && d != d.root_path(); d = d.parent_path())
      if (fs::is_regular_file(d / "scenarios" / "scenario.schema.json", ec)) {
        out.push_back(d / "scenarios" / "bench");
        break;
      }
  }
  out.push_back(fs::current_path(ec) / "scenarios" / "bench");
  return out;
}

std::optional<fs::path> default_bench_dir() {
  std::error_code ec;
  for (const fs::path& d : bench_dir_candidates())
    if (fs::is_directory(d, ec)) return d;
  return std::nullopt;
}

int cmd_bench(const std::vector<std::string>& args) {
  po::options_description opts("pvsim bench [SCENARIO...] [options]");
  opts.add_options()("help,h", "this text")
      ("runs,n", po::value<unsigned>()->default_value(5)->value_name("N"), "runs per scenario (the median is reported)")
      ("filter", po::value<std::string>()->value_name("NAME"), "only scenarios whose name contains NAME")
      ("dir", po::value<std::string>()->value_name("DIR"),
       "where the default bench scenarios live (default: <prefix>/share/pvsim/scenarios/bench next to an "
       "installed pvsim, else scenarios/bench of the source tree the binary was built in, else "
       "./scenarios/bench)")
      ("json", po::value<std::string>()->value_name("FILE"), "also write the results as JSON to FILE (for scripts)")
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
    std::error_code ec;
    fs::path dir;
    if (vm.count("dir")) {
      dir = vm["dir"].as<std::string>();
      if (!fs::is_directory(dir, ec))
        return usage_error("bench", fmt::format("--dir: {} is not a directory", escape_display(dir.string(), 300)));
    } else if (auto d = default_bench_dir()) {
      dir = *d;
    } else {
      std::string tried;
      for (const fs::path& c : bench_dir_candidates()) tried += (tried.empty() ? "" : ", ") + escape_display(c.string(), 200);
      return usage_error("bench", fmt::format("no bench scenarios found (tried {}); name files or use --dir", tried));
    }
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
  // OutputFile drops the file unless every run got through.
  OutputFile json_out;
  if (vm.count("json")) {
    std::vector<OutputFile::Input> inputs;
    for (const Scenario& sc : scenarios) {
      inputs.push_back({sc.file, "a scenario file"});
      inputs.push_back({sc.guest.image, "a guest image"});
    }
    try {
      json_out.open(vm["json"].as<std::string>(), "--json", inputs, {});
    } catch (const FileError& e) {
      return usage_error("bench", e.what());
    }
  }
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
    try {
      json_out.commit();
    } catch (const FileError& e) {
      fmt::print(stderr, "pvsim bench: error: {}\n", e.what());
      return kExitFail;
    }
  }
  return rc;
}

int cmd_diff(const std::vector<std::string>& args) {
  po::options_description opts("pvsim diff A B [options]");
  opts.add_options()("help,h", "this text")
      ("context,C", po::value<std::string>()->default_value("3")->value_name("N"),
       "events shown before the first difference (common to both), and after it on each side")
      ("ignore-time", "compare without the timestamp column (runs that do the same things at other times)")
      ("vcpu", po::value<std::string>()->value_name("N"),
       "compare only vCPU N's events (one vCPU's story across two interleavings)");
  po::options_description hidden;
  hidden.add_options()("trace", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("trace", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error("diff", escape_display(e.what(), 300));
  }
  if (vm.count("help")) {
    std::cout << opts;
    std::cout << "\nA and B are traces written by `pvsim run --trace FILE` (text) or `--trace-jsonl FILE`\n"
                 "(JSON Lines), in either combination; '-' reads one of them from standard input. They are\n"
                 "read in step, event by event, in constant memory, until the first difference:\n"
                 "\n"
                 "  traces differ at event 57: A line 57, B line 57 (- A = a.txt, + B = b.jsonl)\n"
                 "           55  <event 55, the same in both>\n"
                 "           56  <event 56, the same in both>\n"
                 "  -        57  <A's event 57>\n"
                 "  -        58  <A's event 58>\n"
                 "  +        57  <B's event 57>\n"
                 "  +        58  (end of trace)\n"
                 "\n"
                 "Events are numbered from 1 (with --vcpu, among that vCPU's events) and the line numbers\n"
                 "are each file's own. A JSON Lines event is compared as the text line pvsim writes for it.\n"
                 "Exit status: 0 identical (\"traces are identical: N events\"), 1 different, 2 bad usage\n"
                 "or a file that cannot be read or is not a pvsim trace (one line: file, line, problem).\n";
    return kExitOk;
  }
  const std::vector<std::string> files = vm.count("trace") ? vm["trace"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (files.size() != 2) return usage_error("diff", fmt::format("two traces expected (A and B), got {}", files.size()));
  if (files[0] == "-" && files[1] == "-") return usage_error("diff", "only one of A and B can be standard input ('-')");
  // Read as text: program_options turns "-1" into 4294967295 for an unsigned option.
  const auto number = [](const std::string& v, uint64_t max) -> std::optional<uint64_t> {
    if (v.empty() || v.size() > 10 || v.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    const uint64_t n = std::stoull(v);
    return n <= max ? std::optional<uint64_t>(n) : std::nullopt;
  };
  TraceDiffOptions o;
  const std::string context = vm["context"].as<std::string>();
  const auto c = number(context, 10000);
  if (!c) return usage_error("diff", fmt::format("--context: {} is not a number from 0 to 10000", quote_display(context, 40)));
  o.context = static_cast<unsigned>(*c);
  o.ignore_time = vm.count("ignore-time");
  if (vm.count("vcpu")) {
    const std::string v = vm["vcpu"].as<std::string>();
    const auto n = number(v, UINT32_MAX);
    if (!n) return usage_error("diff", fmt::format("--vcpu: {} is not a vCPU index", quote_display(v, 40)));
    o.vcpu = static_cast<unsigned>(*n);
  }
  try {
    std::unique_ptr<std::istream> fa, fb;
    std::ios::sync_with_stdio(false);  // standard input is read in blocks, not through stdio
    if (files[0] != "-") fa = open_trace_file(files[0]);
    if (files[1] != "-") fb = open_trace_file(files[1]);
    TraceReader a(fa ? *fa : std::cin, trace_display_name(files[0]));
    TraceReader b(fb ? *fb : std::cin, trace_display_name(files[1]));
    const TraceDiffResult r = diff_traces(a, b, o);
    std::fwrite(r.report.data(), 1, r.report.size(), stdout);
    std::fflush(stdout);
    return r.identical ? kExitOk : kExitFail;
  } catch (const TraceDiffError& e) {
    std::fflush(stdout);
    fmt::print(stderr, "{}\n", e.what());
    return kExitUsage;
  }
}


// `pvsim explore`: tools/platform/explore.h; the README's "Exploring races" shows it with
// GNU parallel and a Slurm job array.
int cmd_explore(const std::vector<std::string>& args) {
  po::options_description opts("pvsim explore SCENARIO --window vN.insn=FROM..TO --place ACTION [options]\n"
                               "pvsim explore --merge FILE... ");
  opts.add_options()("help,h", "this text")
      ("window", po::value<std::string>()->value_name("vN.insn=FROM..TO"),
       "the instruction boundaries of vCPU N where the action goes, both ends included")
      ("place", po::value<std::string>()->value_name("ACTION"),
       "vary where one host action happens: at each boundary of the window ('preempt v1 50us', 'steal v0', ...)")
      ("interleave", po::value<std::string>()->value_name("vA,vB,..."),
       "vary how these vCPUs take turns: every order with at most --bound switches inside the window")
      ("bound", po::value<std::string>()->value_name("C")->default_value("1"), "switches for --interleave (1..8)")
      ("pct", po::value<std::string>()->value_name("N"),
       "vary turns as PCT does: N random-priority schedules with --depth D (--pct-vcpus picks the vCPUs)")
      ("pct-vcpus", po::value<std::string>()->value_name("vA,vB,..."), "the vCPUs of --pct (default: all)")
      ("depth", po::value<std::string>()->value_name("D")->default_value("2"), "PCT depth: D - 1 priority change points")
      ("seed", po::value<std::string>()->value_name("S"), "PCT's seed (default: the scenario's seed)")
      ("outcome", po::value<std::string>()->value_name("FIELDS")->default_value("stop,exit"),
       "what tells outcomes apart besides pass/fail: stop, exit, console, failures, reg:vN.NAME (comma-separated)")
      ("schedule", po::value<std::vector<std::string>>()->value_name("ENTRIES"),
       "more schedule entries for every variant, as for pvsim run (e.g. a 'stop' just after the window)")
      ("jsonl", po::value<std::string>()->value_name("FILE"), "write one JSON line per variant to FILE ('-': stdout)")
      ("shard", po::value<std::string>()->value_name("i/N"), "run only the variants k with k mod N = i-1")
      ("jobs,j", po::value<std::string>()->value_name("J")->default_value("1"), "threads (each with its own machine)")
      ("merge", "read the --jsonl files of every shard (as operands) and print the combined groups")
      ("quiet,q", "no progress on stderr");
  po::options_description hidden;
  hidden.add_options()("operand", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("operand", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error("explore", escape_display(e.what(), 300));
  }
  if (vm.count("help")) {
    std::cout << opts;
    std::cout << "\nEach variant is the scenario plus one schedule entry 'vN.insn=K: ACTION', run from a\n"
                 "snapshot taken before the window; `pvsim run SCENARIO --schedule 'vN.insn=K: ACTION'`\n"
                 "replays it with the same trace. A variant passes when the scenario's expectations hold\n"
                 "(expect.trace_hash and expect.golden_trace excepted: they pin the scenario's own run).\n"
                 "Without --window and --place/--interleave/--pct, the scenario's \"explore\" section says what\n"
                 "varies (scenarios/README.md \"explore\"); its expect counts then decide the exit status.\n"
                 "Exit status: 0 no failing variant (or explore.expect holds), 1 some failed (or it does not),\n"
                 "2 bad input.\n";
    return kExitOk;
  }
  const std::vector<std::string> operands =
      vm.count("operand") ? vm["operand"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (vm.count("merge")) {
    if (operands.empty()) return usage_error("explore", "--merge needs the shards' JSON Lines files");
    std::vector<VariantResult> all_results;
    std::map<uint64_t, std::string> seen;  // variant -> file, to catch a shard given twice
    try {
      for (const std::string& f : operands) {
        std::string text;
        try {
          text = read_regular_file(f, 1ull << 32, "JSON Lines file");
        } catch (const FileError& e) {
          return usage_error("explore", e.what());
        }
        uint64_t line_no = 0;
        size_t at = 0;
        while (at < text.size()) {
          size_t nl = text.find('\n', at);
          if (nl == std::string::npos) nl = text.size();
          ++line_no;
          const std::string_view line(text.data() + at, nl - at);
          at = nl + 1;
          if (line.empty()) continue;
          VariantResult r = parse_variant_json(line, escape_display(f, 300), line_no);
          if (!all_results.empty() && r.scenario != all_results.front().scenario)
            return usage_error("explore", fmt::format("{}: line {}: scenario {} differs from {} of the first line",
                                                      escape_display(f, 300), line_no, quote_display(r.scenario, 200),
                                                      quote_display(all_results.front().scenario, 200)));
          if (auto [it, fresh] = seen.emplace(r.index, f); !fresh)
            return usage_error("explore", fmt::format("{}: line {}: variant {} is also in {} (a shard given twice?)",
                                                      escape_display(f, 300), line_no, r.index,
                                                      escape_display(it->second, 300)));
          all_results.push_back(std::move(r));
        }
      }
    } catch (const ExploreError& e) {
      return usage_error("explore", e.what());
    }
    // The variants must be 0..N-1 with none missing: a lost shard would change the counts.
    uint64_t expect_next = 0;
    for (const auto& [k, f] : seen) {
      if (k != expect_next)
        return usage_error("explore", fmt::format("variant {} is in none of the files (a shard missing?)", expect_next));
      ++expect_next;
    }
    ExploreResult r;
    r.variants = r.ran = all_results.size();
    r.groups = group_results(all_results);
    print_groups(stdout, all_results.empty() ? std::string("SCENARIO") : all_results.front().scenario, r);
    return r.failing() ? kExitFail : kExitOk;
  }
  if (operands.size() != 1) return usage_error("explore", "exactly one SCENARIO expected");
  const int modes = static_cast<int>(vm.count("place") + vm.count("interleave") + vm.count("pct"));
  // No window and nothing to vary: the scenario's own `explore` section says both.
  const bool from_section = !vm.count("window") && modes == 0;
  if (!from_section) {
    if (!vm.count("window")) return usage_error("explore", "missing --window vN.insn=FROM..TO");
    if (modes != 1) return usage_error("explore", "give exactly one of --place ACTION, --interleave vA,vB or --pct N");
  }
  ExploreSpec spec;
  try {
    if (!from_section) parse_window(vm["window"].as<std::string>(), spec);
    if (vm.count("place")) spec.action = parse_action(vm["place"].as<std::string>(), "--place");
    if (vm.count("interleave")) {
      spec.vary = ExploreSpec::Vary::Interleave;
      spec.vcpus = parse_vcpu_list(vm["interleave"].as<std::string>(), "--interleave");
      const auto b = decimal(vm["bound"].as<std::string>(), 8);
      if (!b || *b == 0) throw ExploreError("--bound must be from 1 to 8");
      spec.bound = static_cast<unsigned>(*b);
    }
    if (vm.count("pct")) {
      spec.vary = ExploreSpec::Vary::Pct;
      const auto n = decimal(vm["pct"].as<std::string>(), 1'000'000'000);
      if (!n || *n == 0) throw ExploreError("--pct must be a number of schedules from 1 to 10^9");
      spec.schedules = *n;
      const auto d = decimal(vm["depth"].as<std::string>(), 9);
      if (!d || *d == 0) throw ExploreError("--depth must be from 1 to 9");
      spec.depth = static_cast<unsigned>(*d);
      if (vm.count("pct-vcpus")) spec.vcpus = parse_vcpu_list(vm["pct-vcpus"].as<std::string>(), "--pct-vcpus");
      if (vm.count("seed")) {
        const auto sd = parse_u64_string(vm["seed"].as<std::string>());
        if (!sd) throw ExploreError("--seed must be a 64-bit number (decimal or 0x hex)");
        spec.seed = *sd;
      }
    }
  } catch (const ExploreError& e) {
    return usage_error("explore", e.what());
  } catch (const ScheduleError& e) {
    return usage_error("explore", e.what());
  }
  spec.outcome.clear();
  if (!from_section || !vm["outcome"].defaulted()) {
    const std::string f = vm["outcome"].as<std::string>();
    size_t at = 0;
    while (at <= f.size()) {
      size_t c = f.find(',', at);
      if (c == std::string::npos) c = f.size();
      if (c > at) spec.outcome.push_back(f.substr(at, c - at));
      at = c + 1;
    }
  }
  if (vm.count("shard")) {
    const std::string sh = vm["shard"].as<std::string>();
    const size_t slash = sh.find('/');
    const auto i = slash == std::string::npos ? std::nullopt : decimal(sh.substr(0, slash), 1u << 20);
    const auto n = slash == std::string::npos ? std::nullopt : decimal(sh.substr(slash + 1), 1u << 20);
    if (!i || !n || *i == 0 || *n == 0 || *i > *n)
      return usage_error("explore", fmt::format("--shard: {} is not i/N with 1 <= i <= N", quote_display(sh, 40)));
    spec.shard = *i;
    spec.shards = *n;
  }
  const auto jobs = decimal(vm["jobs"].as<std::string>(), 256);
  if (!jobs || *jobs == 0) return usage_error("explore", "--jobs must be from 1 to 256");
  spec.jobs = static_cast<unsigned>(*jobs);
  const bool quiet = vm.count("quiet");
  try {
    Scenario s = load_scenario(operands[0]);
    if (auto err = add_schedule_option(vm, s)) return usage_error("explore", *err);
    const ExploreExpect* expect = nullptr;
    if (from_section) {
      if (!s.explore)
        return usage_error("explore", fmt::format("{} has no \"explore\" section: give --window and one of --place, "
                                                  "--interleave or --pct", escape_display(operands[0], 300)));
      std::vector<std::string> outcome = std::move(spec.outcome);
      const uint64_t shard = spec.shard, shards = spec.shards;
      const unsigned jobs_n = spec.jobs;
      spec = s.explore->spec;
      if (!outcome.empty()) spec.outcome = std::move(outcome);
      spec.shard = shard;
      spec.shards = shards;
      spec.jobs = jobs_n;
      if (vm.count("seed")) return usage_error("explore", "--seed goes with --pct; the section's PCT uses the scenario's seed");
      expect = &s.explore->expect;
    }
    if (spec.vary == ExploreSpec::Vary::Pct && !from_section) {
      if (!vm.count("seed")) spec.seed = s.seed;
      if (spec.vcpus.empty())
        for (unsigned v = 0; v < s.machine.vcpus; ++v) spec.vcpus.push_back(v);
    }
    std::vector<OutputFile::Input> inputs{{s.file, "the scenario file"}, {s.guest.image, "the guest image"}};
    OutputFile jsonl;
    try {
      if (vm.count("jsonl")) jsonl.open(vm["jsonl"].as<std::string>(), "--jsonl", inputs, {});
    } catch (const FileError& e) {
      return usage_error("explore", e.what());
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto last = t0;
    const auto progress = [&](uint64_t done, uint64_t total) {
      if (quiet) return;
      // Host time paces the progress lines only; no variant sees it.
      const auto now = std::chrono::steady_clock::now();
      if (done != total && now - last < std::chrono::seconds(1)) return;
      last = now;
      const double secs = std::chrono::duration<double>(now - t0).count();
      fmt::print(stderr, "pvsim explore: {}/{} variants ({:.0f}%), {:.1f} s, {:.0f} variants/s\n", done, total,
                 total ? 100.0 * static_cast<double>(done) / static_cast<double>(total) : 100.0, secs,
                 secs > 0 ? static_cast<double>(done) / secs : 0.0);
    };
    std::ostream* out = jsonl.stream();
    const ExploreResult r = explore(
        s, spec, [&](const VariantResult& v) { if (out) *out << variant_json(v) << '\n'; }, progress);
    try {
      jsonl.commit();
    } catch (const FileError& e) {
      fmt::print(stderr, "pvsim explore: error: {}\n", e.what());
      return kExitFail;
    }
    if (!jsonl.is_stdout()) {
      std::string what;
      std::string vl;
      for (unsigned v : spec.vcpus) vl += fmt::format("{}v{}", vl.empty() ? "" : ",", v);
      if (spec.vary == ExploreSpec::Vary::Placement) what = format_action(spec.action);
      else if (spec.vary == ExploreSpec::Vary::Interleave) what = fmt::format("turns of {}, at most {} switch{}", vl, spec.bound, spec.bound == 1 ? "" : "es");
      else what = fmt::format("{} PCT schedules of {}, depth {}, seed {:#x}", spec.schedules, vl, spec.depth, spec.seed);
      fmt::print("explore {}: {} of {} variants (window v{}.insn={}..{}, shard {}/{}): {}\n",
                 escape_display(operands[0], 300), r.ran, r.variants, spec.vcpu, spec.from, spec.to, spec.shard,
                 spec.shards, what);
      if (spec.vary == ExploreSpec::Vary::Pct)
        fmt::print("PCT bound: each schedule finds a given depth-{} race with probability >= 1/(n k^(d-1)) = {:.3g} "
                   "(n = {} vCPUs, k = {} steps); all {}: >= {:.3g}\n",
                   spec.depth, pct_bound_one(spec), spec.vcpus.size(), spec.to - spec.from + 1, spec.schedules,
                   pct_bound_all(spec));
      print_groups(stdout, operands[0], r);
    }
    if (expect && (expect->variants || expect->failing || expect->groups)) {
      // The section's counts are the scenario's claim about the whole exploration; one shard
      // sees only part of it (its merge prints the whole).
      if (spec.shards > 1) {
        fmt::print(stderr, "pvsim explore: shard {}/{}: the scenario's explore.expect is checked on whole runs only\n",
                   spec.shard, spec.shards);
        return r.failing() ? kExitFail : kExitOk;
      }
      std::string bad;
      const auto check = [&](const char* what, const std::optional<uint64_t>& want, uint64_t got) {
        if (want && *want != got) bad += fmt::format("{}{} {} (expected {})", bad.empty() ? "" : ", ", what, got, *want);
      };
      check("variants", expect->variants, r.variants);
      check("failing", expect->failing, r.failing());
      check("groups", expect->groups, r.groups.size());
      if (!bad.empty()) {
        fmt::print(stderr, "pvsim explore: {}: explore.expect does not hold: {}\n", escape_display(operands[0], 300), bad);
        return kExitFail;
      }
      if (!jsonl.is_stdout())
        fmt::print("explore.expect holds: {} variants, {} failing, {} group{}\n", r.variants, r.failing(),
                   r.groups.size(), r.groups.size() == 1 ? "" : "s");
      return kExitOk;
    }
    return r.failing() ? kExitFail : kExitOk;
  } catch (const ExploreError& e) {
    return usage_error("explore", e.what());
  } catch (const ScenarioError& e) {
    fmt::print(stderr, "{}\n", e.what());
    return kExitUsage;
  }
}

// `pvsim bugs`: pvmsr/kvm_bugs.h's table, for choosing machine.kvm.bugs (pvmsr/README.md §2.5).
int cmd_bugs(const std::vector<std::string>& args) {
  po::options_description opts("pvsim bugs [--profile orig|modern]");
  opts.add_options()("help,h", "this text")
      ("profile", po::value<std::string>()->value_name("P"), "only the bugs a scenario of this machine.kvm.abi may set");
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(opts).run(), vm);
    po::notify(vm);
  } catch (const po::error& e) {
    return usage_error("bugs", escape_display(e.what(), 300));
  }
  if (vm.count("help")) {
    std::cout << opts
              << "\nEach line: the name for machine.kvm.bugs, the profile(s) whose code has it, its default under\n"
                 "\"orig\" (under \"modern\" every fix is in), the kernels that had it, the fix, and what goes wrong.\n";
    return kExitOk;
  }
  int only = -1;  // -1 all, 0 orig, 1 modern
  if (vm.count("profile")) {
    const std::string p = vm["profile"].as<std::string>();
    if (p == "orig") only = 0;
    else if (p == "modern") only = 1;
    else return usage_error("bugs", fmt::format("--profile: {} is not orig or modern", quote_display(p, 40)));
  }
  for (const KvmBugInfo& b : kvm_bug_table()) {
    if ((only == 0 && !b.in_orig) || (only == 1 && !b.in_modern)) continue;
    const char* prof = b.in_orig && b.in_modern ? "orig+modern" : b.in_orig ? "orig" : "modern";
    fmt::print("{}\n  profile {}, {} under orig; kernels {}; fixed by {}\n  {}\n", b.name, prof,
               b.in_orig ? (b.orig_default ? "on" : "off") : "n/a", b.kernels, b.fix, b.what);
  }
  return kExitOk;
}

// `pvsim trace --list-events [--format] [GLOB]`: the event table (core/trace_event.h).
int cmd_trace(const std::vector<std::string>& args) {
  po::options_description opts("pvsim trace --list-events [--format] [GLOB]");
  opts.add_options()("help,h", "this text")
      ("list-events", "list every event the trace can hold, with its system and typed fields")
      ("format", "describe each event as ftrace's events/<system>/<event>/format file does (name, ID, fields "
                 "with offset, size and signedness, print fmt), as trace.dat files (--trace-dat) carry them");
  po::options_description hidden;
  hidden.add_options()("glob", po::value<std::vector<std::string>>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("glob", -1);
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(all).positional(pos).run(), vm);
  } catch (const po::error& e) {
    return usage_error("trace", escape_display(e.what(), 300));
  }
  if (vm.count("help")) {
    std::cout << opts
              << "\nGLOB selects events by name ('*' any run of characters, '?' one), e.g. 'kvm_async_pf*'.\n"
                 "The canonical text of an event is its print fmt evaluated over its fields; JSON Lines\n"
                 "(--trace-jsonl) carries the fields under these names (tools/platform/README.md \"The trace\").\n";
    return kExitOk;
  }
  if (!vm.count("list-events")) return usage_error("trace", "--list-events expected");
  const std::vector<std::string> globs =
      vm.count("glob") ? vm["glob"].as<std::vector<std::string>>() : std::vector<std::string>{};
  if (globs.size() > 1) return usage_error("trace", fmt::format("one GLOB expected, got {}", globs.size()));
  const bool format = vm.count("format") != 0;
  bool any = false;
  for (const TraceEventDesc& d : trace_event_table()) {
    if (!globs.empty() && !trace_glob_match(globs[0], d.name)) continue;
    any = true;
    if (format) {
      // One format file after another, a blank line between them.
      fmt::print("{}\n", trace_dat_format(d));
      continue;
    }
    std::string fields;
    for (const TraceFieldDesc& f : d.fields)
      fields += fmt::format("{}{} {}", fields.empty() ? "" : ", ",
                            f.type == TraceType::Str ? "string" : f.c_type, f.name);
    fmt::print("{}:{}({})\n", d.system, d.name, fields);
  }
  if (!any)
    return usage_error("trace", fmt::format("{} matches no event", quote_display(globs[0], 80)));
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  install_cleanup_handlers();
  std::vector<std::string> args(argv + 1, argv + argc);
  // Called through a symlink named pvsim-qemu, pvsim is the QEMU front door itself: the
  // kvm-unit-tests runner takes $QEMU as one word (tools/platform/README.md
  // "kvm-unit-tests through pvsim qemu").
  if (argc > 0 && fs::path(argv[0]).filename() == "pvsim-qemu") {
    try {
      return qemu_main(args, PVSIM_VERSION);
    } catch (const std::exception& e) {
      fmt::print(stderr, "pvsim qemu: internal error: {}\n", escape_display(e.what(), 400));
      return kExitFail;
    }
  }
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
    if (cmd == "diff") return cmd_diff(args);
    if (cmd == "explore") return cmd_explore(args);
    if (cmd == "bugs") return cmd_bugs(args);
    if (cmd == "trace") return cmd_trace(args);
    if (cmd == "qemu") return qemu_main(args, PVSIM_VERSION);
    if (!cmd.empty() && cmd[0] == '-') return usage_error("", fmt::format("unknown option '{}'", escape_display(cmd, 100)));
    return usage_error("", fmt::format("unknown command '{}'", escape_display(cmd, 100)));
  } catch (const std::exception& e) {
    // Only internal errors get here (bad scenarios are ScenarioErrors above).
    fmt::print(stderr, "pvsim: internal error: {}\n", escape_display(e.what(), 400));
    return kExitFail;
  }
}
