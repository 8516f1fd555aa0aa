// core/cpu/core.cpp — run loop and decoded-block cache (core/README.md "Execution model").
#include "core/cpu/core.h"

#include <fmt/format.h>

#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include "core/cpu/decoder.h"
#include "core/cpu/handlers.h"

namespace pvsim::cpu {

namespace {
constexpr unsigned kBlockCacheSize = 1u << kBlockCacheBits;
}  // namespace

namespace {
// Large zeroed arrays the host backs only where touched: mmap'd directly, because calloc
// reuses (and memsets) freed heap memory once an earlier VM in the process has released
// such blocks, which would make every page resident.
void* lazy_zeroed(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}
constexpr size_t kTlbBytes = 3 * kTlbSize * sizeof(TlbEntry);
constexpr size_t kBlockCacheBytes = kBlockCacheSize * sizeof(Block);
void release_block_cache(void* p) {
  munmap(p, kBlockCacheBytes);
}
}  // namespace

Core::Core(Vcpu& v, GuestMemory& m, CpuEnv& e, Tracer& t, const VcpuConfig& c)
    : vcpu(v), mem(m), env(e), tracer(t), cfg(c) {
  // One decoded-block cache per VM, kept with guest memory: every vCPU that runs the same
  // code uses the same blocks (keyed by GPA and the page's code generation), so 64 vCPUs
  // do not need 64 copies in the host caches. A zero tag means "empty".
  if (!mem.cpu_cache()) mem.set_cpu_cache(lazy_zeroed(kBlockCacheBytes), release_block_cache);
  blocks = static_cast<Block*>(mem.cpu_cache());
  tlb[0] = static_cast<TlbEntry*>(lazy_zeroed(kTlbBytes + 3 * kTlbSize));
  tlb[1] = tlb[0] + kTlbSize;
  tlb[2] = tlb[1] + kTlbSize;
  tlb_glob = reinterpret_cast<uint8_t*>(tlb[0] + 3 * kTlbSize);
  // IA32_APIC_BASE at reset: 0xfee00000, enabled, BSP flag on vCPU 0 (SDM Vol. 3A §10.4.4).
  apic_base = 0xfee00000ull | (1u << 11) | (c.index == 0 ? (1u << 8) : 0);
  code_epoch_seen = mem.code_mark_epoch();
  code_gen = mem.code_generations();
}

Core::~Core() {
  munmap(tlb[0], kTlbBytes + 3 * kTlbSize);
}

bool Core::stop_with(StopReason r, std::string detail) {
  stop = r;
  stop_detail = std::move(detail);
  brk = true;
  return false;
}

Vcpu::RunResult Core::run(uint64_t max_insns, uint64_t deadline, bool slice) {
  Vcpu::RunResult res;
  run_steps = 0;  // for the returns before the loop
  if (dead) {
    res.reason = StopReason::Shutdown;
    return res;
  }
  stop = StopReason::None;
  requested = StopReason::None;
  abandoned = false;
  // Another vCPU may have marked pages as code since we last ran: our write-TLB entries
  // for them would bypass note_write() and leave stale decoded blocks.
  if (tlb_epoch_seen != mem.tlb_epoch()) [[unlikely]] {
    tlb_epoch_seen = mem.tlb_epoch();
    if (code_epoch_seen != mem.code_mark_epoch()) {
      code_epoch_seen = mem.code_mark_epoch();
      tlb_flush_write();
    }
    // The host unmapped pages since we last ran (evictions, GuestMemory::ept_unmap): no
    // TLB entry may keep a host pointer to them, or an access would bypass the EPT check.
    if (unmap_epoch_seen != mem.host_unmap_epoch()) {
      unmap_epoch_seen = mem.host_unmap_epoch();
      tlb_flush_all();
    }
  }
  if (halted && !try_wake()) {
    res.reason = StopReason::Halted;
    return res;
  }
  if (stop != StopReason::None) {  // waking delivered an event that shut the vCPU down
    res.reason = stop;
    return res;
  }
  // Virtual-8086 mode is not modelled: nothing sets RFLAGS.VM (IRET and POPF keep it 0).
  // Legacy paging (CR0.PG without EFER.LMA) stops in translate().
  update_mode();
  // A REP INS/OUTS stopped between elements resumes inside its open exit (do_string_io).
  if (entry_pending && io_rep_rip != rip) trace_entry(rip);

  run_deadline = deadline;
  uint64_t steps = 0;
  for (;;) {
    if (steps >= max_insns || insns >= stop_at_insns) [[unlikely]] {
      res.reason = StopReason::InsnLimit;
      break;
    }
    if (cycles >= deadline) {
      res.reason = StopReason::Deadline;
      break;
    }
    brk = false;
    if (irq_check) [[unlikely]] {
      if (check_interrupts()) {
        if (stop != StopReason::None) {
          res.reason = stop;
          break;
        }
        ++steps;
        continue;
      }
    }
    // Declared here so that the breakpoint path can enter per-instruction execution below.
    Block* b;
    const Insn* in;
    const Insn* end;
    uint64_t b0;
    uint64_t insns_at;
    bool failed;
    uint64_t done;
    if (!bp_check) [[likely]] {
      b = fetch_block();
    } else {
      // Breakpoints, or RFLAGS.RF to clear (core/README.md "Breakpoints"): the one test per
      // block that costs anything when none are set.
      const BpAt at = bp_boundary(b, max_insns - steps, slice, steps > 0, in, end, b0);
      if (at == BpAt::Stop) {
        res.reason = StopReason::Breakpoint;
        break;
      }
      if (at == BpAt::SliceEnd) {
        res.reason = StopReason::InsnLimit;
        break;
      }
      if (at == BpAt::Range) {
        insns_at = insns;
        run_insn_end = insns + ((irq_check && insns == inhibit_at) ? 1 : max_insns - steps);
        if (run_insn_end > stop_at_insns) run_insn_end = stop_at_insns;
        goto per_instruction;
      }
    }
    if (!b) [[unlikely]] {
      if (stop != StopReason::None) {
        res.reason = stop;
        break;
      }
      deliver_fault();
      ++steps;
      if (stop != StopReason::None) {
        res.reason = stop;
        break;
      }
      continue;
    }
    {
      // In an STI / MOV SS shadow with an event pending, only the one shadowed instruction
      // runs before the next look (SDM Vol. 3A §6.8.3: recognised after the instruction that
      // follows STI), not the rest of its block.
      const bool shadow = irq_check && insns == inhibit_at;
      const uint64_t room = shadow ? 1 : max_insns - steps;
      const Insn* const first = b->insns;
      insns_at = insns;
      // The budget binds REP elements too: each counts as one instruction (rep_next).
      run_insn_end = insns + room;
      // A stop point (Vcpu::run's stop_at) only cuts: the slice rules below still decide by
      // `room`, so the step is the one it would have been, ended at the point if it gets there.
      if (run_insn_end > stop_at_insns) [[unlikely]] run_insn_end = stop_at_insns;
      const uint64_t fit = run_insn_end - insns;
      // Code outside 64-bit mode always takes the per-instruction path: the threaded
      // handlers (fast.cpp) assume 64-bit operands, flat segments and canonical addresses.
      if (b->count <= fit && cycles + b->total <= deadline && cmode == kMode64) [[likely]] {
        // Whole-block execution (direct-threaded, fast.cpp): the block fits in the budget
        // and cannot pass the deadline by its static costs, so no per-instruction checks
        // are needed. Handlers that add cycles or set brk mid-block leave through
        // Core::sync_to() and re-check (fast.cpp, t_generic), which keeps the stop at exactly
        // the first boundary where cycles >= deadline.
        blk_rip = rip;
        blk_cyc0 = cycles;
        blk_insns0 = insns;
        blk = b;
        blk_gpa_page = (b->tag - 1) & ~0xfffull;
        // No chaining while an event check is pending (the loop must look at it at the next
        // boundary), never past the budget, and not at all while breakpoints are set
        // (chain_max = 0: each block start must pass bp_boundary).
        run_insn_limit = irq_check ? 0 : insns + (fit < chain_max ? fit : chain_max);
        xfail = false;
        in = first->tfn(*this, first, 0);  // a block's first Insn::lr is "none"
        failed = xfail;
        if (!failed) {
          cycles = blk_cyc0 + in[-1].cum;
          rip = next_rip;
          // Blocks may have been chained (fast.cpp): count from the last one's start.
          done = (blk_insns0 - insns_at) + static_cast<uint64_t>(in - blk->insns);
        } else {
          // sync_to() made `insns` exact for the failed instruction, and a REP that failed
          // after some elements counted them (rep_next).
          done = insns - insns_at;
        }
        goto executed;
      }
      // A scheduler slice ends before a block that does not fit in what is left of it,
      // instead of running that block's head instruction by instruction: ending inside a
      // block costs the per-instruction path now and a block decoded from a mid-block
      // address when the vCPU resumes, and with vCPUs switching every quantum that cost
      // several thousand host cycles per switch (core/README.md "Performance", scale-64).
      // Only once something ran, so a budget shorter than a block still makes progress.
      if (slice && steps > 0 && !shadow && b->count > room) {
        res.reason = StopReason::InsnLimit;
        break;
      }
      in = first;
      end = in + b->count;
      b0 = rip;
    }
  per_instruction:
    // Per-instruction execution of [in, end): at most the remaining instruction budget,
    // leaving early at the first boundary past the deadline or when a handler asked for a
    // re-check (brk). Each instruction's address comes from the block start b0 and
    // Insn::end (a followed JMP, decode_block, makes them non-contiguous); rip/next_rip are
    // only stored here (handlers read them), never reloaded per instruction. Only block
    // terminators (A_TERM), followed JMPs (whose target is the next instruction) and
    // handlers that set brk change next_rip, and the others end the block. `insns` is kept
    // exact here, so a REP instruction can count its elements (rep_next).
    failed = false;
    while (in != end) {
      next_rip = in->end_from(b0);
      rip = next_rip - in->len;
      cycles += in->cost;
      if (!in->fn(*this, *in)) [[unlikely]] {
        failed = true;  // rip is the faulting instruction
        break;
      }
      ++in;
      ++insns;
      if (insns >= run_insn_end || cycles >= deadline || brk) [[unlikely]]
        break;
    }
    if (!failed) rip = next_rip;
    done = insns - insns_at;
  executed:
    insns = insns_at + done;  // the threaded path's sync_to() may have moved it
    // (done counts REP elements: each one retires as an instruction, Core::rep_next)
    if (shadow_next) [[unlikely]] {
      // STI / MOV SS retired (always the last instruction of its block): interrupts stay
      // blocked at this boundary only.
      shadow_next = false;
      inhibit_at = insns;
    }
    res.executed += done;
    steps += done;
    if (failed) [[unlikely]] {
      if (abandoned) {
        // The instruction did not execute (Core::abandon): it is not charged either, and
        // the run ends with Deadline so the scheduler can run the vCPUs that are behind.
        abandoned = false;
        cycles -= in->cost;
        res.reason = stop;
        break;
      }
      if (in->ss_operand()) stack_fault();
      if (stop != StopReason::None) {
        res.reason = stop;
        break;
      }
      deliver_fault();
      ++steps;
      if (stop != StopReason::None) {
        res.reason = stop;
        break;
      }
      continue;
    }
    if (brk) [[unlikely]] {
      if (requested != StopReason::None) {
        res.reason = requested;
        break;
      }
      if (stop != StopReason::None) {
        res.reason = stop;
        break;
      }
      if (halted) {
        if (!try_wake()) {
          res.reason = StopReason::Halted;
          break;
        }
      }
    }
  }
  if (res.reason != StopReason::Shutdown && res.reason != StopReason::IoError &&
      res.reason != StopReason::Unsupported &&
      requested != StopReason::None)
    res.reason = requested;
  run_steps = steps;
  return res;
}

// Slow part of fetch_block(): fetch-TLB miss or block-cache miss.
Block* Core::fetch_block_slow() {
  TlbEntry& e = tlb[2][(rip >> 12) & kTlbMask];
  if (e.tag != tlb_key(rip)) {
    uint64_t gpa;
    if (!translate(rip, Acc::Fetch, cpl == 3, gpa, &e)) return nullptr;
    if (e.tag != tlb_key(rip)) {
      stop_with(StopReason::IoError,
                fmt::format("instruction fetch from GPA {:#x} outside RAM (rip {:#x})", gpa, rip));
      return nullptr;
    }
  }
  const uint64_t gpa = tlb_gpa(e) | (rip & 0xfff);
  Block& b = blocks[block_slot(gpa)];
  if (b.tag == gpa + 1 + mode_tag() && b.gen == code_gen[gpa >> 12]) return &b;
  return decode_block(b, gpa, e.host);
}

Block* Core::decode_block(Block& b, uint64_t gpa, uint8_t* page_host) {
  const uint64_t pfn = gpa >> 12;
  if (mem.mark_code_page(pfn)) {
    // From now on writes to this page must take the slow path (note_write bumps the
    // generation), so drop any write-TLB entry that maps it (all of them: O(1)).
    tlb_flush_write();
    code_epoch_seen = mem.code_mark_epoch();
  }
  const unsigned start = static_cast<unsigned>(gpa & 0xfff);
  unsigned off = start;
  unsigned n = 0;
  while (n < kBlockMaxInsns) {
    Insn& in = b.insns[n];
    const DecodeStatus st = decode(page_host + off, 4096 - off, in, cmode);
    if (st == DecodeStatus::NeedMore) {
      if (n == 0) return decode_crossing(gpa, page_host);
      break;  // the crossing instruction starts its own (uncached) block
    }
    if (st != DecodeStatus::Ok) {
      in = Insn{};
      in.fn = st == DecodeStatus::TooLong ? raise_GP0 : raise_UD;
      in.len = 1;
      in.cost = 1;
      in.end = static_cast<int16_t>(off + 1 - start);
      ++n;
      break;
    }
    ++n;
    off += in.len;
    in.end = static_cast<int16_t>(off - start);
    // A direct JMP to the same page does not end the block: decoding goes on at its target
    // (fewer, longer blocks; the target is canonical and its translation is the block's).
    // Not as the block's last instruction, so a followed JMP always has a successor.
    // Only in 64-bit mode: elsewhere the target wraps at the operand size and CS.base.
    const auto id = static_cast<OpId>(in.id);
    if ((id == OpId::JMP_Jb || id == OpId::JMP_Jz) && n < kBlockMaxInsns && cmode == kMode64) {
      const int64_t t = static_cast<int64_t>(off) + static_cast<int64_t>(in.imm);
      if (t >= 0 && t < 4096) {
        in.followed = true;
        off = static_cast<unsigned>(t);
        continue;
      }
    }
    if (insn_ends_block(in) || off >= 4096) break;
  }
  b.tag = gpa + 1 + mode_tag();
  b.gen = mem.code_generation(pfn);
  b.link[0] = b.link[1] = nullptr;
  finish_block(b, n);
  return &b;
}

// An instruction whose bytes continue on the next linear page (SDM: the fetch of the
// second page can fault on its own, with CR2 = that page's address). It is decoded from a
// fresh copy every time and never cached, so self-modifying code on either page is seen.
Block* Core::decode_crossing(uint64_t gpa, uint8_t* page_host) {
  uint8_t buf[16] = {};
  const unsigned off = static_cast<unsigned>(gpa & 0xfff);
  const unsigned first = 4096 - off;
  std::memcpy(buf, page_host + off, first);
  const uint64_t next_la = (rip & ~0xfffull) + 4096;
  uint64_t gpa2;
  TlbEntry& e2 = tlb[2][(next_la >> 12) & kTlbMask];
  if (e2.tag != tlb_key(next_la)) {
    if (!translate(next_la, Acc::Fetch, cpl == 3, gpa2, &e2)) return nullptr;
    if (e2.tag != tlb_key(next_la)) {
      stop_with(StopReason::IoError,
                fmt::format("instruction fetch from GPA {:#x} outside RAM (rip {:#x})", gpa2, rip));
      return nullptr;
    }
  }
  std::memcpy(buf + first, e2.host, 15 - first);
  Insn& in = tmp_block.insns[0];
  const DecodeStatus st = decode(buf, 15, in, cmode);
  if (st != DecodeStatus::Ok) {
    in = Insn{};
    in.fn = st == DecodeStatus::TooLong ? raise_GP0 : raise_UD;
    in.len = 1;
  }
  in.end = static_cast<int16_t>(in.len);
  tmp_block.link[0] = tmp_block.link[1] = nullptr;
  finish_block(tmp_block, 1);
  tmp_block.tag = 0;
  return &tmp_block;
}

bool Core::check_interrupts() {
  // Boundary check (core/README.md "Execution model", step 1). Nothing is taken inside the
  // one-instruction STI / MOV SS shadow (SDM Vol. 3A §6.8.3); irq_check stays set so the
  // next boundary looks again. The MOV SS shadow holds off NMIs too; after STI the SDM
  // allows either (Vol. 2B "STI": NMIs "may be inhibited" on the following boundary).
  // pvsim blocks NMIs in both shadows: one rule, and a choice real processors make.
  // An exception the hypervisor injected (Vcpu::inject_exception) goes first, shadow or
  // not: KVM injects a queued exception at entry before it looks at interrupts.
  if (inject_pending && !fault_pending) {
    inject_pending = false;
    halted = false;
    if (entry_pending) trace_entry(rip);
    fault = inject_fault;
    fault_pending = true;
    deliver_fault();
    return true;
  }
  if (insns == inhibit_at) return false;
  // An NMI (priority 5 in SDM Vol. 3A Table 6-2) goes before maskable interrupts
  // (priority 6) and ignores RFLAGS.IF. Taking it starts NMI blocking until the next IRET
  // (§6.7.1); blocking starts even if delivery then faults, as the processor has
  // recognised the NMI (the fault or #DF is delivered in its place).
  if (nmi_pending && !nmi_blocked) {
    nmi_pending = false;
    nmi_blocked = true;
    irq_check = irq_notified;
    tracer.pvsim_inj_nmi(now(), cfg.index);
    return deliver_external(kNMI);
  }
  if (!irq_notified || !irq_poll) {
    irq_check = false;
    return false;
  }
  if (!(rf & fl::IF)) {
    // Stays pending (irq_notified) until STI / POPF / IRET / SYSRET sets IF, which
    // re-arms the check (Core::rearm_irq_check); no polling at every block meanwhile.
    irq_check = false;  // an unblocked NMI would have been taken above
    return false;
  }
  const int vec = irq_poll(vcpu);
  if (vec < 0) {
    // Nothing deliverable (and no unblocked NMI, or it would have gone first): quiet until
    // the next notify_interrupt(), CR8 write, inject_nmi() or IRET after an NMI.
    irq_notified = false;
    irq_check = false;
    return false;
  }
  // KVM traces kvm_inj_virq when it injects the interrupt on the way into the guest.
  tracer.kvm_inj_virq(now(), cfg.index, static_cast<unsigned>(vec & 0xff), false, false);
  if (injected_hook) injected_hook(vcpu);
  return deliver_external(static_cast<uint8_t>(vec));
}

// Delivers an external-class event (no error code, EXT = 1) through the IDT at the
// current boundary; a HLT in progress ends (SDM Vol. 2A "HLT": resumes after the event).
bool Core::deliver_external(uint8_t vector) {
  halted = false;
  if (entry_pending) trace_entry(rip);  // the HLT exit ends here; the event is injected at entry
  cycles += kExceptionCycles;
  if (!deliver(vector, EventKind::External, false, 0, rip)) {
    if (stop == StopReason::None) deliver_fault();
  } else {
    rip = next_rip;
  }
  return true;
}

bool Core::try_wake() {
  // HLT ends when an event is deliverable (SDM Vol. 2A "HLT"): an unblocked NMI whatever
  // RFLAGS.IF says, or a maskable interrupt with IF=1. Otherwise the vCPU stays halted
  // and the platform decides whether that is a deadlock.
  if (!halted) return true;
  if (!irq_check) return false;
  if (inject_pending) return check_interrupts() && !halted;
  const bool nmi_ready = nmi_pending && !nmi_blocked;
  if (!nmi_ready && (!(rf & fl::IF) || !irq_notified || !irq_poll)) return false;
  return check_interrupts() && !halted;
}

// Stack accesses outside 64-bit mode: SS.B selects SP or ESP, SS.base is added, the linear
// address wraps at 4 GiB and an offset beyond SS's limit is #SS(0) (SDM Vol. 3A §6.2
// "Stack", core/README.md "Legacy modes"). On a fault nothing changes.
bool Core::push_legacy(uint64_t v, unsigned size) {
  const uint64_t sp = (sp_value() - size) & (stack32() ? 0xffffffffull : 0xffffull);
  if (!write(seg_linear(2, sp), size, v)) return stack_fault();  // beyond SS's limit: #SS(0)
  set_sp(sp);
  return true;
}
bool Core::pop_legacy(unsigned size, uint64_t& v) {
  const uint64_t sp = sp_value();
  if (!read(seg_linear(2, sp), size, v)) return stack_fault();
  set_sp(sp + size);
  return true;
}

bool raise_UD(Core& c, const Insn&) {
  return c.ud();
}
bool raise_GP0(Core& c, const Insn&) {
  return c.gp(0);
}

}  // namespace pvsim::cpu
