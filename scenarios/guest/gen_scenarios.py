#!/usr/bin/env python3
"""Writes the shipped guest scenario files: scenarios/<prog>-<O0|O2|Os>.json, default.json,
hello-smp4.json, garbage-<n>.json, bench/<name>.json, scale/scale-<n>.json and the issue-3 SMP scenarios (lapic_timer, ipi, nmi,
tpr, init, init-bsp, spinlock-q1/q10000, kvmclock-modern/orig, wallclock). Descriptions, limits and the exact
expected console lines live here, in one place; run it after changing a guest program's checks
(the SUMMARY counts below must match the number of report() calls) and commit the JSON it writes.
Usage: python3 scenarios/guest/gen_scenarios.py"""
import json, os
root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
LEVELS = {'O0': 'no optimisation: every variable lives on the stack, so the trace has many more memory accesses per source line',
          'O2': 'optimised for speed: values stay in registers and small functions are inlined',
          'Os': 'optimised for size: compact code with more calls and fewer unrolled loops'}

def write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')

def test_scenario(prog, level, desc, summary, extra_contains=(), machine=None, max_insn=None):
    s = {
        'name': f'{prog}-{level}',
        'description': desc + f' This variant is built with -{level} ({LEVELS[level]}).',
        'machine': machine or {'vcpus': 1, 'ram_mib': 16},
        'guest': {'image': f'guest/bin/{prog}-{level}.elf'},
    }
    if max_insn:
        s['limits'] = {'max_instructions': max_insn}
    s['expect'] = {'stop': 'exit', 'exit_status': 1,
                   'console_contains': list(extra_contains) + [f'SUMMARY: {summary} tests\n'],
                   'console_excludes': ['FAIL']}
    write(f'{root}/{prog}-{level}.json', s)
    return s

D = {}
D['hello'] = ('The smallest guest: it sets up its own GDT, TSS and IDT, prints one greeting on the debug console '
    '(port 0xe9), reports one PASS line and exits by writing 0 to port 0xf4 (exit status (0 << 1) | 1 = 1). '
    'In the trace, every character printed is a port write: a kvm_exit with reason IO_INSTRUCTION, a kvm_pio '
    'line "pio_write at 0xe9 size 1 count 1 val 0x.." and a kvm_entry. The very last kvm_pio is the write to '
    'port 0xf4 that ends the run. The LGDT/LIDT/LTR at start-up need no exit: a CPU loads its own descriptor tables.')
D['quicksort'] = ('A CPU workout with almost no exits: the guest fills an array with 100000 pseudo-random 64-bit '
    'keys (splitmix64, fixed seed), sorts it with a recursive quicksort and checks the result is sorted, is a '
    'permutation of the input, and has exactly the checksum the host computed by running the same C code natively. '
    'Between the start-up and the PASS lines the only exits are EPT violations (kvm_exit EPT_VIOLATION + '
    'kvm_page_fault), one for the first touch of each 4 KiB guest page of the 800 KB array, because guest memory '
    'is mapped lazily as KVM does; the sorting itself runs without a single exit. Compare the instruction counts of '
    'the -O0, -O2 and -Os variants.')
D['divmul'] = ('64- and 32-bit DIV/IDIV/MUL/IMUL against a table of answers generated on the host from the same C '
    'code, including 128-bit products from the one-operand MUL/IMUL forms. The cases C leaves undefined are run '
    'with inline assembly and must raise #DE (vector 0): divide by zero, INT64_MIN / -1, and quotients too large '
    'for the destination. #DE is a fault, so the guest\'s handler sees RIP at the DIV itself and RAX/RDX unchanged; '
    'it resumes after the instruction through an exception-table fixup. These exceptions are raised and delivered '
    'inside the guest, so they cause no kvm_exit and no kvm_inj_exception: only the console writes appear in the trace.')
