#!/usr/bin/env python3
"""Writes the shipped guest scenario files: scenarios/<prog>-<O0|O2|Os>.json, default.json,
hello-smp4.json, garbage-<n>.json, bench/<name>.json, scale/scale-<n>.json and the SMP scenarios
(lapic_timer, ipi, nmi, tpr, init, init-bsp, spinlock-q1/q10000, kvmclock-modern/orig/host,
wallclock), the async-PF scenarios (apf-*) and the paravirtual ones (pv-*). Descriptions, limits, the exact expected console lines and the trace claims live
here, in one place; run it after changing a guest program's checks (the SUMMARY counts below
must match the number of report() calls) and commit the JSON it writes.

Every sentence of a description that says what the trace shows cites, as [name], an
expect.trace entry that checks it (scenarios/README.md, "Trace expectations"), so a
description cannot silently go stale. Patterns pin event names, vectors, MSR numbers, order
and counts, never timestamps, RIPs or cycle counts: those belong to the golden traces
(scenarios/golden/, rewritten with `pvsim run SCENARIO --update-golden`).
Usage: python3 scenarios/guest/gen_scenarios.py"""
import json, os
root = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
LEVELS = {'O0': 'no optimisation: every variable lives on the stack, so it executes many more loads and stores per '
                'source line; compare the instruction count in the run summary',
          'O2': 'optimised for speed: values stay in registers and small functions are inlined',
          'Os': 'optimised for size: compact code with more calls and fewer unrolled loops'}

def write(path, obj):
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')

# Trace claims (expect.trace). A pattern is matched against a trace line from its event name
# on, anywhere in it; '*' matches any run of characters.
def in_order(name, *patterns, consecutive=False, vcpu=None):
    c = {'name': name, 'in_order': list(patterns)}
    if consecutive:
        c['consecutive'] = True
    if vcpu is not None:
        c['vcpu'] = vcpu
    return c

def absent(name, pattern, vcpu=None):
    c = {'name': name, 'absent': pattern}
    if vcpu is not None:
        c['vcpu'] = vcpu
    return c

def count(name, pattern, min=None, max=None, vcpu=None):
    c = {'name': name, 'count': pattern}
    if min is not None:
        c['min'] = min
    if max is not None:
        c['max'] = max
    if vcpu is not None:
        c['vcpu'] = vcpu
    return c

def exactly(name, pattern, n, vcpu=None):
    return count(name, pattern, n, n, vcpu)

# One port write, as every character on the debug console is: the exit, KVM's PIO event, the
# re-entry. info1 is left out: it differs between OUT imm8 (-O2) and OUT DX (-O0).
CHAR_EXIT = ['kvm_exit: * reason IO_INSTRUCTION', 'kvm_pio: pio_write at 0xe9 size 1 count 1 val 0x', 'kvm_entry: ']
EXIT_WRITE = ['kvm_pio: pio_write at 0xf4 size 4 count 1 val 0x0', 'pvsim_stop: reason exit: ']

def test_scenario(prog, level, desc, summary, extra_contains=(), machine=None, max_insn=None, trace=()):
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
    if trace:
        s['expect']['trace'] = list(trace)
    write(f'{root}/{prog}-{level}.json', s)
    return s

D = {}
T = {}
# The hello console is these three lines, 96 characters, one kvm_pio each.
HELLO_LINES = ['Hello from pvsim guest: vCPU 0 of 1, 16 MiB RAM\n', 'PASS: main runs on vCPU 0 of 1\n',
               'SUMMARY: 1 tests\n']
HELLO_CHARS = sum(len(l) for l in HELLO_LINES)
D['hello'] = ('The smallest guest: it sets up its own GDT, TSS and IDT, prints one greeting on the debug console '
    '(port 0xe9), reports one PASS line and exits by writing 0 to port 0xf4 (exit status (0 << 1) | 1 = 1). Before '
    'main runs, the guest runtime takes the legacy 8259 interrupt controllers out of the way: the first kvm_pio '
    'lines are its byte writes to ports 0x20/0x21 and 0xa0/0xa1, the last two of which set both mask registers to '
    '0xff, all before the first character is printed [pic-masked]. Then every character printed is one port '
    'write, three lines in the trace: a kvm_exit with reason IO_INSTRUCTION, a kvm_pio line "pio_write at 0xe9 '
    'size 1 count 1 val 0x.." with the character\'s code, and a kvm_entry [char-exit]; the '
    f'{HELLO_CHARS} characters on the console are {HELLO_CHARS} such kvm_pio lines [one-pio-per-char]. The last '
    'kvm_pio is the 4-byte write of 0 to port 0xf4, and the pvsim_stop line that ends the trace follows it '
    'directly [exit-write]. The other exits are EPT violations (kvm_exit EPT_VIOLATION and kvm_page_fault), one '
    'for the first touch of each 4 KiB page of guest memory. The LGDT, LIDT and LTR at start-up cause no exit at '
    'all: a CPU loads its own descriptor tables, and KVM does not intercept them.')
T['hello'] = [in_order('pic-masked', 'kvm_pio: pio_write at 0x21 size 1 count 1 val 0xff',
                       'kvm_pio: pio_write at 0xa1 size 1 count 1 val 0xff', 'kvm_pio: pio_write at 0xe9'),
              in_order('char-exit', *CHAR_EXIT, consecutive=True),
              exactly('one-pio-per-char', 'kvm_pio: pio_write at 0xe9 ', HELLO_CHARS),
              in_order('exit-write', *EXIT_WRITE, consecutive=True)]
D['quicksort'] = ('A CPU workout with almost no exits: the guest fills an array with 100000 pseudo-random 64-bit '
    'keys (splitmix64, fixed seed), sorts it with a recursive quicksort and checks that the result is sorted, is a '
    'permutation of the input, and has exactly the checksum the host computed by running the same C code natively. '
    'Guest memory is mapped lazily, as KVM does, so the fill loop\'s first write to each of the 196 pages (4 KiB '
    'each) of the 800 KB array is an EPT violation (kvm_exit EPT_VIOLATION and a kvm_page_fault with error_code 0x182, a '
    'write): at least 196 such lines [array-faults]. The sort itself, millions of instructions, runs without a '
    'single exit: the whole trace has fewer than 600 kvm_exit lines [few-exits], most of them console writes, '
    'so look for the long silence in the timestamp column (several milliseconds of virtual time) between the '
    'last of those faults and the first console write. Compare the instruction counts in the run summaries of '
    'the -O0, -O2 and -Os variants.')
T['quicksort'] = [count('array-faults', 'kvm_page_fault: * error_code 0x182', min=196),
                  count('few-exits', 'kvm_exit: ', max=600)]
D['divmul'] = ('64- and 32-bit DIV/IDIV/MUL/IMUL against a table of answers generated on the host from the same C '
    'code, including 128-bit products from the one-operand MUL/IMUL forms. The cases C leaves undefined are run '
    'with inline assembly and must raise #DE (vector 0): divide by zero, INT64_MIN / -1, and quotients too large '
    'for the destination. #DE is a fault, so the guest\'s handler sees RIP at the DIV itself and RAX/RDX unchanged; '
    'it resumes after the instruction through an exception-table fixup. These exceptions are raised and delivered '
    'inside the guest, without a VM exit (with EPT, KVM does not intercept them): each is one pvsim_exception line '
    '"vector 0x0 (#DE)" carrying the RIP of the faulting DIV or IDIV, six in all [six-de] and no other exception '
    '[only-de], and there is no kvm_inj_exception anywhere [no-injection]. pvsim_exception is a pvsim-only event: '
    'real KVM never sees these exceptions. The rest of the trace is the start-up, a few EPT violations and the '
    'console: 74 PASS lines, over 5000 characters, each one port write [many-chars].')
T['divmul'] = [exactly('six-de', 'pvsim_exception: vector 0x0 (#DE)', 6),
               exactly('only-de', 'pvsim_exception: ', 6),
               absent('no-injection', 'kvm_inj_exception: '),
               count('many-chars', 'kvm_pio: pio_write at 0xe9 ', min=5000)]
D['printf'] = ('Exercises the guest\'s printf engine: each PASS line compares snprintf output for one format '
    '(widths, flags, precision, l/ll/z/h/hh modifiers, %p, %s, %c) with the string ISO C requires (the list is '
    'checked against the host C library at build time), then prints fixed lines the scenario matches exactly. '
    'The trace is almost all console: each character is one OUT to port 0xe9, three lines in the trace (kvm_exit '
    'IO_INSTRUCTION, kvm_pio, kvm_entry) [char-exit], over 2500 of them [many-chars], a good stress test for '
    'exit handling.')
T['printf'] = [in_order('char-exit', *CHAR_EXIT, consecutive=True),
               count('many-chars', 'kvm_pio: pio_write at 0xe9 ', min=2500)]
D['usermode'] = ('Protection in action: the guest builds its own 4-level page tables (4 KiB pages, the U bit only '
    'on its user code and data, NX on user data, EFER.NXE set), loads them into CR3 and enters CPL3 with IRETQ. '
    'User code then reads and writes a supervisor page (#PF with error code 0x5 = P|U and 0x7 = P|W|U, CR2 = the '
    'address), touches a not-present page (0x4, 0x6), jumps into an NX page (0x15 = P|U|I), and runs HLT and MOV '
    'from CR3 (which need CPL 0), CLI and OUT (which need IOPL >= CPL, and IOPL is 0): #GP(0) each; INT 0x81 '
    'through a DPL0 gate raises #GP(0x40a) = vector*8 + 2, the IDT bit. INT 0x80 goes through a DPL3 gate and '
    'returns to CPL0. Each check also verifies that the CPU switched to the TSS.RSP0 stack. In the trace the '
    'hypervisor barely appears: the EFER write that sets NXE (bit 11) is a kvm_msr line, "msr_write c0000080 = '
    '0xd00" after a read of 0x500 [nxe-write], but the CR3 load, every #PF and every #GP are handled by the '
    '(virtual) CPU and the guest IDT without a VM exit - with EPT, KVM does not intercept them. pvsim still '
    'records each delivery as a pvsim_exception line (vector, error code, RIP, CR2), a pvsim-only event with no '
    'KVM counterpart: the five page faults with the error codes above, the four #GP(0), then the INT 0x81 itself '
    'and the #GP(0x40a) its gate check raises, in this order [user-faults]; and not one kvm_inj_exception '
    '[no-injection]. Even the OUT at CPL3 never exits: the IOPL check faults before the port is reached.')
T['usermode'] = [in_order('nxe-write', 'kvm_msr: msr_read c0000080 = 0x500', 'kvm_msr: msr_write c0000080 = 0xd00'),
                 in_order('user-faults', 'pvsim_exception: vector 0xe (#PF) error_code 0x5 ',
                          'pvsim_exception: vector 0xe (#PF) error_code 0x7 ',
                          'pvsim_exception: vector 0xe (#PF) error_code 0x4 ',
                          'pvsim_exception: vector 0xe (#PF) error_code 0x6 ',
                          'pvsim_exception: vector 0xe (#PF) error_code 0x15 ',
                          'pvsim_exception: vector 0xd (#GP) error_code 0x0 ',
                          'pvsim_exception: vector 0xd (#GP) error_code 0x0 ',
                          'pvsim_exception: vector 0xd (#GP) error_code 0x0 ',
                          'pvsim_exception: vector 0xd (#GP) error_code 0x0 ',
                          'pvsim_exception: vector 0x81 (0x81)',
                          'pvsim_exception: vector 0xd (#GP) error_code 0x40a '),
                 absent('no-injection', 'kvm_inj_exception: ')]
D['cpuid_msr'] = ('What a guest learns about its virtual CPU. CPUID leaf 0 (vendor), leaf 1 (hypervisor bit '
    'ECX[31], initial APIC ID, logical CPU count), leaf 0x40000000 (signature "KVMKVMKVM") and leaf 0x40000001 '
    '(KVM features, which this scenario sets explicitly to 0x01007efb); each CPUID is a kvm_exit with reason CPUID '
    'followed by a kvm_cpuid line with the leaf and the four registers returned [cpuid-exit], and the four leaves '
    'come in this order, leaf 0x40000001 with rax 1007efb [cpuid-leaves]. RDMSR of EFER (c0000080), PAT (277), '
    'APIC_BASE (1b) and MISC_ENABLE (1a0) checks the boot values [boot-msrs]; FS_BASE/GS_BASE writes are checked '
    'through %fs:/%gs: loads. An unknown MSR (0xdeadbeef), a non-canonical FS_BASE and reserved EFER bits must be '
    'refused. In the trace a refusal is a kvm_msr line ending in "(#GP)" followed by the #GP that KVM injects, '
    'kvm_inj_exception "#GP (0x0)": for example "msr_read deadbeef = 0x0 (#GP)" with the injection on the next '
    'line [gp-injected]. There are five refusals [five-refusals] and five injections [five-injected]: FS_BASE = '
    '0x800000000000, the read and the write of 0xdeadbeef, then EFER with bit 1 and with bit 63 set, in this '
    'order [refusal-order]. The guest recovers each time through its exception-table fixup.')
T['cpuid_msr'] = [in_order('cpuid-exit', 'kvm_exit: * reason CPUID', 'kvm_cpuid: func ', consecutive=True),
                  in_order('cpuid-leaves', 'kvm_cpuid: func 0 idx 0 rax b rbx 756e6547 rcx 6c65746e rdx 49656e69',
                           'kvm_cpuid: func 1 idx 0 ',
                           'kvm_cpuid: func 40000000 idx 0 rax 40000001 rbx 4b4d564b rcx 564b4d56 rdx 4d',
                           'kvm_cpuid: func 40000001 idx 0 rax 1007efb '),
                  in_order('boot-msrs', 'kvm_msr: msr_read c0000080 = 0x500', 'kvm_msr: msr_read 277 = 0x',
                           'kvm_msr: msr_read 1b = 0xfee00900', 'kvm_msr: msr_read 1a0 = 0x'),
                  in_order('gp-injected', 'kvm_msr: msr_read deadbeef = 0x0 (#GP)', 'kvm_inj_exception: #GP (0x0)',
                           consecutive=True),
                  exactly('five-refusals', 'kvm_msr: * (#GP)', 5),
                  exactly('five-injected', 'kvm_inj_exception: #GP (0x0)', 5),
                  in_order('refusal-order', 'kvm_msr: msr_write c0000100 = 0x800000000000 (#GP)',
                           'kvm_msr: msr_read deadbeef = 0x0 (#GP)', 'kvm_msr: msr_write deadbeef = 0x1234 (#GP)',
                           'kvm_msr: msr_write c0000080 = 0x502 (#GP)',
                           'kvm_msr: msr_write c0000080 = 0x8000000000000500 (#GP)')]
D['exceptions'] = ('How exceptions reach the guest and how its runtime recovers from them. A registered handler sees '
    'INT3 (#BP, a trap: the saved RIP is after the instruction) and a software INT 0x40 and may edit the saved '
    'registers. Faults are caught and unwound by catch_exception(): UD2 (#UD), DIV by zero (#DE), a non-canonical '
    'address (#GP(0)), the same through RSP (#SS(0), because RSP-based addressing uses SS), and loads/stores at '
    '5 GiB, which the boot page tables do not map (#PF with error code 0 or 2 and CR2 = the address). The CPU '
    'delivers all of these through the guest IDT without a VM exit: each is a pvsim_exception line in the trace '
    '(an event real KVM has no counterpart for), in the order the guest raises them - #BP, INT 0x40, #UD, #DE, '
    '#GP, #SS, the #PF load with cr2 0x140000000 and the #PF store with error_code 0x2 [guest-delivered]. Only the '
    'RDMSRs need the hypervisor: rdmsr_safe(PAT) is a plain kvm_msr line, "msr_read 277 = 0x7040600070406" '
    '[pat-read], and rdmsr_safe(0xdeadbeef) shows up as kvm_msr "msr_read deadbeef = 0x0 (#GP)" directly '
    'followed by kvm_inj_exception "#GP (0x0)" [gp-injected], the only injected exception of the run '
    '[one-injection].')
