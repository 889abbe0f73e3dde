/* The seccomp rule set: one table, two outputs — classic BPF for the
 * LocalEngine (compiled once with libseccomp and cached, so loading it
 * costs one syscall per run) and Docker's seccomp profile JSON for the
 * DockerEngine. A deny list: everything not listed is allowed; listed
 * calls fail with an errno the code can handle; foreign architectures
 * (i386 via int 0x80, x32) kill the process. */
#ifndef SPR_SECCOMP_H
#define SPR_SECCOMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Reported in the RunnerResult's isolation.seccomp; bump when the rules
 * change so results say which rules applied (v4: modify_ldt,
 * fanotify_init, memfd_secret, seccomp listeners, others' pages, port
 * I/O and compatibility calls). */
#define SPR_SECCOMP_PROFILE "spr-deny-v4"
/* The variant for a shared (host) network on kernels whose Landlock cannot
 * scope abstract unix sockets (ABI < 6): abstract socket names belong to
 * the network namespace, so with the host's the code could connect to any
 * host service listening on one (D-Bus, X11, container runtimes). With no
 * way to filter the address, socket(AF_UNIX) itself is refused, and
 * socketpair(SOCK_DGRAM), whose ends can sendto() any address.
 * socketpair(SOCK_STREAM), what multiprocessing uses, stays. */
#define SPR_SECCOMP_PROFILE_NO_UNIX "spr-deny-v4-no-unix-socket"

/* Variants are the table plus, per bit, a set of extra rules. The last
 * two stand in for namespaces a degraded run does not have (SPEC §7
 * "Degraded mode"). */
enum spr_seccomp_variant {
	SPR_SECCOMP_DEFAULT = 0,
	SPR_SECCOMP_NO_UNIX = 1,       /* the host's network without Landlock's scope */
	SPR_SECCOMP_NO_MEMFD_EXEC = 2, /* where vm.memfd_noexec could not be set */
	SPR_SECCOMP_NO_IPC = 4,	       /* no IPC namespace: SysV IPC and POSIX queues refused */
	SPR_SECCOMP_NO_INET = 8,       /* no network namespace, no network: inet sockets refused */
	SPR_SECCOMP_NVARIANTS = 16
};

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
/* What SPR_SECCOMP_NO_UNIX adds to them. */
SPR_HIDDEN const struct spr_seccomp_rule *spr_seccomp_no_unix_rules(size_t *count);
/* What SPR_SECCOMP_NO_MEMFD_EXEC adds: memfd_create without
 * MFD_NOEXEC_SEAL is refused, so no memory file can be executed (the
 * kernel's own vm.memfd_noexec needs the host's root: rootless callers
 * and containers cannot set it). */
SPR_HIDDEN const struct spr_seccomp_rule *spr_seccomp_no_memfd_exec_rules(size_t *count);
/* What SPR_SECCOMP_NO_IPC and SPR_SECCOMP_NO_INET add. */
SPR_HIDDEN const struct spr_seccomp_rule *spr_seccomp_no_ipc_rules(size_t *count);
SPR_HIDDEN const struct spr_seccomp_rule *spr_seccomp_no_inet_rules(size_t *count);
/* Whether a rule of the table belongs to setting a sandbox up (mounts,
 * namespaces, the netlink socket that brings its loopback up): a
 * container that runs spr-sandbox needs those calls, so its outer profile
 * leaves them to the run's own filter... */
SPR_HIDDEN bool spr_seccomp_rule_is_sandbox_setup(const struct spr_seccomp_rule *rule);
/* ...and refuses, instead of every family above AF_INET6, all of them but
 * AF_NETLINK. */
SPR_HIDDEN const struct spr_seccomp_rule *spr_seccomp_container_socket_rules(size_t *count);

/* A variant's filter as classic BPF (struct sock_filter[]), compiled on
 * first use and shared read-only afterwards. */
struct spr_bpf {
	const void *insns;
	size_t len; /* bytes */
};
/* Compiles the variants in `needed` (a mask of 1 << variant, plan.h's
 * spr_filters_needed) into sp's filters; the others stay empty. */
struct spr_sandbox_plan;
SPR_HIDDEN int spr_seccomp_plan_filters(struct spr_sandbox_plan *sp, uint32_t needed,
					spr_error **err);
SPR_HIDDEN int spr_seccomp_bpf(enum spr_seccomp_variant variant, struct spr_bpf *out,
			       spr_error **err);

#endif