D['printf'] = ('Exercises the guest\'s printf engine: each PASS line compares snprintf output for one format '
    '(widths, flags, precision, l/ll/z/h/hh modifiers, %p, %s, %c) with the string ISO C requires (the list is '
    'checked against the host C library at build time), then prints fixed lines the scenario matches exactly. '
    'This is the most port-write-heavy guest: each character is one OUT to port 0xe9, i.e. one kvm_exit '
    'IO_INSTRUCTION + kvm_pio pair in the trace, which makes it a good stress test for exit handling.')
D['usermode'] = ('Protection in action: the guest builds its own 4-level page tables (4 KiB pages, the U bit only '
    'on its user code and data, NX on user data, EFER.NXE set), loads them into CR3 and enters CPL3 with IRETQ. '
    'User code then reads and writes a supervisor page (#PF with error code 0x5 = P|U and 0x7 = P|W|U, CR2 = the '
    'address), touches a not-present page (0x4, 0x6), jumps into an NX page (0x15 = P|U|I), and runs HLT, CLI, '
    'MOV from CR3 and OUT (#GP(0) each, IOPL is 0) and INT 0x81 through a DPL0 gate (#GP(0x40a) = vector*8 + 2, '
    'the IDT bit). INT 0x80 goes through a DPL3 gate and returns to CPL0. Each check also verifies that the CPU '
    'switched to the TSS.RSP0 stack. In the trace the hypervisor barely appears: the EFER write that sets NXE is '
    'a kvm_msr line, but the CR3 load, every #PF and every #GP are handled by the (virtual) CPU and the guest IDT '
    'without a VM exit - with EPT, KVM does not intercept them; pvsim still records each delivery as a '
    'pvsim_exception line (vector, error code, RIP, CR2), a pvsim-only event with no KVM counterpart. Even the OUT '
    'at CPL3 never exits: the IOPL check faults before the port is reached.')
D['cpuid_msr'] = ('What a guest learns about its virtual CPU. CPUID leaf 0 (vendor), leaf 1 (hypervisor bit '
    'ECX[31], initial APIC ID, logical CPU count), leaf 0x40000000 (signature "KVMKVMKVM") and leaf 0x40000001 '
    '(KVM features, which this scenario sets explicitly to 0x01007efb); each CPUID is a kvm_exit with reason CPUID '
    'and a kvm_cpuid line. RDMSR of EFER, PAT, APIC_BASE and MISC_ENABLE checks the boot values; FS_BASE/GS_BASE '
    'writes are checked through %fs:/%gs: loads. An unknown MSR (0xdeadbeef), a non-canonical FS_BASE and reserved '
    'EFER bits must be refused: in the trace each shows as kvm_msr "msr_read deadbeef = 0x0 (#GP)" (or msr_write) '
    'followed by kvm_inj_exception "#GP (0x0)", and the guest recovers through its exception-table fixup.')

D['exceptions'] = ('How exceptions reach the guest and how its runtime recovers from them. A registered handler sees '
    'INT3 (#BP, a trap: the saved RIP is after the instruction) and a software INT 0x40 and may edit the saved '
    'registers. Faults are caught and unwound by catch_exception(): UD2 (#UD), DIV by zero (#DE), a non-canonical '
    'address (#GP(0)), the same through RSP (#SS(0), because RSP-based addressing uses SS), and loads/stores at '
    '5 GiB, which the boot page tables do not map (#PF with error code 0 or 2 and CR2 = the address). The CPU '
    'delivers all of these through the guest IDT without a VM exit (each is a pvsim_exception line in the trace, '
    'an event real KVM has no counterpart for); only rdmsr_safe(0xdeadbeef) needs the '
    'hypervisor, and shows up as kvm_msr "msr_read deadbeef = 0x0 (#GP)" followed by kvm_inj_exception "#GP (0x0)".')
summaries = {'exceptions': 13, 'hello': 1, 'quicksort': 4, 'divmul': 74, 'printf': 50, 'usermode': 23, 'cpuid_msr': 25}
limits = {'exceptions': 10_000_000, 'hello': 2_000_000, 'quicksort': 400_000_000, 'divmul': 20_000_000, 'printf': 20_000_000,
          'usermode': 20_000_000, 'cpuid_msr': 10_000_000}