T['exceptions'] = [in_order('guest-delivered', 'pvsim_exception: vector 0x3 (#BP)', 'pvsim_exception: vector 0x40 (0x40)',
                            'pvsim_exception: vector 0x6 (#UD)', 'pvsim_exception: vector 0x0 (#DE)',
                            'pvsim_exception: vector 0xd (#GP) error_code 0x0 ',
                            'pvsim_exception: vector 0xc (#SS) error_code 0x0 ',
                            'pvsim_exception: vector 0xe (#PF) error_code 0x0 * cr2 0x140000000',
                            'pvsim_exception: vector 0xe (#PF) error_code 0x2 * cr2 0x140000123'),
                   in_order('pat-read', 'kvm_msr: msr_read 277 = 0x7040600070406'),
                   in_order('gp-injected', 'kvm_msr: msr_read deadbeef = 0x0 (#GP)', 'kvm_inj_exception: #GP (0x0)',
                            consecutive=True),
                   exactly('one-injection', 'kvm_inj_exception: ', 1)]
summaries = {'exceptions': 13, 'hello': 1, 'quicksort': 4, 'divmul': 74, 'printf': 50, 'usermode': 23, 'cpuid_msr': 25}
limits = {'exceptions': 10_000_000, 'hello': 2_000_000, 'quicksort': 400_000_000, 'divmul': 20_000_000, 'printf': 20_000_000,
          'usermode': 20_000_000, 'cpuid_msr': 10_000_000}
contains = {
    'hello': HELLO_LINES[:1],
    'printf': ['console: [   42] [42   ] [00042] [beef] [pvsim]\n',
               'console: 18446744073709551615 -9223372036854775808 0x000000001234abcd ok\n',
               'console: puts adds a newline\n'],
}
machines = {'cpuid_msr': {'vcpus': 1, 'ram_mib': 16, 'kvm_cpuid': {'features': '0x01007efb'}}}
for prog in D:
    for level in LEVELS:
        test_scenario(prog, level, D[prog], summaries[prog], contains.get(prog, ()), machines.get(prog),
                      limits[prog], T[prog])


# Garbage: the seed is derived from the RAM size, so each RAM size is a different program.
# Which way the bytes end the run is left open on purpose (any change in the CPU model
# changes it); the trace claim is only that the run ends with its report.
for i, ram in enumerate([16, 24, 40], 1):
    write(f'{root}/garbage-{i}.json', {
        'name': f'garbage-{i}',
        'description': ('Robustness: the guest fills 64 KiB with pseudo-random bytes (seeded from the RAM size, so '
            f'this {ram} MiB machine runs its own garbage) and executes them for up to 300 rounds: each round starts at '
            'a random offset with every register, RSP included, random. Every exception the bytes raise is delivered '
            'on the IST1 stack (so a wild RSP cannot turn it into a triple fault) to a handler that prints it and '
            'starts the next round. Sooner or later the bytes usually end the run another way - a jump outside RAM '
            '(an instruction fetch from outside RAM is never ignored: stop unhandled_io), HLT with IF=0 (deadlock), an '
            'endless loop (instruction limit), junk loaded into IDTR or CR0 (shutdown). The expectation is only that '
            'the emulator ends with a clean report, never a host crash; unhandled port and MMIO accesses are ignored '
            'so the bytes can keep going. The console says how each of the first 16 rounds ended and prints a dot for '
            'each later one; the trace ends with exactly one pvsim_stop line, which names what stopped the run '
            '[stop-line].'),
        'machine': {'vcpus': 1, 'ram_mib': ram, 'ignore_unhandled_io': True},
        'guest': {'image': 'guest/bin/garbage-O2.elf'},
        'limits': {'max_instructions': 20_000_000, 'max_virtual_ms': 1000},
        'expect': {'console_contains': ['garbage: seed 0x', 'garbage: round 0 ended by vector'], 'console_excludes': ['FAIL'],
                   'trace': [exactly('stop-line', 'pvsim_stop: reason ', 1)]},
    })

# Benchmarks: (description, RAM MiB, instruction limit, trace claims).
B = {
 'alu': ('Benchmark: a tight loop of register-only integer arithmetic (multiply, shifts, rotate, add, xor: '
         '16 instructions per iteration, 3.2e8 in all) that never touches memory and never leaves the '
         'guest: the whole trace has fewer than 300 kvm_exit lines, all of them start-up and console [few-exits]. '
         'It measures how fast the emulator fetches, decodes and executes plain instructions, the best '
         'case for any emulator.',
         64, 1_000_000_000, [count('few-exits', 'kvm_exit: ', max=300)]),
 'hash': ('Benchmark: an open-addressing hash table of 4 Mi 16-byte slots (64 MiB): 2.8 million inserts (0.67 x'
         ' the slot count) and 2.8 million lookups of pseudo-random keys. Each access lands on an '
         'unpredictable one of 16384 pages, so it measures the emulated memory path: address translation (TLB '
         'misses, page walks) and loads/stores spread over a large working set. The first touch of each page '
         'is an EPT violation, so the trace has at least 16384 kvm_page_fault lines [first-touch].',
         128, 1_000_000_000, [count('first-touch', 'kvm_page_fault: ', min=16384)]),
 'sort': ('Benchmark: bottom-up merge sort of 4 Mi pseudo-random 64-bit keys (32 MiB, plus a 32 MiB buffer to '
         'merge into). After insertion-sorting runs of 8 keys, each of the 19 merge passes streams through 64 '
         'MiB with one hard-to-predict comparison per element, so it measures sequential loads and stores plus'
         ' data-dependent branches. The first touch of each of the 16384 pages of the two arrays is an EPT '
         'violation: at least 16384 kvm_page_fault lines in the trace [first-touch].',
         128, 2_500_000_000, [count('first-touch', 'kvm_page_fault: ', min=16384)]),
 'bytecode': ('Benchmark: a small byte-code interpreter (a loop with a switch over 11 opcodes, like the core of a '
         'scripting language) running a Collatz step-count program of about 25 million byte-codes. Every byte-'
         'code is an indirect jump to a short, data-dependent piece of code, which measures how well the '
         'emulator handles jumps whose target changes all the time. Nothing in it leaves the guest: fewer than '
         '300 kvm_exit lines in the whole trace, all of them start-up and console [few-exits].',
         64, 1_000_000_000, [count('few-exits', 'kvm_exit: ', max=300)]),
 'sieve': ('Benchmark: the sieve of Eratosthenes over a 32 MiB byte array (one byte per number below 2^25), then'
         ' a count of the 2063689 primes. For each small prime a store loop strides across all 8192 pages of '
         'the array, so it measures the speed of simple stores and address translation over a large array. The '
         'first touch of each page is an EPT violation: at least 8192 kvm_page_fault lines [first-touch].',
         96, 1_500_000_000, [count('first-touch', 'kvm_page_fault: ', min=8192)]),
}
for prog, (desc, ram, insn, trace) in B.items():
    write(f'{root}/bench/{prog}.json', {
        'name': f'bench-{prog}',
        'description': desc + ' The guest compares its result with a checksum computed natively on the host and '
                       'exits with status 1 only if they match.',
        'machine': {'vcpus': 1, 'ram_mib': ram},
        'guest': {'image': f'../guest/bin/{prog}-O2.elf'},
        'limits': {'max_instructions': insn, 'max_virtual_ms': 600000},
        'expect': {'stop': 'exit', 'exit_status': 1, 'console_excludes': ['FAIL'],
                   'console_contains': ['SUMMARY: %d tests\n' % (2 if prog == 'sieve' else 1)],
                   'trace': trace},
    })

# Scale: the same ALU loop on 1, 8 and 64 vCPUs. `pvsim bench scenarios/scale/*.json`
# prints total guest MIPS per run; vCPUs share one host thread, so N-vCPU MIPS / 1-vCPU MIPS is the
# throughput each vCPU keeps. Default quantum, default host (every vCPU always holds a pCPU).
os.makedirs(f'{root}/scale', exist_ok=True)
for n in (1, 8, 64):
    if n > 1:
        ending = (f'A vCPU that is done writes port 0xf5, so the trace has {n - 1} kvm_pio writes to 0xf5 '
                  '[finished]; the last one to finish reports for all and ends the run with its write to port 0xf4, '
                  'directly followed by pvsim_stop [exit-write], so no vCPU spins waiting. ')
        trace = [exactly('finished', 'kvm_pio: pio_write at 0xf5 ', n - 1), in_order('exit-write', *EXIT_WRITE, consecutive=True)]
    else:
        ending = ('The vCPU then reports and ends the run with its write to port 0xf4, directly followed by '
                  'pvsim_stop [exit-write]. ')
        trace = [in_order('exit-write', *EXIT_WRITE, consecutive=True)]
    write(f'{root}/scale/scale-{n}.json', {
        'name': f'scale-{n}',
        'description': (f'Scaling benchmark on {n} vCPU{"s" if n > 1 else ""}: every vCPU runs the register-only loop '
            'of the ALU benchmark (500000 iterations, about 8.5 million instructions each) and checks its own result '
            'against the value the host computed. ' + ending + 'pvsim runs the vCPUs interleaved on one host thread '
            '(the scheduler picks the vCPU that is earliest in virtual time and runs it for up to 10000 instructions, '
            'to the last decoded-block boundary), so the guest MIPS of this run divided by that of scale-1 is the '
            'speed each vCPU keeps: ideally 1, and the cost of scheduling many vCPUs is what makes it lower.'),
        'machine': {'vcpus': n, 'ram_mib': 16},
        'guest': {'image': '../guest/bin/scale-O2.elf'},
        'limits': {'max_instructions': 20_000_000 * n},
        'expect': {'stop': 'exit', 'exit_status': 1, 'console_excludes': ['FAIL'],
                   'console_contains': ['SUMMARY: 2 tests\n'], 'trace': trace},
    })

write(f'{root}/hello-smp4.json', {
    'name': 'hello-smp4',
    'description': ('The hello guest on four vCPUs. All vCPUs start together at the entry point (no INIT/SIPI in the '
        'direct boot protocol); vCPUs 1-3 see RDI != 0 and at once report themselves finished with a write to port '
        '0xf5, after which pvsim runs them no more, while vCPU 0 sets up its tables, prints and exits through port '
        '0xf4, which ends the whole VM. In the trace, look for the three kvm_pio writes to 0xf5 [three-finished], '
        'one each from vCPUs 1, 2 and 3 ([001], [002], [003]; the port is also in bits 31:16 of their kvm_exit '
        'info1) [one-per-ap]. They come after vCPU 0\'s first lines and before its '
        'first character [interleaved]: the scheduler ran vCPU 0\'s first slice, and only then the others, which '
        'were behind it in virtual time - so their timestamps are smaller than those of the lines above them. '
        'Each character vCPU 0 prints is a kvm_exit IO_INSTRUCTION, a kvm_pio and a kvm_entry [char-exit], '
        f'{HELLO_CHARS} of them [one-pio-per-char], and its write to 0xf4 is directly followed by pvsim_stop '
        '[exit-write]. The quantum is set to 200 instructions so the other vCPUs get to run before vCPU 0 is done: '
        'with the default 10000, vCPU 0 would finish hello inside its first quantum and the others would never '
        'execute an instruction.'),
    'machine': {'vcpus': 4, 'ram_mib': 16, 'quantum': 200},
    'guest': {'image': 'guest/bin/hello-O2.elf'},
    'limits': {'max_instructions': 2_000_000},
    'expect': {'stop': 'exit', 'exit_status': 1,
               'console_contains': ['Hello from pvsim guest: vCPU 0 of 4, 16 MiB RAM\n', 'SUMMARY: 1 tests\n'],
               'console_excludes': ['FAIL'],
               'trace': [exactly('three-finished', 'kvm_pio: pio_write at 0xf5 size 1 count 1 val 0x0', 3),
                         in_order('one-per-ap', 'kvm_exit: vcpu 1 reason IO_INSTRUCTION * info1 0x0000000000f5',
                                  'kvm_exit: vcpu 2 reason IO_INSTRUCTION * info1 0x0000000000f5',
                                  'kvm_exit: vcpu 3 reason IO_INSTRUCTION * info1 0x0000000000f5'),
                         in_order('interleaved', 'kvm_entry: vcpu 0,', 'kvm_pio: pio_write at 0xf5',
                                  'kvm_pio: pio_write at 0xf5', 'kvm_pio: pio_write at 0xf5',
                                  'kvm_pio: pio_write at 0xe9'),
                         in_order('char-exit', *CHAR_EXIT, consecutive=True),
                         exactly('one-pio-per-char', 'kvm_pio: pio_write at 0xe9 ', HELLO_CHARS),
                         in_order('exit-write', *EXIT_WRITE, consecutive=True)]},
})

# ---------------------------------------------------------------------------------------------
# SMP: several vCPUs, the local APIC, INIT/SIPI, spinlocks and kvmclock. Built at -O2 only:
# these scenarios are about the platform's timing and interrupt paths, not the compiler.
# Golden traces: each of these scenarios pins its whole canonical trace, as text, in
# scenarios/golden/<name>.txt, so any change in what it shows (an event, a time, an
# interleaving) fails the run with the first differing line. The text holds guest RIPs, so it
# is for images built by Debian 12's gcc 12; after a deliberate change, review the difference
# and rewrite the file with `pvsim run scenarios/<name>.json --update-golden`.
GOLDEN_TRACE = {'init', 'init-bsp', 'ipi', 'kvmclock-host', 'kvmclock-modern', 'kvmclock-orig', 'lapic_timer', 'nmi',
                'spinlock-q1', 'spinlock-q10000', 'tpr', 'wallclock',
                'default', 'apf-modern-4', 'apf-orig-2', 'apf-orig-4', 'apf-sync-2', 'apf-repeat', 'apf-limit',
                'apf-cpl0', 'apf-irqoff', 'apf-disable', 'apf-reenable', 'apf-early-wake', 'apf-lapic-off'}

def smp_scenario(name, prog, desc, machine, summary=None, contains=(), excludes=('FAIL',), stop='exit',
                 exit_status=1, max_insn=20_000_000, host=None, trace=()):
    expect = {'stop': stop}
    if stop == 'exit':
        expect['exit_status'] = exit_status
    cc = list(contains) + ([f'SUMMARY: {summary} tests\n'] if summary is not None else [])
    if cc:
        expect['console_contains'] = cc
    if excludes:
        expect['console_excludes'] = list(excludes)
    if trace:
        expect['trace'] = list(trace)
    if name in GOLDEN_TRACE:
        expect['golden_trace'] = f'golden/{name}.txt'
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

