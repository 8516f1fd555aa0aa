// devices/apic_bus.cpp — IPI routing; see apic_bus.h. Section numbers are SDM Vol. 3A.
#include "devices/apic_bus.h"

namespace pvsim {

ApicTarget apic_target(const LocalApic& apic) {
  return {apic.destination_info(), apic.ppr(), apic.software_enabled(),
          apic.mode() != ApicMode::Disabled};
}

std::vector<unsigned> route_ipi(const IpiRequest& req, std::span<const ApicTarget> targets) {
  std::vector<unsigned> out;
  if (req.delivery == IpiDelivery::Reserved) return out;

  IpiDelivery mode = req.delivery;
  // KVM __kvm_irq_delivery_to_apic: a lowest-priority IPI to the xAPIC physical
  // broadcast ID is turned into a fixed one (there is no "lowest" among all). A self
  // shorthand never gets there (KVM delivers it to the source directly), and with one
  // candidate both modes pick the same APIC anyway.
  if (mode == IpiDelivery::LowestPriority && req.shorthand != Shorthand::Self &&
      req.dest_mode == DestMode::Physical && req.destination == 0xff)
    mode = IpiDelivery::Fixed;

  // Fixed and lowest priority need a software-enabled receiver (§11.4.7.2; KVM drops a
  // fixed interrupt at a disabled APIC in __apic_accept_irq and leaves disabled APICs out
  // of the lowest-priority candidates).
  const bool needs_sw_enable = mode == IpiDelivery::Fixed || mode == IpiDelivery::LowestPriority;
  for (unsigned i = 0; i < targets.size(); ++i) {
    const ApicTarget& t = targets[i];
    if (!t.present || (needs_sw_enable && !t.enabled)) continue;
    if (matches_destination(req, t.info)) out.push_back(i);
  }

  if (mode == IpiDelivery::LowestPriority && !out.empty()) {
    // KVM kvm_vector_to_index: the (vector % n)-th candidate in index order.
    const unsigned pick = out[req.vector % out.size()];
    out.assign(1, pick);
  }
  return out;
}

}  // namespace pvsim