contains = {
    'hello': ['Hello from pvsim guest: vCPU 0 of 1, 16 MiB RAM\n'],
    'printf': ['console: [   42] [42   ] [00042] [beef] [pvsim]\n',
               'console: 18446744073709551615 -9223372036854775808 0x000000001234abcd ok\n',
               'console: puts adds a newline\n'],
}
machines = {'cpuid_msr': {'vcpus': 1, 'ram_mib': 16, 'kvm_cpuid': {'features': '0x01007efb'}}}
for prog in D:
    for level in LEVELS:
        test_scenario(prog, level, D[prog], summaries[prog], contains.get(prog, ()), machines.get(prog),
                      limits[prog])

default = {
    'name': 'default',
    'description': 'The main job: boots the hello guest (built with -O2) on one vCPU. ' + D['hello'],
    'machine': {'vcpus': 1, 'ram_mib': 16},
    'guest': {'image': 'guest/bin/hello-O2.elf'},
    'limits': {'max_instructions': 2_000_000},
    'expect': {'stop': 'exit', 'exit_status': 1,
               'console_contains': contains['hello'] + ['PASS: main runs on vCPU 0 of 1\n', 'SUMMARY: 1 tests\n'],
               'console_excludes': ['FAIL']},
}
write(f'{root}/default.json', default)

# Garbage: the seed is derived from the RAM size, so each RAM size is a different program.
for i, ram in enumerate([16, 24, 40], 1):
    write(f'{root}/garbage-{i}.json', {
        'name': f'garbage-{i}',
        'description': ('Robustness: the guest fills 64 KiB with pseudo-random bytes (seeded from the RAM size, so '
            f'this {ram} MiB machine runs its own garbage) and executes them for up to 300 rounds: each round starts at '
            'a random offset with every register, RSP included, random. Every exception the bytes raise is delivered '
            'on the IST1 stack (so a wild RSP cannot turn it into a triple fault) to a handler that prints it and '
            'starts the next round. Sooner or later the bytes usually end the run another way - a jump outside RAM, '
            'HLT with IF=0 (deadlock), an endless loop (instruction limit), junk loaded into IDTR or CR0 (shutdown). '
            'The expectation is only that the emulator ends with a clean report, never a host crash; unhandled port '
            'and MMIO accesses are ignored so the bytes can keep going. The console shows how each round ended; the '
            'end of the trace shows what stopped the run.'),
        'machine': {'vcpus': 1, 'ram_mib': ram, 'ignore_unhandled_io': True},
        'guest': {'image': 'guest/bin/garbage-O2.elf'},
        'limits': {'max_instructions': 20_000_000, 'max_virtual_ms': 1000},
        'expect': {'console_contains': ['garbage: seed 0x', 'garbage: round 0 ended by vector'], 'console_excludes': ['FAIL']},
    })

