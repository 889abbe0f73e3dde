#include <cap-ng.h>
#include <sys/prctl.h>

#include "namespace/steps.h"

int spr_caps_drop_all(spr_error **err)
{
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_apply(CAPNG_SELECT_ALL) < 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, EPERM,
				"dropping capabilities (libcap-ng capng_apply) failed");
	if (capng_get_caps_process() < 0 || capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE)
		return spr_fail(err, SPR_LAYER_NAMESPACE, EPERM,
				"capabilities remain after dropping them");
	return 0;
}

int spr_caps_become(uid_t uid, gid_t gid, spr_error **err)
{
	capng_clear(CAPNG_SELECT_ALL);
	if (capng_change_id((int)uid, (int)gid,
			    CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING | CAPNG_CLEAR_AMBIENT) < 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, EPERM,
				"switching to uid %d/gid %d without capabilities failed", (int)uid,
				(int)gid);
	return 0;
}

int spr_no_new_privs(spr_error **err)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "prctl(PR_SET_NO_NEW_PRIVS)");
	return 0;
}
