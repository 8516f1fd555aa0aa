/* bytecode_algo.h - a tiny register-machine interpreter (switch dispatch: one indirect jump
 * per byte-code, the classic interpreter workload) running a Collatz step-count program.
 * Shared with tests/guest/bench_check.c. */
#pragma once

#include <stdint.h>

enum bc_op {
    BC_LI,   /* r[a] = imm */
    BC_ADDI, /* r[a] = r[b] + imm */
    BC_ANDI, /* r[a] = r[b] & imm */
    BC_SHRI, /* r[a] = r[b] >> imm */
    BC_MULI, /* r[a] = r[b] * imm */
    BC_ADD,  /* r[a] = r[b] + r[c] */
    BC_MOV,  /* r[a] = r[b] */
    BC_JZ,   /* if r[a] == 0: pc = imm */
    BC_JNZ,  /* if r[a] != 0: pc = imm */
    BC_JMP,  /* pc = imm */
    BC_HALT, /* result = r[a] */
};

struct bc_insn {
    uint8_t op, a, b, c;
    int32_t imm;
};

#define BC_LIMIT 30000
/* From bench_check (host-native run of bc_run()); re-verified by ctest guest.host.bench. */
#define BC_EXPECTED 0x00000000002bb4b7ull

/* Sum over n = BC_LIMIT .. 1 of the number of Collatz steps from n to 1. */
static const struct bc_insn bc_program[] = {
    /* 0 */ {BC_LI, 0, 0, 0, BC_LIMIT}, /* r0 = n */
    /* 1 */ {BC_LI, 1, 0, 0, 0},        /* r1 = total steps */
    /* 2 */ {BC_MOV, 2, 0, 0, 0},       /* loop_n: r2 = x = n */
    /* 3 */ {BC_ADDI, 3, 2, 0, -1},     /* loop_x: r3 = x - 1 */
    /* 4 */ {BC_JZ, 3, 0, 0, 13},       /* x == 1: done_x */
    /* 5 */ {BC_ANDI, 4, 2, 0, 1},      /* r4 = x & 1 */
    /* 6 */ {BC_JNZ, 4, 0, 0, 9},       /* odd */
    /* 7 */ {BC_SHRI, 2, 2, 0, 1},      /* even: x >>= 1 */
    /* 8 */ {BC_JMP, 0, 0, 0, 10},
    /* 9 */ {BC_MULI, 2, 2, 0, 3},      /* odd: x *= 3 */
    /* 10 */ {BC_ADDI, 1, 1, 0, 1},     /* steps++ */
    /* 11 */ {BC_ADD, 2, 2, 4, 0},      /* x += x_was_odd: the "+1" of 3x+1 */
    /* 12 */ {BC_JMP, 0, 0, 0, 3},
    /* 13 */ {BC_ADDI, 0, 0, 0, -1},    /* done_x: n-- */
    /* 14 */ {BC_JNZ, 0, 0, 0, 2},
    /* 15 */ {BC_HALT, 1, 0, 0, 0},
};

static inline uint64_t bc_run(const struct bc_insn* program, uint64_t* executed)
{
    uint64_t r[8] = {0};
    uint32_t pc = 0;
    uint64_t count = 0;
    for (;;) {
        const struct bc_insn* in = &program[pc++];
        ++count;
        switch ((enum bc_op)in->op) {
        case BC_LI: r[in->a & 7] = (uint64_t)(int64_t)in->imm; break;
        case BC_ADDI: r[in->a & 7] = r[in->b & 7] + (uint64_t)(int64_t)in->imm; break;
        case BC_ANDI: r[in->a & 7] = r[in->b & 7] & (uint64_t)(int64_t)in->imm; break;
        case BC_SHRI: r[in->a & 7] = r[in->b & 7] >> (in->imm & 63); break;
        case BC_MULI: r[in->a & 7] = r[in->b & 7] * (uint64_t)(int64_t)in->imm; break;
        case BC_ADD: r[in->a & 7] = r[in->b & 7] + r[in->c & 7]; break;
        case BC_MOV: r[in->a & 7] = r[in->b & 7]; break;
        case BC_JZ: if (r[in->a & 7] == 0) pc = (uint32_t)in->imm; break;
        case BC_JNZ: if (r[in->a & 7] != 0) pc = (uint32_t)in->imm; break;
        case BC_JMP: pc = (uint32_t)in->imm; break;
        case BC_HALT: *executed = count; return r[in->a & 7];
        default: *executed = count; return ~0ull; /* corrupt program */
        }
    }
}
