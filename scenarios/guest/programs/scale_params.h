/* scale_params.h - work per vCPU of the scale program (scale.c), shared with the host check
 * tests/platform/scale_check_test.cpp, which recomputes SCALE_EXPECTED natively. */
#pragma once

/* alu_run() iterations per vCPU: about 16 instructions each at -O2, so 8e6 per vCPU and 5e8
 * for 64 vCPUs (the ALU benchmark itself runs 2e7 iterations on one vCPU). */
#define SCALE_ITERATIONS 500000u
/* alu_run(SCALE_ITERATIONS) on the host; ctest "platform/scale guest: ..." recomputes it. */
#define SCALE_EXPECTED 0x5ed96f8489fa5bdcull
