"""The race catalogue's guest-kernel items (pvmsr/README.md §2.5, §4): bugs of the guest, not
of KVM, so each pair runs the same machine and host and differs only in the guest image -
two images built from one source (programs/<prog>.c and <prog>_fixed.c, which #define one
macro and #include programs/<prog>.h). Each scenario carries an `explore` section over the
same window (scenarios/README.md "explore") whose pinned counts show the bug found under the
old guest (failing > 0) and never under the fixed one (failing 0); the plain runs of both
pass, since the race needs a host action the explorer places.

Called by gen_scenarios.py as generate(h): h.root, h.write(path, obj) and the trace-claim
helpers. Windows are instruction counts of the -O2 images (`pvsim run FILE --schedule
'v0.rip=SYMBOL: stop'` prints them); a change to a program moves them, and its explore
counts then fail in ctest guest.explore.<stem> until updated here."""


def guest_pair(h, nn, slug, prog, common, bug_text, fix_text, machine, host, explore, counts, *, summary=1,
               limits=None, trace=()):
    """Writes race-<nn>-<slug>-bug.json (image <prog>-O2.elf) and -fix.json (<prog>_fixed-O2.elf),
    identical but for the image and the description. counts = ((V, F bug), (V, F fix))."""
    for kind, text in (('bug', bug_text), ('fix', fix_text)):
        name = f'race-{nn:02d}-{slug}-{kind}'
        image = prog if kind == 'bug' else prog + '_fixed'
        expect = {'stop': 'exit', 'exit_status': 1, 'console_contains': [f'SUMMARY: {summary} tests\n'],
                  'console_excludes': ['FAIL']}
        if trace:
            expect['trace'] = list(trace)
        v, f = counts[0 if kind == 'bug' else 1]
        e = dict(explore)
        e['expect'] = {'variants': v, 'failing': f}
        h.write(f'{h.root}/{name}.json', {
            'name': name,
            'description': common + ' ' + text + ' (Guest built with -O2.)',
            'machine': machine,
            'host': host,
            'guest': {'image': f'guest/bin/{image}-O2.elf'},
            'limits': limits or {'max_virtual_ms': 1},
            'expect': expect,
            'explore': e,
        })


# --- 17: kvmclock writes after kexec ---------------------------------------------------------
# In the -O2 images kexec_shutdown() (pv_race_kexec_clock.h) is reached at v0.insn=5789 (bug)
# and 5787 (fix: main is laid out slightly differently); the new kernel's first clock reading
# at B starts at 6083 (bug) and 6110 (fix, 27 instructions later: its shutdown's WRMSR). The
# window covers both images from the shutdown to that reading.
R17_WINDOW = 'v0.insn=5787..6110'
R17_PLACE = 'kvmclock v0'
R17_COUNTS = ((324, 270), (324, 0))
R17_REPLAY = 'v0.insn=5900: kvmclock v0'