TIMER_IRQ = 'kvm_apic_accept_irq: apicid 0 vec 236 (Fixed|edge)'
smp_scenario('lapic_timer', 'lapic_timer',
    'The local APIC timer in its three modes (SDM Vol.3A 11.5.4) on one vCPU, with the APIC bus at 1000 MHz and '
    'the TSC at 2.5 GHz, so one timer count with divisor D lasts D ns = 2.5*D TSC cycles. One-shot: count 10000, '
    'divisor 16 -> 160 us = 400000 cycles; while it counts, two reads of the current-count register must decrease '
    '(pvsim derives the value from the virtual time of the read, nothing ticks). Periodic: count 50000, divisor 1 '
    '-> five expiries 125000 cycles apart, anchored to the previous expiry so they do not drift; the handler stops '
    'the timer after the fifth. TSC-deadline: IA32_TSC_DEADLINE (MSR 0x6e0) = now + 300000; it reads 0 once fired; '
    'a deadline in the past fires at once; writing 0 disarms. The guest waits with STI;HLT, records RDTSC in the '
    'handler and prints how late each expiry was seen (a few thousand cycles at most: the exits for the APIC write '
    'and HLT, interrupt delivery and the handler prologue). In the trace, kvm_apic names the registers, and '
    'kvm_apic_accept_irq and kvm_eoi print vectors in decimal, so the timer\'s vector 0xec is "vec 236". The '
    'one-shot set-up is three kvm_apic writes in a row: APIC_TDCR = 0x3 (divide configuration, offset 0x3e0: '
    'divide by 16), APIC_LVTT = 0xec (LVT timer, 0x320: vector 0xec, one-shot) and APIC_TMICT = 0x2710 (initial '
    'count, 0x380: 10000) [oneshot-setup], followed by the two reads of APIC_TMCCT (current count, 0x390) before '
    'the expiry [count-down]. An expiry wakes the halted vCPU on consecutive lines: kvm_exit HLT, '
    'kvm_apic_accept_irq "vec 236", kvm_inj_virq "IRQ 0xec", kvm_entry, and the handler\'s APIC_EOI write with its '
    'kvm_eoi [expiry]; the timestamp of the kvm_apic_accept_irq line is 160 us after that of the APIC_TMICT '
    'write, to the nanosecond. The periodic timer (APIC_LVTT = 0x200ec, APIC_TMICT = 0xc350) fires five times, '
    '50 us apart, before the handler writes APIC_TMICT = 0x0 [periodic]. In TSC-deadline mode (APIC_LVTT = '
    '0x400ec) the kvm_msr write of 6e0 is followed by the expiry and then a read of 6e0 that returns 0x0 '
    '[deadline]; a deadline in the past is accepted right after its WRMSR re-enters the guest [past-deadline]; '
    'and the deadline disarmed by writing 0 never fires: there are eight expiries in all, one-shot 1 + periodic '
    '5 + deadline 2 [eight-expiries].',
    {'vcpus': 1, 'ram_mib': 16, 'tsc_khz': 2500000, 'apic_bus_mhz': 1000}, summary=15,
    contains=['one-shot: divisor 16 count 10000: expected 400000 TSC cycles'],
    trace=[in_order('oneshot-setup', 'kvm_apic: apic_write APIC_TDCR = 0x3', 'kvm_apic: apic_write APIC_LVTT = 0xec',
                    'kvm_apic: apic_write APIC_TMICT = 0x2710', consecutive=True),
           in_order('count-down', 'kvm_apic: apic_write APIC_TMICT = 0x2710', 'kvm_apic: apic_read APIC_TMCCT = 0x',
                    'kvm_apic: apic_read APIC_TMCCT = 0x', TIMER_IRQ),
           in_order('expiry', 'kvm_exit: vcpu 0 reason HLT', TIMER_IRQ, 'kvm_inj_virq: IRQ 0xec', 'kvm_entry: vcpu 0,',
                    'kvm_apic: apic_write APIC_EOI = 0x0', 'kvm_eoi: apicid 0 vector 236', consecutive=True),
           in_order('periodic', 'kvm_apic: apic_write APIC_LVTT = 0x200ec', 'kvm_apic: apic_write APIC_TMICT = 0xc350',
                    TIMER_IRQ, TIMER_IRQ, TIMER_IRQ, TIMER_IRQ, TIMER_IRQ, 'kvm_apic: apic_write APIC_TMICT = 0x0'),
           in_order('deadline', 'kvm_apic: apic_write APIC_LVTT = 0x400ec', 'kvm_msr: msr_write 6e0 = 0x', TIMER_IRQ,
                    'kvm_msr: msr_read 6e0 = 0x0'),
           in_order('past-deadline', 'kvm_msr: msr_write 6e0 = 0x', 'kvm_entry: vcpu 0,', TIMER_IRQ, consecutive=True),
           exactly('eight-expiries', TIMER_IRQ, 8)])

smp_scenario('ipi', 'ipi',
    'Inter-processor interrupts among 4 vCPUs (SDM Vol.3A 11.6). Physical mode: every vCPU sends vector 0x40+i '
    'to every APIC ID including its own. Logical flat mode: vCPU i sets bit i of LDR[31:24], then masks 0b1010 '
    '(vCPUs 1 and 3), 0b0111 and 0b1111 select the receivers. Shorthands: self, all-including-self from vCPU 1, '
    'all-excluding-self from vCPU 2. Then all switch to x2APIC (IA32_APIC_BASE bit 10) and send by 64-bit ICR '
    'writes (MSR 0x830), the SELF IPI MSR 0x83f and logical cluster mode. Counts are checked exactly after '
    'barriers. In the trace each ICR write is a kvm_apic_ipi line - destination (hex), vector (decimal: 0x40 is '
    '64), delivery mode, destination mode and shorthand - and each receiver adds one kvm_apic_accept_irq: '
    '"dst 0 vec 64 (Fixed|physical|assert|edge|dst)" is vCPU 0 sending vector 0x40 to itself, and "apicid 0 vec '
    '64" its arrival [phys-self]. ipi_latency_ns is 500, so in the timestamp column each kvm_apic_accept_irq is '
    '500 ns after its kvm_apic_ipi. One ICR write with a logical mask or a shorthand reaches several vCPUs at '
    'once: "dst a vec 96 (Fixed|logical|...)", mask 0b1010, is accepted by vCPUs 1 and 3 [mask-1010] and by no '
    'other [mask-1010-only]; vector 114 (0x72) with the all-but-self shorthand from vCPU 2 by vCPUs 0, 1 and 3 '
    '[all-but-self], not by vCPU 2 itself [not-self]. The switch to x2APIC is one kvm_msr write of 1b per vCPU '
    'with bits 10 and 11 set, 0xfee00d00 on vCPU 0 (bit 8 marks the BSP) and 0xfee00c00 on the others '
    '[x2apic-on]. From then on an ICR write is also a kvm_msr "msr_write 830" line: logical cluster 0 with mask '
    '0xc, "dst c vec 130 (Fixed|logical|...)", reaches vCPUs 2 and 3 [cluster]. A write to the SELF IPI register '
    '(MSR 0x83f) shows as a kvm_apic_ipi with the self shorthand and "de-assert" (KVM sends it without the level '
    'bit, which an edge-triggered fixed interrupt ignores), accepted on the very next line at the same timestamp: '
    'it does not travel over the APIC bus, so the 500 ns do not apply [self-ipi].',
    {'vcpus': 4, 'ram_mib': 16, 'ipi_latency_ns': 500}, summary=12,
    trace=[in_order('phys-self', 'kvm_apic_ipi: dst 0 vec 64 (Fixed|physical|assert|edge|dst)',
                    'kvm_apic_accept_irq: apicid 0 vec 64 (Fixed|edge)'),
           in_order('mask-1010', 'kvm_apic_ipi: dst a vec 96 (Fixed|logical|assert|edge|dst)',
                    'kvm_apic_accept_irq: apicid 1 vec 96 (Fixed|edge)', 'kvm_apic_accept_irq: apicid 3 vec 96 (Fixed|edge)'),
           exactly('mask-1010-only', 'kvm_apic_accept_irq: * vec 96 (', 2),
           in_order('all-but-self', 'kvm_apic_ipi: dst 0 vec 114 (Fixed|physical|assert|edge|all-but-self)',
                    'kvm_apic_accept_irq: apicid 0 vec 114 (', 'kvm_apic_accept_irq: apicid 1 vec 114 (',
                    'kvm_apic_accept_irq: apicid 3 vec 114 ('),
           absent('not-self', 'kvm_apic_accept_irq: apicid 2 vec 114 ('),
           in_order('x2apic-on', 'kvm_msr: msr_write 1b = 0xfee00d00', 'kvm_msr: msr_write 1b = 0xfee00c00',
                    'kvm_msr: msr_write 1b = 0xfee00c00', 'kvm_msr: msr_write 1b = 0xfee00c00'),
           in_order('cluster', 'kvm_apic_ipi: dst c vec 130 (Fixed|logical|assert|edge|dst)',
                    'kvm_msr: msr_write 830 = 0xc00004882', 'kvm_apic_accept_irq: apicid 2 vec 130 (',
                    'kvm_apic_accept_irq: apicid 3 vec 130 ('),
           in_order('self-ipi', 'kvm_apic: apic_write APIC_SELF_IPI = 0x81',
                    'kvm_apic_ipi: dst 0 vec 129 (Fixed|physical|de-assert|edge|self)',
                    'kvm_apic_accept_irq: * vec 129 (Fixed|edge)', 'kvm_msr: msr_write 83f = 0x81', consecutive=True)])

NMI_ACCEPT = 'kvm_apic_accept_irq: apicid 1 vec 0 (NMI|edge)'
smp_scenario('nmi', 'nmi',
    'NMIs sent as IPIs (ICR delivery mode 100b) from vCPU 0 to vCPU 1, three ways. (1) vCPU 1 runs CLI;HLT: no '
    'maskable interrupt could ever wake it, but the NMI does; after the handler\'s IRETQ execution continues after '
    'the HLT with IF still 0. (2) vCPU 1 spins with IF=0 while vCPU 0 sends a fixed IPI and then an NMI: the NMI is '
    'taken inside the loop, the fixed vector waits in the IRR until STI. (3) A second NMI sent while vCPU 1 is '
    'still in its NMI handler is held until the handler\'s IRETQ (NMI blocking, SDM Vol.3A 6.7.1). In the trace, '
    'an NMI goes through the local APIC like any interrupt, so it has a kvm_apic_accept_irq line, "vec 0 '
    '(NMI|edge)" (the vector field of an NMI\'s ICR is ignored); but it has no IRR or ISR bit, so it is injected '
    'as a pvsim_inj_nmi line instead of kvm_inj_virq and is ended by the handler\'s IRETQ, not by an EOI: four '
    'NMIs are accepted [four-accepted] and injected [four-injected], and the only kvm_eoi of the run is that of '
    'the fixed vector 0x50 ("vector 80") [one-eoi]. Follow vCPU 1 ([001]) through the three parts: (1) its '
    'kvm_exit HLT, then the NMI\'s kvm_apic_accept_irq, pvsim_inj_nmi and the kvm_entry that resumes it '
    '[nmi-wakes-hlt]; (2) kvm_apic_accept_irq "vec 80" for the fixed IPI, then the NMI\'s accept and injection, '
    'and only after them kvm_inj_virq "IRQ 0x50" and its kvm_eoi [fixed-waits]; (3) the third NMI accepted and '
    'injected, the fourth accepted while the handler still runs, and its pvsim_inj_nmi next - about 0.2 ms '
    'later in the timestamp column, when the handler has returned [nmi-blocked].',
    {'vcpus': 2, 'ram_mib': 16}, summary=8,
    trace=[exactly('four-accepted', NMI_ACCEPT, 4),
           exactly('four-injected', 'pvsim_inj_nmi: NMI', 4),
           exactly('one-eoi', 'kvm_eoi: ', 1),
           in_order('nmi-wakes-hlt', 'kvm_exit: vcpu 1 reason HLT', NMI_ACCEPT, 'pvsim_inj_nmi: NMI', 'kvm_entry: vcpu 1,',
                    consecutive=True, vcpu=1),
           in_order('fixed-waits', 'kvm_apic_accept_irq: apicid 1 vec 80 (Fixed|edge)', NMI_ACCEPT, 'pvsim_inj_nmi: NMI',
                    'kvm_inj_virq: IRQ 0x50', 'kvm_apic: apic_write APIC_EOI = 0x0', 'kvm_eoi: apicid 1 vector 80',
                    consecutive=True, vcpu=1),
           in_order('nmi-blocked', NMI_ACCEPT, 'pvsim_inj_nmi: NMI', NMI_ACCEPT, 'pvsim_inj_nmi: NMI',
                    consecutive=True, vcpu=1)])

smp_scenario('tpr', 'tpr',
    'Interrupt priority on one vCPU with self-IPIs (SDM Vol.3A 11.8.3). With TPR 0x50, vector 0x45 (class 4) stays '
    'in the IRR; with TPR 0x40 (same class) it still waits; with TPR 0x3f it is delivered. Then in-service '
    'priority: the handler of 0x61 sends itself 0x52 and 0x72 and enables interrupts; 0x72 (class 7) preempts it, '
    '0x52 (class 5) waits for the EOI of 0x61. The guest prints the order of events. In the trace, '
    'kvm_apic_accept_irq marks a vector entering the IRR and kvm_inj_virq its delivery; kvm_apic_accept_irq and '
    'kvm_eoi print the vector in decimal (0x45 = 69, 0x52 = 82, 0x61 = 97, 0x72 = 114), kvm_inj_virq in hex. '
    'Vector 69 is accepted while TPR (APIC_TASKPRI) is 0x50, waits through the write of 0x40, and is delivered '
    'only after the write of 0x3f [tpr-holds], on the very next line [tpr-release], and only once '
    '[one-0x45]. Inside the handler of 0x61, vectors 82 and 114 are accepted; 0x72 is delivered at once and '
    'ended first (kvm_eoi 114), then 0x61 is ended (kvm_eoi 97), and only then is 0x52 delivered and ended '
    '[isr-order], once [one-0x52]. Compare the timestamps of each vector\'s kvm_apic_accept_irq and kvm_inj_virq '
    'lines: that gap is how long priority held it back.',
    {'vcpus': 1, 'ram_mib': 16}, summary=8,
    contains=['tpr: order of events: 0x61 0x72 eoi(0x61) 0x52\n'],
    trace=[in_order('tpr-holds', 'kvm_apic: apic_write APIC_TASKPRI = 0x50', 'kvm_apic_accept_irq: apicid 0 vec 69 (',
                    'kvm_apic: apic_write APIC_TASKPRI = 0x40', 'kvm_apic: apic_write APIC_TASKPRI = 0x3f',
                    'kvm_inj_virq: IRQ 0x45'),
           in_order('tpr-release', 'kvm_apic: apic_write APIC_TASKPRI = 0x3f', 'kvm_inj_virq: IRQ 0x45', consecutive=True),
           exactly('one-0x45', 'kvm_inj_virq: IRQ 0x45', 1),
           in_order('isr-order', 'kvm_inj_virq: IRQ 0x61', 'kvm_apic_accept_irq: apicid 0 vec 82 (',
                    'kvm_apic_accept_irq: apicid 0 vec 114 (', 'kvm_inj_virq: IRQ 0x72', 'kvm_eoi: apicid 0 vector 114',
                    'kvm_eoi: apicid 0 vector 97', 'kvm_inj_virq: IRQ 0x52', 'kvm_eoi: apicid 0 vector 82'),
           exactly('one-0x52', 'kvm_inj_virq: IRQ 0x52', 1)])

