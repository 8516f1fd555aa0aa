"""The race catalogue's clock and steal-time items (pvmsr/README.md §2.5, §4, §6, §7): one
guest program per race (programs/pv_race_*.c), and per race a scenario pair
race-<NN>-<slug>-bug.json / -fix.json that differs only in one machine.kvm.bugs flag, each
with an `explore` section over the same window (scenarios/README.md "explore") whose pinned
counts show the race found under the bug (failing > 0) and never under the fix (failing 0).
The plain runs of both pass: the race needs a host action the explorer places.
Items that are no race get one scenario (19: race-19-old-msr-boot-vcpu.json, no bug flag) or a
pair without exploration (15); pv-version-wrap.json (programs/pv_race_version_wrap.c) is the
catalogue's extra edge case, the 32-bit version counts wrapping.

Called by gen_scenarios.py as generate(h): h.root, h.write(path, obj) and the trace-claim
helpers h.in_order/absent/count/exactly. Windows are instruction counts of the -O2 images
(`pvsim run FILE --schedule 'vN.rip=SYMBOL: stop'` prints them); a change to a program moves
them, and its explore counts then fail in ctest guest.explore.<stem> until updated here."""

# The explore sections are written only when the scenario parser knows the key.
EXPLORE = True


def race_pair(h, nn, slug, prog, common, bug_text, fix_text, machine, flag, *, bug_value=True, host=None,
              summary=1, limits=None, explore=None, counts=None, trace=(), fix_prog=None, bug_fails=None):
    """Writes race-<nn>-<slug>-bug.json and -fix.json. They differ only in
    machine.kvm.bugs[flag] (bug_value under -bug, the other value under -fix), or, with
    fix_prog, only in the guest image. counts = ((V, F bug), (V, F fix)). bug_fails: for an
    item that is no race (no exploration), the FAIL line the bug scenario's plain run must
    print (it then expects exit status 3 and one unexpected failure)."""
    for kind, text in (('bug', bug_text), ('fix', fix_text)):
        m = json_copy(machine)
        if flag is not None:
            kvm = m.setdefault('kvm', {})
            kvm['bugs'] = {flag: bug_value if kind == 'bug' else not bug_value}
        image = prog if kind == 'bug' or fix_prog is None else fix_prog
        name = f'race-{nn:02d}-{slug}-{kind}'
        if kind == 'bug' and bug_fails:
            expect = {'stop': 'exit', 'exit_status': 3,
                      'console_contains': [bug_fails, f'SUMMARY: {summary} tests, 1 unexpected failures\n']}
        else:
            expect = {'stop': 'exit', 'exit_status': 1, 'console_contains': [f'SUMMARY: {summary} tests\n'],
                      'console_excludes': ['FAIL']}
        if trace:
            expect['trace'] = list(trace)
        s = {'name': name, 'description': common + ' ' + text + ' (Guest built with -O2.)', 'machine': m}
        if host:
            s['host'] = host
        s['guest'] = {'image': f'guest/bin/{image}-O2.elf'}
        s['limits'] = limits or {'max_virtual_ms': 1}
        s['expect'] = expect
        if explore and EXPLORE:
            e = dict(explore)
            v, f = counts[0 if kind == 'bug' else 1]
            e['expect'] = {'variants': v, 'failing': f}
            s['explore'] = e
        h.write(f'{h.root}/{name}.json', s)


def json_copy(o):
    if isinstance(o, dict):
        return {k: json_copy(v) for k, v in o.items()}
    if isinstance(o, list):
        return [json_copy(v) for v in o]
    return o


# --- 02: the torn kvmclock read -------------------------------------------------------------
# vCPU 1's read_window() (pv_race_clock_torn.c) starts at v1.insn=14989 and returns at 15799.
R02_WINDOW = 'v1.insn=14989..15798'
R02_COUNTS = ((810, 145), (810, 0))


