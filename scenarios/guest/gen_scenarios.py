#!/usr/bin/env python3
"""Writes the shipped guest scenario files: scenarios/<prog>-<O0|O2|Os>.json, default.json,
hello-smp4.json, garbage-<n>.json and bench/<name>.json. Descriptions, limits and the exact
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
 'alu': ('Benchmark: a tight register-only integer loop (LCG step, shifts, rotate, add/xor; about 3e8 instructions at '
         '-O2) with no memory traffic and no exits. It measures the raw fetch/decode/execute speed of the emulator; '
         'the trace is empty between start-up and the result line.', 64, 1_000_000_000),
 'hash': ('Benchmark: 700000 inserts and 1000000 lookups in a 16 MiB open-addressing hash table with pseudo-random '
          'keys. Random access over thousands of pages stresses the emulated MMU (TLB misses, page walks, A/D bits).',
          64, 2_000_000_000),
 'sort': ('Benchmark: bottom-up merge sort of 1 Mi pseudo-random 64-bit keys with a second 8 MiB buffer: long '
          'sequential load/store streams and an unpredictable branch per element.', 64, 3_000_000_000),
 'bytecode': ('Benchmark: a switch-dispatched byte-code interpreter running a Collatz step-count program (about 25 '
              'million byte-codes). Indirect jumps and small hot code paths stress the decoded-instruction cache.',
              32, 2_000_000_000),
 'sieve': ('Benchmark: sieve of Eratosthenes over a 32 MiB byte array (one byte per number up to 2^25), counting '
           'the 2063689 primes. Strided stores sweep all 8192 pages of the array again and again.', 96, 3_000_000_000),
}
for prog, (desc, ram, insn) in B.items():
    write(f'{root}/bench/{prog}.json', {
        'name': f'bench-{prog}',
        'description': desc + ' The guest checks its result against a checksum computed natively on the host and '
                       'exits with status 1 only if it matches.',
        'machine': {'vcpus': 1, 'ram_mib': ram},
        'guest': {'image': f'../guest/bin/{prog}-O2.elf'},
        'limits': {'max_instructions': insn, 'max_virtual_ms': 600000},
        'expect': {'stop': 'exit', 'exit_status': 1, 'console_excludes': ['FAIL'],
                   'console_contains': ['SUMMARY: %d tests\n' % (2 if prog == 'sieve' else 1)]},
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
