/* pv_race_kexec_clock_fixed - item 17, the guest-side fix: the old kernel writes 0 to
 * MSR_KVM_SYSTEM_TIME_NEW before it kexecs, 1e977aa12dd4 (pv_race_kexec_clock.h). */
#define KEXEC_CLOCK_OFF 1
#include "pv_race_kexec_clock.h"
