// The guest marker port (devices/marker.h, scenarios/guest/boot.md §4): bytes written to
// port 0x4f0 become pvsim_marker events, per vCPU, split at 256 bytes, and an unfinished
// line survives a snapshot and restore.
#include <catch2/catch.hpp>
#include <sstream>

#include "tests/platform/vm_helpers.h"
#include "tools/platform/platform.h"

using namespace pvsim;
using test::FlatScenario;
using test::cat;

namespace {
const std::vector<uint8_t> kDxMarker = {0x66, 0xba, 0xf0, 0x04};  // mov dx, 0x4f0
const std::vector<uint8_t> kOutDxAl = {0xee};                     // out dx, al
std::vector<uint8_t> mov_al(uint8_t v) { return {0xb0, v}; }
const std::vector<uint8_t> kFinish = {0xe6, 0xf5, 0xf4};  // out 0xf5, al; hlt

std::vector<std::string> markers(const std::string& trace, unsigned vcpu) {
  std::vector<std::string> out;
  std::istringstream in(trace);
  const std::string prefix = "CPU " + std::to_string(vcpu) + "/KVM";
  for (std::string line; std::getline(in, line);) {
    const auto at = line.find(": pvsim_marker: ");
    if (line.rfind(prefix, 0) == 0 && at != std::string::npos) out.push_back(line.substr(at + 16));
  }
  return out;
}
}  // namespace

TEST_CASE("marker port: lines per vCPU, NUL and newline end them, long ones split", "[marker]") {
  // movabs rsi, 0x100100; mov ecx, LEN; mov dx, 0x4f0; rep outsb; in al, dx; movzx edi, al... (IN checked below)
  std::string data = std::string("hello\nworld") + '\0' + "\n" + std::string(300, 'a') + "\n";
  const auto len = static_cast<uint32_t>(data.size());
  std::vector<uint8_t> code = cat({{0x48, 0xbe, 0x00, 0x01, 0x10, 0, 0, 0, 0, 0},
                                   {0xb9, static_cast<uint8_t>(len), static_cast<uint8_t>(len >> 8), 0, 0},
                                   kDxMarker,
                                   {0xf3, 0x6e},  // rep outsb
                                   {0xec},        // in al, dx: 'M'
                                   {0x3c, 'M'},   // cmp al, 'M'
                                   {0x75, 0x02},  // jne +2 (skip the finish: the run then ends another way)
                                   kFinish,
                                   {0xf4}});
  code.resize(0x100, 0x90);
  code.insert(code.end(), data.begin(), data.end());
  FlatScenario f(code, 2);
  std::ostringstream text;
  PlatformOptions o;
  o.trace_text = &text;
  const RunReport r = run_scenario(f.s, o);
  CHECK(r.stop == RunStop::Finished);  // both vCPUs read 'M' and finished
  for (unsigned v = 0; v < 2; ++v) {
    const auto m = markers(text.str(), v);
    REQUIRE(m.size() == 4);
    CHECK(m[0] == "hello");
    CHECK(m[1] == "world");
    CHECK(m[2] == std::string(256, 'a'));
    CHECK(m[3] == std::string(44, 'a'));
  }
}

TEST_CASE("marker port: an unfinished line is part of a snapshot", "[marker]") {
  // mov dx, 0x4f0; mov al,'a'; out; mov al,'b'; out; mov al,0; out; finish
  std::vector<uint8_t> code = cat({kDxMarker, mov_al('a'), kOutDxAl, mov_al('b'), kOutDxAl, mov_al(0), kOutDxAl, kFinish});
  FlatScenario f(code, 1);
  f.s.machine.quantum = 1;
  std::ostringstream first;
  PlatformOptions o;
  o.trace_text = &first;
  Platform p(f.s, o);
  // After "a" went out (4 instructions: mov dx, mov al, out, mov al), before "b".
  REQUIRE(p.run_to(Platform::StopPoint{Platform::StopPoint::Kind::Insn, 0, 4}));
  auto snap = p.save();
  p.run();
  CHECK(markers(first.str(), 0) == std::vector<std::string>{"ab"});
  p.restore(*snap);
  std::ostringstream second;
  p.tracer().set_text_output(&second);
  p.run();
  CHECK(markers(second.str(), 0) == std::vector<std::string>{"ab"});
}
