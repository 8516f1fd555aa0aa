// tests/platform/host_memory_vm_test.cpp — the host memory model in a running VM
// (tools/platform/README.md §5.1): evictions and the resident-set limit unmap pages that the
// guest then faults in again, code pages included, and the guest still computes what it
// should; the shipped async-PF showcase is the workload.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "tools/platform/platform.h"

using namespace pvsim;

namespace {

Scenario showcase() { return load_scenario(std::string(PVSIM_SCENARIO_DIR) + "/default.json"); }

unsigned count_lines(const std::string& text, const std::string& needle) {
  unsigned n = 0;
  for (size_t at = 0; (at = text.find(needle, at)) != std::string::npos; at += needle.size()) ++n;
  return n;
}

struct Run {
  RunReport report;
  std::string trace;
};

Run run(Scenario s) {
  s.expect = Expectations{};  // the changed host makes the pinned numbers differ
  std::ostringstream trace;
  PlatformOptions o;
  o.trace_text = &trace;
  Run r{run_scenario(s, o), {}};
  r.trace = trace.str();
  return r;
}

}  // namespace

TEST_CASE("an eviction of the guest's code makes the next fetch exit again, and the run stays correct",
          "[host-memory][vm]") {
  Scenario s = showcase();
  // The image (linked at 1 MiB) leaves the host at 300 us, in the middle of the workload.
  s.host.memory.evict.push_back(MemoryEviction{300'000, GpaRange{0x100000, 0x20000}});
  const Run r = run(s);
  INFO(r.report.console);
  CHECK(r.report.stop == RunStop::Exit);
  // The data the workers read and wrote is intact. (The guest's own count check expects one
  // async fault per data page and reports the extra ones on its code as a failure, so the
  // SUMMARY line is not the criterion here.)
  CHECK(r.report.console.find("PASS: 12 pages: each first read found zeros, then the pattern written read back "
                              "intact\n") != std::string::npos);
  CHECK(r.report.console.find("PASS: all 6 workers and 2 compute tasks finished\n") != std::string::npos);
  CHECK(count_lines(r.trace, "pvsim_host: evict: gpa 0x100000-") == 1);
  // After the eviction the code is fetched from an unmapped page again: a fetch EPT violation
  // (qualification bit 2) on an image page, which the host must read back in.
  const size_t ev = r.trace.find("pvsim_host: evict: gpa 0x100000-");
  REQUIRE(ev != std::string::npos);
  const std::string after = r.trace.substr(ev);
  CHECK(after.find("error_code 0x184") != std::string::npos);
  CHECK(count_lines(after, "kvm_page_fault: ") > 0);
  // Evicted pages come back through the host: stalls or async faults on the image.
  CHECK((after.find("pvsim_host: stall: gpa 0x10") != std::string::npos ||
         after.find("kvm_try_async_get_page: gva = 0x10") != std::string::npos));
}

TEST_CASE("a resident-set limit evicts the oldest page per fetch and the guest still passes",
          "[host-memory][vm]") {
  Scenario s = showcase();
  const uint64_t ram_pages = s.machine.ram_bytes() >> 12;
  const uint64_t swapped = 0x100000 >> 12;
  s.host.memory.resident_limit_pages = ram_pages - swapped;  // every fetch evicts one page
  const Run r = run(s);
  INFO(r.report.console);
  CHECK(r.report.stop == RunStop::Exit);
  CHECK(r.report.console.find("SUMMARY: 5 tests\n") != std::string::npos);
  // FIFO: the pages resident since time 0 go first, lowest GPA first.
  CHECK(r.trace.find("pvsim_host: evict: gpa 0x0-0xfff (1 page) no longer resident (resident-set limit)") !=
        std::string::npos);
  CHECK(count_lines(r.trace, "(resident-set limit)") >= 12);
}

TEST_CASE("the same host memory scenario gives the same trace twice", "[host-memory][vm]") {
  Scenario s = showcase();
  s.host.memory.fault_in = FaultInLatency{50'000, 400'000, true};  // drawn from the seed
  s.seed = 7;
  const Run a = run(s), b = run(s);
  CHECK(a.report.trace_hash == b.report.trace_hash);
  s.seed = 8;
  const Run c = run(s);
  CHECK(c.report.trace_hash != a.report.trace_hash);
  CHECK(c.report.console.find("SUMMARY: 5 tests\n") != std::string::npos);
}
