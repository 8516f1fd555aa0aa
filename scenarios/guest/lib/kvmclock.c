/* kvmclock.c - guest kvmclock reader (see kvmclock.h). */
#include "kvmclock.h"

#include "desc.h"
#include "smp.h"

/* One structure per vCPU, 64-byte aligned so none straddles a page (the modern pfn cache
 * refuses a struct that crosses one, pvmsr/README.md §4.11) and no two share a cache line. */
struct padded_time_info {
    struct pvclock_vcpu_time_info info;
    uint8_t pad[32];
};
static struct padded_time_info time_info[MAX_CPUS] __attribute__((aligned(64)));

static volatile uint64_t last_value;      /* Linux: pvclock.c last_value */
static volatile unsigned long stopped_seen;
static int stable_bit_valid = -1;         /* CPUID 0x40000001 EAX bit 24, read once */

#define barrier() __asm__ volatile("" ::: "memory")

/* RDTSC is not ordered with earlier loads; Linux's rdtsc_ordered() puts LFENCE first so the
 * TSC is read after the version/fields loads above it (SDM Vol.3A 18.17 / RDTSC). */
static inline uint64_t rdtsc_ordered(void)
{
    uint32_t lo, hi;
    __asm__ volatile("lfence; rdtsc" : "=a"(lo), "=d"(hi)::"memory");
    return ((uint64_t)hi << 32) | lo;
}

static uint32_t kvm_features(void)
{
    struct cpuid_result sig = cpuid(0x40000000);
    /* "KVMKVMKVM": without it there is no KVM leaf to read. */
    if (sig.b != 0x4b4d564bu || sig.c != 0x564b4d56u || sig.d != 0x4du)
        return 0;
    return cpuid(KVM_CPUID_FEATURES).a;
}

volatile struct pvclock_vcpu_time_info* kvmclock_this_cpu_info(void) { return &time_info[this_cpu()].info; }

uint32_t kvmclock_init(void)
{
    uint32_t features = kvm_features();
    /* Linux prefers the new MSRs when CLOCKSOURCE2 is offered (kvmclock_init()). */
    uint32_t msr = (features & KVM_FEATURE_CLOCKSOURCE2) ? MSR_KVM_SYSTEM_TIME_NEW
                   : (features & KVM_FEATURE_CLOCKSOURCE) ? MSR_KVM_SYSTEM_TIME
                                                          : 0;
    if (!msr)
        return 0;
    if (stable_bit_valid < 0)
        stable_bit_valid = (features & KVM_FEATURE_CLOCKSOURCE_STABLE_BIT) != 0;
    wrmsr(msr, (uint64_t)(uintptr_t)&time_info[this_cpu()].info | 1);
    return msr;
}

void kvmclock_disable(void)
{
    uint32_t features = kvm_features();
    wrmsr((features & KVM_FEATURE_CLOCKSOURCE2) ? MSR_KVM_SYSTEM_TIME_NEW : MSR_KVM_SYSTEM_TIME, 0);
}

struct kvmclock_sample kvmclock_sample(void)
{
    volatile struct pvclock_vcpu_time_info* ti = &time_info[this_cpu()].info;
    struct kvmclock_sample s;
    uint32_t version;
    do {
        /* An odd version means an update is in progress: "& ~1" makes the final compare
         * fail, so the loop retries (pvmsr/README.md §4.6, §4.9). */
        version = ti->version & ~1u;
        barrier();
        s.tsc = rdtsc_ordered();
        s.ns = ti->system_time + pvclock_scale_delta(s.tsc - ti->tsc_timestamp, ti->tsc_to_system_mul, ti->tsc_shift);
        s.flags = ti->flags;
        barrier();
    } while (ti->version != version);
    s.version = version;
    if (s.flags & PVCLOCK_GUEST_STOPPED) {
        /* The host paused us (KVM_KVMCLOCK_CTRL, pvmsr/README.md §4.2). Linux pets its watchdogs here; we
         * have none, so we only acknowledge by clearing the bit in the shared struct. */
        __atomic_and_fetch(&ti->flags, (uint8_t)~PVCLOCK_GUEST_STOPPED, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&stopped_seen, 1ul, __ATOMIC_RELAXED);
    }
    return s;
}

uint64_t kvmclock_read_raw(void) { return kvmclock_sample().ns; }

bool kvmclock_stable(uint8_t flags) { return stable_bit_valid > 0 && (flags & PVCLOCK_TSC_STABLE_BIT); }

uint64_t kvmclock_guard(uint64_t ns, uint8_t flags)
{
    if (kvmclock_stable(flags))
        return ns;
    /* Global monotonic guard (pvclock.c, commit 489fb490dbf8): never return less than the
     * largest value any vCPU has returned; publish ours with LOCK CMPXCHG. */
    uint64_t last = __atomic_load_n(&last_value, __ATOMIC_RELAXED);
    do {
        if (ns <= last)
            return last;
    } while (!__atomic_compare_exchange_n(&last_value, &last, ns, false, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    return ns;
}

uint64_t kvmclock_read(void)
{
    struct kvmclock_sample s = kvmclock_sample();
    return kvmclock_guard(s.ns, s.flags);
}

unsigned long kvmclock_stopped_seen(void) { return stopped_seen; }

uint64_t pvclock_tsc_khz(uint32_t mul, int8_t shift)
{
    if (mul == 0)
        return 0;
    uint64_t khz = (1000000ull << 32) / mul;
    return shift < 0 ? khz << -shift : khz >> shift;
}

void kvmclock_read_wallclock(uint32_t msr, volatile struct pvclock_wall_clock* wc, uint32_t* sec, uint32_t* nsec,
                             uint32_t* version)
{
    wrmsr(msr, (uint64_t)(uintptr_t)wc);
    uint32_t v;
    do {
        v = wc->version & ~1u;
        barrier();
        *sec = wc->sec;
        *nsec = wc->nsec;
        barrier();
    } while (wc->version != v);
    *version = v;
}