B = {
 'alu': ('Benchmark: a tight loop of register-only integer arithmetic (multiply, shifts, rotate, add, xor: '
         'about 15 instructions per iteration, 3e8 in all) that never touches memory and never leaves the '
         'guest. It measures how fast the emulator fetches, decodes and executes plain instructions, the best '
         'case for any emulator.',
         64, 1_000_000_000),
 'hash': ('Benchmark: an open-addressing hash table of 4 Mi 16-byte slots (64 MiB): 2.8 million inserts (0.67 x'
         ' the slot count) and 2.8 million lookups of pseudo-random keys. Each access lands on an '
         'unpredictable one of 16384 pages, so it measures the emulated memory path: address translation (TLB '
         'misses, page walks) and loads/stores spread over a large working set.',
         128, 1_000_000_000),
 'sort': ('Benchmark: bottom-up merge sort of 4 Mi pseudo-random 64-bit keys (32 MiB, plus a 32 MiB buffer to '
         'merge into). After insertion-sorting runs of 8 keys, each of the 19 merge passes streams through 64 '
         'MiB with one hard-to-predict comparison per element, so it measures sequential loads and stores plus'
         ' data-dependent branches.',
         128, 2_500_000_000),
 'bytecode': ('Benchmark: a small byte-code interpreter (a loop with a switch over 11 opcodes, like the core of a '
         'scripting language) running a Collatz step-count program of about 25 million byte-codes. Every byte-'
         'code is an indirect jump to a short, data-dependent piece of code, which measures how well the '
         'emulator handles jumps whose target changes all the time.',
         64, 1_000_000_000),
 'sieve': ('Benchmark: the sieve of Eratosthenes over a 32 MiB byte array (one byte per number below 2^25), then'
         ' a count of the 2063689 primes. For each small prime a store loop strides across all 8192 pages of '
         'the array, so it measures the speed of simple stores and address translation over a large array.',
         96, 1_500_000_000),
}
for prog, (desc, ram, insn) in B.items():
    write(f'{root}/bench/{prog}.json', {
        'name': f'bench-{prog}',
        'description': desc + ' The guest compares its result with a checksum computed natively on the host and '
                       'exits with status 1 only if they match.',
        'machine': {'vcpus': 1, 'ram_mib': ram},
        'guest': {'image': f'../guest/bin/{prog}-O2.elf'},
        'limits': {'max_instructions': insn, 'max_virtual_ms': 600000},
        'expect': {'stop': 'exit', 'exit_status': 1, 'console_excludes': ['FAIL'],
                   'console_contains': ['SUMMARY: %d tests\n' % (2 if prog == 'sieve' else 1)]},
    })

# Scale (issue 4 point 3): the same ALU loop on 1, 8 and 64 vCPUs. `pvsim bench scenarios/scale/*.json`
# prints total guest MIPS per run; vCPUs share one host thread, so N-vCPU MIPS / 1-vCPU MIPS is the
# throughput each vCPU keeps. Default quantum, default host (every vCPU always holds a pCPU).
os.makedirs(f'{root}/scale', exist_ok=True)
for n in (1, 8, 64):
    write(f'{root}/scale/scale-{n}.json', {
        'name': f'scale-{n}',
        'description': (f'Scaling benchmark on {n} vCPU{"s" if n > 1 else ""}: every vCPU runs the register-only loop '
            'of the ALU benchmark (500000 iterations, about 8 million instructions each) and checks its own result '
            'against the value the host computed. A vCPU that is done writes port 0xf5; the last one reports for '
            'all and ends the run, so no vCPU spins waiting. pvsim runs the vCPUs interleaved on one host thread '
            '(the scheduler picks the vCPU that is earliest in virtual time, 10000 instructions at a time), so '
            'the guest MIPS of this run divided by that of scale-1 is the speed each vCPU keeps: ideally 1, and '
            'the cost of scheduling many vCPUs is what makes it lower.'),
        'machine': {'vcpus': n, 'ram_mib': 16},
        'guest': {'image': '../guest/bin/scale-O2.elf'},
        'limits': {'max_instructions': 20_000_000 * n},
        'expect': {'stop': 'exit', 'exit_status': 1, 'console_excludes': ['FAIL'],
                   'console_contains': ['SUMMARY: 2 tests\n']},
    })

write(f'{root}/hello-smp4.json', {
    'name': 'hello-smp4',
    'description': ('The hello guest on four vCPUs. All vCPUs start together at the entry point (no INIT/SIPI in the '
        'direct boot protocol); vCPUs 1-3 see RDI != 0 and immediately report themselves finished with a write to '
        'port 0xf5, then park in HLT with IF=0, while vCPU 0 sets up its tables, prints and exits through port 0xf4, '
        'which ends the whole VM. In the trace, look for the three kvm_pio writes to 0xf5 from vCPUs 1-3 near the '
        'start, interleaved with vCPU 0 by the deterministic scheduler. The quantum is set to 200 instructions so '
        'the other vCPUs get to run before vCPU 0 is done: with the default 10000, vCPU 0 would finish hello inside '
        'its first quantum and the others would never execute an instruction.'),
    'machine': {'vcpus': 4, 'ram_mib': 16, 'quantum': 200},
    'guest': {'image': 'guest/bin/hello-O2.elf'},
    'limits': {'max_instructions': 2_000_000},
    'expect': {'stop': 'exit', 'exit_status': 1,
               'console_contains': ['Hello from pvsim guest: vCPU 0 of 4, 16 MiB RAM\n', 'SUMMARY: 1 tests\n'],
               'console_excludes': ['FAIL']},
})

