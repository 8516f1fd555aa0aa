/* pv_race_stopped_fixed - item 18, the guest-side fix: sched_clock takes PVCLOCK_GUEST_STOPPED
 * and touches the soft-lockup watchdog, as pvclock_clocksource_read does (pv_race_stopped.h). */
#define SCHED_CLOCK_DOWD true
#include "pv_race_stopped.h"
