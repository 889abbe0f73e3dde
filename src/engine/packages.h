/* What both engines check and say about an environment's packages: the
 * pinned specs (SPEC §4) and pip's options (spr_pip_options). */
#ifndef SPR_PACKAGES_H
#define SPR_PACKAGES_H

#include "error.h"
#include "spr.h"

/* Every spec is "name==version" (name: letters, digits, -_. and
 * [extras]), else SPEC's message naming the first bad one. */
SPR_HIDDEN int spr_check_packages(const char *const *packages, spr_error **err);
/* A sorted copy without duplicates (free with free(); the strings are
 * borrowed); *n gets the count. NULL when out of memory. */
SPR_HIDDEN const char **spr_sorted_packages(const char *const *packages, size_t *n);
/* index_url is http(s):// or file://, find_links an absolute directory,
 * no_index comes with find_links and without index_url. */
SPR_HIDDEN int spr_check_pip(const spr_pip_options *pip, spr_error **err);

/* pip install's options for pip (at most SPR_PIP_MAX_ARGS), find_links
 * given as links_at (where the install sees it). Returns the count. */
#define SPR_PIP_MAX_ARGS 5
SPR_HIDDEN size_t spr_pip_args(const spr_pip_options *pip, const char *links_at,
			       const char *argv[SPR_PIP_MAX_ARGS]);

#endif
