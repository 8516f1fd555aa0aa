// tests/oracle/harness.h — runs one instruction form in pvsim and in Unicorn from the
// same random state and compares the results (16 GPRs, RIP, RFLAGS minus the bits
// flag_rules.h calls undefined, and the whole data window).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tests/oracle/form.h"

namespace pvsim::oracle {

struct FormReport {
  uint64_t cases = 0;
  uint64_t mismatches = 0;
  uint64_t expected_faults = 0;      // DIV/IDIV cases where both engines raised #DE
  std::vector<std::string> samples;  // reproducers of the first few mismatches
};

// Cases per form: PVSIM_ORACLE_CASES (default 100000). Seed: PVSIM_ORACLE_SEED mixed
// with the form name, so each form's stream is independent and reproducible.
uint64_t oracle_case_count();
// Cases per form outside 64-bit mode: PVSIM_ORACLE_LEGACY_CASES, default a quarter of
// oracle_case_count() so the prot32/real16 suites add about a third to the oracle's run
// time; PVSIM_ORACLE_LEGACY_CASES=100000 gives them the 64-bit suite's full count.
uint64_t oracle_legacy_case_count();
uint64_t oracle_seed_for(const std::string& form_name);

class DiffRig {
 public:
  DiffRig();
  ~DiffRig();
  DiffRig(const DiffRig&) = delete;
  DiffRig& operator=(const DiffRig&) = delete;

  FormReport run_form(const Form& f, uint64_t seed, uint64_t cases);

 private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// The process-wide rig (one 16 MiB guest; Unicorn engines are per form).
DiffRig& shared_rig();

}  // namespace pvsim::oracle
