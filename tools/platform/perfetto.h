// tools/platform/perfetto.h — `pvsim run --perfetto FILE`: the timeline of a run
// (timeline_model.h) as a Perfetto trace, Perfetto's protobuf TrackEvent format
// (messages in perfetto_trace.proto), for ui.perfetto.dev or trace_processor.
//
// Tracks, all children of one root track named after the scenario, in this order
// (tools/platform/README.md "Seeing a run: the exporters"):
//   "vCPU N"                 states as slices, page not present / page ready / markers /
//                            actions / stops / migrations as instants
//   "vCPU N exits"           one instant per VM exit, named by its reason
//   "vCPU N async PF"        one slice per async PF, from not present to page ready (as
//                            many such tracks as were outstanding at once)
//   "vCPU N <counter>"       run delay, steal time, kvmclock version and tsc_timestamp
//   "pCPU P"                 "vCPU N" while that vCPU's thread holds it, "host" for other
//                            host work, "VM paused"
//   "async PFs outstanding"  VM-wide counter
// Flow arrows: each async PF's flow starts at its "page not present" instant, passes
// through its slice and ends at its "page ready" instant on the vCPU track.
#pragma once
#include <ostream>

#include "tools/platform/timeline_model.h"

namespace pvsim {

// Writes the whole file. Deterministic: the same model gives the same bytes.
void write_perfetto(const TimelineModel& m, std::ostream& os);

// Track uuids, for tests that decode the file.
inline constexpr uint64_t kPerfettoRootUuid = 1;

}  // namespace pvsim