# ---------------------------------------------------------------------------------------------
# Issue 3: several vCPUs, the local APIC, INIT/SIPI, spinlocks and kvmclock. Built at -O2 only:
# these scenarios are about the platform's timing and interrupt paths, not the compiler.
# Golden traces (issue 3): the XXH3-64 of each scenario's canonical trace, pinned so any
# change in what these scenarios show (an event, a time, an interleaving) fails the run.
# The hash covers guest RIPs, so it holds for images built by Debian 12's gcc 12; after a
# deliberate change, rerun the scenario and copy the "trace xxh3" value printed by pvsim.
GOLDEN_TRACE = {
    'kvmclock-host': '0x0374f0f0cb596561',
    'lapic_timer': '0xd0738a47e484cd0a',
    'ipi': '0x68f63c46a02f4ac2',
    'nmi': '0x5be9cc04b08957ce',
    'tpr': '0xc6dee2a3cad2883a',
    'init': '0x416d744fce58873d',
    'init-bsp': '0x1202035e2f957b53',
    'spinlock-q1': '0xcc2ee7222fdbb6ab',
    'spinlock-q10000': '0x423ef35f8e6dc7b2',
    'kvmclock-modern': '0xe2a4a0aa91197b10',
    'kvmclock-orig': '0x85956a9eed10ed2c',
    'wallclock': '0x977f53a549ce388c',
}

def smp_scenario(name, prog, desc, machine, summary=None, contains=(), excludes=('FAIL',), stop='exit',
                 exit_status=1, max_insn=20_000_000, host=None):
    expect = {'stop': stop}
    if stop == 'exit':
        expect['exit_status'] = exit_status
    cc = list(contains) + ([f'SUMMARY: {summary} tests\n'] if summary is not None else [])
    if cc:
        expect['console_contains'] = cc
    if excludes:
        expect['console_excludes'] = list(excludes)
    if name in GOLDEN_TRACE:
        expect['trace_hash'] = GOLDEN_TRACE[name]
    s = {
        'name': name,
        'description': desc + ' (Guest built with -O2.)',
        'machine': machine,
    }
    if host:
        s['host'] = host
    s.update({'guest': {'image': f'guest/bin/{prog}-O2.elf'},
              'limits': {'max_instructions': max_insn},
              'expect': expect})
    write(f'{root}/{name}.json', s)

smp_scenario('lapic_timer', 'lapic_timer',
    'The local APIC timer in its three modes (SDM Vol.3A 11.5.4) on one vCPU, with the APIC bus at 1000 MHz and '
    'the TSC at 2.5 GHz, so one timer count with divisor D lasts D ns = 2.5*D TSC cycles. One-shot: count 10000, '
    'divisor 16 -> 160 us = 400000 cycles; while it counts, two reads of the current-count register (0x390) must '
    'decrease (pvsim derives the value from the virtual time of the read, nothing ticks). Periodic: count 50000, '
    'divisor 1 -> five expiries 125000 cycles apart, anchored to the previous expiry so they do not drift; the '
    'handler stops the timer after the fifth. TSC-deadline: IA32_TSC_DEADLINE (MSR 0x6e0) = now + 300000; it reads '
    '0 once fired; a deadline in the past fires at once; writing 0 disarms. The guest waits with STI;HLT, records '
    'RDTSC in the handler and prints how late each expiry was seen (a few thousand cycles at most: the exits for '
    'the APIC write and HLT, interrupt delivery and the handler prologue). In the trace: the kvm_apic writes that '
    'program LVT timer (0x320), divide (0x3e0) and initial count (0x380); a kvm_apic_accept_irq for vector 0xec at '
    'exactly the expiry time in the timestamp column, then kvm_inj_virq and kvm_eoi.',
    {'vcpus': 1, 'ram_mib': 16, 'tsc_khz': 2500000, 'apic_bus_mhz': 1000}, summary=15,
    contains=['one-shot: divisor 16 count 10000: expected 400000 TSC cycles'])

