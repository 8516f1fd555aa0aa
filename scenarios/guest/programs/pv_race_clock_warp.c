/* pv_race_clock_warp - race 01, the bug: raw kvmclock readings (pv_race_clock_warp.h). */
#define WARP_GUARD 0
#include "pv_race_clock_warp.h"
