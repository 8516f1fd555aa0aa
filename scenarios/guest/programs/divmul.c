/* divmul - 64/32-bit division, modulo and multiplication with known answers.
 * The C results are compared with a table the host produced from the same code
 * (divmul_algo.h -> divmul_expected.h); the one-operand MUL/IMUL forms that give 128-bit
 * products are also run by inline assembly; and the cases C leaves undefined (divide by
 * zero, INT_MIN / -1, quotient overflow) are run by inline assembly and must raise #DE
 * (SDM Vol.2A "DIV"/"IDIV": "#DE If the source operand (divisor) is 0. If the quotient is
 * too large for the designated register"), leaving RAX/RDX untouched and RIP at the DIV
 * (a fault, SDM Vol.3A 6.5). */
#include "desc.h"
#include "divmul_expected.h"
#include "libc.h"
#include "report.h"

static void check_case(unsigned i)
{
    struct divmul_input in = divmul_case(i);
    struct divmul_result r;
    memset(&r, 0, sizeof r);
    divmul_compute(in, &r);
    const struct divmul_result* e = &divmul_expected[i];

    /* MUL r/m64 and IMUL r/m64: RDX:RAX = RAX * src (SDM Vol.2A "MUL", "IMUL" one-operand form). */
    uint64_t lo_u, hi_u, lo_s, hi_s;
    __asm__ volatile("mulq %[b]" : "=a"(lo_u), "=d"(hi_u) : "a"(in.a), [b] "r"(in.b) : "cc");
    __asm__ volatile("imulq %[b]" : "=a"(lo_s), "=d"(hi_s) : "a"(in.a), [b] "r"(in.b) : "cc");

    char bad[160];
    int n = 0;
    bad[0] = '\0';
#define FIELD(cond, name)                                                                                    \
    if (!(cond) && n < (int)sizeof(bad) - 16)                                                                \
        n += snprintf(bad + n, sizeof(bad) - (size_t)n, " %s", name);
    FIELD(r.uq == e->uq, "div-q")
    FIELD(r.ur == e->ur, "div-r")
    FIELD(r.sq == e->sq, "idiv-q")
    FIELD(r.sr == e->sr, "idiv-r")
    FIELD(r.uq32 == e->uq32, "div32-q")
    FIELD(r.ur32 == e->ur32, "div32-r")
    FIELD(r.sq32 == e->sq32, "idiv32-q")
    FIELD(r.sr32 == e->sr32, "idiv32-r")
    FIELD(r.mul_lo == e->mul_lo, "imul2")
    FIELD(r.umul_hi == e->umul_hi, "u128-hi")
    FIELD(r.smul_hi == e->smul_hi, "s128-hi")
    FIELD(lo_u == e->mul_lo && hi_u == e->umul_hi, "mul1")
    FIELD(lo_s == e->mul_lo && hi_s == (uint64_t)e->smul_hi, "imul1")
#undef FIELD
    report(n == 0, "case %2u a=0x%016lx b=0x%016lx%s%s", i, in.a, in.b, n ? " wrong:" : "", bad);
}

/* One guarded divide: "lea" records the address of the DIV so the fault RIP can be checked;
 * the exception-table entry resumes after it with RAX/RDX as the fault left them. */
#define DEFINE_TRY_DIV(name, insn, dtype)                                                                    \
    static unsigned name(uint64_t* rax, uint64_t* rdx, dtype divisor, uint64_t* insn_rip)                   \
    {                                                                                                        \
        uint64_t a = *rax, d = *rdx, rip;                                                                    \
        fixup_status = 0;                                                                                    \
        __asm__ volatile("lea 1f(%%rip), %[rip]\n"                                                           \
                         "1: " insn " %[div]\n"                                                              \
                         "2:\n\t" EX_TABLE_ENTRY("1b", "2b")                                                 \
                         : "+a"(a), "+d"(d), [rip] "=&r"(rip)                                                \
                         : [div] "q"(divisor)                                                                \
                         : "memory", "cc");                                                                  \
        *rax = a;                                                                                            \
        *rdx = d;                                                                                            \
        *insn_rip = rip;                                                                                     \
        return fixup_status;                                                                                 \
    }