smp_scenario('ipi', 'ipi',
    'Inter-processor interrupts among 4 vCPUs (SDM Vol.3A 11.6). Physical mode: every vCPU sends vector 0x40+i '
    'to every APIC ID including its own. Logical flat mode: vCPU i sets bit i of LDR[31:24], then masks 0b1010 '
    '(vCPUs 1 and 3), 0b0111 and 0b1111 select the receivers. Shorthands: self, all-including-self from vCPU 1, '
    'all-excluding-self from vCPU 2. Then all switch to x2APIC (IA32_APIC_BASE bit 10) and send by 64-bit ICR '
    'writes (MSR 0x830), the SELF IPI MSR 0x83f and logical cluster mode. Counts are checked exactly after '
    'barriers. ipi_latency_ns is 500: in the trace each kvm_apic_ipi (the ICR write, with its destination and '
    'shorthand) is followed 500 ns later by one kvm_apic_accept_irq per receiver; one ICR write with a shorthand '
    'or a logical mask reaches several vCPUs at once.',
    {'vcpus': 4, 'ram_mib': 16, 'ipi_latency_ns': 500}, summary=12)

smp_scenario('nmi', 'nmi',
    'NMIs sent as IPIs (ICR delivery mode 100b) from vCPU 0 to vCPU 1, three ways. (1) vCPU 1 runs CLI;HLT: no '
    'maskable interrupt could ever wake it, but the NMI does; after the handler\'s IRETQ execution continues after '
    'the HLT with IF still 0. (2) vCPU 1 spins with IF=0 while vCPU 0 sends a fixed IPI and then an NMI: the NMI is '
    'taken inside the loop, the fixed vector waits in the IRR until STI. (3) A second NMI sent while vCPU 1 is '
    'still in its NMI handler is held until the handler\'s IRETQ (NMI blocking, SDM Vol.3A 6.7.1). In the trace: '
    'pvsim_inj_nmi lines on vCPU 1 (an NMI has no IRR/ISR bit, so no kvm_apic_accept_irq and no kvm_eoi), and the '
    'fourth NMI injected only after the IRETQ of the third.',
    {'vcpus': 2, 'ram_mib': 16}, summary=8)

smp_scenario('tpr', 'tpr',
    'Interrupt priority on one vCPU with self-IPIs (SDM Vol.3A 11.8.3). With TPR 0x50, vector 0x45 (class 4) stays '
    'in the IRR; with TPR 0x40 (same class) it still waits; with TPR 0x3f it is delivered. Then in-service '
    'priority: the handler of 0x61 sends itself 0x52 and 0x72 and enables interrupts; 0x72 (class 7) preempts it, '
    '0x52 (class 5) waits for the EOI of 0x61. The guest prints the order of events. In the trace: '
    'kvm_apic_accept_irq when each vector enters the IRR, and its kvm_inj_virq only when PPR lets it through - '
    'compare their timestamps for 0x45 and 0x52.',
    {'vcpus': 1, 'ram_mib': 16}, summary=8,
    contains=['tpr: order of events: 0x61 0x72 eoi(0x61) 0x52\n'])

smp_scenario('init', 'init',
    'INIT and start-up IPIs (SDM Vol.3A 9.4.4). vCPU 1 increments a counter in a loop; vCPU 0 sends it INIT, which '
    'resets it into wait-for-SIPI: the counter stops, and vCPU 0 checks that. Then vCPU 0 sends a start-up IPI '
    'with vector 0x10 (start at 0x10000 in real mode). pvsim does not run real mode yet, so the run ends with stop '
    '"unsupported", naming vCPU 1 and vector 0x10 - this is the expected outcome. In the trace: kvm_apic_ipi with '
    'delivery mode INIT and then STARTUP, a pvsim_vcpu line for vCPU 1 entering wait-for-SIPI, and the final '
    'pvsim_stop line.',
    {'vcpus': 2, 'ram_mib': 16}, stop='unsupported',
    contains=['PASS: vCPU 1 is running', 'PASS: after INIT vCPU 1 makes no progress',
              'init: sending SIPI vector 0x10 to vCPU 1'])

