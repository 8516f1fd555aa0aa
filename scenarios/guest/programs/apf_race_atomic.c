/* apf_race_atomic - the old guest of race 16: see apf_race_atomic.h. */
#include "apf_race_atomic.h"
