"""The async page fault races of the race catalogue (pvmsr/README.md §2.5; the protocol is
pvmsr/README.md §5, the guest side scenarios/guest/README.md "Async page faults").

Each race is a pair, scenarios/race-NN-<slug>-bug.json and -fix.json, that differ only in one
machine.kvm.bugs flag (a KVM fix) or only in the guest image (a guest fix), and a guest
program apf_race_<slug>.c (apf_race.h has what they share). Both scenarios of a pair pass
when run as they are: the race needs the host to act at one exact instruction. Their
`explore` section places one host action at every instruction boundary of the same window;
under the bug some placements fail, under the fix none. The counts quoted in the
descriptions are the pinned explore.expect numbers, and the replay commands are those
`pvsim explore` prints for the first failing variant.

Called by gen_scenarios.py (generate(h)); run `python3 scenarios/guest/gen_scenarios.py`."""

# The 1 MiB the apf_* programs treat as swapped out (apf_workload.h), at 16 MiB.
APF_WINDOW = [{'gpa': '0x1000000', 'size': '0x100000'}]
# apf_race.h's RACE_RESIDENT_PAGE: resident until an `evict` says otherwise.
RESIDENT_PAGE = '0x1100000'


def apf_race_host(fault_in_ns, extra=None):
    m = {'swapped_out': APF_WINDOW, 'fault_in_ns': fault_in_ns}
    m.update(extra or {})
    return {'memory': m}


def outcome_expect(summary):
    # Outcome only: an explored variant may fault more or less often, so no exact counts.
    return {'stop': 'exit', 'exit_status': 1, 'console_contains': [f'SUMMARY: {summary} tests\n'],
            'console_excludes': ['FAIL']}


def write_pair(h, nn, slug, common, bug, fix, machine, host, images, summary, limits, explore, counts, trace=()):
    """bug/fix: (description tail, failing count, replay line or None); images: (bug, fix)
    image names (the same twice for a KVM flag); machine: (bug, fix) machine objects;
    counts: the number of variants."""
    for which, (tail, failing, replay), mach, image in (('bug', bug, machine[0], images[0]),
                                                        ('fix', fix, machine[1], images[1])):
        name = f'race-{nn:02d}-{slug}-{which}'
        expect = outcome_expect(summary)
        if trace:
            expect['trace'] = list(trace)
        see = (f' How to see it: pvsim explore scenarios/{name}.json places the action at each of the '
               f'{counts} instruction boundaries of the window ({explore["window"]}: {explore["place"]}) and finds '
               f'{failing} of {counts} placements failing.')
        if replay:
            see += (f' Replay one with pvsim run scenarios/{name}.json --trace bug.txt --schedule \'{replay}\', the '
                    f'same placement under race-{nn:02d}-{slug}-fix.json with --trace fix.txt, and compare them with '
                    f'pvsim diff bug.txt fix.txt.')
        s = {
            'name': name,
            'description': common + ' ' + tail + see + ' (Guest built with -O2.)',
            'machine': mach,
            'host': host,
            'guest': {'image': f'guest/bin/{image}-O2.elf'},
            'limits': limits,
            'expect': expect,
            'explore': dict(explore, expect={'variants': counts, 'failing': failing}),
        }
        h.write(f'{h.root}/{name}.json', s)