smp_scenario('init-bsp', 'start_bsp',
    'machine.start = "bsp": only vCPU 0 begins at the entry point; vCPUs 1-3 sit in wait-for-SIPI from time 0, as '
    'application processors do after RESET (SDM Vol.3A 9.4.1). Every vCPU that executes the entry code checks in; '
    'vCPU 0 lets 1 ms of virtual time pass and finds nobody else did. In the trace only [000] lines appear apart '
    'from the pvsim_vcpu lines that park vCPUs 1-3 at time 0.',
    {'vcpus': 4, 'ram_mib': 16, 'start': 'bsp'}, summary=3)

SPIN_DESC = ('Eight vCPUs each add 5000 to a shared counter under a spinlock, with a deliberately non-atomic load '
    '/ add / store inside the lock; then 1000 more each under a LOCK CMPXCHG lock, and 1000 each with LOCK XADD. '
    'Every total must be exact. Finally the same increment without any lock: the guest prints how many updates were '
    'lost (an INFO line, not a check), which shows what the lock prevents. ')
smp_scenario('spinlock-q1', 'spinlock', SPIN_DESC +
    'Quantum 1: the scheduler may switch vCPUs after every instruction, so the vCPUs interleave as finely as '
    'possible and the unlocked phase loses most of its updates; XCHG, LOCK CMPXCHG and LOCK XADD are single steps, '
    'which is why the locked totals stay exact. The trace has almost no events: spinning is not an exit.',
    {'vcpus': 8, 'ram_mib': 16, 'quantum': 1}, summary=3, max_insn=100_000_000)
smp_scenario('spinlock-q10000', 'spinlock', SPIN_DESC +
    'Quantum 10000: each vCPU runs long stretches alone, so contention is rare and fewer unlocked updates are '
    'lost than with quantum 1 - yet the locked totals must be exact just the same. The quantum is exact '
    '(exact_quantum): a slice can end anywhere, also while its vCPU holds the lock, and then every other vCPU '
    'spins through its whole quantum. That is lock-holder preemption, the waste PV spinlocks and steal time '
    'exist for: compare the instruction counts in the run summary with those of quantum 1.',
    {'vcpus': 8, 'ram_mib': 16, 'quantum': 10000, 'exact_quantum': True}, summary=3, max_insn=100_000_000)

KVMCLOCK_DESC = ('kvmclock on 4 vCPUs (kvm-pv-spec §3): each vCPU registers its pvclock_vcpu_time_info with MSR '
    '0x4b564d01 and reads the clock 100000 times with Linux\'s algorithm (version loop, 128-bit scaled TSC delta). '
    'Each raw reading is compared with the largest value any vCPU had published before it started (RDTSC runs only '
    'on the vCPU that is earliest in virtual time, so that comparison is causal); the same reading after Linux\'s '
    'global monotonic guard is compared too. ')
smp_scenario('kvmclock-modern', 'kvmclock', KVMCLOCK_DESC +
    'Modern KVM ABI: master-clock mode, every vCPU gets the same (tsc_timestamp, system_time) pair, TSCs are in '
    'sync, and flags has PVCLOCK_TSC_STABLE_BIT (0x1), which the guest honours because CPUID 0x40000001 bit 24 is '
    'set: the guard is skipped and raw readings must never go backwards. In the trace: one kvm_msr write of '
    '0x4b564d01 per vCPU, each followed by kvm_pvclock_update lines with identical tsc_timestamp and system_time.',
    {'vcpus': 4, 'ram_mib': 16}, summary=3, max_insn=300_000_000,
    contains=['kvmclock: flags 0x1, TSC_STABLE honoured\n', 'kvmclock: raw backwards steps: 0\n',
              'kvmclock: guarded backwards steps: 0\n'])
