// tests/oracle/test_oracle.cpp — pvsim's CPU core against Unicorn, one instruction at a time.
//
// Every form in forms.cpp runs PVSIM_ORACLE_CASES (default 100000) random cases from a
// seeded splitmix64 stream: random GPRs, random CF PF AF ZF SF OF (DF = 0), random data
// memory; both engines execute the one instruction; all 16 GPRs, RIP, RFLAGS and the data
// window must match exactly, except the architecturally undefined flags/results listed in
// flag_rules.h (the single table, with SDM references). A mismatch prints a reproducer:
// form, seed, case number, instruction bytes, full input state, and each differing value.
//
// Re-run one family:  ./pvsim_oracle_tests "[shift]"
// Fewer cases:        PVSIM_ORACLE_CASES=2000 ./pvsim_oracle_tests
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tests/oracle/forms.h"
#include "tests/oracle/harness.h"

using namespace pvsim::oracle;

namespace {

void check_forms(const std::vector<Form>& forms) {
  REQUIRE_FALSE(forms.empty());
  const uint64_t cases = oracle_case_count();
  for (const Form& f : forms) {
    const FormReport rep = shared_rig().run_form(f, oracle_seed_for(f.name), cases);
    CHECK(rep.cases == cases);
    if (rep.mismatches != 0) {
      std::string msg = f.name + ": " + std::to_string(rep.mismatches) + " of " +
                        std::to_string(rep.cases) + " cases differ from Unicorn\n";
      for (const std::string& s : rep.samples) msg += s;
      FAIL_CHECK(msg);
    }
  }
}

}  // namespace

TEST_CASE("ADD", "[oracle][alu]") { check_forms(alu_forms(0)); }
TEST_CASE("OR", "[oracle][alu]") { check_forms(alu_forms(1)); }
TEST_CASE("ADC", "[oracle][alu]") { check_forms(alu_forms(2)); }
TEST_CASE("SBB", "[oracle][alu]") { check_forms(alu_forms(3)); }
TEST_CASE("AND", "[oracle][alu]") { check_forms(alu_forms(4)); }
TEST_CASE("SUB", "[oracle][alu]") { check_forms(alu_forms(5)); }
TEST_CASE("XOR", "[oracle][alu]") { check_forms(alu_forms(6)); }
TEST_CASE("CMP", "[oracle][alu]") { check_forms(alu_forms(7)); }
TEST_CASE("TEST", "[oracle][alu]") { check_forms(test_forms()); }
TEST_CASE("INC DEC NOT NEG", "[oracle][alu]") { check_forms(inc_dec_neg_not_forms()); }

TEST_CASE("ROL", "[oracle][shift]") { check_forms(shift_forms(0)); }
TEST_CASE("ROR", "[oracle][shift]") { check_forms(shift_forms(1)); }
TEST_CASE("RCL", "[oracle][shift]") { check_forms(shift_forms(2)); }
TEST_CASE("RCR", "[oracle][shift]") { check_forms(shift_forms(3)); }
TEST_CASE("SHL", "[oracle][shift]") { check_forms(shift_forms(4)); }
TEST_CASE("SHR", "[oracle][shift]") { check_forms(shift_forms(5)); }
TEST_CASE("SAR", "[oracle][shift]") { check_forms(shift_forms(7)); }
TEST_CASE("SHLD SHRD", "[oracle][shift]") { check_forms(double_shift_forms()); }

TEST_CASE("MUL IMUL", "[oracle][muldiv]") { check_forms(mul_forms()); }
TEST_CASE("DIV IDIV", "[oracle][muldiv]") { check_forms(div_forms()); }

TEST_CASE("BT BTS BTR BTC", "[oracle][bit]") { check_forms(bit_test_forms()); }
TEST_CASE("BSF BSR TZCNT LZCNT POPCNT", "[oracle][bit]") { check_forms(bit_scan_forms()); }

TEST_CASE("CMOVcc", "[oracle][cond]") { check_forms(cmov_forms()); }
TEST_CASE("SETcc", "[oracle][cond]") { check_forms(setcc_forms()); }

TEST_CASE("MOVZX MOVSX MOVSXD", "[oracle][move]") { check_forms(move_extend_forms()); }
TEST_CASE("BSWAP XCHG XADD CMPXCHG", "[oracle][move]") { check_forms(exchange_forms()); }
TEST_CASE("CBW CWDE CDQE CWD CDQ CQO", "[oracle][move]") { check_forms(convert_forms()); }
TEST_CASE("LEA", "[oracle][addr]") { check_forms(lea_forms()); }
TEST_CASE("address-size override", "[oracle][addr]") { check_forms(addr32_forms()); }