def race_02(h):
    v, f = R02_COUNTS[0]
    common = (
        'Race 02 of the catalogue, the torn kvmclock read (pvmsr/README.md §4.6, §4.13, flag '
        'kvmclock_even_version_copy of §2.5). Two vCPUs on two pCPUs under the seed-era host (machine.kvm.abi '
        '"orig"). vCPU 0 registers its kvmclock structure: KVM publishes it at once, the kvm_msr '
        'line of the WRMSR to 4b564d01 followed by the kvm_pvclock_update of version 2 and the kvm_entry '
        '[register]; then vCPU 0 waits. vCPU 1 reads vCPU 0\'s structure 12 times with the version '
        'loop, in read_window(), and checks every snapshot against one taken before: all consistent (tsc_timestamp, '
        'system_time) pairs lie on one line, so a snapshot more than 1 us off it mixed two updates. Linux never '
        'reads another vCPU\'s structure, but the protocol promises that such a read is safe, and the test behind '
        'the odd/even fix did exactly this. In the plain run nothing refreshes vCPU 0\'s structure (the seed-era '
        'host has no periodic update and nobody migrates): the reads are whole. The race needs the host to refresh '
        'it while vCPU 1 reads: a `kvmclock v0` action raises KVM_REQ_CLOCK_UPDATE, which KVM services at vCPU '
        '0\'s next entry in kvm_guest_time_update, and its stores land 200 ns apart (host.pv_store_ns) while '
        'vCPU 1 runs on. The explore section places that action at each of the 810 instruction boundaries of '
        'read_window() (machine.quantum 200 keeps the two vCPUs within a fraction of a microsecond of each other, '
        'so the refresh follows the request closely).')
    bug = (
        'Here the flag is on: KVM copies the 32 bytes as four 8-byte stores, the version advanced by 2 in the '
        'first and never odd, so between the store of the new tsc_timestamp and that of the new system_time the '
        'version check passes on a body that is half new: the guest prints a FAIL line naming the snapshot and '
        'how far off the clock it was (the time between the two updates, about 10 us in the first failing '
        f'variant). `pvsim explore race-02-kvmclock-torn-bug.json` finds {f} of {v} placements failing (exit '
        f'status 3), the first {f}: the refresh\'s system_time store lands 400 ns after its version store, '
        'and a request made later than that lands it after vCPU 1\'s last read (the reads proper take about '
        '0.6 us; the window\'s first instruction is also the first fetch from read_window\'s page, an EPT '
        'violation of 480 ns). Replay one with `pvsim run race-02-kvmclock-torn-bug.json --schedule '
        '\'v1.insn=14989: kvmclock v0\' --trace bug.txt`, the same on race-02-kvmclock-torn-fix.json --trace '
        'fix.txt, and `pvsim diff bug.txt fix.txt`: the traces part at the refresh\'s first store, "version (8 '
        'bytes" here and "version (4 bytes" with the fix. Compare race-02-kvmclock-torn-fix.json, the same guest '
        'and host with the fix.')
    fix = (
        'Here the flag is off: the update is the fixed protocol of Linux 4.x (KVM\'s kvm_guest_time_update '
        'writes the version made odd alone, then the body, then the version made even alone, three separate '
        'stores because a `rep movs` copy is weakly ordered), so every partial state carries an odd version and '
        'a read that overlaps the refresh goes round its loop again. `pvsim explore race-02-kvmclock-torn-fix.json` '
        f'finds 0 of {v} placements failing over the same window. Compare race-02-kvmclock-torn-bug.json.')
    race_pair(h, 2, 'kvmclock-torn', 'pv_race_clock_torn', common, bug, fix,
              {'vcpus': 2, 'ram_mib': 16, 'quantum': 200, 'kvm': {'abi': 'orig'}},
              'kvmclock_even_version_copy', host={'pcpus': 2, 'pv_store_ns': 200},
              explore={'window': R02_WINDOW, 'place': 'kvmclock v0'}, counts=R02_COUNTS,
              trace=[h.in_order('register', 'kvm_msr: msr_write 4b564d01 = ',
                                'kvm_pvclock_update: vcpu_id 0, pvclock { version 2,', 'kvm_entry: vcpu 0,',
                                consecutive=True, vcpu=0)])


# --- 06: the lost PV TLB flush, CVE-2019-3016 --------------------------------------------------
# vCPU 0's flush_round() (pv_race_tlb_flush.c) starts at v0.insn=16086; its read of vCPU 1's
# `preempted` byte is instruction 16510. The window: the last 500 instructions of the wait
# before it, and flush_round() up to that read.
R06_WINDOW = 'v0.insn=15586..16510'
R06_PLACE = 'preempt v1 300ns'
R06_COUNTS = ((925, 120), (925, 0))