def race_17(h):
    v, f = R17_COUNTS[0]
    common = (
        'Item 17 of the catalogue, kvmclock writes after kexec (pvmsr/README.md §4.1, §4.5). A guest-kernel bug: '
        'the pair runs the same machine and host, one vCPU under the seed-era host (machine.kvm.abi "orig", which '
        'has no periodic clock update, so in the plain run nothing refreshes the clock during the kexec), and '
        'differs only in the guest image. One vCPU plays two kernels. The old kernel registers its kvmclock '
        'structure at GPA A (a WRMSR to 4b564d01 with A | 1) and reads the clock; then it runs its shutdown hook and '
        'kexecs into the new kernel, which knows nothing of A: early in its boot it allocates the memory at A for '
        '64 bytes of its own data, works a little, and only then registers its own kvmclock at GPA B (both '
        'registrations are WRMSRs with bit 0 set [register]). At the end it checks its data. The MSR belongs to '
        'the vCPU and survives the kexec: until the new registration replaces it, KVM still writes this vCPU\'s '
        'clock to A whenever it updates it - after the vCPU thread moves to another pCPU, a master-clock change, '
        'the periodic sync, any KVM_REQ_CLOCK_UPDATE (pvmsr/README.md §4.5) - and kvm_guest_time_update does not '
        'know that the guest moved on. The explore section places a `kvmclock v0` request (KVM_REQ_CLOCK_UPDATE, '
        f'serviced at once) at each of the {v} instruction boundaries from the old kernel\'s shutdown hook to the '
        'new kernel\'s first reading of its clock at B.')
    bug = (
        'Here the old kernel kexecs with its clock still registered, as Linux did before 1e977aa12dd4: an update '
        'between the new kernel\'s first store to A and its registration of B writes version, tsc_timestamp, '
        'system_time and the scale over the first 32 bytes of the new kernel\'s data, and the guest prints a FAIL '
        'line naming the words that changed ("4 of 8 words changed, the first at byte 0 reads 0x4", 0x4 being the '
        f'update\'s version), and the run exits with status 3. `pvsim explore race-17-kexec-kvmclock-bug.json` finds {f} of {v} '
        'placements failing: every one from the first store of the fill to the WRMSR that registers B. An update '
        'before the fill lands in memory the new kernel has not used yet and is overwritten; one after the new '
        'registration goes to B. Replay one with `pvsim run race-17-kexec-kvmclock-bug.json --schedule '
        f'\'{R17_REPLAY}\' --trace bug.txt`, the same on race-17-kexec-kvmclock-fix.json --trace fix.txt, and '
        '`pvsim diff bug.txt fix.txt`: the traces part where the fixed kernel\'s shutdown writes 0 to 4b564d01; '
        'after the request the bug\'s trace has a kvm_pvclock_update of vCPU 0 (into A) and the fix\'s none. '
        'Steal time has the same hazard (item 08 is KVM\'s own version of it). Compare '
        'race-17-kexec-kvmclock-fix.json.')
    fix = (
        'Here the old kernel\'s shutdown hook writes 0 to MSR 4b564d01 before the kexec, the fix 1e977aa12dd4 '
        '("x86: KVM guest: disable clock before rebooting.", its kernel version unverified; Linux\'s kvm_shutdown): a write with bit 0 '
        'clear stops the updates and leaves memory as it is, so a request between the kexec and the new '
        'registration writes nothing. Hibernation needed the same cure, in Linux 5.13\'s teardown series '
        '(8b79feffeca2, c02027b5742b, 3d6b84132d2a). The two images are built from one source '
        '(programs/pv_race_kexec_clock.h); the fixed one runs 27 more instructions before the new kernel (its '
        'WRMSR), so the same window ends 27 instructions earlier in its new kernel, still past its registration '
        f'of B. `pvsim explore race-17-kexec-kvmclock-fix.json` finds 0 of {v} placements failing. Compare '
        'race-17-kexec-kvmclock-bug.json.')
    guest_pair(h, 17, 'kexec-kvmclock', 'pv_race_kexec_clock', common, bug, fix,
               {'vcpus': 1, 'ram_mib': 16, 'kvm': {'abi': 'orig'}}, {'pcpus': 1},
               {'window': R17_WINDOW, 'place': R17_PLACE}, R17_COUNTS, summary=2,
               trace=[h.exactly('register', 'kvm_msr: msr_write 4b564d01 = 0x*1', 2)])


# --- 18: GUEST_STOPPED ignored by the sched_clock read ---------------------------------------
# watched_task() (pv_race_stopped.h) starts at v0.insn=5779 in both images, which run the same
# instructions until a pause sets the bit; the guest's clock reading after it returns starts
# at 6715. The window is the whole task.
R18_WINDOW = 'v0.insn=5779..6714'
R18_PLACE = 'pause 2ms'
R18_COUNTS = ((936, 868), (936, 0))
R18_REPLAY = 'v0.insn=6000: pause 2ms'