def race_16(h):
    common = (
        'Async PF in atomic guest context (a guest kernel bug of Linux up to 4.14, fixed by commit a2b7861bb33b in '
        '4.15; pvmsr/README.md §2.5). The guest enables async PF with SEND_ALWAYS (MSR 0x4b564d02 bit 1), as '
        'seed-era Linux did with CONFIG_PREEMPT, so KVM may announce "page not present" at CPL 0, in the middle of '
        'kernel code [send-always]. On one vCPU, task A first touches a page of the window the host swapped out: an '
        'ordinary async PF, A sleeps and its page-ready wakes it [first-fault]. Then A spawns task B, reads the '
        f'resident page at {RESIDENT_PAGE}, takes a spinlock (with interrupts on, as spin_lock does), writes its '
        'pattern into that page and releases the lock; B takes the same lock afterwards. As the scenario runs, '
        'nothing faults inside the lock and A is done before B starts. If the host reclaims the page (an `evict`) '
        'after A has read it and before A\'s last store, the next store is a "page not present" #PF taken inside '
        'the critical section.')
    bug = (
        'This is the old guest (apf_race_atomic): its #PF handler always puts the faulting task to sleep and runs '
        'another, because a kernel without preemption counting cannot tell that the interrupted code holds a lock. '
        'B runs, finds the lock taken and spins; on one vCPU A can never run again to release it. The guest gives up '
        'after 5000 spins with "FAIL: task B spun 5000 times on the lock task A holds while A sleeps on an async PF '
        'taken inside its critical section", the deadlock a real kernel would hang in ("BUG: scheduling while '
        'atomic" where preemption is counted). An eviction before A\'s read makes the read fault outside the lock: '
        'A sleeps, B takes the free lock, all is well.')
    fix = (
        'This is the fixed guest (apf_race_atomic_fixed, commit a2b7861bb33b): when the fault interrupted code that '
        'may not be preempted, the handler does not schedule; it halts the vCPU (STI;HLT) until the page-ready for '
        'that token has come, and A goes on with its critical section. The page-ready finds no waiter then and '
        'leaves a dummy, which the wait consumes at once (scenarios/guest/README.md "Async page faults").')
    window = 'v0.insn=17700..18199'
    explore = {'window': window, 'place': f'evict gpa={RESIDENT_PAGE}'}
    trace = [h.in_order('send-always', 'kvm_msr: msr_write 4b564d06 = 0xf3', 'kvm_msr: msr_write 4b564d02 = 0x*f'),
             h.in_order('first-fault', 'kvm_async_pf_not_present: token 0x1000 gva 0x1000000',
                        'kvm_inj_exception: #PF (0x0)', 'kvm_async_pf_ready: token 0x1000 gva 0x1000000')]
    mach = {'vcpus': 1, 'ram_mib': 32}
    write_pair(h, 16, 'atomic', common,
               (bug, 330, f'v0.insn=17778: evict gpa={RESIDENT_PAGE}'), (fix, 0, None),
               (mach, mach), apf_race_host(200_000), ('apf_race_atomic', 'apf_race_atomic_fixed'), 5,
               {'max_instructions': 2_000_000, 'max_virtual_ms': 5}, explore, 500, trace)


def flag_machines(flag):
    """The bug and fix machines of a KVM-side race: modern KVM with one flag on or off."""
    return tuple({'vcpus': 1, 'ram_mib': 32, 'kvm': {'abi': 'modern', 'bugs': {flag: on}}} for on in (True, False))


def race_10(h):
    common = (
        'A page-ready that completes while the guest has its local APIC software-disabled (KVM 5.8-5.12, fixed by '
        'commit 2f15d027c05f in 5.13; pvmsr/README.md §2.5, §5.3). On one vCPU, task W touches a page the host '
        'swapped out: a "page not present", W sleeps [not-present]. Task R then reprograms the local APIC as a '
        'kernel\'s APIC set-up or resume path does: SVR bit 8 clear (software-disabled, SDM Vol.3A 11.4.7.2), the '
        'LINT0/LINT1/error LVTs masked, ESR cleared, TPR 0, SVR bit 8 set again [svr-toggle]. As the scenario runs, '
        'the host reads W\'s page back 200 us later, long after R is done, and the page-ready interrupt wakes W. If '
        'the fetch ends (a `complete` action) while SVR bit 8 is clear, KVM has a page-ready to deliver into a '
        'disabled APIC.')
    bug = (
        'Here KVM is the one of 5.8-5.12 (machine.kvm.bugs.apf_ready_lost_lapic_disabled): '
        'kvm_check_async_pf_completion dequeues the work anyway, writes token 0x1000 into the shared area and sends '
        'the interrupt, which a software-disabled APIC drops. The guest never runs its page-ready handler, so the '
        'token slot stays busy, KVM sends no page-ready again, and W sleeps forever: after 3 ms the guest\'s '
        'watchdog reports "apf: token slot reads 0x1000: KVM wrote this page-ready\'s token, but no interrupt came" '
        'and "FAIL: task W never woke: its page-ready was lost while the local APIC was software-disabled". '
        'A completion before the disable or after the enable is delivered normally.')
    fix = (
        'Here KVM is today\'s (commit 2f15d027c05f): kvm_arch_can_dequeue_async_page_present dequeues only while '
        'the LAPIC is enabled, so the page-ready waits (pvsim_apf: held: LAPIC disabled), and the SVR write that sets '
        'bit 8 raises KVM_REQ_APF_READY, which delivers it at once.')
    explore = {'window': 'v0.insn=17400..17699', 'place': 'complete gpa=0x1000000'}
    trace = [h.in_order('not-present', 'kvm_async_pf_not_present: token 0x1000 gva 0x1000000',
                        'kvm_inj_exception: #PF (0x0)'),
             h.in_order('svr-toggle', 'kvm_async_pf_not_present: token 0x1000 gva 0x1000000',
                        'kvm_apic: apic_write APIC_SPIV = 0xff', 'kvm_apic: apic_write APIC_LVT0 = 0x10000',
                        'kvm_apic: apic_write APIC_TASKPRI = 0x0', 'kvm_apic: apic_write APIC_SPIV = 0x1ff')]
    write_pair(h, 10, 'lapic', common, (bug, 104, 'v0.insn=17500: complete gpa=0x1000000'), (fix, 0, None),
               flag_machines('apf_ready_lost_lapic_disabled'), apf_race_host(200_000),
               ('apf_race_lapic', 'apf_race_lapic'), 5, {'max_instructions': 2_000_000, 'max_virtual_ms': 5},
               explore, 300, trace)