smp_scenario('init', 'init',
    'INIT and start-up IPIs (SDM Vol.3A 9.4.4), and an application processor\'s way from real mode to 64-bit '
    'mode. vCPU 1 increments a counter in a loop; vCPU 0 sends it INIT, which resets it into wait-for-SIPI: the '
    'counter stops, and vCPU 0 checks that. Then vCPU 0 copies a 102-byte trampoline to 0x8000 and sends a '
    'start-up IPI with vector 0x08: vCPU 1 starts in real mode at CS:IP = 0800:0000 (linear 0x8000), loads the '
    'boot GDT with a 32-bit LGDT, turns on CR4.PAE, loads CR3 and EFER.LME, sets CR0.PE and CR0.PG in one MOV '
    '(IA-32e mode, still in 16-bit compatibility mode) and far-jumps to the 64-bit code segment; its C code then '
    'reads EFER and CR0 and reports them to vCPU 0. In the trace: vCPU 0\'s kvm_apic_ipi line with delivery '
    'mode INIT ("dst 1 vec 0 (INIT|physical|...)"), then on vCPU 1 its kvm_apic_accept_irq "(INIT|edge)" and '
    'the pvsim_vcpu line "init: INIT received: waiting for a start-up IPI"; later vCPU 0\'s kvm_apic_ipi with '
    'delivery mode SIPI and vector 8, vCPU 1\'s kvm_apic_accept_irq "(SIPI|edge)" and its pvsim_vcpu line '
    '"sipi: start-up IPI, vector 0x08" [init-sipi]; the trampoline\'s EFER read and write are vCPU 1\'s next '
    'exits, made in real mode (kvm_msr: msr_read c0000080, then msr_write c0000080 = 0x100) [trampoline]. '
    'Between "INIT received" and the SIPI\'s arrival vCPU 1 ([001]) has no line at all: waiting for a SIPI, '
    'it executes nothing [no-progress].',
    {'vcpus': 2, 'ram_mib': 16}, summary=5,
    contains=['PASS: vCPU 1 is running', 'PASS: after INIT vCPU 1 makes no progress',
              'init: sending SIPI vector 0x8 to vCPU 1 (trampoline at 0x8000, 102 bytes)',
              'PASS: vCPU 1 has EFER.LME and EFER.LMA (EFER 0x500)',
              'PASS: vCPU 1 has CR0.PG and CR0.PE (CR0 0x80000011)'],
    trace=[in_order('init-sipi', 'kvm_apic_ipi: dst 1 vec 0 (INIT|physical|assert|edge|dst)',
                    'kvm_apic_accept_irq: apicid 1 vec 0 (INIT|edge)',
                    'pvsim_vcpu: init: INIT received: waiting for a start-up IPI',
                    'kvm_apic_ipi: dst 1 vec 8 (SIPI|physical|assert|edge|dst)',
                    'kvm_apic_accept_irq: apicid 1 vec 8 (SIPI|edge)',
                    'pvsim_vcpu: sipi: start-up IPI, vector 0x08'),
           in_order('trampoline', 'pvsim_vcpu: sipi: start-up IPI, vector 0x08',
                    'kvm_msr: msr_read c0000080 = 0x0', 'kvm_msr: msr_write c0000080 = 0x100', vcpu=1),
           in_order('no-progress', 'pvsim_vcpu: init: ', 'kvm_apic_accept_irq: apicid 1 vec 8 (SIPI|edge)',
                    consecutive=True, vcpu=1)])

smp_scenario('init-bsp', 'start_bsp',
    'machine.start = "bsp": only vCPU 0 begins at the entry point; vCPUs 1-3 sit in wait-for-SIPI from time 0, as '
    'application processors do after RESET (SDM Vol.3A 9.4.1). Every vCPU that executes the entry code checks in; '
    'vCPU 0 lets 1 ms of virtual time pass and finds nobody else did. In the trace every line is vCPU 0\'s '
    '([000]): vCPUs 1, 2 and 3 execute nothing, so they have no line at all, not even one for their waiting '
    '[silent-1] [silent-2] [silent-3]; the run summary shows them with 0 instructions.',
    {'vcpus': 4, 'ram_mib': 16, 'start': 'bsp'}, summary=3,
    # ': ' follows the event name on every trace line, so these match any line of that vCPU.
    trace=[absent(f'silent-{i}', ': ', vcpu=i) for i in (1, 2, 3)])

SPIN_DESC = ('Eight vCPUs each add 5000 to a shared counter under a spinlock (XCHG), with a deliberately non-atomic '
    'load / add / store inside the lock; then 1000 more each under a LOCK CMPXCHG lock, and 1000 each with LOCK '
    'XADD. Every total must be exact. Finally the same increment without any lock: the guest prints how many '
    'updates were lost (an INFO line, not a check), which shows what the lock prevents. Spinning is not an exit '
    '(pvsim does not model pause-loop exiting), so the trace is nearly empty: fewer than 400 kvm_exit lines for '
    'millions of instructions, almost all of them vCPU 0\'s console writes and first touches of pages '
    '[few-exits]. ')
SPIN_TRACE = [count('few-exits', 'kvm_exit: ', max=400)]
smp_scenario('spinlock-q1', 'spinlock', SPIN_DESC +
    'Quantum 1: the scheduler switches vCPUs after every instruction, so the eight vCPUs really run side by side '
    'in virtual time and interleave as finely as possible; the unlocked phase loses most of its updates. XCHG, '
    'LOCK CMPXCHG and LOCK XADD are single steps, which is why the locked totals stay exact. Because every vCPU '
    'runs all the time, working or spinning, the instruction count in the run summary measures how long the run '
    'took in virtual time; spinlock-q10000 explains why it comes out larger here than there.',
    {'vcpus': 8, 'ram_mib': 16, 'quantum': 1}, summary=3, max_insn=100_000_000, trace=SPIN_TRACE)
smp_scenario('spinlock-q10000', 'spinlock', SPIN_DESC +
    'Quantum 10000: each vCPU runs long stretches alone, so its unlocked increments rarely interleave with '
    'another\'s and few or no updates are lost - and the locked totals must be exact just the same. Compare the '
    'instructions line of the run summary with that of spinlock-q1: about 2.3 million here against 2.7 million '
    'there. No vCPU ever halts, so each one executes instructions - real work or spinning - for the whole run, '
    'and the count measures how long the run took in virtual time. With quantum 1 the eight vCPUs run side by '
    'side: the 48000 locked increments happen one after another while the seven other vCPUs spin. With quantum '
    '10000 a vCPU does up to a thousand iterations in one slice with nobody else running, and the next vCPU then '
    'covers the same stretch of virtual time with its own: the critical sections overlap in virtual time and the '
    'lock is rarely contended. What this run pays instead is lock-holder preemption: the quantum is exact '
    '(exact_quantum), so a slice can end while its vCPU holds the lock, and then each of the other seven spins '
    'through a whole quantum of 10000 instructions. Raise the quantum (50000 runs about 4.3 million '
    'instructions) and that waste grows with it: it is the waste PV spinlocks and steal time exist for.',
    {'vcpus': 8, 'ram_mib': 16, 'quantum': 10000, 'exact_quantum': True}, summary=3, max_insn=100_000_000,
    trace=SPIN_TRACE)

KVMCLOCK_DESC = ('kvmclock on 4 vCPUs (pvmsr/README.md §4): each vCPU registers its pvclock_vcpu_time_info with MSR '
    '0x4b564d01 and reads the clock 100000 times with Linux\'s algorithm (version loop, 128-bit scaled TSC delta). '
    'Each raw reading is compared with the largest value any vCPU had published before it started (RDTSC runs only '
    'on the vCPU that is earliest in virtual time, so that comparison is causal); the same reading after Linux\'s '
    'global monotonic guard is compared too. In the trace, each vCPU\'s WRMSR of 0x4b564d01 is a kvm_exit '
    'MSR_WRITE, the kvm_msr line, the kvm_pvclock_update that publishes its structure (version, tsc_timestamp, '
    'system_time, the scale and flags) and the kvm_entry, on consecutive lines [register]: as on KVM, the MSR '
    'handler only stores the value and raises a clock-update request, which is serviced on the way back into the '
    'guest (pvmsr/hypervisor.h). ')
KVMCLOCK_REGISTER = in_order('register', 'kvm_exit: * reason MSR_WRITE', 'kvm_msr: msr_write 4b564d01 = 0x',
                             'kvm_pvclock_update: vcpu_id ', 'kvm_entry: ', consecutive=True)
smp_scenario('kvmclock-modern', 'kvmclock', KVMCLOCK_DESC +
    'Modern KVM ABI: master-clock mode, every vCPU gets the same (tsc_timestamp, system_time) pair, TSCs are in '
    'sync, and flags has PVCLOCK_TSC_STABLE_BIT (0x1), which the guest honours because CPUID 0x40000001 bit 24 is '
    'set: the guard is skipped and raw readings must never go backwards. There is one such WRMSR per vCPU '
    '[four-registrations], and all four kvm_pvclock_update lines carry the same pair, "tsc_timestamp 0x0, '
    'system_time 0x0" - the master clock\'s snapshot, taken when the VM was created at time 0 - with flags 0x1 '
    '[same-pair]; no other update happens in the run [four-updates].',
    {'vcpus': 4, 'ram_mib': 16}, summary=3, max_insn=300_000_000,
    contains=['kvmclock: flags 0x1, TSC_STABLE honoured\n', 'kvmclock: raw backwards steps: 0\n',
              'kvmclock: guarded backwards steps: 0\n'],
    trace=[KVMCLOCK_REGISTER,
           exactly('four-registrations', 'kvm_msr: msr_write 4b564d01 = 0x', 4),
           exactly('same-pair', 'kvm_pvclock_update: * tsc_timestamp 0x0, system_time 0x0, * flags 0x1 }', 4),
           exactly('four-updates', 'kvm_pvclock_update: ', 4)])
smp_scenario('kvmclock-orig', 'kvmclock', KVMCLOCK_DESC +
    'Seed-era ABI (machine.kvm.abi "orig"): no master clock, each vCPU\'s structure is sampled on its own, flags is '
    '0. The TSCs are skewed (machine.tsc_skew: per-vCPU offsets and rates off by up to 300 ppm), while KVM scales '
    'every vCPU with the nominal 2.5 GHz: each vCPU\'s clock drifts from the others after its update, so raw '
    'readings of different vCPUs disagree and the raw check counts backwards steps (the guest prints how many and '
    'the largest). The global guard hides every one of them: guarded readings never go backwards. In the trace, '
    'each kvm_pvclock_update carries that vCPU\'s own sample, its TSC and the time at its WRMSR, so the '
    'tsc_timestamp/system_time pairs differ per vCPU and none is the snapshot at time 0 [own-sample]; flags is '
    '0x0 in all four [flags-zero].',
    {'vcpus': 4, 'ram_mib': 16, 'kvm_cpuid': {'features': '0x0100001b'}, 'kvm': {'abi': 'orig'},
     'tsc_skew': [{'vcpu': 1, 'offset': 4000, 'ppm': 300}, {'vcpu': 2, 'offset': -2500, 'ppm': -300},
                  {'vcpu': 3, 'offset': 1000, 'ppm': 150}]},
    summary=2, max_insn=300_000_000,
    contains=['kvmclock: flags 0x0, TSC_STABLE not honoured\n', 'kvmclock: guarded backwards steps: 0\n'],
    excludes=['FAIL', 'kvmclock: raw backwards steps: 0\n'],
    trace=[KVMCLOCK_REGISTER,
           absent('own-sample', 'kvm_pvclock_update: * system_time 0x0,'),
           exactly('flags-zero', 'kvm_pvclock_update: * flags 0x0 }', 4)])

# KVMCLOCK_UPDATE_DELAY is 100 ms in KVM; this run lasts about 13 ms of virtual time, so the
# delay is shortened to 5 ms to put the fan-out inside it (cheaper than a run 8 times longer).
smp_scenario('kvmclock-host', 'kvmclock', KVMCLOCK_DESC +
    'The host model at work (scenario key "host"): the 4 vCPU threads share 3 physical CPUs, time-sliced in '
    '1 ms slots, so in every slot one vCPU waits (its TSC and virtual time keep running, it executes nothing) '
    'and the vCPUs move between pCPUs. vCPU 2 is also descheduled from 2 to 3 ms, right after its regular turn '
    'to wait. The master clock is turned off (machine.kvm.master_clock false), so, as in KVM before 3.8 or on a '
    'host with an unstable TSC, every move to another pCPU makes KVM refresh the kvmclock structures with a '
    'global update: this vCPU at once, and every vCPU KVMCLOCK_UPDATE_DELAY later (pvmsr/README.md §4.5). That '
    'delay is 100 ms in KVM, longer than this whole run (about 13 ms), so the scenario shortens it to 5 ms '
    '(machine.kvm.clock_update_delay_ms). No TSC_STABLE flag, so the guest relies on the global guard. In the '
    'trace: pvsim_sched_out lines "vcpu V pcpu P rip R preempted until ..." for the vCPU that waits in each slot '
    '[sched-out] - vCPU 2\'s at 1 ms says "until 0.003000000", two slots in a row [vcpu2-two-slots] - and '
    '"migrate: pcpu a -> pcpu b", each directly followed by a kvm_pvclock_update for that vCPU [migrate-update]. '
    'The delayed fan-out is the only place where kvm_pvclock_update lines come three in a row without a migrate '
    'line [fan-out]: just after 5 ms, 5 ms after the first WRMSR of 0x4b564d01 started the first global update, '
    'vCPUs 1, 3 and 0 are refreshed, while vCPU 2, waiting in that slot, takes its refresh when it runs again. flags is 0x0 in '
    'every update [no-stable-bit]. pvsim run prints each vCPU\'s run delay.',
    {'vcpus': 4, 'ram_mib': 16, 'kvm': {'master_clock': False, 'clock_update_delay_ms': 5}},
    summary=2, max_insn=300_000_000,
    host={'pcpus': 3, 'policy': 'time_sliced', 'slice_us': 1000,
          'preempt': [{'vcpu': 2, 'from_us': 2000, 'to_us': 3000}]},
    contains=['kvmclock: flags 0x0, TSC_STABLE not honoured\n', 'kvmclock: guarded backwards steps: 0\n'],
    trace=[KVMCLOCK_REGISTER,
           count('sched-out', 'pvsim_sched_out: vcpu * preempted until ', min=10),
           exactly('vcpu2-two-slots', 'pvsim_sched_out: vcpu 2 * preempted until 0.003000000', 1, vcpu=2),
           in_order('migrate-update', 'pvsim_vcpu: migrate: pcpu ', 'kvm_pvclock_update: ', consecutive=True),
           in_order('fan-out', 'kvm_pvclock_update: ', 'kvm_pvclock_update: ', 'kvm_pvclock_update: ',
                    consecutive=True),
           absent('no-stable-bit', 'kvm_pvclock_update: * flags 0x1 }')])

smp_scenario('wallclock', 'wallclock',
    'Wall-clock time from KVM (pvmsr/README.md §4.8). The guest enables kvmclock, writes the address of a '
    'pvclock_wall_clock to MSR 0x4b564d00 and reads sec/nsec (the host\'s wall time when kvmclock was 0) under the '
    'version loop; wall time now = sec*1e9 + nsec + kvmclock. It prints sec, nsec, the kvmclock value and the TSC '
    'it was computed from, so a host test can check the sum against host.wall_clock_ns plus the virtual time of '
    'that TSC, to within a nanosecond. The old MSR 0x11 is the same VM-wide value: writing it fills a second '
    'structure with the same epoch, and RDMSR 0x4b564d00 returns the address written to 0x11. Each write adds 2 '
    'to the structure\'s version. host.wall_clock_ns is 1700000000123456789, so sec must be 1700000000 and nsec '
    '123456789 - or one more: kvmclock truncates to whole nanoseconds, and the epoch, realtime minus kvmclock at '
    'the write, can absorb that (so a reading may show 123456790). In the trace: the kvm_msr write of '
    '0x4b564d01 that enables kvmclock, followed by its kvm_pvclock_update; the write of 0x4b564d00 and a read of it that '
    'returns the address written; the write of 0x11 and a read of 0x4b564d00 that now returns the address written '
    'to 0x11; and a last write of 0x4b564d00 [msr-sequence]. A wall-clock write has no event of its own besides '
    'its kvm_msr line: the only kvm_pvclock_update is the one for 0x4b564d01 [one-update].',
    {'vcpus': 1, 'ram_mib': 16}, summary=9, host={'wall_clock_ns': '1700000000123456789'},
    contains=['wallclock: sec 1700000000 nsec 123456789 kvmclock '],
    trace=[in_order('msr-sequence', 'kvm_msr: msr_write 4b564d01 = 0x', 'kvm_pvclock_update: vcpu_id 0,',
                    'kvm_msr: msr_write 4b564d00 = 0x', 'kvm_msr: msr_read 4b564d00 = 0x', 'kvm_msr: msr_write 11 = 0x',
                    'kvm_msr: msr_read 4b564d00 = 0x', 'kvm_msr: msr_write 4b564d00 = 0x'),
           exactly('one-update', 'kvm_pvclock_update: ', 1)])

