// tests/gdb/gdb_session_test.cpp — the gdb server driven in-process (no real gdb): packets
// go to GdbSession::handle, or through a socketpair to GdbSession::serve, on pv-clock-stopped
// (two vCPUs reading kvmclock). Registers, memory, breakpoints, a watchpoint on the
// hypervisor's pvclock write, a step of one thread, reverse-stepi and reverse-continue
// exactness, and the end of the run with the trace hash of a run without gdb.
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <string>
#include <thread>

#include "tools/platform/gdb_packet.h"
#include "tools/platform/gdb_server.h"
#include "tools/platform/platform.h"

using namespace pvsim;

namespace {

const Scenario& scenario() {
  static const Scenario s = load_scenario(std::string(PVSIM_SCENARIO_DIR) + "/pv-clock-stopped.json");
  return s;
}

uint64_t plain_hash() {
  static const uint64_t h = run_scenario(scenario()).trace_hash;
  return h;
}

uint64_t symbol(Platform& p, const char* name) {
  const Symbol* s = p.image().find(name);
  REQUIRE(s != nullptr);
  return s->addr;
}

std::string hex(uint64_t v) { return fmt::format("{:x}", v); }

// `g` reply's RIP (register 16: 16 GPRs of 8 bytes before it).
uint64_t rip_of(const std::string& g) { return *gdb::parse_le_hex(g.substr(16 * 16, 16), 8); }

// vCPU 1's pvclock structure (pvmsr/README.md §4: 32 bytes at the MSR's GPA); the guest
// keeps one per vCPU, 64-byte aligned, in time_info (scenarios/guest/lib/kvmclock.c).
uint64_t pvclock_of_vcpu1(Platform& p) { return symbol(p, "time_info") + 64; }

}  // namespace

TEST_CASE("gdb session: threads, target.xml, registers and memory") {
  Platform p(scenario());
  GdbSession g(p, -1);
  CHECK(g.handle("qfThreadInfo") == "m1,2");
  CHECK(g.handle("qsThreadInfo") == "l");
  CHECK(g.handle("T2") == "OK");
  CHECK(g.handle("T3") == "E02");
  CHECK(g.handle("Hg3") == "E02");
  CHECK(g.handle("?") == "T05thread:1;");
  const std::string xml = g.handle("qXfer:features:read:target.xml:0,3fff");
  CHECK(xml[0] == 'l');
  CHECK(xml.find("org.gnu.gdb.i386.core") != std::string::npos);
  CHECK(xml.find("\"cr3\"") != std::string::npos);
  CHECK(g.handle("qXfer:features:read:other.xml:0,10") == "E00");
  const std::string regs = g.handle("g");
  CHECK(rip_of(regs) == p.vcpu(0).rip());
  CHECK(g.handle("p10") == gdb::le_hex(p.vcpu(0).rip(), 8));        // rip
  CHECK(g.handle("p2d") == gdb::le_hex(p.vcpu(0).cr(3), 8));        // cr3
  CHECK(g.handle("P0=efbeadde00000000") == "OK");                   // rax
  CHECK(p.vcpu(0).gpr(0) == 0xdeadbeefu);
  CHECK(g.handle("P0=efbe") == "E01");                              // bad length
  CHECK(g.handle("p99") == "E01");
  CHECK(g.handle("G" + regs) == "OK");                              // writes back what it read
  CHECK(p.vcpu(0).gpr(0) == *gdb::parse_le_hex(regs.substr(0, 16), 8));  // ... the rax read before P
  CHECK(g.handle("G12") == "E01");
  // Memory through vCPU 0's page tables (identity-mapped low memory in the guest runtime).
  const uint64_t entry = p.vcpu(0).rip();
  uint8_t first = 0;
  REQUIRE(p.memory().read(Gpa(entry), &first, 1));
  CHECK(g.handle(fmt::format("m{},1", hex(entry))) == gdb::to_hex(&first, 1));
  CHECK(g.handle("m7fffffff0000,4") == "E14");    // not mapped
  CHECK(g.handle("m8000000000000000,4") == "E14");  // not canonical
  CHECK(g.handle("mzz,4") == "E01");
  const uint64_t scratch = pvclock_of_vcpu1(p) + 48;  // padding after vCPU 1's 32-byte structure
  CHECK(g.handle(fmt::format("M{},4:01020304", hex(scratch))) == "OK");
  CHECK(g.handle(fmt::format("m{},4", hex(scratch))) == "01020304");
  CHECK(g.handle(fmt::format("M{},4:0102", hex(scratch))) == "E01");  // length mismatch
  CHECK(g.handle(fmt::format("X{},3:ab", hex(scratch))) == "E01");  // 2 bytes for 3
  CHECK(g.handle(fmt::format("X{},2:ab", hex(scratch))) == "OK");
  CHECK(g.handle("vMustReplyEmpty") == "");  // unknown packets get an empty reply
  CHECK(g.handle("m100000") == "E01");         // no length
  CHECK(g.handle("qRcmd," + gdb::to_hex(std::string("time"))).size() > 0);
  CHECK(gdb::from_hex(g.handle("qRcmd," + gdb::to_hex(std::string("msr v1 system-time"))))->find("0x4b564d01") !=
        std::string::npos);
}

