/* marker.h - guest markers: a short text that appears in pvsim's trace as a `pvsim_marker`
 * event and as an instant on the Perfetto and HTML timelines (boot.md §4, port 0x4f0).
 * Header-only, so programs that do not use it compile exactly as before. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "libc.h"

#define MARKER_PORT 0x4f0

/* Writes `s` and its terminating NUL (which ends the marker) with one `rep outsb`: one VM
 * exit per marker, whatever its length. A marker longer than 256 bytes is split. */
static inline void pvsim_marker(const char* s)
{
    size_t n = strlen(s) + 1;
    __asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"((uint16_t)MARKER_PORT) : "memory");
}
