/* garbage - robustness guest: runs pseudo-random bytes as code, again and again.
 * It fills 64 KiB with pseudo-random bytes, then for GARBAGE_ROUNDS rounds jumps to a random
 * offset in them with every general register (RSP included) set to a random value. Each
 * exception the bytes raise lands in one handler on the IST1 stack (every gate is switched
 * to IST1, so even a wild RSP cannot turn delivery into a triple fault, SDM Vol.3A 6.14.5),
 * which starts the next round. The bytes may also do things that end the run another way:
 * halt with IF=0 (deadlock), spin (instruction limit), reload IDTR/GDTR/CR0/CR3 with junk
 * (triple fault / shutdown), write port 0xf4, or touch holes and ports (ignored by the
 * scenario). Every outcome must be a clean, deterministic report, never a host crash.
 * The seed mixes in the RAM size, so scenarios that differ only in RAM run different bytes. */
#include "desc.h"
#include "libc.h"
#include "prng.h"

#define GARBAGE_BYTES 65536
#define GARBAGE_ROUNDS 300
#define ROUNDS_PRINTED 16

static uint8_t garbage[GARBAGE_BYTES] __attribute__((aligned(4096)));
static uint64_t rng_state;
static unsigned rounds;
static unsigned vector_histogram[32];

static void start_round(struct ex_frame* f)
{
    uint64_t* gprs = &f->r15; /* r15 .. rax: 15 consecutive quadwords */
    for (int i = 0; i < 15; ++i)
        gprs[i] = splitmix64_next(&rng_state);
    f->rsp = splitmix64_next(&rng_state);
    f->rip = (uint64_t)(uintptr_t)garbage + splitmix64_next(&rng_state) % (GARBAGE_BYTES - 16);
    f->cs = KERNEL_CS;
    f->ss = KERNEL_DS;
    f->rflags = 0x2; /* IF = 0: nothing asynchronous interrupts the bytes */
}

static void on_exception(struct ex_frame* f)
{
    unsigned vector = (unsigned)f->vector;
    if (vector < 32)
        vector_histogram[vector]++;
    if (rounds < ROUNDS_PRINTED)
        printf("garbage: round %u ended by vector %u (%s) at rip 0x%lx error 0x%lx\n", rounds, vector,
               exception_mnemonic(vector), f->rip, f->error_code);
    else
        putchar(rounds % 50 == 49 ? '\n' : '.'); /* progress: one dot per later round */
    if (++rounds >= GARBAGE_ROUNDS) {
        printf("\ngarbage: survived %u rounds; exceptions by vector:", rounds);
        for (unsigned v = 0; v < 32; ++v)
            if (vector_histogram[v])
                printf(" %s=%u", exception_mnemonic(v), vector_histogram[v]);
        printf("\n");
        exit(0);
    }
    start_round(f);
}

int main(unsigned cpu, unsigned ncpus, unsigned long ram_bytes)
{
    (void)ncpus;
    uint64_t seed = 0x6a7ba6e5eedull ^ ram_bytes;
    rng_state = seed;
    for (unsigned i = 0; i < GARBAGE_BYTES; i += 8) {
        uint64_t r = splitmix64_next(&rng_state);
        memcpy(&garbage[i], &r, 8);
    }
    printf("garbage: seed 0x%lx, %u random bytes at %p, %u rounds\n", seed, GARBAGE_BYTES, (void*)garbage,
           GARBAGE_ROUNDS);
    for (unsigned v = 0; v < 256; ++v) {
        handle_exception(v, on_exception);
        set_gate_ist(v, 1);
        set_gate_dpl(v, 3); /* INT n from any CPL the bytes may reach also comes here */
    }
    (void)cpu;
    /* Enter the first round through the same path as the others: a software interrupt. */
    __asm__ volatile("int $0x20");
    __builtin_unreachable();
}