def race_11(h):
    common = (
        'The async PF token 0 (KVM 5.8-5.16, fixed by commit 6f3c1fc53d86 in 5.17; pvmsr/README.md §2.5, §5.3). A '
        'token is (id << 12) | vcpu, and KVM takes a token slot that reads 0 as free. On one vCPU, task T1 touches '
        'page 0 of the window the host swapped out (vCPU 0\'s first async PF) and task T2 page 1, which the host '
        'reads from a slower disk (host.memory.latency_ranges); both sleep [two-faults]. Task C computes meanwhile '
        'in stretches with interrupts disabled, so when T1\'s page is in (200 us), its page-ready interrupt waits in '
        'the IRR until C\'s next STI. As the scenario runs, T2\'s page comes 1 ms later and every page-ready is '
        'handled on its own. A `complete` of T2\'s page placed while T1\'s page-ready is still unread puts two '
        'page-readies in flight at once.')
    bug = (
        'Here KVM is the one of 5.8-5.16 (machine.kvm.bugs.apf_token_zero): T1\'s token is 0, so while its '
        'page-ready sits in the slot the slot still reads "free". T2\'s completion is dequeued at once: its token '
        '0x1000 overwrites 0 and its interrupt merges with the one pending in the IRR (both are edge-triggered '
        'vector 0xf3), the guest takes one interrupt, reads 0x1000 and wakes T2; T1 sleeps forever, and after 4 ms '
        'the watchdog says "FAIL: task T1 never woke: its page-ready carried token 0, which KVM reads as a free slot, '
        'and the next page-ready overwrote it before the guest read it". When T2\'s page completes after the '
        'guest\'s handler has read token 0 and before it writes 0 back, KVM writes 0x1000 into the "free" slot and '
        'the guest\'s clearing erases it: then T2 is the one lost ("FAIL: task T2 never woke ...").')
    fix = (
        'Here KVM is today\'s (commit 6f3c1fc53d86): the token counter skips 0, T1\'s token is 0x1000, its '
        'page-ready keeps the slot busy until the guest writes 0 and ACKs (MSR 0x4b564d07), and T2\'s page-ready '
        'waits for that (pvsim_apf: held: token slot busy), then goes out on its own.')
    explore = {'window': 'v0.insn=266850..267449', 'place': 'complete gpa=0x1001000'}
    trace = [h.in_order('two-faults', 'kvm_async_pf_not_present: token * gva 0x1000000', 'kvm_inj_exception: #PF (0x0)',
                        'kvm_async_pf_not_present: token 0x* gva 0x1001000', 'kvm_inj_exception: #PF (0x0)')]
    host = apf_race_host(200_000, {'latency_ranges': [{'gpa': '0x1001000', 'size': '0x1000',
                                                        'fault_in_ns': 1_000_000}]})
    write_pair(h, 11, 'token0', common, (bug, 494, 'v0.insn=266889: complete gpa=0x1001000'), (fix, 0, None),
               flag_machines('apf_token_zero'), host, ('apf_race_token0', 'apf_race_token0'), 5,
               {'max_instructions': 5_000_000, 'max_virtual_ms': 6}, explore, 600, trace)