smp_scenario('kvmclock-orig', 'kvmclock', KVMCLOCK_DESC +
    'Seed-era ABI (machine.kvm.abi "orig"): no master clock, each vCPU\'s structure is sampled on its own, flags is '
    '0. The TSCs are skewed (machine.tsc_skew: per-vCPU offsets and rates off by up to 300 ppm), while KVM scales '
    'every vCPU with the nominal 2.5 GHz: each vCPU\'s clock drifts from the others after its update, so raw '
    'readings of different vCPUs disagree and the raw check counts backwards steps (the guest prints how many and '
    'the largest). The global guard hides every one of them: guarded readings never go backwards. In the trace: '
    'kvm_pvclock_update lines whose tsc_timestamp/system_time pairs differ per vCPU.',
    {'vcpus': 4, 'ram_mib': 16, 'kvm_cpuid': {'features': '0x0100001b'}, 'kvm': {'abi': 'orig'},
     'tsc_skew': [{'vcpu': 1, 'offset': 4000, 'ppm': 300}, {'vcpu': 2, 'offset': -2500, 'ppm': -300},
                  {'vcpu': 3, 'offset': 1000, 'ppm': 150}]},
    summary=2, max_insn=300_000_000,
    contains=['kvmclock: flags 0x0, TSC_STABLE not honoured\n', 'kvmclock: guarded backwards steps: 0\n'],
    excludes=['FAIL', 'kvmclock: raw backwards steps: 0\n'])

smp_scenario('kvmclock-host', 'kvmclock', KVMCLOCK_DESC +
    'The host model at work (scenario key "host"): the 4 vCPU threads share 3 physical CPUs, time-sliced in '
    '1 ms slots, so in every slot one vCPU waits (its TSC and virtual time keep running, it executes nothing) '
    'and the vCPUs move between pCPUs. vCPU 2 is also descheduled from 2 to 3 ms. The master clock is turned off '
    '(machine.kvm.master_clock false), so, as in KVM before 3.8 or on a host with an unstable TSC, every move '
    'to another pCPU makes KVM refresh the kvmclock structures: a GLOBAL update, this vCPU at once and all '
    'vCPUs 100 ms later (spec §3.4). No TSC_STABLE flag, so the guest relies on the global guard. In the trace: '
    'pvsim_vcpu lines "sched_out" (runnable, no pCPU until ...) and "migrate" (pcpu a -> pcpu b), each '
    'migration followed by kvm_pvclock_update for that vCPU; pvsim run prints each vCPU\'s run delay.',
    {'vcpus': 4, 'ram_mib': 16, 'kvm': {'master_clock': False}},
    summary=2, max_insn=300_000_000,
    host={'pcpus': 3, 'policy': 'time_sliced', 'slice_us': 1000,
          'preempt': [{'vcpu': 2, 'from_us': 2000, 'to_us': 3000}]},
    contains=['kvmclock: flags 0x0, TSC_STABLE not honoured\n', 'kvmclock: guarded backwards steps: 0\n'])

smp_scenario('wallclock', 'wallclock',
    'Wall-clock time from KVM (kvm-pv-spec §2.2, §3.6). The guest enables kvmclock, writes the address of a '
    'pvclock_wall_clock to MSR 0x4b564d00 and reads sec/nsec (the host\'s wall time when kvmclock was 0) under the '
    'version loop; wall time now = sec*1e9 + nsec + kvmclock. It prints sec, nsec, the kvmclock value and the TSC '
    'it was computed from, so a host test can check the sum against host.wall_clock_ns plus the virtual time of '
    'that TSC, to the nanosecond. The old MSR 0x11 is the same VM-wide value: writing it fills a second structure '
    'with the same epoch, and RDMSR 0x4b564d00 returns the address written to 0x11. Each write adds 2 to the '
    'structure\'s version. host.wall_clock_ns is 1700000000123456789, so sec must be 1700000000 and nsec '
    '123456789. In the trace: kvm_msr writes of 0x4b564d01, 0x4b564d00 and 0x11.',
    {'vcpus': 1, 'ram_mib': 16}, summary=9, host={'wall_clock_ns': '1700000000123456789'},
    contains=['wallclock: sec 1700000000 nsec 123456789 kvmclock '])