def race_18(h):
    v, f = R18_COUNTS[0]
    common = (
        'Item 18 of the catalogue, PVCLOCK_GUEST_STOPPED ignored by a sched_clock read (pvmsr/README.md §4.2, '
        '§4.5, §4.9). A guest-kernel bug: the pair runs the same machine and host, one vCPU under today\'s KVM '
        '(machine.kvm.abi "modern", the master clock on: the registration\'s kvm_pvclock_update has flags 0x1 '
        '[register]), and differs only in the guest image. When a VMM stops a VM and resumes it, the guest finds '
        'its clock a pause later; so the VMM issues KVM_KVMCLOCK_CTRL and KVM sets PVCLOCK_GUEST_STOPPED (flags '
        'bit 1) in the vCPU\'s kvmclock structure at its next update, telling the guest that the jump was not its '
        'CPU being stuck. Linux\'s pvclock_clocksource_read clears the bit and touches the watchdogs; the noinstr '
        'read behind its sched_clock, pvclock_clocksource_read_nowd, does neither. The guest: a task runs 48 '
        'iterations without scheduling (about 1.2 us), and a soft-lockup watchdog checks on every 8th whether '
        'sched_clock has moved more than its threshold (Linux\'s 20 s scaled down to 1 ms) since it was last '
        'touched, when the task started; the guest\'s only clock reads during the task are sched_clock\'s. After '
        'the task the guest reads the clock through the clocksource path once and prints which read saw the bit. '
        f'The explore section places `{R18_PLACE}` (the VMM stops the VM for 2 ms and resumes it with '
        f'KVM_KVMCLOCK_CTRL, as host.pause does) at each of the {v} instruction boundaries of the task.')
    bug = (
        'Here sched_clock reads through the nowd path: the first check after the pause finds the clock 2 ms past '
        'the last touch and the guest prints "FAIL: BUG: soft lockup - the watchdog saw CPU#0 stuck for 2000 us" '
        '(exit status 3), and the clocksource read after the task is the first to see the bit. `pvsim explore '
        f'race-18-stopped-sched-clock-bug.json` finds {f} of {v} placements failing: every pause after the '
        'task\'s first reading (the watchdog\'s touch) and before the reading of its last check. Replay one with '
        f'`pvsim run race-18-stopped-sched-clock-bug.json --schedule \'{R18_REPLAY}\' --trace bug.txt`, the '
        'same on race-18-stopped-sched-clock-fix.json --trace fix.txt, and `pvsim diff bug.txt fix.txt`: the two '
        'traces are the same through the pause, the resume ("pvsim_host: resume: KVM_KVMCLOCK_CTRL on vCPUs 0") '
        'and the update with flags 0x3, and part at the guest\'s first console write, which the fixed guest makes '
        'a little sooner; with --ignore-time they part where the console says which read saw the bit. Whether Linux itself can '
        'report this (its hrtimer interrupt usually reads the clocksource, and with it the bit, before the '
        'watchdog\'s check) and whether a fix exists are unverified: the scenario models a kernel whose only '
        'reads in the stretch are sched_clock\'s. Compare race-18-stopped-sched-clock-fix.json.')
    fix = (
        'Here sched_clock takes the bit as pvclock_clocksource_read does: the first reading after the pause '
        'clears it in the structure and touches the watchdog, whose next check starts counting afresh. The two '
        'images are built from one source (programs/pv_race_stopped.h) and differ in one byte of data, the `dowd` '
        'argument sched_clock passes to the read function, which tests the bit before the argument: the two run '
        f'the same instructions at the same addresses until a pause sets the bit. `pvsim explore race-18-stopped-sched-clock-fix.json` finds '
        f'0 of {v} placements failing over the same window. Compare race-18-stopped-sched-clock-bug.json.')
    guest_pair(h, 18, 'stopped-sched-clock', 'pv_race_stopped', common, bug, fix,
               {'vcpus': 1, 'ram_mib': 16, 'kvm': {'abi': 'modern'}}, {'pcpus': 1},
               {'window': R18_WINDOW, 'place': R18_PLACE}, R18_COUNTS, limits={'max_virtual_ms': 4},
               trace=[h.in_order('register', 'kvm_msr: msr_write 4b564d01 = 0x*1',
                                 'kvm_pvclock_update: vcpu_id 0, pvclock { version 2, * flags 0x1 }', consecutive=True)])


def generate(h):
    race_17(h)
    race_18(h)