# ---------------------------------------------------------------------------------------------
# Async page faults (pvmsr/README.md §5, tools/platform/README.md §5.1, the guest side in
# scenarios/guest/README.md "Async page faults"). Every scenario swaps out the same 1 MiB
# window of guest RAM at 16 MiB, which the apf_* programs touch; the host reads a page back
# in host.memory.fault_in_ns.
APF_WINDOW = [{'gpa': '0x1000000', 'size': '0x100000'}]
APF_ORIG = {'kvm': {'abi': 'orig'}, 'kvm_cpuid': {'features': '0x0100001b'}}  # 2.6.38's CPUID set
APF_NO_APF = {'kvm_cpuid': {'features': '0x01003eeb'}}  # the default set without ASYNC_PF and ASYNC_PF_INT

def apf_host(fault_in_ns=1_000_000, io_workers=None):
    m = {'swapped_out': APF_WINDOW, 'fault_in_ns': fault_in_ns}
    if io_workers:
        m['io_workers'] = io_workers
    return {'memory': m}

def apf_machine(vcpus=1, **extra):
    m = {'vcpus': vcpus, 'ram_mib': 32}
    m.update(extra)
    return m

# One "page not present", start to end, as the exit that ends in it reads.
NOT_PRESENT = ['kvm_page_fault: * address 0x00000000010', 'kvm_try_async_get_page: gva = 0x10',
               'kvm_async_pf_not_present: token 0x', 'pvsim_host: fetch: gpa 0x10', 'kvm_inj_exception: #PF (0x0)',
               'kvm_entry: ']
TASKS_COMMON = ('The apf_tasks guest runs, on each vCPU, three worker tasks and one compute task on a small '
    'cooperative scheduler, as Linux runs processes. Each worker touches two pages of a 1 MiB window at 16 MiB '
    'that the host has swapped out (host.memory.swapped_out), checks that the page still holds what it held '
    '(zeros), writes a pattern and checks every byte it reads back; the compute task does small units of work '
    'and counts those that ran while a worker was asleep. The host reads a page back in 200 us, with 32 I/O '
    'workers, so the fetches of different pages overlap. ')

def apf_tasks_scenario(name, vcpus, desc, summary_line, extra=None, trace=(), contains=()):
    smp_scenario(name, 'apf_tasks', TASKS_COMMON + desc, apf_machine(vcpus, **(extra or {})), summary=5,
                 contains=list(contains) + [summary_line], max_insn=100_000_000,
                 host=apf_host(200_000, 32), trace=trace)

def modern_tasks_trace(vcpus):
    n = 6 * vcpus
    return [in_order('enable', 'kvm_msr: msr_write 4b564d06 = 0xf3', 'kvm_msr: msr_write 4b564d02 = 0x',
                     'kvm_async_pf_ready: token 0xffffffff gva 0', 'kvm_apic_accept_irq: * vec 243 (Fixed|edge)',
                     'kvm_msr: msr_write 4b564d07 = 0x1'),
            in_order('not-present', *NOT_PRESENT, consecutive=True),
            in_order('ready', 'pvsim_host: fetched: gpa 0x10', 'kvm_async_pf_completed: gva 0x10',
                     'kvm_async_pf_ready: token 0x', 'kvm_apic_accept_irq: * vec 243 (Fixed|edge)',
                     'kvm_inj_virq: IRQ 0xf3', 'kvm_eoi: * vector 243', 'kvm_msr: msr_write 4b564d07 = 0x1'),
            exactly('n-not-present', 'kvm_async_pf_not_present: ', n),
            exactly('n-ready', 'kvm_async_pf_ready: ', n + vcpus),
            exactly('n-ack', 'kvm_msr: msr_write 4b564d07 = 0x1', n + vcpus),
            absent('no-stall', 'pvsim_host: stall')]

APF_SUMMARY_2 = ('apf summary: 12 async page faults, 12 page-ready, 2 wake-all; 2092 work units ran while tasks '
                 'waited, 463858 ns of vCPU time saved from stalls; workload took 733912 ns\n')
APF_SYNC_SUMMARY_2 = ('apf summary: 0 async page faults, 0 page-ready, 0 wake-all; 0 work units ran while tasks '
                      'waited, 0 ns of vCPU time saved from stalls; workload took 1529287 ns\n')

# The main job (README "first steps"): the showcase of async page faults.
smp_scenario('default', 'apf_tasks',
    'The main job: asynchronous page faults, as a Linux guest on KVM sees them (pvmsr/README.md §5). Two vCPUs; '
    + TASKS_COMMON +
    'Each vCPU first tells KVM where its async-PF area is: MSR 0x4b564d06 takes the page-ready vector 0xf3, MSR '
    '0x4b564d02 the area\'s address with ENABLED, SEND_ALWAYS and DELIVERY_AS_INT, and KVM answers every enable '
    'with a "wake all" page-ready (token 0xffffffff) delivered as interrupt vector 0xf3 (243), which the guest '
    'acknowledges by writing 1 to MSR 0x4b564d07 [enable]. Then each first touch of a swapped-out page is one '
    'exit that reads, on consecutive lines: kvm_page_fault for the address, kvm_try_async_get_page, '
    'kvm_async_pf_not_present with the token (0x1000 | vCPU for the first one, then 0x2000 | vCPU, ...), '
    'pvsim_host: fetch naming the host I/O worker and when the read ends, and kvm_inj_exception #PF: instead of '
    'stalling, KVM injects a page fault whose CR2 is the token, the guest puts the task to sleep and runs another '
    '[not-present]. 200 us later the page is in: pvsim_host: fetched, kvm_async_pf_completed, kvm_async_pf_ready '
    'with the same token, the interrupt accepted and injected (kvm_inj_virq IRQ 0xf3), the guest\'s EOI and its '
    'ACK write; the guest wakes the sleeping task, which retries its access [ready]. 12 pages are touched: 12 '
    'not-present [n-not-present], 14 page-ready (the 12 plus one wake-all per vCPU) [n-ready], 14 ACKs [n-ack], '
    'and not one synchronous stall [no-stall]. The guest prints what it saw: the closing "apf summary" line '
    'counts the async page faults and page-ready events, the work that ran while tasks waited and the vCPU time it '
    'took (time that would otherwise have been spent stalled: 463858 ns over both vCPUs), and how long the '
    'workload took in virtual time (kvmclock): 733912 ns. Guest markers (pvsim_marker lines; instants on the '
    '--perfetto and --timeline timelines) show where each vCPU enabled async PF and where its tasks start and end. The same guest on a KVM that does not offer async PF '
    '(scenario apf-sync-2) takes 1529287 ns: every touch halts its vCPU for the whole 200 us. Next: '
    'apf-modern-4 and apf-orig-2 (the seed-era protocol), then the edge cases apf-repeat, apf-limit, apf-cpl0, '
    'apf-irqoff, apf-disable, apf-reenable, apf-early-wake and apf-lapic-off.',
    apf_machine(2), summary=5, contains=[APF_SUMMARY_2], max_insn=100_000_000, host=apf_host(200_000, 32),
    trace=modern_tasks_trace(2))

apf_tasks_scenario('apf-modern-4', 4,
    'Four vCPUs, modern KVM (5.8+): "page not present" is an injected #PF with CR2 = token [not-present], "page '
    'ready" the interrupt on the vector the guest wrote to MSR 0x4b564d06, acknowledged through MSR 0x4b564d07 '
    '[enable] [ready]. Each vCPU has its own tokens, (n << 12) | vCPU, never 0. 24 pages, 24 not-present '
    '[n-not-present], 28 page-ready and 28 ACKs with the four wake-alls [n-ready] [n-ack], no stall [no-stall].',
    'apf summary: 24 async page faults, 24 page-ready, 4 wake-all; 4184 work units ran while tasks waited, '
    '928760 ns of vCPU time saved from stalls; workload took 740636 ns\n', trace=modern_tasks_trace(4))

def orig_tasks_trace(vcpus):
    n = 6 * vcpus
    return [in_order('enable', 'kvm_msr: msr_write 4b564d02 = 0x', 'kvm_async_pf_ready: token 0 gva 0',
                     'kvm_inj_exception: #PF (0x0)'),
            in_order('not-present', *NOT_PRESENT, consecutive=True),
            in_order('ready', 'pvsim_host: fetched: gpa 0x10', 'kvm_async_pf_completed: gva 0x10',
                     'kvm_async_pf_ready: token 0x', 'kvm_inj_exception: #PF (0x0)'),
            exactly('n-not-present', 'kvm_async_pf_not_present: ', n),
            exactly('n-ready', 'kvm_async_pf_ready: ', n + vcpus),
            exactly('pf-only', 'kvm_inj_exception: #PF (0x0)', 2 * n + vcpus),
            absent('no-int', 'kvm_msr: msr_write 4b564d06'),
            absent('no-ack', 'kvm_msr: msr_write 4b564d07')]

ORIG_DESC = ('The seed-era protocol (machine.kvm.abi "orig", CPUID with the 2.6.38 feature set, no ASYNC_PF_INT), '
    'the one the seed documents describe: the guest enables async PF with MSR 0x4b564d02 alone, and KVM answers '
    'with a wake-all that is itself a #PF with reason 2 (the era\'s kvm_async_pf_ready printed the wake-all\'s '
    'token as 0 before replacing it with 0xffffffff) [enable]. "Page not present" is a #PF with reason 1 and CR2 '
    '= token [not-present]; "page ready" is a second #PF, reason 2, CR2 = the same token, injected when the vCPU '
    'can take an interrupt [ready]. Every injection is a kvm_inj_exception #PF: one per not-present, one per '
    'page-ready, one per wake-all [pf-only]; no interrupt vector is ever registered [no-int] and nothing is '
    'acknowledged [no-ack]. The first token on vCPU 0 is 0 here: the seed era had no "never 0" rule. ')
smp_scenario('apf-orig-2', 'apf_tasks', TASKS_COMMON + ORIG_DESC + 'Two vCPUs: 12 not-present [n-not-present], '
    '14 page-ready [n-ready].', apf_machine(2, **APF_ORIG), summary=5,
    contains=['apf summary: 12 async page faults, 12 page-ready, 2 wake-all; 2048 work units ran while tasks '
              'waited, 454752 ns of vCPU time saved from stalls; workload took 731001 ns\n'], max_insn=100_000_000, host=apf_host(200_000, 32),
    trace=orig_tasks_trace(2))
smp_scenario('apf-orig-4', 'apf_tasks', TASKS_COMMON + ORIG_DESC + 'Four vCPUs: 24 not-present [n-not-present], '
    '28 page-ready [n-ready]. Two page-ready #PFs never stack up: while one is queued and not yet delivered, the '
    'next waits for the following entry (a second queued #PF would have turned into #DF on old KVM).',
    apf_machine(4, **APF_ORIG), summary=5,
    contains=['apf summary: 24 async page faults, 24 page-ready, 4 wake-all; 4096 work units ran while tasks '
              'waited, 910021 ns of vCPU time saved from stalls; workload took 734270 ns\n'], max_insn=100_000_000, host=apf_host(200_000, 32),
    trace=orig_tasks_trace(4))

smp_scenario('apf-sync-2', 'apf_tasks', TASKS_COMMON +
    'The baseline for the main job (default.json): the same guest and host on a KVM whose CPUID does not offer '
    'async PF (features without ASYNC_PF and ASYNC_PF_INT), so the guest never enables it. KVM still does not '
    'block the vCPU thread in the host: each fault is set up as async work with a token [try], but nothing can be '
    'told to the guest, so the vCPU sits in a synthetic halt until the page is in [halt], and no #PF is ever '
    'injected [no-injection]; the completion wakes the vCPU silently. No other task runs meanwhile, so the '
    'workload takes 1529287 ns against 733912 ns with async PF: the guest prints 0 async page faults, 0 work '
    'units while tasks waited and 0 ns saved.', apf_machine(2, **APF_NO_APF), summary=None,
    contains=['SKIP: async PF not offered by CPUID (no ASYNC_PF, bit 4): every touch stalls in the host\n',
              APF_SYNC_SUMMARY_2, 'SUMMARY: 3 tests, 1 skipped\n'], max_insn=100_000_000,
    host=apf_host(200_000, 32),
    trace=[exactly('try', 'kvm_try_async_get_page: ', 12), exactly('halt', 'pvsim_apf: halt: token 0x', 12),
           absent('no-injection', 'kvm_inj_exception: ')])

EDGE_INTRO = ('One vCPU, modern KVM, a 1 MiB window swapped out (1 ms to read a page back unless said otherwise): the guest enables async PF and '
    'acknowledges the wake-all KVM answers with [enable]. ')
EDGE_ENABLE = in_order('enable', 'kvm_msr: msr_write 4b564d02 = 0x', 'kvm_async_pf_ready: token 0xffffffff gva 0',
                       'kvm_msr: msr_write 4b564d07 = 0x1')

smp_scenario('apf-repeat', 'apf_repeat',
    EDGE_INTRO + 'A repeated fault on a page that is already being fetched for this vCPU (pvmsr/README.md §5.3). Task A '
    'touches a swapped-out page: an async page fault, A sleeps [first]. Task B then touches the same page: KVM '
    'finds the gfn in the vCPU\'s table of outstanding faults, traces kvm_async_pf_repeated_fault and, rather than '
    'a second not-present for the same page, puts the vCPU in a synthetic halt until the page arrives [repeat]; '
    'the halt ends when A\'s page is in (pvsim_apf: halt_end) [halt-end]. '
    'One not-present in the whole run [one-each], and one page-ready for A\'s token [one-ready].', apf_machine(1), summary=6,
    max_insn=50_000_000, host=apf_host(),
    trace=[EDGE_ENABLE,
           in_order('first', 'kvm_async_pf_not_present: token 0x1000 gva 0x1000000', 'kvm_inj_exception: #PF (0x0)'),
           in_order('repeat', 'kvm_try_async_get_page: gva = 0x1000000, gfn = 0x1000',
                    'kvm_async_pf_repeated_fault: gva = 0x1000000, gfn = 0x1000',
                    'pvsim_apf: halt: repeated fault on gfn 0x1000', consecutive=True),
           in_order('halt-end', 'pvsim_apf: halt: repeated fault on gfn 0x1000', 'pvsim_host: fetched: gpa 0x1000000',
                    'pvsim_apf: halt_end: its page is in'),
           exactly('one-each', 'kvm_async_pf_not_present: ', 1),
           exactly('one-ready', 'kvm_async_pf_ready: token 0x1000 ', 1)])

smp_scenario('apf-limit', 'apf_limit',
    EDGE_INTRO + 'The 65th outstanding fault (ASYNC_PF_PER_VCPU is 64; the wake-all of the enable counts until it is '
    'delivered). 65 tasks on one vCPU each touch their own page while the host takes 10 ms per page: 64 async '
    'page faults [n-not-present], then the 65th finds the limit reached and is handled synchronously: the vCPU '
    'stalls 10 ms in the host, nothing is injected [stall]. While page-readies wait for the guest to free the '
    'token slot, pvsim says why a page-ready is held back [held].', apf_machine(1), summary=8,
    max_insn=50_000_000, host=apf_host(10_000_000, 65),
    trace=[EDGE_ENABLE, exactly('n-not-present', 'kvm_async_pf_not_present: ', 64),
           in_order('stall', 'pvsim_host: stall: gpa 0x1040000 not resident, vCPU waits 10 ms',
                    'pvsim_host: stall_end: gpa 0x1040000 resident', consecutive=True),
           count('held', 'pvsim_apf: held: token slot busy', min=1)])