DEFINE_TRY_DIV(try_divq, "divq", uint64_t)
DEFINE_TRY_DIV(try_idivq, "idivq", uint64_t)
DEFINE_TRY_DIV(try_divl, "divl", uint32_t)
DEFINE_TRY_DIV(try_idivl, "idivl", uint32_t)
DEFINE_TRY_DIV(try_divb, "divb", uint8_t)

enum div_kind { DIVQ, IDIVQ, DIVL, IDIVL, DIVB };

struct de_case {
    const char* what;
    enum div_kind kind;
    uint64_t rax, rdx, divisor;
    int faults;                    /* expect #DE */
    uint64_t out_rax, out_rdx;     /* results when it does not fault */
};

static const struct de_case de_cases[] = {
    {"divq by zero", DIVQ, 1234, 0, 0, 1, 0, 0},
    {"idivq INT64_MIN / -1", IDIVQ, 0x8000000000000000ull, 0xffffffffffffffffull, 0xffffffffffffffffull, 1, 0, 0},
    {"divq quotient overflow (RDX >= divisor)", DIVQ, 0, 5, 3, 1, 0, 0},
    {"idivl INT32_MIN / -1", IDIVL, 0x80000000ull, 0xffffffffull, 0xffffffffull, 1, 0, 0},
    {"divl by zero", DIVL, 7, 0, 0, 1, 0, 0},
    {"divb quotient overflow (0x1000 / 0x10)", DIVB, 0x1000, 0, 0x10, 1, 0, 0},
    /* Non-faulting controls for the same paths: the 128-bit dividend RDX:RAX is used. */
    {"divq 2^64 / 2", DIVQ, 0, 1, 2, 0, 0x8000000000000000ull, 0},
    {"idivq -7 / 2", IDIVQ, (uint64_t)-7, 0xffffffffffffffffull, 2, 0, (uint64_t)-3, (uint64_t)-1},
    {"idivl -7 / 2 (writes EAX/EDX, zero-extends)", IDIVL, 0xfffffff9ull, 0xffffffffull, 2, 0, 0xfffffffdull,
     0xffffffffull},
    {"divb 0x1234 / 0x56 (AL = quotient, AH = remainder)", DIVB, 0x1234, 0, 0x56, 0, 0x1036, 0},
};

static void check_de_case(const struct de_case* c)
{
    uint64_t rax = c->rax, rdx = c->rdx, rip = 0;
    unsigned status = 0;
    switch (c->kind) {
    case DIVQ: status = try_divq(&rax, &rdx, c->divisor, &rip); break;
    case IDIVQ: status = try_idivq(&rax, &rdx, c->divisor, &rip); break;
    case DIVL: status = try_divl(&rax, &rdx, (uint32_t)c->divisor, &rip); break;
    case IDIVL: status = try_idivl(&rax, &rdx, (uint32_t)c->divisor, &rip); break;
    case DIVB: status = try_divb(&rax, &rdx, (uint8_t)c->divisor, &rip); break;
    }
    if (c->faults) {
        report(status == (FIXUP_HIT | DE_VECTOR) && last_fault.rip == rip && last_fault.error_code == 0 &&
                   rax == c->rax && rdx == c->rdx,
               "%s: #DE (status 0x%x, rip 0x%lx expected 0x%lx, rax 0x%lx rdx 0x%lx unchanged)", c->what, status,
               last_fault.rip, rip, rax, rdx);
    } else {
        report(status == 0 && rax == c->out_rax && rdx == c->out_rdx,
               "%s: no fault, rax 0x%lx rdx 0x%lx (expected 0x%lx 0x%lx)", c->what, rax, rdx, c->out_rax,
               c->out_rdx);
    }
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)cpu, (void)ncpus, (void)ram_bytes;
    report_prefix_push("table");
    for (unsigned i = 0; i < DIVMUL_CASE_COUNT; ++i)
        check_case(i);
    report_prefix_pop();
    report_prefix_push("asm");
    for (unsigned i = 0; i < sizeof(de_cases) / sizeof(de_cases[0]); ++i)
        check_de_case(&de_cases[i]);
    report_prefix_pop();
    report_summary();
}