def race_06(h):
    v, f = R06_COUNTS[0]
    common = (
        'Race 06 of the catalogue, the lost PV TLB flush of CVE-2019-3016 (pvmsr/README.md §6.2, §6.3, flag '
        'steal_time_write_back of §2.5). Two vCPUs on two pCPUs with steal time and PV_TLB_FLUSH, under the '
        'seed-era host (machine.kvm.abi "orig"). vCPU 1 reads page Y, so its TLB holds Y\'s translation to an old '
        'frame, and loops reading a round number and then Y. vCPU 0, in flush_round(), remaps Y to a new frame and '
        'flushes it on vCPU 1 as Linux\'s kvm_flush_tlb_multi does: if vCPU 1\'s steal-time `preempted` byte says '
        'KVM_VCPU_PREEMPTED, one LOCK CMPXCHG adds KVM_VCPU_FLUSH_TLB and no IPI goes out (KVM flushes at vCPU 1\'s '
        'next entry); otherwise a flush IPI, vector 225, whose handler runs INVLPG. In the plain run vCPU 1 is '
        'never preempted, and the guest prints that vCPU 0 sent the IPI. Both vCPUs register their steal-time '
        'records with a WRMSR to 4b564d03 [steal-msr]. The race needs the host to deschedule vCPU 1 and put it '
        'back just before vCPU 0 reads the byte: at that entry KVM\'s record_steal_time updates the record, and '
        'here its stores land 300 ns apart (host.pv_store_ns), so vCPU 0 runs between them. The explore section '
        f'places `{R06_PLACE}` at each of vCPU 0\'s instruction boundaries from 500 instructions before '
        'flush_round() to its read of the byte (machine.quantum 200 keeps the vCPUs close in virtual time); its '
        'outcome key includes the console, so the variants where the flag went to the host and was honoured form '
        'a group of their own.')
    bug = (
        'Here the flag is on, the host of 4.16-5.5: record_steal_time read the whole record, cleared `preempted` '
        'in its own copy, found no FLUSH_TLB there (kvm_pv_tlb_flush "need_flush_tlb false"), and wrote the whole '
        'copy back 300 ns later (pvsim_host "store: record (64 bytes"). A CMPXCHG landing in between still finds '
        'the byte preempted, sets FLUSH_TLB and skips the IPI, and the write-back erases the flag: nobody flushes, '
        'and vCPU 1 reads the old frame through its stale translation after the round is over - the FAIL line '
        f'(exit status 3). `pvsim explore race-06-tlb-flush-lost-bug.json` finds {f} of {v} placements failing: '
        'those that end the preemption less than 300 ns before vCPU 0\'s read of the byte. Earlier ones end it '
        'long before (vCPU 0 sees it running and sends the IPI); later ones leave vCPU 1 preempted across the '
        'read, and the flag set then is found by the next update (need_flush_tlb true). Replay one with `pvsim run '
        'race-06-tlb-flush-lost-bug.json --schedule \'v0.insn=15773: preempt v1 300ns\' --trace bug.txt`, the same '
        'on race-06-tlb-flush-lost-fix.json --trace fix.txt, and `pvsim diff bug.txt fix.txt`: the two replays '
        'part right after the update that ends the preemption: under the bug the 64-byte write-back lands first, '
        'with the fix vCPU 0 sends the flush IPI (vector 225) before the fix\'s 16-byte store of steal and '
        'version. Compare '
        'race-06-tlb-flush-lost-fix.json.')
    fix = (
        'Here the flag is off, the fix of Linux 5.6 (b043138246a4 in record_steal_time, with 8c6de56a42e0 for '
        'kvm_steal_time_set_preempted): the update exchanges `preempted` with 0 in guest memory at once, so a '
        'CMPXCHG after that exchange finds vCPU 1 running and vCPU 0 falls back to the IPI, and one before it '
        'leaves a flag the exchange hands to KVM. `pvsim explore race-06-tlb-flush-lost-fix.json` finds 0 of '
        f'{v} placements failing over the same window. Compare race-06-tlb-flush-lost-bug.json.')
    race_pair(h, 6, 'tlb-flush-lost', 'pv_race_tlb_flush', common, bug, fix,
              {'vcpus': 2, 'ram_mib': 16, 'quantum': 200, 'kvm': {'abi': 'orig'}},
              'steal_time_write_back', host={'pcpus': 2, 'pv_store_ns': 300}, summary=3,
              explore={'window': R06_WINDOW, 'place': R06_PLACE, 'outcome': ['stop', 'exit', 'console']},
              counts=R06_COUNTS,
              trace=[h.exactly('steal-msr', 'kvm_msr: msr_write 4b564d03 = ', 2)])


# --- 01: kvmclock warps between vCPUs ------------------------------------------------------------
# vCPU 1's send_message() (pv_race_clock_warp.h) starts at v1.insn=50549 in both images and
# returns at 51018 (bug) or 51015 (fix): the window is the whole of it.
R01_WINDOW = 'v1.insn=50549..51018'
R01_COUNTS = ((940, 185), (940, 0))
R01_REPLAY = 'v1.insn=50549: run v0; v0.insn=48609: run v1; v0.insn=49079: run auto; v1.insn=51020: run auto'