smp_scenario('apf-cpl0', 'apf_cpl0',
    EDGE_INTRO + 'Async PF at CPL 0 without SEND_ALWAYS: the guest enables async PF with bit 1 clear (what Linux 5.8+ does: '
    'only user mode may take an async #PF) and touches a swapped-out page from kernel mode. KVM still sets up '
    'the async work with a token, but may not tell the guest, so the vCPU halts (pvsim_apf: halt) and no #PF is '
    'injected [halt]. When the page is in, modern KVM (since the 5.8 fix) sends no page-ready for a not-present '
    'the guest never saw: kvm_async_pf_ready is traced, no interrupt follows, the vCPU simply runs again '
    '[silent]: the only interrupt of vector 243 is the enable\'s wake-all [one-irq], and no #PF is injected at '
    'all [no-pf].', apf_machine(1), summary=6, max_insn=50_000_000, host=apf_host(),
    trace=[EDGE_ENABLE,
           in_order('halt', 'kvm_async_pf_not_present: token 0x1000 gva 0x1000000', 'pvsim_apf: halt: token 0x1000',
                    consecutive=True),
           absent('no-pf', 'kvm_inj_exception: '),
           in_order('silent', 'kvm_async_pf_ready: token 0x1000 gva 0x1000000'),
           exactly('one-irq', 'kvm_apic_accept_irq: * vec 243', 1)])

smp_scenario('apf-irqoff', 'apf_irqoff',
    EDGE_INTRO + 'A touch with interrupts disabled (IF=0): KVM cannot even use a synthetic halt, since nothing could wake the '
    'vCPU, so kvm_can_do_async_pf is false and the fault is synchronous: the vCPU stalls 1 ms in the host, with '
    'no kvm_try_async_get_page [stall]. The same touch of another page with IF=1 is an ordinary async page fault '
    '[async]; only that touch tried the async path [one-try].', apf_machine(1), summary=6, max_insn=50_000_000, host=apf_host(),
    trace=[EDGE_ENABLE,
           in_order('stall', 'kvm_page_fault: * address 0x0000000001000000', 'pvsim_host: stall: gpa 0x1000000 ',
                    'pvsim_host: stall_end: gpa 0x1000000 resident', 'kvm_entry: ', consecutive=True),
           in_order('async', 'kvm_try_async_get_page: gva = 0x1001000', 'kvm_async_pf_not_present: token 0x1000 ',
                    'pvsim_host: fetch: gpa 0x1001000', 'kvm_inj_exception: #PF (0x0)', consecutive=True),
           exactly('one-try', 'kvm_try_async_get_page: ', 1)])

smp_scenario('apf-disable', 'apf_disable',
    EDGE_INTRO + 'Disabling async PF with work outstanding (pvmsr/README.md §5.3): task A sleeps on an async page fault, then '
    'task B writes 0 to MSR 0x4b564d02. KVM drops the outstanding work silently (pvsim_apf: dropped) [drop], and '
    'no page-ready is ever sent for it: the only kvm_apic_accept_irq of the run is the enable\'s wake-all '
    '[no-ready]. The guest must wake its own waiters, as Linux does when a CPU goes offline; A retries, and with '
    'async PF off KVM sets up a halt-only fault (a new token) that joins the fetch still in flight [retry].',
    apf_machine(1), summary=7, max_insn=50_000_000, host=apf_host(),
    trace=[EDGE_ENABLE,
           in_order('drop', 'kvm_async_pf_not_present: token 0x1000 ', 'kvm_inj_exception: #PF (0x0)',
                    'pvsim_apf: dropped: 1 outstanding, 0 completed (disable)', 'kvm_msr: msr_write 4b564d02 = 0x0'),
           exactly('no-ready', 'kvm_apic_accept_irq: ', 1),
           in_order('retry', 'kvm_msr: msr_write 4b564d02 = 0x0', 'kvm_async_pf_not_present: token 0x2000 ',
                    'pvsim_apf: halt: token 0x2000 gfn 0x1000')])

smp_scenario('apf-reenable', 'apf_reenable',
    'Re-enabling async PF while a task sleeps: task A sleeps on an async page fault; task B writes MSR 0x4b564d02 '
    'again. Every successful enable queues a wake-all, so a page-ready with token 0xffffffff arrives while A\'s '
    'page is still being read [wake-all]. The guest wakes every waiter on this vCPU, A retries before its page is '
    'in, and KVM, finding the gfn still outstanding, halts the vCPU: a repeated fault [repeat]. When the page '
    'arrives, the page-ready for A\'s token finds no waiter, and the guest records it as a dummy (Linux\'s '
    'early-wake entry) [late-ready]. Two wake-alls in all, one per enable [two-wake-alls].', apf_machine(1), summary=7, max_insn=50_000_000, host=apf_host(),
    trace=[in_order('wake-all', 'kvm_async_pf_not_present: token 0x1000 ', 'kvm_msr: msr_write 4b564d02 = 0x',
                    'kvm_async_pf_ready: token 0xffffffff gva 0'),
           in_order('repeat', 'kvm_async_pf_ready: token 0xffffffff gva 0',
                    'kvm_async_pf_repeated_fault: gva = 0x1000000, gfn = 0x1000',
                    'pvsim_apf: halt: repeated fault on gfn 0x1000'),
           in_order('late-ready', 'pvsim_apf: halt: repeated fault on gfn 0x1000',
                    'kvm_async_pf_ready: token 0x1000 gva 0x1000000'),
           exactly('two-wake-alls', 'kvm_async_pf_ready: token 0xffffffff', 2)])

smp_scenario('apf-early-wake', 'apf_early_wake',
    EDGE_INTRO + 'A page-ready that beats the not-present handling (the guest\'s "dummy" path): this guest\'s #PF handler '
    'enables interrupts and does some work before it registers the wait, as a preemptible kernel may; the page '
    'arrives meanwhile, and the page-ready interrupt comes in while the handler of the not-present for the same '
    'token is still running [early]. The wake finds no sleeper and leaves a dummy entry; the wait then finds the '
    'dummy and does not sleep (the guest prints 1 created, 1 consumed). One not-present in all '
    '[one-not-present].', apf_machine(1), summary=6,
    max_insn=50_000_000, host=apf_host(),
    trace=[EDGE_ENABLE,
           in_order('early', 'kvm_async_pf_not_present: token 0x1000 ', 'kvm_inj_exception: #PF (0x0)',
                    'kvm_async_pf_ready: token 0x1000 ', 'kvm_inj_virq: IRQ 0xf3'),
           exactly('one-not-present', 'kvm_async_pf_not_present: ', 1)])

smp_scenario('apf-lapic-off', 'apf_lapic_off',
    'A wake-all while the local APIC is software-disabled (the bug fixed by commit 2f15d027c05f, Linux 5.13): '
    'the guest clears SVR bit 8 and then enables async PF. The wake-all cannot be delivered through a disabled '
    'APIC, so KVM keeps it queued (pvsim_apf: held: LAPIC disabled) [held]; when the guest sets SVR bit 8 again, '
    'KVM re-checks and the page-ready goes out at once [released]. Before the fix the interrupt was dropped and '
    'async PF stayed stuck for good.', apf_machine(1), summary=3, max_insn=50_000_000, host=apf_host(),
    trace=[in_order('held', 'kvm_apic: apic_write APIC_SPIV = 0xff', 'kvm_msr: msr_write 4b564d02 = 0x',
                    'pvsim_apf: held: LAPIC disabled'),
           in_order('released', 'pvsim_apf: held: LAPIC disabled', 'kvm_apic: apic_write APIC_SPIV = 0x1ff',
                    'kvm_async_pf_ready: token 0xffffffff gva 0', 'kvm_apic_accept_irq: * vec 243 (Fixed|edge)')])

# ---------------------------------------------------------------------------------------------
# The rest of KVM's paravirtual interface (pvmsr/README.md §6, §7, §10, §4; the guest side in
# scenarios/guest/README.md "Paravirtual features"): steal time, the PV TLB flush and its lost
# flag, PV EOI, PV spinlocks, PV IPIs, the hypercall table, and kvmclock as KVM samples it.
# The pv_* programs run at fixed points of kvmclock time, and the scenarios place the host's
# preemptions, pauses and noise around them.
PV_GOLDEN = {'pv-eoi', 'pv-steal', 'pv-tlb-orig', 'pv-tlb-modern', 'pv-spinlock', 'pv-ipi', 'pv-clock-torn-orig',
             'pv-clock-torn-modern', 'pv-clock-stopped', 'pv-clock-pairs', 'pv-clock-pairs-master', 'pv-hypercall',
             'pv-hypercall-amd', 'pv-hypercall-ud'}
GOLDEN_TRACE.update(PV_GOLDEN)

smp_scenario('pv-steal', 'pv_steal',
    'Steal time (MSR 0x4b564d03, pvmsr/README.md §6) on four vCPUs that share two physical CPUs: the host pins '
    'vCPUs 0 and 2 to pCPU 0 and vCPUs 1 and 3 to pCPU 1, and the two of a pCPU take turns in 100 us slices; '
    'from 1000 to 1300 us a host thread is busy on pCPU 1 (host.noise), so neither vCPU 1 nor vCPU 3 runs then. '
    'Every vCPU registers its steal-time area and, until 2 ms, alternates short work with reading kvmclock and '
    'its own `steal`; vCPU 2 halts 100 us twice and vCPU 3 halts 200 us five times, waiting for a LAPIC timer. '
    'The guest prints every growth of its `steal` with the two kvmclock readings around it. '
    'When the host takes a pCPU away from a vCPU that could run, the trace has a pvsim_sched_out line with '
    '"preempted" and the reason\'s end time, and KVM sets KVM_VCPU_PREEMPTED in the area at once (pvsim_steal '
    '"preempted: 0x0 -> 0x1") [preempted-at-put]. When it runs again, pvsim_sched_in carries the vCPU\'s total '
    'run delay (time runnable but not running), and at that entry KVM publishes it: the pvsim_steal "update" '
    'line has `steal` equal to that run delay, and the delta since the last update; for vCPU 1 after the host '
    'thread, 900000 ns in all, 500000 of them new: vCPU 3\'s slices at 900 and 1300 us and the host thread\'s '
    '300 us between them [steal-is-run-delay]. Halted time is never steal: vCPU 3 halts through vCPU 1\'s whole '
    'slice and wakes in its own, and the update at its wake-up entry adds nothing ("delta 0") [halt-not-steal], '
    'four times [four-halts-free]; its fifth halt ends inside the host thread\'s busy period, and the vCPU '
    'waits for its pCPU: pvsim_sched_out "woken, waits for a pCPU", then pvsim_sched_in, and only that wait '
    'becomes steal [woken-waits]. A vCPU that halts is not preempted: vCPU 3 gets KVM_VCPU_PREEMPTED only four '
    'times, each when its slice ended while it was running [preempted-count]. What the guest checks: every '
    'growth of `steal` fits in the time between the two readings around it minus the time halted there, and '
    'without a halt it covers that gap to within 10 us: the time a vCPU lost is all reported, the time it slept '
    'is not. vCPU 0 also prints when it saw vCPU 3\'s `preempted` byte change: 1 while vCPU 3 waited for pCPU 1, '
    '0 while it slept.',
    {'vcpus': 4, 'ram_mib': 16}, summary=7, max_insn=100_000_000,
    host={'pcpus': 2, 'slice_us': 100, 'noise': [{'pcpu': 1, 'from_us': 1000, 'to_us': 1300}]},
    contains=['pv_steal: vCPU 1: version 10 -> 12, steal 400000 -> 900000 (+500000) between ',
              'pv_steal: vCPU 3: version 2 -> 4, steal 100000 -> 100000 (+0) between '],
    trace=[in_order('preempted-at-put', 'pvsim_sched_out: vcpu 1 pcpu 1 rip * preempted until 0.000200000',
                    'pvsim_steal: preempted: 0x0 -> 0x1', consecutive=True, vcpu=1),
           in_order('steal-is-run-delay', 'pvsim_sched_out: vcpu 1 pcpu 1 rip * preempted until 0.001400000',
                    'pvsim_steal: preempted: 0x0 -> 0x1', 'pvsim_sched_in: vcpu 1 pcpu 1 rip * run_delay 900000',
                    'kvm_pv_tlb_flush: vcpu 1 need_flush_tlb false',
                    'pvsim_steal: update: steal 900000 delta 500000 version 12', consecutive=True, vcpu=1),
           in_order('halt-not-steal', 'kvm_exit: vcpu 3 reason HLT', 'kvm_apic_accept_irq: apicid 3 vec 224 (',
                    'kvm_pv_tlb_flush: vcpu 3 need_flush_tlb false', 'pvsim_steal: update: steal 100000 delta 0 ',
                    consecutive=True, vcpu=3),
           exactly('four-halts-free', 'pvsim_steal: update: * delta 0 version', 4, vcpu=3),
           in_order('woken-waits', 'kvm_apic_accept_irq: apicid 3 vec 224 (',
                    'pvsim_sched_out: vcpu 3 pcpu 1 rip * woken, waits for a pCPU until 0.001300000',
                    'pvsim_sched_in: vcpu 3 pcpu 1 rip * run_delay ', 'kvm_pv_tlb_flush: vcpu 3 need_flush_tlb false',
                    'pvsim_steal: update: steal ', consecutive=True, vcpu=3),
           exactly('preempted-count', 'pvsim_steal: preempted: 0x0 -> 0x1', 4, vcpu=3)])

PV_TLB_HOST = {'pcpus': 2, 'pv_store_ns': 1000,
               'preempt': [{'vcpu': 1, 'from_us': 200, 'to_us': 400}, {'vcpu': 1, 'from_ns': 500000, 'to_ns': 699800}]}
PV_TLB_COMMON = ('The PV TLB flush (CPUID 0x40000001 bit 9, pvmsr/README.md §6.2) and the window of '
    'CVE-2019-3016. Two vCPUs share page tables in which pages X and Y each map an "old" frame; vCPU 1 reads '
    'both, so its TLB holds both translations, and loops reading them. vCPU 0 remaps one page to a "new" frame '
    'and flushes it on vCPU 1: by IPI (vector 0xe1) if vCPU 1 is running, or, if vCPU 1\'s steal-time '
    '`preempted` says the host has descheduled it, by setting KVM_VCPU_FLUSH_TLB in that byte with LOCK '
    'CMPXCHG, no IPI, for KVM to flush at vCPU 1\'s next entry. Round 1 (X, at 300 us) falls inside vCPU 1\'s '
    'first preemption (host.preempt, 200 to 400 us): the flag goes in, and at the entry that ends the '
    'preemption KVM finds it and flushes: kvm_pv_tlb_flush "need_flush_tlb true" [round1-flush], the only '
    'such flush [one-flush]. Round 2 (Y, at 700 us): vCPU 1\'s second preemption ends at 699.8 us, 200 ns '
    'before vCPU 0 flushes, and KVM\'s update of the steal-time area at that entry is made of stores 1 us apart '
    '(host.pv_store_ns), so vCPU 0 runs between KVM\'s reading of the area and its writing. ')
