// core/cpu/mmu.cpp — 4-level paging, software TLB, slow memory paths, EPT model.
//
// Translation follows SDM Vol. 3A §4.5 (4-level paging), §4.6 (access rights, CR0.WP,
// EFER.NXE), §4.7 (#PF error code), §4.8 (A/D bits) and §4.10 (TLBs, global pages).
// The TLB caches guest-virtual page -> host pointer of the RAM page, separately for read,
// write and fetch, for the current privilege (flushed when CPL changes). A write entry
// exists only when the leaf's D bit is set (we set it on the fill walk) and the page holds
// no decoded code, so every store to a code page takes access_slow() and bumps the page's
// code generation (self-modifying code).
#include <fmt/format.h>

#include "core/cpu/core.h"

#include <algorithm>
#include <cstring>

namespace pvsim::cpu {

namespace {
// Bits 51:MAXPHYADDR of a paging entry are reserved (SDM Vol. 3A Table 4-14..4-20).
constexpr uint64_t kRsvdHigh = ((1ull << 52) - 1) & ~((1ull << kMaxPhysAddrBits) - 1);
constexpr uint64_t kPteP = 1, kPteW = 2, kPteU = 4, kPteA = 1u << 5, kPteD = 1u << 6,
                   kPtePS = 1u << 7, kPteG = 1u << 8, kPteNX = 1ull << 63;
constexpr uint64_t k4G = 1ull << 32;
}  // namespace

bool Core::translate(uint64_t la, Acc acc, bool user, uint64_t& gpa, TlbEntry* fill) {
  // A non-canonical linear address is #GP(0) (SDM Vol. 3A §3.3.7.1); stack users convert
  // it to #SS(0).
  if (!is_canonical(la)) {
    gp(0);
    noncanonical_fault = true;
    return false;
  }
  uint64_t phys = 0;
  unsigned levels = 0;
  uint64_t ent[4] = {};
  if (!(cr0 & cr0::PG)) {
    // Paging off (real mode, or protected mode before CR0.PG): the linear address is the
    // physical one (SDM Vol. 3A §4.1.1); linear addresses are 32 bits wide there.
    phys = la & 0xffffffffull;
    goto translated;
  }
  if (!(efer & efer::LMA)) {
    // 32-bit and PAE paging are not modelled: every guest the project runs goes from
    // paging off straight to IA-32e paging (core/README.md "Legacy modes").
    stop_with(StopReason::Unsupported,
              fmt::format("vCPU {}: CR0.PG=1 without EFER.LMA (32-bit or PAE paging) is not "
                          "supported; pvsim models paging off and 4-level paging only (rip {:#x})",
                          cfg.index, rip));
    return false;
  }
  {
  const bool nxe = efer & efer::NXE;
  const uint32_t ec_base = (acc == Acc::Write ? pfec::W : 0) | (user ? pfec::U : 0) |
                           (acc == Acc::Fetch && nxe ? pfec::ID : 0);
  uint64_t table = cr3 & kPhysAddrMask;
  uint8_t* ent_host[4] = {};
  uint64_t ent_gpa[4] = {};
  bool u_ok = true, w_ok = true, x_ok = true;
  for (unsigned level = 4; level >= 1; --level) {
    const unsigned shift = 12 + 9 * (level - 1);
    const uint64_t egpa = table | (((la >> shift) & 511) << 3);
    uint8_t* h = mem.host_ptr(Gpa(egpa), 8);
    if (!h) {
      stop_with(StopReason::IoError,
                fmt::format("page table at GPA {:#x} outside RAM (walking linear address {:#x}, "
                            "level {}, rip {:#x})",
                            egpa, la, level, rip));
      return false;
    }
    // Paging-structure read: EPT qualification bit 0 (read), bit 7 (linear address
    // valid), bit 8 clear (not the final translation) — SDM Vol. 3C Table 28-7.
    if (!ept_check(egpa, 0x1 | 0x80)) return false;
    const uint64_t e = load_le(h, 8);
    if (!(e & kPteP)) return raise(kPF, true, ec_base, la);
    const bool leaf = level == 1 || ((level == 2 || level == 3) && (e & kPtePS));
    bool rsvd = (e & kRsvdHigh) || (!nxe && (e & kPteNX));
    if (level == 4 && (e & kPtePS)) rsvd = true;
    if (level == 3 && leaf && (e & 0x3fffe000ull)) rsvd = true;  // 1 GiB: bits 29:13
    if (level == 2 && leaf && (e & 0x1fe000ull)) rsvd = true;    // 2 MiB: bits 20:13
    if (rsvd) return raise(kPF, true, ec_base | pfec::P | pfec::RSVD, la);
    u_ok = u_ok && (e & kPteU);
    w_ok = w_ok && (e & kPteW);
    if (nxe && (e & kPteNX)) x_ok = false;
    ent_host[levels] = h;
    ent_gpa[levels] = egpa;
    ent[levels] = e;
    ++levels;
    if (leaf) {
      const uint64_t psize = 1ull << shift;
      phys = ((e & kPhysAddrMask) & ~(psize - 1)) | (la & (psize - 1));
      break;
    }
    table = e & kPhysAddrMask;
  }
  // Access rights (SDM Vol. 3A §4.6): user accesses need U at every level; writes need
  // R/W at every level for users, and for supervisors when CR0.WP=1; fetches need XD=0.
  const uint32_t ec = ec_base | pfec::P;
  if (user && !u_ok) return raise(kPF, true, ec, la);
  if (acc == Acc::Write && !w_ok && (user || (cr0 & cr0::WP))) return raise(kPF, true, ec, la);
  if (acc == Acc::Fetch && !x_ok) return raise(kPF, true, ec, la);

  // Accessed bits on every level, Dirty on the leaf for writes (SDM Vol. 3A §4.8), written
  // to guest memory so code-page tracking sees them.
  for (unsigned k = 0; k < levels; ++k) {
    uint64_t want = ent[k] | kPteA;
    if (k == levels - 1 && acc == Acc::Write) want |= kPteD;
    if (want != ent[k]) {
      const bool code = mem.is_code_page(ent_gpa[k] >> 12);
      mem.prepare_page(ent_gpa[k] >> 12);  // snapshots: save the page before it changes
      store_le(ent_host[k], 8, want);
      mem.note_write(Gpa(ent_gpa[k]), 8);
      if (code) brk = true;
      ent[k] = want;
    }
  }
  }
translated:
  gpa = phys;
  if (phys < mem.size()) {
    static constexpr uint64_t kQual[3] = {0x1, 0x2, 0x4};
    if (!ept_check(phys, kQual[static_cast<unsigned>(acc)] | 0x80 | 0x100)) return false;
    // No write entry for a code page (stores must bump its generation) and no entry of
    // the watched kind for a watched page (its accesses must reach the watch check in
    // access_slow / GuestMemory::note_write).
    if (fill && !(acc == Acc::Write && mem.is_code_page(phys >> 12)) &&
        !(acc != Acc::Fetch && mem.watch_page(phys >> 12, acc == Acc::Write ? GuestMemory::WatchAccess::Write
                                                                            : GuestMemory::WatchAccess::Read))) {
      const uint64_t page = phys & ~0xfffull;
      const bool write_tlb = fill >= tlb[1] && fill < tlb[2];
      // A write-TLB entry lets stores bypass GuestMemory: save the page for an open
      // snapshot first (GuestMemory::prepare_page; checkpoints drop these entries).
      if (write_tlb) mem.prepare_page(phys >> 12);
      fill->tag = write_tlb ? tlb_wkey(la) : tlb_key(la);
      fill->host = mem.base() + page;
      const bool global = levels && (ent[levels - 1] & kPteG) && (cr4 & cr4::PGE);
      tlb_glob[fill - tlb[0]] = global;
      tlb_has_global = tlb_has_global || global;
    }
  }
  return true;
}

bool Core::ept_violation(uint64_t gpa, uint64_t qual) {
  // Real KVM with EPT: an access to a page the EPT does not map exits (reason 48);
  // kvm_page_fault carries the exit qualification as its error code (handle_ept_violation).
  // What the host does next is the platform's (Vcpu::set_ept_hook): map it, stall while it
  // is fetched, inject an async PF, or halt the vCPU (core/README.md "EPT model and host
  // memory").
  // A host-side walk (Vcpu::write_linear, KVM's emulator) reads and writes guest memory
  // through the host's mappings: no exit.
  if (host_walk) return true;
  exit_event(now(), VmxExitReason::EptViolation, qual, 0);
  tracer.kvm_page_fault(now(), cfg.index, trace_rip(rip), gpa, qual);
  cycles += kVmExitCycles;
  const uint64_t pfn = gpa >> 12;
  Vcpu::EptResult r;
  if (ept_hook) {
    Vcpu::EptFault f;
    f.gpa = Gpa(gpa);
    f.qualification = qual;
    f.cpl = cpl;
    // An access always happens inside an instruction (or a delivery), where `insns` is exact
    // (the threaded path syncs before any TLB miss, fast.cpp): the STI / MOV SS shadow covers
    // exactly the instruction at inhibit_at.
    f.interrupts_allowed = (rf & fl::IF) && insns != inhibit_at;
    f.event_delivery = in_delivery;
    r = ept_hook(vcpu, f);
  }
  switch (r.action) {
    case Vcpu::EptAction::Map:
      mem.ept_map(pfn);
      break;
    case Vcpu::EptAction::Stall:
      // The vCPU thread sleeps in the host while the page is read in: its time passes and
      // it runs nothing (the hook traced the stall).
      mem.ept_map(pfn);
      cycles += ns_to_cycles(r.stall_ns, cfg.tsc_hz);
      break;
    case Vcpu::EptAction::InjectPageFault:
      // kvm_arch_async_page_not_present queued #PF(0) with CR2 = token; the entry that ends
      // this exit services requests, injects it and resumes at the faulting instruction,
      // which the guest retries after its handler returns.
      np_queued = true;
      np_merged = false;
      entry_requests();
      np_queued = false;
      if (np_merged) {
        // The entry hook queued an exception on top of it and the two became one (#DF,
        // kvm_multiple_exception; only KVM's historic apf_ready_on_pending_pf bug does
        // this, pvmsr/README.md §2.5): that one is delivered instead, already traced.
        inject_pending = false;
        enter_guest(rip);
        raise(inject_fault.vector, inject_fault.has_error, inject_fault.error, inject_fault.cr2);
        fault.injected = true;
        return false;
      }
      tracer.kvm_inj_exception(now(), cfg.index, kPF, true, 0, false);
      enter_guest(rip);
      raise(kPF, true, 0, r.token);
      fault.injected = true;
      return false;
    case Vcpu::EptAction::Halt:
      // KVM_REQ_APF_HALT: the vCPU blocks without executing the instruction; the exit stays
      // open until something wakes it (kvm_entry then, at the same RIP).
      halted = true;
      entry_pending = true;
      abandoned = true;
      stop_with(StopReason::Halted, {});
      return false;
  }
  // A synchronous fetch may have made the host evict other pages (a resident-set limit):
  // drop every translation, and leave the current block, which may lie on one of them.
  if (mem.host_unmap_epoch() != unmap_epoch_seen) {
    unmap_epoch_seen = mem.host_unmap_epoch();
    tlb_flush_all();
    brk = true;
  }
  // The exit this violation opened ends here; an exit of the instruction's own that was
  // already open (entry_pending) stays open.
  enter_guest(rip);
  return true;
}

bool Core::access_slow(uint64_t la, unsigned size, uint64_t* v, Acc acc, bool supervisor) {
  const bool user = !supervisor && cpl == 3;
  // Implicit supervisor accesses from CPL 3 must not leave TLB entries the user could hit;
  // with alignment checking on, user data accesses must keep coming here.
  const bool can_fill = !(supervisor && cpl == 3) && !(ac_check && acc != Acc::Fetch);
  if (ac_check && user && acc != Acc::Fetch && (la & (size - 1)) != 0) return raise(kAC, true, 0);
  const unsigned ti = static_cast<unsigned>(acc);
  const uint64_t off = la & 0xfff;
  uint64_t gpa[2];
  unsigned part[2];
  unsigned nparts = 1;
  part[0] = size;
  if (off + size > 4096) {
    nparts = 2;
    part[0] = static_cast<unsigned>(4096 - off);
    part[1] = size - part[0];
  }
  // Translate every page before touching memory, so a fault leaves nothing half-written.
  uint64_t cur = la;
  for (unsigned k = 0; k < nparts; ++k) {
    TlbEntry* fe = can_fill ? &tlb[ti][(cur >> 12) & kTlbMask] : nullptr;
    if (!translate(cur, acc, user, gpa[k], fe)) return false;
    cur = (cur & ~0xfffull) + 4096;
  }
  // Common case: one page of RAM, natural size (a TLB miss or a code-page store).
  if (nparts == 1 && (size == 1 || size == 2 || size == 4 || size == 8)) {
    if (uint8_t* h = mem.host_ptr(Gpa(gpa[0]), size)) {
      if (acc == Acc::Write) {
        const bool code = mem.is_code_page(gpa[0] >> 12);
        mem.prepare_write(Gpa(gpa[0]), size);
        store_le(h, size, *v);
        mem.note_write(Gpa(gpa[0]), size);
        if (code) brk = true;  // the current block may hold stale decodes of this page
      } else {
        *v = load_le(h, size);
        mem.watch_read(gpa[0], size);
      }
      return true;
    }
  }
  uint8_t bytes[8] = {};
  if (acc == Acc::Write) store_le(bytes, 8, *v);
  unsigned done = 0;
  for (unsigned k = 0; k < nparts; ++k) {
    const uint64_t g = gpa[k];
    const unsigned n = part[k];
    if (uint8_t* h = mem.host_ptr(Gpa(g), n)) {
      if (acc == Acc::Write) {
        const bool code = mem.is_code_page(g >> 12);
        mem.prepare_write(Gpa(g), n);
        std::memcpy(h, bytes + done, n);
        mem.note_write(Gpa(g), n);
        if (code) brk = true;  // the current block may hold stale decodes of this page
      } else {
        std::memcpy(bytes + done, h, n);
        mem.watch_read(g, n);
      }
    } else if (g < k4G && g + n <= k4G) {
      // Outside RAM below 4 GiB: the platform's MMIO space (LAPIC page, holes).
      const bool natural = n == 1 || n == 2 || n == 4 || n == 8;
      for (unsigned b = 0; b < n; b += natural ? n : 1) {
        const unsigned sz = natural ? n : 1;
        IoStatus st;
        if (acc == Acc::Write) {
          st = env.mmio_write(vcpu, Gpa(g + b), sz, load_le(bytes + done + b, sz));
        } else {
          uint64_t val = 0;
          st = env.mmio_read(vcpu, Gpa(g + b), sz, val);
          store_le(bytes + done + b, sz, val);
        }
        if (st == IoStatus::Retry && acc == Acc::Read) {
          // A time-gated register (CpuEnv IoStatus::Retry). Explicit reads come before
          // any write of the same instruction (RMW forms read first; probe_write only
          // translates), so abandoning here undoes nothing; REP string instructions keep
          // the elements already done, as when hardware interrupts a REP between
          // iterations. Implicit reads (descriptor tables, TSS) happen mid-delivery or
          // after an instruction's own reads and cannot be restarted cleanly: a guest
          // that puts such a table on a time-gated register is stopped instead.
          if (!supervisor) return abandon();
          stop_with(StopReason::IoError,
                    fmt::format("time-gated MMIO read at GPA {:#x} by an implicit "
                                "(descriptor table / TSS) access, rip {:#x}",
                                g + b, rip));
          return false;
        }
        if (st != IoStatus::Ok) {
          stop_with(StopReason::IoError,
                    fmt::format("unhandled MMIO {} at GPA {:#x}, size {}, rip {:#x}",
                                acc == Acc::Write ? "write" : "read", g + b, sz, rip));
          return false;
        }
      }
    } else {
      stop_with(StopReason::IoError,
                fmt::format("{} of {} bytes at GPA {:#x} outside RAM (linear {:#x}, rip {:#x})",
                            acc == Acc::Write ? "write" : "read", n, g, la, rip));
      return false;
    }
    done += n;
  }
  if (acc != Acc::Write) *v = load_le(bytes, size);
  return true;
}

LinearAccess Core::write_linear(uint64_t la, const uint8_t* src, size_t len, GuestException& out) {
  // emulator_write_emulated -> emulator_read_write: page by page, each page translated
  // (vcpu_mmio_gva_to_gpa: write access, user when CPL is 3) and written before the next.
  const bool user = cpl == 3;
  size_t done = 0;
  while (done < len) {
    const uint64_t cur = la + done;
    const size_t n = std::min<size_t>(len - done, 4096 - (cur & 0xfff));
    uint64_t gpa = 0;
    host_walk = true;
    const bool ok = translate(cur, Acc::Write, user, gpa, nullptr);
    host_walk = false;
    if (!ok) {
      if (stop != StopReason::None) return LinearAccess::Stopped;
      out = GuestException{fault.vector, fault.has_error, fault.error, fault.cr2};
      fault_pending = false;
      noncanonical_fault = false;
      return LinearAccess::Fault;
    }
    uint8_t* h = mem.host_ptr(Gpa(gpa), n);
    if (!h) {
      stop_with(StopReason::IoError,
                fmt::format("hypervisor write of {} bytes at GPA {:#x} outside RAM (linear {:#x}, "
                            "rip {:#x})",
                            n, gpa, cur, rip));
      return LinearAccess::Stopped;
    }
    mem.prepare_write(Gpa(gpa), n);
    std::memcpy(h, src + done, n);
    mem.note_write(Gpa(gpa), n);  // decoded blocks of a code page die
    brk = true;
    done += n;
  }
  return LinearAccess::Ok;
}

bool Core::probe_write(uint64_t la, unsigned size) {
  uint64_t cur = la;
  const uint64_t last = la + size - 1;
  for (;;) {
    TlbEntry& e = tlb[1][(cur >> 12) & kTlbMask];
    if (e.tag != tlb_wkey(cur)) {
      uint64_t g;
      if (!translate(cur, Acc::Write, cpl == 3, g, ac_check ? nullptr : &e)) return false;
    }
    if ((cur >> 12) == (last >> 12)) break;
    cur = (cur & ~0xfffull) + 4096;
  }
  return true;
}

void Core::tlb_flush_all() {
  tlb_has_global = false;
  tlb_salt += 1ull << 52;
  if ((tlb_salt >> 52) == 0xfff) {
    tlb_salt = 1ull << 52;
    std::memset(tlb[0], 0, kTlbSize * sizeof(TlbEntry));
    std::memset(tlb[2], 0, kTlbSize * sizeof(TlbEntry));
  }
  tlb_flush_write();
}

void Core::tlb_flush_write() {
  tlb_wsalt += 1ull << 52;
  if ((tlb_wsalt >> 52) == 0xfff) {
    tlb_wsalt = 1ull << 52;
    std::memset(tlb[1], 0, kTlbSize * sizeof(TlbEntry));
  }
}

// CR3 write while global entries exist (SDM Vol. 3A §4.10.4.1): the only O(size) flush.
void Core::tlb_flush_nonglobal() {
  if (!tlb_has_global) return tlb_flush_all();
  for (unsigned k = 0; k < 3 * kTlbSize; ++k)
    if (!tlb_glob[k]) tlb[0][k].tag = 0;
}

void Core::tlb_drop_reads_of(const std::vector<uint64_t>& pfns) {
  if (pfns.empty()) return;
  TlbEntry* tab = tlb[0];
  for (unsigned k = 0; k < kTlbSize; ++k) {
    TlbEntry& e = tab[k];
    if (e.tag == 0) continue;
    const uint64_t pfn = tlb_gpa(e) >> 12;
    if (std::find(pfns.begin(), pfns.end(), pfn) != pfns.end()) e.tag = 0;
  }
}

void Core::tlb_flush_page(uint64_t la) {
  for (unsigned t = 0; t < 3; ++t) {
    TlbEntry& e = tlb[t][(la >> 12) & kTlbMask];
    if (e.tag == (t == 1 ? tlb_wkey(la) : tlb_key(la))) e.tag = 0;
  }
}

}  // namespace pvsim::cpu
