/* The seccomp rule set: one table, two outputs — classic BPF for the
 * LocalEngine (compiled once with libseccomp and cached, so loading it
 * costs one syscall per run) and Docker's seccomp profile JSON for the
 * DockerEngine. A deny list: everything not listed is allowed; listed
 * calls fail with an errno the code can handle; foreign architectures
 * (i386 via int 0x80, x32) kill the process. */
#ifndef SPR_SECCOMP_H
#define SPR_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Reported in the RunnerResult's isolation.seccomp; bump when the rules
 * change so results say which rules applied. */
#define SPR_SECCOMP_PROFILE "spr-deny-v2"

enum spr_seccomp_cmp {
	SPR_CMP_ANY = 0, /* no argument condition */
	SPR_CMP_NE,	 /* arg != value */
	SPR_CMP_GT,	 /* arg > value */
	SPR_CMP_EQ,	 /* arg == value */
	SPR_CMP_MASKED_EQ, /* (arg & mask) == value */
};

struct spr_seccomp_rule {
	const char *syscall;
	int errnum;
	enum spr_seccomp_cmp cmp;
	unsigned arg;
	uint64_t mask;
	uint64_t value;
};

/* The rules, in a stable order (tests and the Docker profile use them). */
SPR_HIDDEN const struct spr_seccomp_rule *spr_seccomp_rules(size_t *count);

/* The filter as classic BPF (struct sock_filter[]), compiled on first use
 * and shared read-only afterwards. */
struct spr_bpf {
	const void *insns;
	size_t len; /* bytes */
};
SPR_HIDDEN int spr_seccomp_bpf(struct spr_bpf *out, spr_error **err);

#endif