smp_scenario('pv-tlb-orig', 'pv_tlb', PV_TLB_COMMON +
    'Here KVM is the one of 4.16-5.5 (machine.kvm.abi "orig"): record_steal_time read the whole area into its '
    'own copy, cleared `preempted` in the copy, decided "no flush" (kvm_pv_tlb_flush "need_flush_tlb false"), '
    'and wrote the whole copy back one store later (pvsim_host "store: record (64 bytes"): vCPU 0\'s CMPXCHG, '
    'landing in between, still found the byte preempted and set FLUSH_TLB, and the write-back erased it '
    '[flag-lost]. No IPI went out [no-ipi], nobody flushed, and vCPU 1 read Y\'s old frame through its stale '
    'translation: the guest reports it as a FAIL, exit status 3 - the guest-visible face of CVE-2019-3016. '
    'After an INVLPG of its own vCPU 1 reads the new frame. Compare pv-tlb-modern, same guest, same host.',
    {'vcpus': 2, 'ram_mib': 16, 'kvm': {'abi': 'orig'}}, excludes=(), exit_status=3, max_insn=100_000_000,
    host=PV_TLB_HOST,
    contains=['preempted byte read 0x1: FLUSH_TLB set with CMPXCHG, no IPI\n'
              'pv_tlb: round 2: vCPU 1 then read 0x1d0000000000002 through Y: the old frame\n',
              'FAIL: round 2: the host was asked to flush (FLUSH_TLB) and vCPU 1 read Y\'s new frame',
              'PASS: after its own INVLPG vCPU 1 reads Y\'s new frame\n', 'SUMMARY: 7 tests, 1 unexpected failures\n'],
    trace=[in_order('round1-flush', 'pvsim_steal: preempted: 0x0 -> 0x1', 'pvsim_sched_in: vcpu 1 pcpu 1 rip ',
                    'kvm_pv_tlb_flush: vcpu 1 need_flush_tlb true', consecutive=True, vcpu=1),
           exactly('one-flush', 'kvm_pv_tlb_flush: * need_flush_tlb true', 1),
           in_order('flag-lost', 'pvsim_sched_in: vcpu 1 pcpu 1 rip * run_delay 399800',
                    'kvm_pv_tlb_flush: vcpu 1 need_flush_tlb false', 'pvsim_steal: update: steal 399800 ',
                    'pvsim_host: store: record (64 bytes', consecutive=True, vcpu=1),
           absent('no-ipi', 'kvm_apic_ipi: * vec 225 ')])
smp_scenario('pv-tlb-modern', 'pv_tlb', PV_TLB_COMMON +
    'Here KVM is modern (5.6+, commit b043138246a4): record_steal_time clears `preempted` with one atomic '
    'exchange on guest memory when it reads it, and only the version and `steal` stores come later. vCPU 0 '
    'finds vCPU 1 no longer preempted, so it sends the flush IPI and waits for it: kvm_apic_ipi with vector 225 '
    'and its kvm_apic_accept_irq [round2-ipi], the only IPI of the run [one-ipi]; vCPU 1\'s handler runs INVLPG '
    'and it reads Y\'s new frame. Compare pv-tlb-orig, same guest, same host, where the flag is lost.',
    {'vcpus': 2, 'ram_mib': 16}, summary=7, max_insn=100_000_000, host=PV_TLB_HOST,
    contains=['preempted byte read 0x0: flush IPI sent and acknowledged\n'
              'pv_tlb: round 2: vCPU 1 then read 0xe50000000000002 through Y: the new frame\n'],
    trace=[in_order('round1-flush', 'pvsim_steal: preempted: 0x0 -> 0x1', 'pvsim_sched_in: vcpu 1 pcpu 1 rip ',
                    'kvm_pv_tlb_flush: vcpu 1 need_flush_tlb true', consecutive=True, vcpu=1),
           exactly('one-flush', 'kvm_pv_tlb_flush: * need_flush_tlb true', 1),
           in_order('round2-ipi', 'pvsim_sched_in: vcpu 1 pcpu 1 rip * run_delay 399800',
                    'kvm_pv_tlb_flush: vcpu 1 need_flush_tlb false',
                    'kvm_apic_ipi: dst 1 vec 225 (Fixed|physical|assert|edge|dst)',
                    'kvm_apic_accept_irq: apicid 1 vec 225 (Fixed|edge)'),
           exactly('one-ipi', 'kvm_apic_ipi: ', 1)])

smp_scenario('pv-eoi', 'pv_eoi',
    'PV EOI (MSR 0x4b564d04, pvmsr/README.md §7) on one vCPU in x2APIC mode, as Linux runs under KVM, with '
    'self-IPIs. First with PV EOI off: 32 interrupts of vector 0x41, and each handler writes the APIC\'s EOI '
    'register, x2APIC MSR 0x80b: a WRMSR exit each (kvm_msr "msr_write 80b") [eoi-writes-off]. Then the guest registers a 4-byte word (zeroed first) with MSR '
    '0x4b564d04 = its address | 1, and reads the MSR back [enable]. For each of the next 32 interrupts KVM arms '
    'bit 0 of the word as it injects (nothing else pending, the vector alone in service: pvsim_pv_eoi "arm"), '
    'the handler\'s one BTR finds the bit set and writes no EOI, and at the next exit KVM finds the bit cleared '
    'and does the EOI for the guest: kvm_eoi, then kvm_pv_eoi "apicid 0 vector 65" [pv-eoi-done]. Then 8 pairs, '
    '0x41 and 0x42 sent with IF=0: 0x42 is injected while 0x41 waits in the IRR, so KVM does not arm the bit '
    '(no "arm" line) and 0x42\'s handler writes the EOI register; 0x41 follows alone and is armed [not-armed]. '
    'Then the hazard: the handler of 0x61 sends itself 0x81, which nests. Done right, 0x81\'s handler only '
    'clears the bit; back in 0x61\'s handler its ISR bit is still set, and 0x52, sent then, waits for 0x61\'s '
    'EOI. Done wrong, 0x81\'s handler clears the bit AND writes EOI: at the exit of that write KVM first sees '
    'the cleared bit and ends 0x81 (kvm_eoi and kvm_pv_eoi "vector 129"), then the write itself ends the next '
    'interrupt in service, 0x61 (kvm_eoi "vector 97"), while 0x61\'s handler is still running [double-eoi]; its '
    'ISR bit reads 0, and 0x52 preempts it. The guest prints both orders of events. In all, 32 EOI exits saved: '
    'the EOI register is written 43 times, 32 with PV EOI off, 8 in the pairs, 1 in the right nesting and 2 in '
    'the wrong one, none for the 32 interrupts with it on [eoi-writes]; KVM did 44 EOIs for the guest '
    '[pv-eoi-count].',
    {'vcpus': 1, 'ram_mib': 16}, summary=10,
    contains=['pv_eoi: PV EOI off: 32 interrupts, 32 EOI register writes\n',
              'pv_eoi: PV EOI on: 32 interrupts, 32 EOIs by clearing the bit, 0 EOI register writes\n',
              'pv_eoi: 8 pairs: 8 EOIs by the bit, 8 by the register\n',
              'pv_eoi: correct EOI: order of events: 0x61 0x81 eoi(0x81) eoi(0x61) 0x52\n',
              'pv_eoi: bit cleared and EOI written: order of events: 0x61 0x81 eoi(0x81) 0x52 eoi(0x61)\n'],
    trace=[in_order('eoi-writes-off', *(['kvm_msr: msr_write 80b = 0x0'] * 32), 'kvm_msr: msr_write 4b564d04 = 0x'),
           in_order('enable', 'kvm_msr: msr_write 4b564d04 = 0x', 'kvm_msr: msr_read 4b564d04 = 0x'),
           in_order('pv-eoi-done', 'kvm_msr: msr_write 4b564d04 = 0x', 'kvm_inj_virq: IRQ 0x41',
                    'pvsim_pv_eoi: arm: vector 65', 'kvm_eoi: apicid 0 vector 65', 'kvm_pv_eoi: apicid 0 vector 65'),
           in_order('not-armed', 'kvm_inj_virq: IRQ 0x42', 'kvm_exit: vcpu 0 reason MSR_WRITE',
                    'kvm_apic: apic_write APIC_EOI = 0x0', 'kvm_eoi: apicid 0 vector 66', 'kvm_msr: msr_write 80b = 0x0',
                    'kvm_entry: vcpu 0,', 'kvm_inj_virq: IRQ 0x41', 'pvsim_pv_eoi: arm: vector 65', consecutive=True),
           in_order('double-eoi', 'kvm_exit: vcpu 0 reason MSR_WRITE', 'kvm_eoi: apicid 0 vector 129',
                    'kvm_pv_eoi: apicid 0 vector 129', 'kvm_apic: apic_write APIC_EOI = 0x0',
                    'kvm_eoi: apicid 0 vector 97', 'kvm_msr: msr_write 80b = 0x0', consecutive=True),
           exactly('eoi-writes', 'kvm_msr: msr_write 80b = 0x0', 43),
           exactly('pv-eoi-count', 'kvm_pv_eoi: ', 44)])

smp_scenario('pv-spinlock', 'pv_spinlock',
    'Lock-holder preemption, with a plain spinlock and with a PV spinlock (pvmsr/README.md §10: KICK_CPU and '
    'SCHED_YIELD). Four vCPUs on four pCPUs. Twice, vCPU 0 takes a lock at T and holds it until T + 100 us, '
    'and the host deschedules it from T + 20 us to T + 420 us (host.preempt); vCPUs 1-3 come for the lock at '
    'T + 30 us, while its holder is away. Round 1 (T = 300 us), the plain lock: the host gives vCPU 0 its pCPU '
    'back only at 720 us [absent-400us], and the three waiters spin on the lock all that time; the guest prints '
    'how many iterations that took. Round 2 (T = 1300 us), the PV lock: each waiter spins 256 times, then notes '
    'which lock it waits for, sees from the holder\'s steal-time `preempted` that the host has taken vCPU 0\'s '
    'pCPU, and hands over with a directed yield (kvm_hypercall "nr 0xb", a0 = vCPU 0\'s APIC ID). As Linux\'s '
    'yield_to does, the host then runs the holder on its own pCPU at once instead of at 1720 us (pvsim_vcpu '
    '"yield: to vCPU 0: it runs on pcpu 0 from ...") [yield-ends-absence]; the later yields find vCPU 0 already '
    'running. Each waiter then halts with IF=0 [waiters-halt]. When vCPU 0 unlocks it kicks one waiter: '
    'kvm_hypercall "nr 0x5" with a1 = the waiter\'s APIC ID, and the halted vCPU leaves HLT although interrupts '
    'are off (pvsim_vcpu "kick: pv_unhalted") [kick]; that waiter takes the lock, and its unlock kicks the next: '
    'vCPU 0 kicks 1, 1 kicks 2, 2 kicks 3 [kick-chain], three kicks in all [three-kicks], and no interrupt is '
    'involved anywhere [no-irq]. The guest prints both rounds: about 150000 wasted spin iterations and 1.25 ms '
    'of waiting with the plain lock, 768 iterations and about 0.2 ms with the PV lock.',
    {'vcpus': 4, 'ram_mib': 16}, summary=6, max_insn=100_000_000,
    host={'pcpus': 4, 'preempt': [{'vcpu': 0, 'from_us': 320, 'to_us': 720},
                                  {'vcpu': 0, 'from_us': 1320, 'to_us': 1720}]},
    contains=['pv_spinlock: PV lock: vCPU 0 held it 99969 ns; its 3 waiters spun 768 iterations, halted 3 times, '
              'yielded 3 times and waited 213479 ns in all; 3 kicks\n'],
    trace=[in_order('absent-400us', 'pvsim_sched_out: vcpu 0 pcpu 0 rip * preempted until 0.000720000',
                    'pvsim_steal: preempted: 0x0 -> 0x1', 'pvsim_sched_in: vcpu 0 pcpu 0 rip ', consecutive=True,
                    vcpu=0),
           in_order('yield-ends-absence', 'pvsim_sched_out: vcpu 0 pcpu 0 rip * preempted until 0.001720000',
                    'kvm_hypercall: nr 0xb a0 0x0 a1 0x0 a2 0x0 a3 0x0',
                    'pvsim_vcpu: yield: to vCPU 0: it runs on pcpu 0 from ', 'pvsim_sched_in: vcpu 0 pcpu 0 rip '),
           in_order('waiters-halt', 'kvm_hypercall: nr 0xb a0 0x0 ', 'pvsim_vcpu: yield: ', 'kvm_entry: vcpu 1,',
                    'kvm_exit: vcpu 1 reason HLT', consecutive=True, vcpu=1),
           in_order('kick', 'kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 ', 'pvsim_vcpu: kick: pv_unhalted by vCPU 0: leaves HLT'),
           in_order('kick-chain', 'kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 ', 'kvm_hypercall: nr 0x5 a0 0x0 a1 0x2 ',
                    'kvm_hypercall: nr 0x5 a0 0x0 a1 0x3 '),
           exactly('three-kicks', 'kvm_hypercall: nr 0x5 ', 3),
           absent('no-irq', 'kvm_inj_virq: ')])

smp_scenario('pv-ipi', 'pv_ipi',
    'IPIs by hypercall (KVM_HC_SEND_IPI, hypercall 10, CPUID 0x40000001 bit 11; pvmsr/README.md §10). Eight '
    'vCPUs; vCPUs 1-7 wait with STI;HLT and count what they receive. One hypercall names up to 128 vCPUs: a0 '
    'and a1 are a 128-bit bitmap whose bit i means APIC ID min + i, a2 = min, a3 = the ICR value (delivery '
    'mode and vector); it returns how many vCPUs accepted. vCPU 0 sends vector 0x51 to vCPUs {1, 3, 4, 6, 7}: '
    'one kvm_hypercall "nr 0xa a0 0x6d a1 0x0 a2 0x1 a3 0x51" (bitmap 0b1101101 from min 1), then one '
    'kvm_apic_accept_irq per target [subset] and no other [subset-only]; the same through the xAPIC would take '
    'five ICR writes, three exits each. Then vector 0x52 to every other vCPU (a0 0x7f from min 1), vector 0x53 '
    'to {5, 6, 7}: the window starts at min 5, a0 = 0b111 [min-5], vector 0x54 to itself and vCPU 2, and vCPU 3 '
    'sends vector 0x55 to {0, 7} [from-3]. Raw calls show what KVM does with what Linux never sends: APIC IDs 1 '
    'and 40 (no vCPU has 40) return 1; a shorthand in a3 returns -KVM_EINVAL and reaches nobody; a window '
    'starting at min 100, beyond every APIC ID, returns 0. Every hypercall here is one kvm_hypercall line '
    '"nr 0xa" [eight-hypercalls].',
    {'vcpus': 8, 'ram_mib': 16}, summary=9, max_insn=100_000_000,
    contains=['pv_ipi: vector 0x51 received by vCPUs: 1(x1) 3(x1) 4(x1) 6(x1) 7(x1)\n',
              'pv_ipi: vector 0x53 received by vCPUs: 5(x1) 6(x1) 7(x1)\n'],
    trace=[in_order('subset', 'kvm_hypercall: nr 0xa a0 0x6d a1 0x0 a2 0x1 a3 0x51',
                    'kvm_apic_accept_irq: apicid 1 vec 81 (', 'kvm_apic_accept_irq: apicid 3 vec 81 (',
                    'kvm_apic_accept_irq: apicid 4 vec 81 (', 'kvm_apic_accept_irq: apicid 6 vec 81 (',
                    'kvm_apic_accept_irq: apicid 7 vec 81 ('),
           exactly('subset-only', 'kvm_apic_accept_irq: * vec 81 (', 5),
           in_order('min-5', 'kvm_hypercall: nr 0xa a0 0x7 a1 0x0 a2 0x5 a3 0x53'),
           in_order('from-3', 'kvm_hypercall: nr 0xa a0 0x81 a1 0x0 a2 0x0 a3 0x55', vcpu=3),
           exactly('eight-hypercalls', 'kvm_hypercall: nr 0xa ', 8)])

