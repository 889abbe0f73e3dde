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
/* PEP 503's normal form of a name: lower case, runs of -_. as one -. */
SPR_HIDDEN void spr_normalize_name(const char *in, size_t len, char *out, size_t cap);
/* One release spelled two ways ("1.0" and "1.0.0", PEP 440). */
SPR_HIDDEN bool spr_same_release(const char *a, const char *b);
/* A checked spec as pip reads it: normal name, extras and version in
 * lower case, trailing ".0"s of the release dropped (malloc'd). */
SPR_HIDDEN char *spr_package_key(const char *spec);
/* index_url is http(s):// or file://, find_links an absolute directory,
 * no_index comes with find_links and without index_url. */
SPR_HIDDEN int spr_check_pip(const spr_pip_options *pip, spr_error **err);

/* pip install's options for pip (at most SPR_PIP_MAX_ARGS), find_links
 * given as links_at (where the install sees it). Returns the count. */
#define SPR_PIP_MAX_ARGS 5
SPR_HIDDEN size_t spr_pip_args(const spr_pip_options *pip, const char *links_at,
			       const char *argv[SPR_PIP_MAX_ARGS]);

#endif
