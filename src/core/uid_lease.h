/* Host uids of a run's own (SPEC §4 "Identity"): a range of ids no host
 * account uses, and leases on them that no two holders on the host share.
 *
 * The kernel charges per-user budgets (inotify instances and watches,
 * fanotify groups, queued signals, POSIX message queue bytes, user
 * namespaces) up the chain of user namespace *owners*. A sandbox whose
 * user namespace root created is charged to host root, so one run could
 * exhaust root's budgets for the whole host. Each run's namespace is
 * therefore created by a uid leased for that run alone: its budgets are
 * its own, and concurrent runs do not share one.
 *
 * A lease is an open file description of the lease file holding an OFD
 * write lock on the byte at the uid's offset in the range: host-wide
 * (every process and engine uses the same file), released when the holder
 * closes it or exits, so a killed holder never leaks an id and there is
 * nothing to clean up. */
#ifndef SPR_UID_LEASE_H
#define SPR_UID_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* The default range: 0x70000000 + 64 Ki ids, in the gap systemd's
 * conventions leave between container ranges (0x00080000-0x6FFFFFFF) and
 * the ids with the top bit set. */
#define SPR_UID_RANGE_DEFAULT_START 1879048192u
#define SPR_UID_RANGE_DEFAULT_COUNT 65536u
#define SPR_UID_LEASE_FILE "/run/spr/uid-leases"

struct spr_uid_range {
	uint32_t start, count;
};

/* "START:COUNT" (whole numbers); NULL or "" for the default. Ids must
 * lie in 1..4294967294 and not include 65534 (the kernel's overflow id). */
SPR_HIDDEN int spr_uid_range_parse(const char *text, struct spr_uid_range *out,
				   spr_error **err);
/* The range as text ("1879048192:65536"). */
SPR_HIDDEN void spr_uid_range_format(const struct spr_uid_range *r, char *buf, size_t size);
/* The first local account (/etc/passwd, without NSS) or subordinate id
 * range (/etc/subuid, /etc/subgid) whose ids fall in r: a description in
 * buf, or false when none does. host_root prefixes the files (tests). */
SPR_HIDDEN bool spr_uid_range_overlap(const struct spr_uid_range *r, const char *host_root,
				      char *buf, size_t size);

/* The range an engine uses: option (uid_range), else $SPR_UID_RANGE,
 * else the default; with check_accounts, refused when a local account or
 * subordinate range overlaps it (a run would share that identity). */
SPR_HIDDEN int spr_uid_range_choose(const char *option, bool check_accounts,
				    struct spr_uid_range *out, spr_error **err);

struct spr_uid_lease {
	int fd; /* -1: none */
	uint32_t uid;
};

#define SPR_UID_LEASE_INIT {.fd = -1}

/* Leases a free uid of r (gid: the same number). */
SPR_HIDDEN int spr_uid_lease_take(const struct spr_uid_range *r, const char *lease_file,
				  struct spr_uid_lease *out, spr_error **err);
SPR_HIDDEN void spr_uid_lease_release(struct spr_uid_lease *lease);

#endif