PV_TORN_COMMON = ('A torn kvmclock read (pvmsr/README.md §4.6, §4.13). Linux reads only its own vCPU\'s '
    'structure, which KVM writes only while that vCPU is out of the guest; the historic report behind the '
    'odd/even version protocol used a test that reads ANOTHER vCPU\'s structure, as this guest does. Three vCPUs '
    'share two pCPUs, time-sliced in 20 us slots, so they keep moving between pCPUs, and without the master '
    'clock (machine.kvm.master_clock false) every move makes KVM refresh the moved vCPU\'s kvmclock structure at '
    'its entry: the pvsim_vcpu "migrate" line, the kvm_pvclock_update with the new values, then the separate '
    'stores that write them, 1 us apart (host.pv_store_ns) [refresh-on-move]. vCPU 0 registered kvmclock and '
    'waits; vCPU 1 registered nothing, so its own entries store nothing and it runs at once, and it reads vCPU '
    '0\'s structure in a tight loop with the version check, comparing each snapshot, at the TSC it read, with '
    'one taken right after registration: all consistent pairs lie on one line, so more than 1 us off is a torn '
    'read. Every third slot vCPU 0 comes back next to vCPU 1 and is refreshed while vCPU 1 reads. ')
PV_TORN_HOST = {'pcpus': 2, 'policy': 'time_sliced', 'slice_us': 20, 'pv_store_ns': 1000}
smp_scenario('pv-clock-torn-orig', 'pv_clock_torn', PV_TORN_COMMON +
    'Seed-era KVM (machine.kvm.abi "orig") copies the structure as four 8-byte stores with version += 2 in the '
    'first and no odd phase. Between the store of the new tsc_timestamp and that of the new system_time a reader '
    'sees an even version that does not change under it, with fields of two updates: the time it computes is 40 '
    'us behind, the time between vCPU 0\'s last two refreshes. The guest reports torn reads as a FAIL (exit '
    'status 3) and prints the first one. Compare pv-clock-torn-modern, same guest and host.',
    {'vcpus': 3, 'ram_mib': 16, 'kvm': {'abi': 'orig', 'master_clock': False}}, excludes=(), exit_status=3,
    max_insn=100_000_000, host=PV_TORN_HOST,
    contains=['pv_clock_torn: first torn snapshot: version 4 tsc_timestamp 150000 system_time 37463 at tsc ',
              'largest offset -40000 ns\n', 'FAIL: no torn read', 'SUMMARY: 3 tests, 1 unexpected failures\n'],
    trace=[in_order('refresh-on-move', 'pvsim_vcpu: migrate: pcpu 1 -> pcpu 0', 'kvm_pvclock_update: vcpu_id 0, ',
                    'pvsim_host: store: version (8 bytes', 'pvsim_host: store: tsc_timestamp (8 bytes',
                    'pvsim_host: store: system_time (8 bytes', 'pvsim_host: store: mul_shift_flags (8 bytes',
                    consecutive=True, vcpu=0)])
smp_scenario('pv-clock-torn-modern', 'pv_clock_torn', PV_TORN_COMMON +
    'Modern KVM stores the version made odd, then the whole body, then the version made even: a reader that '
    'starts inside the update retries, and no snapshot that passes the check mixes two updates. The guest prints '
    'how often its version loop had to go round again. Compare pv-clock-torn-orig, same guest and host.',
    {'vcpus': 3, 'ram_mib': 16, 'kvm': {'master_clock': False}}, summary=3, max_insn=100_000_000,
    host=PV_TORN_HOST, contains=['0 torn, ', 'PASS: no torn read'],
    trace=[in_order('refresh-on-move', 'pvsim_vcpu: migrate: pcpu 1 -> pcpu 0', 'kvm_pvclock_update: vcpu_id 0, ',
                    'pvsim_host: store: version (4 bytes', 'pvsim_host: store: body (32 bytes',
                    'pvsim_host: store: version (4 bytes', consecutive=True, vcpu=0)])

smp_scenario('pv-clock-stopped', 'pv_clock_stopped',
    'PVCLOCK_GUEST_STOPPED (pvmsr/README.md §4.2): the VMM stops the VM from 300 to 800 us (host.pause), as '
    'QEMU does for a snapshot or the last phase of a migration: "pvsim_host: pause", every vCPU\'s '
    'pvsim_sched_out "paused" [pause]. When it resumes, the VMM issues KVM_KVMCLOCK_CTRL on every vCPU '
    '("pvsim_host: resume") and at each vCPU\'s first entry KVM writes its kvmclock structure with flags bit 1 '
    'set: flags 0x3 with the master clock\'s TSC_STABLE [stopped-flag], once per vCPU [two-flags]. A pause is '
    'not run delay: the pvsim_sched_in lines after it report run_delay 0, and steal does not grow [not-steal]. '
    'The guest\'s clock reader (Linux\'s pvclock_clocksource_read) clears the bit in the structure when it sees '
    'it and would pet its soft-lockup watchdog; the guest prints, per vCPU, at which reading it saw the bit - '
    'the first after the pause, the one with the largest TSC step - and that the bit stays clear.',
    {'vcpus': 2, 'ram_mib': 16}, summary=4, max_insn=100_000_000,
    host={'pcpus': 2, 'pause': [{'from_us': 300, 'to_us': 800}]},
    contains=['pv_clock_stopped: 2 vCPUs, kvmclock MSR 0x4b564d01, 2 watchdog pets in all\n'],
    trace=[in_order('pause', 'pvsim_host: pause: the VMM stops the VM until 0.000800000',
                    'pvsim_sched_out: vcpu 0 pcpu 0 rip * paused until 0.000800000',
                    'pvsim_sched_out: vcpu 1 pcpu 1 rip * paused until 0.000800000'),
           in_order('stopped-flag', 'pvsim_host: resume: KVM_KVMCLOCK_CTRL on vCPUs 0,1',
                    'pvsim_sched_in: vcpu 0 pcpu 0 rip * run_delay 0', 'kvm_pvclock_update: vcpu_id 0, * flags 0x3 }'),
           exactly('two-flags', 'kvm_pvclock_update: * flags 0x3 }', 2),
           in_order('not-steal', 'pvsim_sched_out: vcpu 1 pcpu 1 rip * paused until 0.000800000',
                    'pvsim_sched_in: vcpu 1 pcpu 1 rip * run_delay 0', 'kvm_pvclock_update: vcpu_id 1, ',
                    'kvm_pv_tlb_flush: vcpu 1 need_flush_tlb false', 'pvsim_steal: update: steal 0 delta 0 ',
                    consecutive=True, vcpu=1)])

PV_PAIRS_COMMON = ('What each vCPU\'s kvmclock structure holds after a global clock update (pvmsr/README.md '
    '§4.5). Two vCPUs register kvmclock at the start; vCPU 0\'s write starts a global update, which reaches '
    'every vCPU KVMCLOCK_UPDATE_DELAY later (shortened to 1 ms here, machine.kvm.clock_update_delay_ms). Both '
    'vCPUs sleep on their LAPIC timers through it and wake at 1.5 ms and 1.8 ms: each refreshes its structure '
    'at its own wake-up entry, where KVM services the pending update before it injects the timer interrupt '
    '[refresh-at-wake]. The guest prints each vCPU\'s (tsc_timestamp, system_time) pair at registration and '
    'after its wake-up, and checks that both pairs lie on one line (each is the other\'s clock at its '
    'tsc_timestamp). ')
smp_scenario('pv-clock-pairs', 'pv_clock_pairs', PV_PAIRS_COMMON +
    'Without the master clock (machine.kvm.master_clock false) each vCPU samples the host clock and its own TSC '
    'at its own entry: the pairs differ, 300 us apart, as on KVM [own-samples]. Compare pv-clock-pairs-master.',
    {'vcpus': 2, 'ram_mib': 16, 'kvm': {'master_clock': False, 'clock_update_delay_ms': 1}}, summary=2,
    contains=['pv_clock_pairs: vCPU 0 after its wake-up: version 4 tsc_timestamp 37502',
              'pv_clock_pairs: vCPU 1 after its wake-up: version 4 tsc_timestamp 45002',
              'pv_clock_pairs: after the global update the two vCPUs hold different (tsc_timestamp, system_time) '
              'pairs\n'],
    trace=[in_order('refresh-at-wake', 'kvm_apic_accept_irq: apicid 1 vec 224 (', 'kvm_pvclock_update: vcpu_id 1, ',
                    'kvm_inj_virq: IRQ 0xe0', consecutive=True, vcpu=1),
           absent('own-samples', 'kvm_pvclock_update: * version 4, tsc_timestamp 0x0, system_time 0x0,')])
smp_scenario('pv-clock-pairs-master', 'pv_clock_pairs', PV_PAIRS_COMMON +
    'With the master clock (the default) every update copies the one master pair, taken when the VM was '
    'created: both vCPUs hold (0, 0) at registration and after the update, with flags 0x1 [master-pair]. '
    'Compare pv-clock-pairs.',
    {'vcpus': 2, 'ram_mib': 16, 'kvm': {'clock_update_delay_ms': 1}}, summary=2,
    contains=['pv_clock_pairs: after the global update the two vCPUs hold the same (tsc_timestamp, system_time) '
              'pair\n'],
    trace=[in_order('refresh-at-wake', 'kvm_apic_accept_irq: apicid 1 vec 224 (', 'kvm_pvclock_update: vcpu_id 1, ',
                    'kvm_inj_virq: IRQ 0xe0', consecutive=True, vcpu=1),
           exactly('master-pair', 'kvm_pvclock_update: * tsc_timestamp 0x0, system_time 0x0, * flags 0x1 }', 4)])

PV_HC_COMMON = ('KVM\'s hypercall table (pvmsr/README.md §10) from one vCPU: RAX = number, RBX, RCX, RDX, RSI = '
    'arguments, result in RAX. Each call is a kvm_exit (VMCALL on Intel, VMMCALL on AMD) and a kvm_hypercall '
    'line with the number and the four arguments [hypercall-line]. VAPIC_POLL_IRQ (1) returns 0; MMU_OP (2), '
    'FEATURES (3), MAP_GPA_RANGE (12, whose exit the VMM did not ask for) and 99 return -KVM_ENOSYS. KICK_CPU '
    '(5) to the vCPU itself leaves it "unhalted" (pvsim_vcpu "kick: pv_unhalted"): the HLT it executes next, '
    'with IF=0 and nothing pending, exits and re-enters at once instead of halting for good [kick-self]. SEND_IPI (10) to itself returns 1 and the '
    'interrupt arrives; SCHED_YIELD (11) to itself or to an APIC ID nobody has returns 0; CLOCK_PAIRING (9) '
    'writes {sec, nsec, tsc} for the guest\'s TSC at the call, and its wall time is the one kvmclock gives at '
    'that TSC; from CPL 3 every hypercall returns -KVM_EPERM. ')
smp_scenario('pv-hypercall', 'pv_hypercall', PV_HC_COMMON +
    'This vCPU is an Intel one, so the guest uses VMCALL. Last, it runs VMMCALL, AMD\'s instruction: it raises '
    '#UD, which KVM intercepts (kvm_exit EXCEPTION_NMI), and by default (quirk FIX_HYPERCALL_INSN) KVM rewrites the '
    'three bytes in guest memory to VMCALL and re-enters at the same RIP, so the next exit is the VMCALL itself '
    '[patched]: the call returns 0 and the bytes now read 0f 01 c1.',
    {'vcpus': 1, 'ram_mib': 16}, summary=14,
    contains=['pv_hypercall: CPU vendor Intel: hypercalls use VMCALL',
              'pv_hypercall: VMMCALL returned 0; its bytes are now 0f 01 c1\n'],
    trace=[in_order('hypercall-line', 'kvm_exit: vcpu 0 reason VMCALL', 'kvm_hypercall: nr 0x1 a0 0x0 a1 0x0 a2 0x0 a3 0x0'),
           in_order('kick-self', 'kvm_hypercall: nr 0x5 a0 0x0 a1 0x0', 'pvsim_vcpu: kick: pv_unhalted by vCPU 0',
                    'kvm_exit: vcpu 0 reason HLT', 'pvsim_vcpu: kick: HLT does not block: pv_unhalted was set',
                    'kvm_entry: vcpu 0,'),
           in_order('patched', 'kvm_exit: vcpu 0 reason EXCEPTION_NMI', 'kvm_entry: vcpu 0, rip',
                    'kvm_exit: vcpu 0 reason VMCALL', 'kvm_hypercall: nr 0x1 a0 0x0 a1 0x0 a2 0x0 a3 0x0',
                    consecutive=True)])
smp_scenario('pv-hypercall-amd', 'pv_hypercall', PV_HC_COMMON +
    'This vCPU is an AMD one (machine.cpu_vendor "amd"), so the guest uses VMMCALL (the trace keeps the VMX '
    'exit names of pvsim\'s model: the exit still reads VMCALL); VMCALL is the foreign instruction here: '
    'intercepted as #UD, rewritten to VMMCALL (0f 01 d9) and run [patched].',
    {'vcpus': 1, 'ram_mib': 16, 'cpu_vendor': 'amd'}, summary=14,
    contains=['pv_hypercall: CPU vendor AMD: hypercalls use VMMCALL',
              'pv_hypercall: VMCALL returned 0; its bytes are now 0f 01 d9\n'],
    trace=[in_order('hypercall-line', 'kvm_exit: vcpu 0 reason VMCALL', 'kvm_hypercall: nr 0x1 a0 0x0 a1 0x0 a2 0x0 a3 0x0'),
           in_order('kick-self', 'kvm_hypercall: nr 0x5 a0 0x0 a1 0x0', 'pvsim_vcpu: kick: pv_unhalted by vCPU 0',
                    'kvm_exit: vcpu 0 reason HLT', 'pvsim_vcpu: kick: HLT does not block: pv_unhalted was set',
                    'kvm_entry: vcpu 0,'),
           in_order('patched', 'kvm_exit: vcpu 0 reason EXCEPTION_NMI', 'kvm_entry: vcpu 0, rip',
                    'kvm_exit: vcpu 0 reason VMCALL', 'kvm_hypercall: nr 0x1 a0 0x0 a1 0x0 a2 0x0 a3 0x0',
                    consecutive=True)])
smp_scenario('pv-hypercall-ud', 'pv_hypercall', PV_HC_COMMON +
    'With KVM\'s FIX_HYPERCALL_INSN quirk off (machine.kvm.fix_hypercall_insn false), the foreign VMMCALL is '
    'not rewritten: KVM intercepts the #UD and injects it back into the guest [ud], and the bytes stay 0f 01 d9.',
    {'vcpus': 1, 'ram_mib': 16, 'kvm': {'fix_hypercall_insn': False}}, summary=14,
    contains=['pv_hypercall: VMMCALL raised vector 6; its bytes are 0f 01 d9\n'],
    trace=[in_order('hypercall-line', 'kvm_exit: vcpu 0 reason VMCALL', 'kvm_hypercall: nr 0x1 a0 0x0 a1 0x0 a2 0x0 a3 0x0'),
           in_order('kick-self', 'kvm_hypercall: nr 0x5 a0 0x0 a1 0x0', 'pvsim_vcpu: kick: pv_unhalted by vCPU 0',
                    'kvm_exit: vcpu 0 reason HLT', 'pvsim_vcpu: kick: HLT does not block: pv_unhalted was set',
                    'kvm_entry: vcpu 0,'),
           in_order('ud', 'kvm_exit: vcpu 0 reason EXCEPTION_NMI', 'kvm_inj_exception: #UD', 'kvm_entry: vcpu 0, rip',
                    consecutive=True)])

# The historic-race catalogue (scenarios/README.md "The race catalogue"): one module per
# family, each with generate(h), h carrying the helpers above. Their scenarios are named
# race-<item>-<what>-{bug,fix}.json after the §9 item of pvmsr/README.md §2.5's table.
import sys, types
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import races_time, races_apf, races_guest
H = types.SimpleNamespace(root=root, write=write, in_order=in_order, absent=absent, count=count, exactly=exactly)
races_time.generate(H)
races_apf.generate(H)
races_guest.generate(H)
