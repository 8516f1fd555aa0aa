/* pv_race_clock_warp_fixed - race 01, the guest-side fix: readings through Linux's global
 * guard, 489fb490dbf8 (pv_race_clock_warp.h). */
#define WARP_GUARD 1
#include "pv_race_clock_warp.h"
