// tests/oracle/forms.h — the instruction forms under differential test, by family.
// Each family expands to every operand size the SDM defines (8/16/32/64 where they exist)
// and to register and memory forms.
#pragma once
#include <vector>

#include "tests/oracle/form.h"

namespace pvsim::oracle {

// ADD OR ADC SBB AND SUB XOR CMP by their ModRM.reg / opcode-row number 0..7.
std::vector<Form> alu_forms(unsigned op);
std::vector<Form> test_forms();
std::vector<Form> inc_dec_neg_not_forms();
// ROL ROR RCL RCR SHL SHR SAR by ModRM.reg (6 is not generated).
std::vector<Form> shift_forms(unsigned ext);
std::vector<Form> double_shift_forms();
std::vector<Form> mul_forms();
std::vector<Form> div_forms();
std::vector<Form> bit_test_forms();
std::vector<Form> bit_scan_forms();
std::vector<Form> cmov_forms();
std::vector<Form> setcc_forms();
std::vector<Form> move_extend_forms();
std::vector<Form> exchange_forms();  // BSWAP XCHG XADD CMPXCHG
std::vector<Form> convert_forms();   // CBW CWDE CDQE CWD CDQ CQO
std::vector<Form> lea_forms();
std::vector<Form> addr32_forms();    // memory operands under the 0x67 prefix

// Outside 64-bit mode (CpuMode::Prot32 / Real16): the families above with 8/16/32-bit
// operands, plus what only exists there or needs its own setup.
std::vector<Form> legacy_alu_forms(CpuMode m);     // ALU, TEST, INC/DEC/NOT/NEG, INC/DEC 40+r
std::vector<Form> legacy_shift_forms(CpuMode m);   // ROL..SAR, SHLD/SHRD
std::vector<Form> legacy_muldiv_forms(CpuMode m);  // MUL IMUL DIV IDIV
std::vector<Form> legacy_bit_forms(CpuMode m);     // BT*, BSF BSR TZCNT LZCNT POPCNT
std::vector<Form> legacy_cond_forms(CpuMode m);    // CMOVcc SETcc
std::vector<Form> legacy_move_forms(CpuMode m);    // MOV MOVZX MOVSX XCHG BSWAP XADD CMPXCHG
                                                   // CBW..CDQ LEA
std::vector<Form> legacy_stack_forms(CpuMode m);   // PUSH POP
std::vector<Form> legacy_string_forms(CpuMode m);  // MOVS CMPS STOS LODS SCAS, REP/REPE/REPNE
std::vector<Form> legacy_bcd_forms(CpuMode m);     // DAA DAS AAA AAS AAM AAD SALC

}  // namespace pvsim::oracle