def race_01(h):
    v, f = R01_COUNTS[0]
    vf = R01_COUNTS[1][0]
    common = (
        'Race 01 of the catalogue, kvmclock warps between vCPUs (pvmsr/README.md §4.4, §4.9, §4.13). Two vCPUs '
        'on two pCPUs, today\'s KVM but without the master clock: vCPU 1\'s TSC runs 5000 ppm fast '
        '(machine.tsc_skew), as an unsynchronised host TSC would, so KVM cannot use one (tsc, time) pair for the '
        'whole VM (master clock, d828199e8444, 3.8, needs matched TSCs) and samples a pair per vCPU at its '
        'registration, each kvm_pvclock_update with flags 0x0 [own-pairs], never PVCLOCK_TSC_STABLE_BIT '
        '[no-stable], while it scales both with the nominal 2.5 GHz. After its registration at about 15 us vCPU 1\'s '
        'clock gains on vCPU 0\'s, about 185 ns by 52 us. Then vCPU 1, in send_message(), stamps a message with '
        'its clock, fills it in (56 words) and posts it; vCPU 0, already waiting, reads its own clock when it sees '
        'the post and checks that the message did not arrive before it was stamped. In the plain run the two vCPUs '
        'go on side by side and vCPU 0 sees the post about 360 ns after the stamp, more than vCPU 1\'s lead: '
        'it prints a trip of about 170 ns. The explore section varies how the two vCPUs take turns over '
        'send_message() (`interleave` v0,v1 with one switch, 2 x 470 orders): when vCPU 1 '
        'keeps the CPU from its stamp through its post while vCPU 0 waits, vCPU 0 reads its clock just after the '
        'stamp in virtual time - an instruction that reads the TSC never runs ahead of a vCPU that is behind it '
        '(tools/platform/README.md §4.4), so vCPU 0 had caught up to the stamp - and sooner than vCPU 1\'s lead.')
    bug = (
        'Here the guest reads its clock raw, as Linux did before 2.6.35: vCPU 0\'s reading is up to 145 ns '
        'earlier than the stamp, and the guest prints the FAIL line "the clock went back ... between the two '
        f'vCPUs" (exit status 3). `pvsim explore race-01-kvmclock-warp-bug.json` finds {f} of {v} orders '
        'failing: the orders in which vCPU 1 runs from its stamp through its post while vCPU 0 waits. Replay the '
        f'first with `pvsim run race-01-kvmclock-warp-bug.json --schedule \'{R01_REPLAY}\'` (vCPU 0 runs one '
        'instruction, hands over to vCPU 1 until vCPU 1 has run the window\'s length, then the default order '
        'resumes), run the same schedule on race-01-kvmclock-warp-fix.json, and compare their '
        'consoles. Compare race-01-kvmclock-warp-fix.json.')
    fix = (
        'Here the guest reads its clock through Linux\'s global guard (pvclock_clocksource_read since '
        '489fb490dbf8, 2.6.35): every reading is at least the largest any vCPU has returned, kept with a '
        'compare-and-exchange, so vCPU 0\'s reading is lifted to the stamp and the guest prints what its own '
        'structure said. The two images are built from one source (programs/pv_race_clock_warp.h) and run the '
        'same code; only the value the bug image uses differs, so the same window covers the same instructions. '
        f'`pvsim explore race-01-kvmclock-warp-fix.json` finds 0 of {vf} orders failing. The host-side fix, the '
        'master clock, would need matched TSCs: with this skew KVM cannot use it. Compare '
        'race-01-kvmclock-warp-bug.json.')
    race_pair(h, 1, 'kvmclock-warp', 'pv_race_clock_warp', common, bug, fix,
              {'vcpus': 2, 'ram_mib': 16, 'quantum': 200, 'tsc_skew': [{'vcpu': 1, 'ppm': 5000}]},
              None, host={'pcpus': 2}, fix_prog='pv_race_clock_warp_fixed',
              explore={'window': R01_WINDOW, 'interleave': 'v0,v1', 'bound': 1}, counts=R01_COUNTS,
              trace=[h.count('own-pairs', 'kvm_pvclock_update: * flags 0x0 }', min=2),
                     h.absent('no-stable', 'kvm_pvclock_update: * flags 0x1 }')])


# --- 08: a stale steal-time cache after kexec ----------------------------------------------------
# new_kernel() (pv_race_steal_kexec.c) starts at v0.insn=6052 and returns at 6629.
R08_WINDOW = 'v0.insn=6052..6628'
R08_PLACE = 'preempt v0 10us'
R08_COUNTS = ((577, 275), (577, 0))


