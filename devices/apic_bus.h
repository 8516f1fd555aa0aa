// devices/apic_bus.h — the APIC bus: which local APICs receive an IPI (SDM Vol. 3A §11.6).
//
// Pure routing, no state: the platform describes every vCPU's APIC as an ApicTarget (in
// vCPU index order), asks route_ipi() who receives a request that a LocalApic put on
// InterruptSink::send_ipi, and hands the request to each receiver's
// LocalApic::receive_ipi() (which applies the delivery mode).
//
// Who receives what (SDM §11.4.7.2 "Local APIC State After It Has Been Software
// Disabled": the APIC "will respond normally to INIT, NMI, SMI, and SIPI messages"):
//   Fixed           every matching APIC that is software-enabled;
//   LowestPriority  exactly one software-enabled matching APIC, chosen by KVM's rule
//                   (route_ipi below); none if no matching APIC is software-enabled;
//   NMI, INIT, SIPI, SMI
//                   every matching APIC, software-enabled or not;
//   Reserved        nobody (LocalApic never sends it).
// A globally disabled APIC (IA32_APIC_BASE.EN = 0, §11.4.3) is absent: it receives nothing.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "devices/lapic.h"

namespace pvsim {

struct ApicTarget {
  ApicDestinationInfo info;
  // PPR of the target. Not consulted: KVM's lowest-priority rule (vector hashing, see
  // route_ipi) ignores priorities. Kept so the platform describes a target completely.
  uint32_t ppr = 0;
  bool enabled = true;  // software-enabled (SVR bit 8, §11.4.7.2)
  bool present = true;  // globally enabled (IA32_APIC_BASE.EN, §11.4.3)
};

// The ApicTarget describing `apic` now.
ApicTarget apic_target(const LocalApic& apic);

// Indices (ascending) of the targets that receive `req`. Destination matching is
// matches_destination() (§11.6.2, shorthands §11.6.1, x2APIC §11.12.9-10).
//
// LowestPriority (SDM §11.6.2.4 leaves the choice among equals to the implementation;
// pvsim follows KVM with its default vector_hashing=1, arch/x86/kvm/lapic.c
// __kvm_irq_delivery_to_apic): the candidates are the matching, software-enabled targets
// in index order; the receiver is candidate number (vector mod count). PPR and TPR play no
// part, so equal or different priorities give the same choice (the "tie rule" is the
// hash). An xAPIC-format physical destination 0xff (broadcast) with lowest priority is
// delivered as Fixed to all, as KVM does ("phys broadcast and lowest prio").
// Known difference: KVM's optimized map path (kvm_apic_map_get_dest_lapic) hashes over
// the bits of a logical destination mask, in bit order, and drops the interrupt when the
// chosen bit names no software-enabled APIC; pvsim always uses the candidate list above,
// which agrees with KVM whenever every bit of the mask names one enabled APIC and logical
// IDs ascend with the vCPU index (how Linux and the pvsim guest library assign them).
std::vector<unsigned> route_ipi(const IpiRequest& req, std::span<const ApicTarget> targets);

}  // namespace pvsim
