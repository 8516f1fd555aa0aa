/* pv_ipi.h - IPIs by hypercall (KVM_HC_SEND_IPI, CPUID 0x40000001 bit 11 PV_SEND_IPI).
 *
 * Sending a fixed IPI to k vCPUs through an xAPIC costs k ICR writes, each an exit (two
 * MMIO writes and a busy-bit read here); through x2APIC, k WRMSRs. One SEND_IPI hypercall
 * reaches up to 128 vCPUs with one exit (pv_ipi_pack.h says how the targets are packed).
 * Linux: kvm_send_ipi_mask / __send_ipi_mask in arch/x86/kernel/kvm.c.
 *
 * Linked only into the pv_* programs (pv.h). */
#pragma once

#include "pv.h"
#include "pv_ipi_pack.h"

/* Sends fixed interrupt `vector` to the vCPUs in `mask` (the caller's own bit included if
 * set) with one SEND_IPI per 128-ID window. The result says how many accepted. */
struct pv_ipi_result pv_send_ipi_mask(cpumask_t mask, uint8_t vector);

/* One raw SEND_IPI hypercall (a0..a3 as given). */
long pv_send_ipi_raw(uint64_t bits_lo, uint64_t bits_hi, uint32_t min, uint32_t icr);
