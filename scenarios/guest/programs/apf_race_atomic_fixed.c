/* apf_race_atomic_fixed - the fixed guest of race 16 (commit a2b7861bb33b): see apf_race_atomic.h. */
#define APF_RACE_ATOMIC_FIXED 1
#include "apf_race_atomic.h"