def race_08(h):
    v, f = R08_COUNTS[0]
    common = (
        'Race 08 of the catalogue, a stale steal-time cache after kexec (pvmsr/README.md §6.1, §6.3, flag '
        'steal_time_stale_cache of §2.5). One vCPU, today\'s KVM (machine.kvm.abi "modern"), plays two kernels. '
        'The old kernel registers its steal-time record at GPA A (MSR 0x4b564d03 = A | 1), then, before it '
        'kexecs, turns steal time off (MSR = 0) as Linux does; the new kernel registers its own record at GPA B '
        '[kexec]. Later in its boot the new kernel allocates the memory at A, which is nothing special to it, '
        'for 64 bytes of its own data, works a little and checks that its data is intact. In the plain run the '
        'host never takes the pCPU away. The explore section places `preempt v0 10us` at each of the 577 '
        'instruction boundaries of new_kernel(): the registration, the fill of A and the work after it. A '
        'preemption is a put (kvm_steal_time_set_preempted stores KVM_VCPU_PREEMPTED in `preempted`) and the '
        'next entry an update (record_steal_time: `steal` and `version`).')
    bug = (
        'Here the flag is on, KVM 5.16-5.19: since 7e2175ebd695 the record is written through a gfn_to_hva cache '
        'that was rebuilt only when the memslots changed, not when the guest wrote a new GPA, so every update '
        'and every put after the re-registration still goes to A. The registration\'s own update lands there '
        'before the new kernel fills A, and is overwritten; a preemption after the fill writes byte 16 and the '
        'first 16 bytes of the new kernel\'s data, and the guest prints a FAIL line naming the word that changed '
        f'(exit status 3). `pvsim explore race-08-steal-stale-cache-bug.json` finds {f} of {v} placements '
        'failing: every one from the first store of the fill to the end of the window. Replay one with `pvsim run '
        'race-08-steal-stale-cache-bug.json --schedule \'v0.insn=6400: preempt v0 10us\' --trace bug.txt`, the '
        'same on race-08-steal-stale-cache-fix.json --trace fix.txt, and `pvsim diff bug.txt fix.txt`: they part '
        'already at the registration\'s update, "version 4" under the bug (the old record\'s count going on, in '
        'A) against "version 2" with the fix (B\'s first update); the put of the preemption then stores '
        'PREEMPTED over a byte of the new kernel\'s data under the bug (pvsim_steal "preempted: 0x6c -> 0x1", '
        '0x6c being a byte of the pattern) and over B\'s 0 with the fix. '
        'Compare race-08-steal-stale-cache-fix.json.')
    fix = (
        'Here the flag is off, the fixes of 6.0-rc1 (also in 5.15.y and 5.18.y): record_steal_time rebuilds '
        'the cache when the MSR\'s GPA differs from the cached one (901d3765fa80), and '
        'kvm_steal_time_set_preempted writes nothing through a cache built for another GPA (c3c28d24d910). '
        f'`pvsim explore race-08-steal-stale-cache-fix.json` finds 0 of {v} placements failing over the same '
        'window. Compare race-08-steal-stale-cache-bug.json.')
    race_pair(h, 8, 'steal-stale-cache', 'pv_race_steal_kexec', common, bug, fix,
              {'vcpus': 1, 'ram_mib': 16, 'kvm': {'abi': 'modern'}}, 'steal_time_stale_cache', host={'pcpus': 1},
              summary=2,
              explore={'window': R08_WINDOW, 'place': R08_PLACE}, counts=R08_COUNTS,
              trace=[h.in_order('kexec', 'kvm_msr: msr_write 4b564d03 = 0x*1', 'kvm_msr: msr_write 4b564d03 = 0x0',
                                'kvm_msr: msr_write 4b564d03 = 0x*1')])


# --- 15: a refused PV EOI value kept (not a race: a pair without exploration) ---------------------
def race_15(h):
    common = (
        'Item 15 of the catalogue, a refused MSR_KVM_PV_EOI_EN value that stays stored (pvmsr/README.md §7.1, '
        '§7.3, flag pv_eoi_keeps_bad_value of §2.5). Not a race: one vCPU, today\'s KVM (machine.kvm.abi '
        '"modern"), and no host action, so the pair has no explore section. The guest enables PV EOI on a word '
        'in RAM and reads the MSR back; then it writes 0x40000001, an area at 1 GiB, beyond the 16 MiB of RAM: '
        'KVM cannot set up its cache of the area there and refuses the write, the kvm_msr line ends in (#GP) '
        'and a kvm_inj_exception #GP follows [refused]. A guest that takes the #GP, as Linux\'s fault-tolerant '
        'MSR accessors do, expects the refused write to have changed nothing (SDM Vol. 2B, WRMSR: on #GP the MSR '
        'is not written) and reads the MSR back [read-back].')
    bug = (
        'Here the flag is on, KVM 3.6-5.15: kvm_lapic_set_pv_eoi stored the new value before it tried to set '
        'up the cache, so the read returns the refused address and the guest prints a FAIL line (exit status 3). '
        'Run race-15-pv-eoi-bad-gpa-fix.json and compare: `pvsim diff` on the two traces parts at the kvm_msr '
        'line of that read.')
    fix = (
        'Here the flag is off, the fix afd67ee3cbbd (5.16, Vitaly Kuznetsov): the value is stored only once '
        'the cache is set up, so the read returns the old value. Compare race-15-pv-eoi-bad-gpa-bug.json.')
    race_pair(h, 15, 'pv-eoi-bad-gpa', 'pv_race_eoi_bad_gpa', common, bug, fix,
              {'vcpus': 1, 'ram_mib': 16, 'kvm': {'abi': 'modern'}}, 'pv_eoi_keeps_bad_value', summary=3,
              bug_fails='FAIL: after the refused WRMSR, MSR 0x4b564d04 reads the refused value 0x40000001 instead',
              trace=[h.in_order('refused', 'kvm_msr: msr_write 4b564d04 = 0x40000001 (#GP)',
                                'kvm_inj_exception: #GP (0x0)', consecutive=True),
                     h.in_order('read-back', 'kvm_msr: msr_write 4b564d04 = 0x40000001 (#GP)',
                                'kvm_msr: msr_read 4b564d04 = ')])


