/* mb_exit.c - exit() for the Multiboot build (linked with -Wl,--wrap=exit, so every call
 * to exit() from another object file lands here; libc.c itself is unchanged).
 *
 * QEMU: the write to port 0xf4 hits -device isa-debug-exit and QEMU ends with status
 * (code << 1) | 1, as on pvsim. Bochs has no such device and ignores the write; its
 * "unmapped" device instead treats the byte sequence "Shutdown" written to port 0x8900 as
 * a request to end the simulation (the port Bochs' own BIOS uses for APM power-off). A
 * console line carries the status for Bochs, whose process status cannot. */
#include "libc.h"
#include "processor.h"

#define BOCHS_SHUTDOWN_PORT 0x8900

__attribute__((noreturn)) void __wrap_exit(int code);

void __wrap_exit(int code)
{
    printf("multiboot: exit(%d)\n", code);
    outl((uint32_t)code, EXIT_PORT);
    for (const char* p = "Shutdown"; *p; ++p)
        outb((uint8_t)*p, BOCHS_SHUTDOWN_PORT);
    for (;;) {
        cli();
        hlt();
    }
}
