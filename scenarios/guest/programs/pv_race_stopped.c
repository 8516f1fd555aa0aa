/* pv_race_stopped - item 18, the bug: sched_clock reads kvmclock without looking at
 * PVCLOCK_GUEST_STOPPED, as Linux's pvclock_clocksource_read_nowd does (pv_race_stopped.h). */
#define SCHED_CLOCK_DOWD false
#include "pv_race_stopped.h"