# --- 03: kvmclock steps back when the host re-bases the pair --------------------------------------
# read_window() (pv_race_clock_rebase.c) starts at v0.insn=31729 and returns at 32679.
R03_WINDOW = 'v0.insn=31729..32678'
R03_COUNTS = ((950, 885), (950, 0))
R03_REPLAY = 'v0.insn=31769: kvmclock v0'


def race_03(h):
    v, f = R03_COUNTS[0]
    common = (
        'Race 03 of the catalogue, kvmclock going back on one vCPU when the host re-bases its (tsc_timestamp, '
        'system_time) pair (pvmsr/README.md §4.4, §4.13, flag kvmclock_no_backwards_clamp of §2.5). One vCPU on '
        'the seed-era host (machine.kvm.abi "orig"), its TSC running 5000 ppm fast (machine.tsc_skew) while KVM '
        'scales it with the nominal 2.5 GHz, as a host whose TSC calibration is off would. The guest registers '
        'its kvmclock structure: the kvm_msr line of the WRMSR to 4b564d01 and the kvm_pvclock_update of version 2 '
        '[register], flags 0 as always in the seed era [no-stable]. Extrapolating that pair, the guest\'s clock '
        'gains 5 ns per microsecond on the host\'s; after 40 us of TSC it is about 190 ns ahead. Then it reads its '
        'clock raw, without Linux\'s global guard (a guest before 2.6.35, or any guest that trusts its own '
        'structure), once and then 16 times in read_window(), and checks that no reading is below the one before. '
        'In the plain run nothing re-bases the pair (the seed-era host has no periodic update and the vCPU never '
        'changes pCPU), and the readings only grow. The race needs the host to re-base it while the guest reads: '
        'a `kvmclock v0` action raises KVM_REQ_CLOCK_UPDATE, which kvm_guest_time_update services at the vCPU\'s '
        'next entry, sampling the host clock and the TSC there (a move to another pCPU does the same). The '
        f'explore section places that action at each of the {v} instruction boundaries of read_window().')
    bug = (
        'Here the flag is on, the host before 2.6.37: the new pair is published as sampled, with system_time the '
        'host\'s time, which is behind the time the guest has just read by the whole gain; the next reading is '
        'below the one before and the guest prints a FAIL line with how far the clock went back (154 ns in the '
        f'first failing variant; exit status 3). `pvsim explore race-03-kvmclock-rebase-bug.json` finds {f} of '
        f'{v} placements failing: every one between the window\'s first reading and its last. The first 40 '
        're-base the pair before the window\'s first reading, which still lies above the reading taken before the '
        'window (the first fetch from read_window\'s page is an EPT violation of 480 ns, more than the gain), and '
        'the last 25 after the last reading. Replay the first failing one with `pvsim run '
        f'race-03-kvmclock-rebase-bug.json --schedule \'{R03_REPLAY}\' --trace bug.txt`, the same on '
        'race-03-kvmclock-rebase-fix.json --trace fix.txt, and `pvsim diff bug.txt fix.txt`: they part at the '
        're-base\'s kvm_pvclock_update, whose system_time is the host\'s time under the bug and the guest\'s '
        'extrapolation with the fix. Compare race-03-kvmclock-rebase-fix.json.')
    fix = (
        'Here the flag is off, the seed-era default since 1d5f066e0b63 (2.6.37, "possible backwards warp"): '
        'kvm_guest_time_update extrapolates the previous pair to the TSC of the vCPU\'s last exit and raises the '
        'new system_time to that value when the host clock is behind it, so the guest never reads less than '
        'before (the clock then runs on from the raised value; the gain is kept, not taken back). '
        f'`pvsim explore race-03-kvmclock-rebase-fix.json` finds 0 of {v} placements failing over the same '
        'window. Compare race-03-kvmclock-rebase-bug.json.')
    race_pair(h, 3, 'kvmclock-rebase', 'pv_race_clock_rebase', common, bug, fix,
              {'vcpus': 1, 'ram_mib': 16, 'tsc_skew': [{'vcpu': 0, 'ppm': 5000}], 'kvm': {'abi': 'orig'}},
              'kvmclock_no_backwards_clamp', host={'pcpus': 1},
              explore={'window': R03_WINDOW, 'place': 'kvmclock v0'}, counts=R03_COUNTS,
              trace=[h.in_order('register', 'kvm_msr: msr_write 4b564d01 = ',
                                'kvm_pvclock_update: vcpu_id 0, pvclock { version 2,', consecutive=True),
                     h.absent('no-stable', 'kvm_pvclock_update: * flags 0x1 }')])