TEST_CASE("gdb session: breakpoint, one thread's step, reverse-stepi exactness, end hash") {
  Platform p(scenario());
  {
    GdbSession g(p, -1);
    const uint64_t reader = symbol(p, "kvmclock_sample");
    CHECK(g.handle(fmt::format("Z0,{},1", hex(reader))) == "OK");
    // Continue until vCPU 1 (thread 2) is in the reader.
    std::string stop;
    for (int k = 0; k < 10 && stop.find("thread:2;") == std::string::npos; ++k) stop = g.handle("vCont;c");
    REQUIRE(stop == "T05swbreak:;thread:2;");
    CHECK(p.vcpu(1).rip() == reader);
    CHECK(g.handle("Hg2") == "OK");
    const std::string regs0 = g.handle("g");
    const uint64_t pv = pvclock_of_vcpu1(p);
    const std::string mem0 = g.handle(fmt::format("m{},20", hex(pv)));
    const uint64_t insns1 = p.vcpu(1).instructions();
    // Step thread 2 alone: it retires one instruction.
    CHECK(g.handle("vCont;s:2") == "T05thread:2;");
    CHECK(p.vcpu(1).instructions() == insns1 + 1);
    CHECK(g.handle("g") != regs0);
    // And back: every register and the structure as they were.
    CHECK(g.handle("Hc2") == "OK");
    CHECK(g.handle("bs") == "T05thread:2;");
    CHECK(g.handle("g") == regs0);
    CHECK(g.handle(fmt::format("m{},20", hex(pv))) == mem0);
    CHECK(p.vcpu(1).instructions() == insns1);
    // Forward again over the same instruction: the same state as the first time.
    const std::string regs1 = (g.handle("vCont;s:2;c"), g.handle("g"));
    CHECK(rip_of(regs1) != reader);
    CHECK(g.handle(fmt::format("z0,{},1", hex(reader))) == "OK");
    CHECK(g.handle("D") == "OK");
  }
  // After the session: the run goes on to its end as without gdb.
  const RunReport r = p.run();
  CHECK(r.trace_hash == plain_hash());
}

TEST_CASE("gdb session: a watchpoint fires on the hypervisor's pvclock write, forwards and backwards") {
  Platform p(scenario());
  {
    GdbSession g(p, -1);
    const uint64_t pv = pvclock_of_vcpu1(p);
    CHECK(g.handle(fmt::format("Z2,{},4", hex(pv))) == "OK");
    CHECK(g.handle("Z2,7fffffff0000,4") == "E14");
    // Forwards: the first write is KVM's pvclock update after vCPU 1's WRMSR (its version
    // goes odd); the stop is at vCPU 1's next boundary, after the write.
    const std::string stop = g.handle("vCont;c");
    CHECK(stop == fmt::format("T05watch:{};thread:2;", hex(pv)));
    const std::string why = *gdb::from_hex(g.handle("qRcmd," + gdb::to_hex(std::string("why"))));
    CHECK(why.find("hypervisor") != std::string::npos);
    CHECK(why.find("after") != std::string::npos);
    uint32_t version = 0;
    REQUIRE(p.memory().read_obj(Gpa(pv), version));
    CHECK(version != 0);
    const std::string regs_after = (g.handle("Hg2"), g.handle("g"));
    // On to the next write, then back to the state just before the last one.
    CHECK(g.handle("vCont;c").rfind("T05watch:", 0) == 0);
    const std::string back = g.handle("bc");
    CHECK(back == fmt::format("T05watch:{};thread:2;", hex(pv)));
    const std::string why2 = *gdb::from_hex(g.handle("qRcmd," + gdb::to_hex(std::string("why"))));
    CHECK(why2.find("before") != std::string::npos);
    // Back once more: before the first write, nothing earlier changed it: the start.
    uint32_t v2 = 0;
    REQUIRE(p.memory().read_obj(Gpa(pv), v2));
    std::string b2 = g.handle("bc");
    while (b2.rfind("T05watch:", 0) == 0) b2 = g.handle("bc");
    CHECK(b2 == "T05replaylog:begin;thread:1;");
    CHECK(p.instructions() == 0);
    // Forwards from the start reaches the first write's stop again, exactly.
    CHECK(g.handle("vCont;c") == stop);
    CHECK((g.handle("Hg2"), g.handle("g")) == regs_after);
    CHECK(g.handle(fmt::format("z2,{},4", hex(pv))) == "OK");
    CHECK(g.handle("D") == "OK");
  }
  const RunReport r = p.run();
  CHECK(r.trace_hash == plain_hash());
}

TEST_CASE("gdb session: served over a socketpair, with bad packets and a kill") {
  Platform p(scenario());
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  GdbSession::End end = GdbSession::End::Closed;
  std::thread server([&] {
    GdbSession g(p, sv[0]);
    end = g.serve();
  });
  auto exchange = [&](const std::string& bytes) {
    REQUIRE(::write(sv[1], bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size()));
  };
  gdb::PacketReader in;
  auto reply = [&]() -> std::string {
    for (;;) {
      while (auto x = in.next())
        if (x->kind == gdb::Incoming::Kind::Packet) return x->data;
      char buf[4096];
      const ssize_t n = ::read(sv[1], buf, sizeof buf);
      REQUIRE(n > 0);
      in.feed(std::string_view(buf, static_cast<size_t>(n)));
    }
  };
  exchange(gdb::frame("qSupported:multiprocess+;swbreak+"));
  CHECK(reply().find("ReverseContinue+") != std::string::npos);
  exchange("$g#00");  // bad checksum: a NAK, no reply packet
  exchange(gdb::frame("vCont;x"));
  CHECK(reply() == "E01");
  exchange(gdb::frame("Z0,zz,1"));
  CHECK(reply() == "E01");
  exchange(gdb::frame(std::string(gdb::kMaxPacket + 10, 'm')));  // oversized: refused
  exchange(gdb::frame("qC"));
  CHECK(reply() == "QC1");
  exchange(gdb::frame("vCont;s:1"));
  CHECK(reply() == "T05thread:1;");
  exchange(gdb::frame("k"));
  server.join();
  ::close(sv[1]);
  CHECK(end == GdbSession::End::Killed);
  CHECK(p.vcpu(0).instructions() == 1);  // the step ran, then the kill
}