def race_09(h):
    common = (
        'A page-ready for a fault the guest never saw (the 5.8 merge window, fixed by commit 2a18b7e7cd88 in '
        '5.8-rc1; pvmsr/README.md §2.5, §5.3). The guest enables async PF without SEND_ALWAYS (MSR 0x4b564d02 bit 1 '
        'clear, as Linux has done since 5.8), so KVM may not announce "page not present" to code at CPL 0 '
        '[no-send-always]. On one vCPU, the guest fills the resident page at 0x1100000 and copies it into a buffer '
        'of its own at CPL 0 with interrupts on, as a kernel copies a user buffer. As the scenario runs nothing '
        'faults. If the host reclaims the page (an `evict`) before the copy\'s last load, the next load needs the '
        'host: KVM allocates a token, may not tell the guest, and halts the vCPU until the page is in '
        '(pvsim_apf: halt), no #PF [no-pf].')
    bug = (
        'Here KVM is the one of the 5.8 merge window (machine.kvm.bugs.apf_ready_without_not_present): when the '
        'page is in, the page-ready interrupt goes out anyway, with a token the guest never waited on. The guest\'s '
        'wake finds no waiter and leaves a dummy entry in its sleeper table, the entry that lets a page-ready '
        'overtake its own wait, which here no wait will ever consume: "FAIL: a page-ready for a fault that only '
        'halted the vCPU left 1 dummy in the sleeper table that no wait will ever consume (leaked)", one leak per '
        'such fault.')
    fix = (
        'Here KVM is today\'s (commit 2a18b7e7cd88): kvm_arch_async_page_present sends a page-ready only for works '
        'whose not-present reached the guest (and for wake-alls), so the halted fault ends without one and the '
        'sleeper table stays empty.')
    explore = {'window': 'v0.insn=19400..20199', 'place': f'evict gpa={RESIDENT_PAGE}'}
    trace = [h.in_order('no-send-always', 'kvm_msr: msr_write 4b564d06 = 0xf3', 'kvm_msr: msr_write 4b564d02 = 0x*d'),
             h.absent('no-pf', 'kvm_inj_exception: #PF')]
    write_pair(h, 9, 'halted', common, (bug, 681, f'v0.insn=19400: evict gpa={RESIDENT_PAGE}'), (fix, 0, None),
               flag_machines('apf_ready_without_not_present'), apf_race_host(200_000),
               ('apf_race_halted', 'apf_race_halted'), 5, {'max_instructions': 2_000_000, 'max_virtual_ms': 5},
               explore, 800, trace)


def race_05(h):
    common = (
        'A double fault from two async-PF #PFs (KVM 4.13-5.7, until the interrupt-based page-ready of 5.8 removed '
        'the path; pvmsr/README.md §2.5, §5.6). In the seed-era protocol both "page not '
        'present" and "page ready" are a #PF with CR2 = the token, and the shared area\'s `reason` says which '
        '(machine.kvm.abi "orig", CPUID with the 2.6.38 feature set) [enable]. KVM must never have two of them in '
        'flight: a #PF raised while another #PF is still to be delivered makes a #DF (SDM Vol. 3A Table 6-5). On one '
        'vCPU, task T1 touches page 0 of the window the host swapped out: a not-present, T1 sleeps [first-fault]. '
        'Task T2 computes a little with interrupts off and touches page 1: another not-present. As the scenario runs, '
        'page 0 comes in long after both faults. A `complete` of page 0 placed between T1\'s sleep and T2\'s fault '
        'leaves its page-ready waiting (interrupts are off) for the next entry, and that entry is the one that '
        'delivers T2\'s not-present.')
    bug = (
        'Here KVM asks only whether an exception was already injected, not whether one is pending '
        '(machine.kvm.bugs.apf_ready_on_pending_pf): it queues the page-ready #PF on top of the pending not-present '
        '#PF, kvm_multiple_exception turns the pair into a #DF, and the guest\'s #DF handler reports "FAIL: double '
        'fault (#DF) at rip ...: KVM delivered a page-ready #PF on top of the not-present #PF it was delivering for '
        'task T2\'s page" (in the trace, kvm_inj_exception: #DF (0x0) right after kvm_async_pf_ready).')
    fix = (
        'Here KVM counts a pending exception as an event awaiting injection (kvm_event_needs_reinjection, as 3.0 did '
        'and as commit 9a6e7c39810e restored by cancelling the pending not-present): the page-ready waits '
        '(pvsim_apf: held: interrupts not allowed) until T2\'s not-present has been delivered and the guest can '
        'take another #PF, and both tasks are woken in turn.')
    explore = {'window': 'v0.insn=20800..21599', 'place': 'complete gpa=0x1000000'}
    trace = [h.in_order('enable', 'kvm_msr: msr_write 4b564d02 = 0x', 'kvm_async_pf_ready: token 0 gva 0'),
             h.in_order('first-fault', 'kvm_async_pf_not_present: token 0 gva 0x1000000', 'kvm_inj_exception: #PF (0x0)')]
    machines = tuple({'vcpus': 1, 'ram_mib': 32, 'kvm': {'abi': 'orig', 'bugs': {'apf_ready_on_pending_pf': on}},
                      'kvm_cpuid': {'features': '0x0100001b'}} for on in (True, False))
    write_pair(h, 5, 'double-pf', common, (bug, 322, 'v0.insn=20817: complete gpa=0x1000000'), (fix, 0, None),
               machines, apf_race_host(200_000), ('apf_race_df', 'apf_race_df'), 3,
               {'max_instructions': 2_000_000, 'max_virtual_ms': 5}, explore, 800, trace)


def generate(h):
    race_05(h)
    race_09(h)
    race_10(h)
    race_11(h)
    race_16(h)