# --- 19: no master clock while the boot vCPU uses MSR 0x12 (one scenario: no flag) -------------------
def race_19(h):
    stable = 'kvm_pvclock_update: vcpu_id {}, * flags 0x1 }}'
    clear = 'kvm_pvclock_update: vcpu_id {}, * flags 0x0 }}'
    desc = (
        'Item 19 of the catalogue, the boot vCPU on the old kvmclock MSR (pvmsr/README.md §4.7, §4.13). Not a race '
        'and no bug flag: this is how today\'s KVM behaves. A guest old enough to register kvmclock through MSR '
        '0x12 (MSR_KVM_SYSTEM_TIME; very old SuSE 2.6.16 kernels) predates PVCLOCK_TSC_STABLE_BIT and mishandles '
        'it, so KVM (workaround commit 54750f2cf042, 2015) notes which of the two MSRs vCPU 0 last wrote '
        '(kvm_write_system_time: boot_vcpu_runs_old_kvmclock), requests a master-clock update whenever that '
        'changes, and keeps the master clock off while it is 0x12 (pvclock_update_vm_gtod_copy). Three vCPUs with '
        'matched TSCs on today\'s KVM (machine.kvm.abi "modern"), which would use the master clock. Phase 1: vCPU 0 '
        'registers its structure with 0x12, then vCPUs 1 and 2 with 0x4b564d01; every structure is published '
        'with flags 0 [old-msr]. Phase 2: vCPU 0 writes the same address to 0x4b564d01: the master-clock update '
        'at the entry that ends that WRMSR turns the mode on and asks every vCPU for a clock update; vCPU 0\'s '
        'structure gets PVCLOCK_TSC_STABLE_BIT at once, and each other vCPU\'s at its next entry after that '
        'instant, all three carrying the same (tsc_timestamp, system_time) master pair [vcpu0-switch] [vcpu1] '
        '[vcpu2]; these three updates are the only ones in the run with the bit [stable-three]. Phase 3: vCPU 0 goes back to 0x12 and the bit goes, on every vCPU '
        '(the same claims). Each vCPU waits up to 40 us for its own structure to change and vCPU 0 prints what '
        'each saw; a FAIL line would name the vCPU whose flags were wrong. pvsim has no trace event for the '
        'master-clock update itself (KVM\'s kvm_update_master_clock): the flags of the kvm_pvclock_update lines '
        'show it. (Guest built with -O2.)')
    s = {'name': 'race-19-old-msr-boot-vcpu', 'description': desc,
         'machine': {'vcpus': 3, 'ram_mib': 16, 'kvm': {'abi': 'modern'}},
         'host': {'pcpus': 3},
         'guest': {'image': 'guest/bin/pv_race_old_msr_boot-O2.elf'},
         'limits': {'max_virtual_ms': 2},
         'expect': {'stop': 'exit', 'exit_status': 1, 'console_contains': ['SUMMARY: 3 tests\n'],
                    'console_excludes': ['FAIL'],
                    'trace': [
                        h.in_order('old-msr', 'kvm_msr: msr_write 12 = ', clear.format(0),
                                   'kvm_msr: msr_write 4b564d01 = ', clear.format(1),
                                   'kvm_msr: msr_write 4b564d01 = ', clear.format(2)),
                        h.in_order('vcpu0-switch', 'kvm_msr: msr_write 12 = ', clear.format(0),
                                   'kvm_msr: msr_write 4b564d01 = ', stable.format(0),
                                   'kvm_msr: msr_write 12 = ', clear.format(0), vcpu=0),
                        h.in_order('vcpu1', 'kvm_msr: msr_write 4b564d01 = ', clear.format(1), stable.format(1),
                                   clear.format(1), vcpu=1),
                        h.in_order('vcpu2', 'kvm_msr: msr_write 4b564d01 = ', clear.format(2), stable.format(2),
                                   clear.format(2), vcpu=2),
                        h.exactly('stable-three', 'kvm_pvclock_update: * flags 0x1 }', 3)]}}
    h.write(f'{h.root}/race-19-old-msr-boot-vcpu.json', s)


