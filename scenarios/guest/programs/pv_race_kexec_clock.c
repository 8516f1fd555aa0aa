/* pv_race_kexec_clock - item 17, the bug: the old kernel kexecs with its kvmclock still
 * registered (pv_race_kexec_clock.h). */
#define KEXEC_CLOCK_OFF 0
#include "pv_race_kexec_clock.h"
