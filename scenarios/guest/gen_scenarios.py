#!/usr/bin/env python3
"""Writes the shipped guest scenario files: scenarios/<prog>-<O0|O2|Os>.json, default.json,
hello-smp4.json, garbage-<n>.json, bench/<name>.json, scale/scale-<n>.json and the SMP scenarios
(lapic_timer, ipi, nmi, tpr, init, init-bsp, spinlock-q1/q10000, kvmclock-modern/orig/host,
wallclock). Descriptions, limits, the exact expected console lines and the trace claims live
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
    'INIT and start-up IPIs (SDM Vol.3A 9.4.4). vCPU 1 increments a counter in a loop; vCPU 0 sends it INIT, which '
    'resets it into wait-for-SIPI: the counter stops, and vCPU 0 checks that. Then vCPU 0 sends a start-up IPI '
    'with vector 0x10 (start at 0x10000 in real mode). pvsim does not run real mode yet, so the run ends with stop '
    '"unsupported", naming vCPU 1 and vector 0x10 - this is the expected outcome. In the trace: vCPU 0\'s '
    'kvm_apic_ipi line with delivery mode INIT ("dst 1 vec 0 (INIT|physical|...)"), then on vCPU 1 its '
    'kvm_apic_accept_irq "(INIT|edge)" and the pvsim_vcpu line "init: INIT received: waiting for a start-up IPI"; '
    'later vCPU 0\'s kvm_apic_ipi with delivery mode SIPI and vector 16 (0x10: this field is decimal), vCPU 1\'s '
    'kvm_apic_accept_irq "(SIPI|edge)", its pvsim_vcpu line "sipi: start-up IPI, vector 0x10" and the final '
    'pvsim_stop line with reason unsupported [init-sipi]. Between "INIT received" and the SIPI\'s arrival vCPU 1 '
    '([001]) has no line at all: waiting for a SIPI, it executes nothing [no-progress].',
    {'vcpus': 2, 'ram_mib': 16}, stop='unsupported',
    contains=['PASS: vCPU 1 is running', 'PASS: after INIT vCPU 1 makes no progress',
              'init: sending SIPI vector 0x10 to vCPU 1'],
    trace=[in_order('init-sipi', 'kvm_apic_ipi: dst 1 vec 0 (INIT|physical|assert|edge|dst)',
                    'kvm_apic_accept_irq: apicid 1 vec 0 (INIT|edge)',
                    'pvsim_vcpu: init: INIT received: waiting for a start-up IPI',
                    'kvm_apic_ipi: dst 1 vec 16 (SIPI|physical|assert|edge|dst)',
                    'kvm_apic_accept_irq: apicid 1 vec 16 (SIPI|edge)',
                    'pvsim_vcpu: sipi: start-up IPI, vector 0x10',
                    'pvsim_stop: reason unsupported: vCPU 1 received a start-up IPI with vector 0x10'),
           in_order('no-progress', 'pvsim_vcpu: init: ', 'kvm_apic_accept_irq: apicid 1 vec 16 (SIPI|edge)',
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
    'trace: pvsim_vcpu lines "sched_out: runnable, no pCPU until ..." for the vCPU that waits in each slot '
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
           count('sched-out', 'pvsim_vcpu: sched_out: runnable, no pCPU until ', min=10),
           exactly('vcpu2-two-slots', 'pvsim_vcpu: sched_out: runnable, no pCPU until 0.003000000', 1, vcpu=2),
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
                 'waited, 463336 ns of vCPU time saved from stalls; workload took 732876 ns\n')
APF_SYNC_SUMMARY_2 = ('apf summary: 0 async page faults, 0 page-ready, 0 wake-all; 0 work units ran while tasks '
                      'waited, 0 ns of vCPU time saved from stalls; workload took 1528342 ns\n')

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
    'took (time that would otherwise have been spent stalled: 463336 ns over both vCPUs), and how long the '
    'workload took in virtual time (kvmclock): 732876 ns. The same guest on a KVM that does not offer async PF '
    '(scenario apf-sync-2) takes 1528342 ns: every touch halts its vCPU for the whole 200 us. Next: '
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
    '927716 ns of vCPU time saved from stalls; workload took 739761 ns\n', trace=modern_tasks_trace(4))

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
              'waited, 454752 ns of vCPU time saved from stalls; workload took 729965 ns\n'], max_insn=100_000_000, host=apf_host(200_000, 32),
    trace=orig_tasks_trace(2))
smp_scenario('apf-orig-4', 'apf_tasks', TASKS_COMMON + ORIG_DESC + 'Four vCPUs: 24 not-present [n-not-present], '
    '28 page-ready [n-ready]. Two page-ready #PFs never stack up: while one is queued and not yet delivered, the '
    'next waits for the following entry (a second queued #PF would have turned into #DF on old KVM).',
    apf_machine(4, **APF_ORIG), summary=5,
    contains=['apf summary: 24 async page faults, 24 page-ready, 4 wake-all; 4096 work units ran while tasks '
              'waited, 910019 ns of vCPU time saved from stalls; workload took 734386 ns\n'], max_insn=100_000_000, host=apf_host(200_000, 32),
    trace=orig_tasks_trace(4))

smp_scenario('apf-sync-2', 'apf_tasks', TASKS_COMMON +
    'The baseline for the main job (default.json): the same guest and host on a KVM whose CPUID does not offer '
    'async PF (features without ASYNC_PF and ASYNC_PF_INT), so the guest never enables it. KVM still does not '
    'block the vCPU thread in the host: each fault is set up as async work with a token [try], but nothing can be '
    'told to the guest, so the vCPU sits in a synthetic halt until the page is in [halt], and no #PF is ever '
    'injected [no-injection]; the completion wakes the vCPU silently. No other task runs meanwhile, so the '
    'workload takes 1528342 ns against 732876 ns with async PF: the guest prints 0 async page faults, 0 work '
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