# --- extra: version counts wrap (one scenario) ------------------------------------------------
WRAP_SCHEDULE = ['v0.rip=clock_update_point: kvmclock v0', 'v0.rip=steal_update_point: preempt v0 5us',
                 'v0.rip=steal_odd_point: steal v0']


def version_wrap(h):
    desc = (
        'The version counts of the kvmclock structure and of the steal-time record are 32 bits and wrap from '
        '0xffffffff to 0, so readers must compare them for equality, never for order (pvmsr/README.md §4.6, §4.9, '
        '§6.2). Today\'s KVM (machine.kvm.abi "modern") keeps no count of its own: each update reads the version '
        'the guest\'s copy holds, makes it odd (kvm_setup_guest_pvclock: (version + 1) | 1; record_steal_time: +1 '
        'after rounding odd junk up), writes the body and adds 1. One vCPU, without the master clock '
        '(machine.kvm.master_clock false) so that every kvmclock update samples a new pair. The guest leaves odd '
        'junk 0xfffffffd in its kvmclock structure and registers it: the registration\'s update is published as '
        'version 0 [clock-register]. It writes 0xfffffffe there and reads the structure once more; the scenario\'s '
        'schedule has KVM update it in the middle of that read, between the loads of tsc_timestamp and '
        'system_time (`kvmclock v0` at clock_update_point), and the update again ends at version 0 '
        '[clock-straddle]. Then it registers steal time (version 2 after that update), writes 0xfffffffe, and '
        'reads the record; the host preempts the vCPU for 5 us between its load of `steal` and its second load of '
        'the version (preempt at steal_update_point), and the update at the next entry adds the 5000 ns and ends '
        'at version 0 [steal-straddle]. Last, 0xfffffffd and an update (`steal v0` at steal_odd_point): rounded up, '
        'made odd, 0 [steal-odd]. For each straddling read the guest prints what two readers decide about it: '
        'Linux\'s (retry while the version is odd or differs from the first load) goes round once more and '
        'returns the new value, which is what the guest checks; one that treats the version as an ordered count '
        '(retry while it is odd or grew) sees 0 "not greater than" 0xfffffffe and keeps the first attempt: for '
        'kvmclock an old tsc_timestamp with a new system_time, a time about 120 us off the clock (the time '
        'between the two updates); for steal time a value 5000 ns behind the record. And a guest waiting for the '
        'next update with "version > 0xfffffffe" would wait for ever: the console prints both tests of the '
        'version found after each update. (Guest built with -O2.)')
    s = {'name': 'pv-version-wrap', 'description': desc,
         'machine': {'vcpus': 1, 'ram_mib': 16, 'kvm': {'abi': 'modern', 'master_clock': False}},
         'host': {'pcpus': 1},
         'guest': {'image': 'guest/bin/pv_race_version_wrap-O2.elf'},
         'limits': {'max_virtual_ms': 2},
         'schedule': WRAP_SCHEDULE,
         'expect': {'stop': 'exit', 'exit_status': 1,
                    'console_contains': [
                        'reader comparing versions with <: accepted the first attempt (0x0 > 0xfffffffe is false)',
                        'version != 0xfffffffe is true, version > 0xfffffffe is false', 'SUMMARY: 4 tests\n'],
                    'console_excludes': ['FAIL'],
                    'trace': [
                        h.in_order('clock-register', 'kvm_msr: msr_write 4b564d01 = ',
                                   'kvm_pvclock_update: vcpu_id 0, pvclock { version 0,', consecutive=True),
                        h.in_order('clock-straddle', 'pvsim_action: v0.rip=clock_update_point: kvmclock v0',
                                   'kvm_pvclock_update: vcpu_id 0, pvclock { version 0,', consecutive=True),
                        h.in_order('steal-straddle', 'kvm_msr: msr_write 4b564d03 = ',
                                   'pvsim_steal: update: steal 0 delta 0 version 2',
                                   'pvsim_action: v0.rip=steal_update_point: preempt v0 5us',
                                   'pvsim_steal: update: steal 5000 delta 5000 version 0'),
                        h.in_order('steal-odd', 'pvsim_action: v0.rip=steal_odd_point: steal v0',
                                   'pvsim_steal: update: steal 5000 delta 0 version 0')]}}
    h.write(f'{h.root}/pv-version-wrap.json', s)


def generate(h):
    race_01(h)
    race_02(h)
    race_03(h)
    race_06(h)
    race_08(h)
    race_15(h)
    race_19(h)
    version_wrap(h)
