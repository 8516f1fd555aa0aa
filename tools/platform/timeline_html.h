// tools/platform/timeline_html.h — `pvsim run --timeline FILE.html`: the timeline of a run
// (timeline_model.h) as one self-contained HTML page, for a classroom without Perfetto.
//
// The page has no external scripts, fonts, style sheets or images: inline SVG and a little
// inline CSS, readable with JavaScript off (hovering a mark shows its SVG <title>). It is
// well-formed XML as well as HTML (only the five XML entities, every element closed), and
// every text that comes from the scenario or the guest is escaped and made valid UTF-8.
//
// Drawn, top to bottom: the scenario's name and description, a legend, a time axis, one
// block per vCPU (its states as coloured bars, VM exits as ticks above them, markers and
// async-PF faults as flags, its async PFs as bars below with an arrow up to the vCPU
// where the page-ready was injected), one lane per pCPU (which vCPU thread held it),
// counters as small step charts, and the axis again.
//
// Long runs stay drawable: a lane never gets more marks than its width allows; runs of
// slices narrower than the merge width become one mark coloured by the state that took
// most of its time (its tooltip lists the mix), and the page says how many were merged.
// The whole SVG stays within a few tens of thousands of elements.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "tools/platform/timeline_model.h"

namespace pvsim {

struct TimelineHtmlStats {
  uint64_t elements = 0;        // SVG elements written
  uint64_t merged_slices = 0;   // slices drawn as part of a merged mark
  uint64_t merged_marks = 0;    // marks that stand for more than one slice
  uint64_t exits_drawn = 0;     // VM exit ticks (after one-per-pixel thinning)
};

TimelineHtmlStats write_timeline_html(const TimelineModel& m, std::ostream& os);

// `s` escaped for XML/HTML text and attribute values, with invalid UTF-8 and control
// characters (other than tab and newline) replaced by U+FFFD.
std::string html_escape(std::string_view s);

}  // namespace pvsim
