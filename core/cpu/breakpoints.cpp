// core/cpu/breakpoints.cpp — host-side breakpoints on linear RIPs (Vcpu::set_breakpoints;
// core/README.md "Breakpoints").
//
// The run loop tests one flag per block (CoreState::bp_check) and comes here only while
// breakpoints are set or RFLAGS.RF waits to be cleared. A stop happens at a boundary, before
// the instruction there is fetched: an instruction breakpoint is recognised before faults
// from fetching that instruction (SDM Vol. 3A Table 6-2, priorities 7 and 8). Inside a block
// the run loop runs per instruction up to the breakpoint (whole-block execution has no way
// to stop in the middle), and the run that goes on from a stop there continues inside the
// same decoded block, so a breakpoint that only stops and resumes changes nothing a run
// would otherwise do: not the boundaries of a Budget::Slice run (which depend on where
// decoded blocks start) and not the results.
#include <algorithm>

#include "core/cpu/core.h"
#include "core/cpu/decoder.h"

namespace pvsim::cpu {

void Core::set_breakpoints(std::vector<uint64_t> rips, bool every) {
  std::sort(rips.begin(), rips.end());
  rips.erase(std::unique(rips.begin(), rips.end()), rips.end());
  bp_rips = std::move(rips);
  bp_all = every;
  const bool any = bp_all || !bp_rips.empty();
  // Chaining (fast.cpp) goes from block to block without the run loop: off while set.
  chain_max = any ? 0 : kChainInsns;
  // A stop already reported and not yet continued (mid_continue, bp_slice_defer) still
  // passes bp_boundary once when the list changes in between (a debugger removing its
  // breakpoints at a stop): that pass is what makes the continuing run() equal to one that
  // never stopped.
  bp_check = any || (rf & fl::RF) || mid_continue || bp_slice_defer;
}

bool Core::bp_has(uint64_t la) const {
  return bp_all || std::binary_search(bp_rips.begin(), bp_rips.end(), la);
}

namespace {
// The decoded block at linear `la`, when the fetch TLB maps its page: from the cache, or
// decoded again (decoding is a function of the bytes, so it is the block that was cut).
// Never walks page tables or raises anything; nullptr when it cannot be had that way.
Block* block_without_fetch(Core& c, uint64_t la) {
  const TlbEntry& e = c.tlb[2][(la >> 12) & kTlbMask];
  if (e.tag != c.tlb_key(la)) return nullptr;
  const uint64_t gpa = c.tlb_gpa(e) | (la & 0xfff);
  Block& b = c.blocks[block_slot(gpa)];
  if (b.tag == gpa + 1 + c.mode_tag() && b.gen == c.code_gen[gpa >> 12]) return &b;
  // decode_block would hand an instruction that crosses the page to decode_crossing, which
  // translates the next page; the block that was cut never starts with one.
  Insn probe;
  const unsigned off = static_cast<unsigned>(la & 0xfff);
  if (decode(e.host + off, 4096 - off, probe, c.cmode) == DecodeStatus::NeedMore) return nullptr;
  return c.decode_block(b, gpa, e.host);
}
}  // namespace

Core::BpAt Core::bp_boundary(Block*& b, uint64_t left, bool slice, bool ran, const Insn*& from,
                             const Insn*& to, uint64_t& base) {
  const bool seen = insns == bp_seen_insns && rip == bp_seen_rip;
  // Inside a block cut here: arrived in the run that cut it (something ran), or in the run
  // that goes on from the stop reported there.
  const bool inside = insns == mid_insns && rip == mid_rip && (ran || mid_continue);
  mid_continue = false;
  const bool defer = seen && bp_slice_defer;
  bp_slice_defer = false;
  // Is the instruction at RIP reached here? Not at a boundary already reported, not where a
  // REP resumes between elements, and not while RF is set (IRET returned to such a REP: the
  // event that interrupted it pushed RF = 1, Core::deliver).
  if (!seen) {
    const bool resumed = (rf & fl::RF) || (insns == rep_insns && rip == rep_rip);
    if (!resumed && bp_has(rip)) {
      bp_seen_insns = insns;
      bp_seen_rip = rip;
      // A slice run that had run something would have applied its block rule here (Core::run);
      // the run that goes on from here applies it instead. Inside a cut block there is no
      // such rule: the run had admitted the whole block.
      bp_slice_defer = slice && ran && !inside;
      mid_continue = inside;
      return BpAt::Stop;
    }
    if (resumed) {
      // RF is cleared when the instruction starts (below); if it then does not run (a
      // time-gated instruction is abandoned), this boundary still does not count.
      bp_seen_insns = insns;
      bp_seen_rip = rip;
    }
  }
  // The block: the rest of the one the loop cut here for a breakpoint, else the one at RIP.
  uint32_t start = 0;
  b = nullptr;
  base = rip;
  if (inside) {
    mid_insns = mid_rip = ~0ull;
    Block* cut = block_without_fetch(*this, mid_base);
    if (cut && mid_k < cut->count) {
      const Insn& i = cut->insns[mid_k];
      if (i.end_from(mid_base) - i.len == rip) {
        b = cut;
        start = mid_k;
        base = mid_base;
      }
    }
  }
  if (!b) {
    b = fetch_block();
    if (!b) return BpAt::Run;  // the loop delivers the fault; RF stays (nothing started)
    if (slice && (ran || defer) && !inside && !(irq_check && insns == inhibit_at) &&
        b->count > left)
      return BpAt::SliceEnd;
  }
  // The instruction starts: RF has done its work (SDM Vol. 3B §17.3.1.1).
  rf &= ~fl::RF;
  bp_check = bp_all || !bp_rips.empty();
  // Cut the block before the next breakpoint in it. A block's instructions all lie on the
  // page of its first one (Core::decode_block), so one lookup says whether any can match.
  uint32_t stop_k = b->count;
  const uint64_t page = base & ~0xfffull;
  const auto it = std::lower_bound(bp_rips.begin(), bp_rips.end(), page);
  if (bp_all || (it != bp_rips.end() && *it < page + 4096)) {
    for (uint32_t k = start + 1; k < b->count; ++k) {
      const Insn& i = b->insns[k];
      const uint64_t la = i.end_from(base) - i.len;
      if (bp_has(la)) {
        stop_k = k;
        mid_k = k;
        mid_base = base;
        mid_rip = la;
        // The count there if the instructions before it run through; a REP that runs more
        // than one element leaves the block earlier (Core::rep_next sets brk).
        mid_insns = insns + (k - start);
        break;
      }
    }
  }
  if (start == 0 && stop_k == b->count) return BpAt::Run;
  from = b->insns + start;
  to = b->insns + stop_k;
  return BpAt::Range;
}

}  // namespace pvsim::cpu
