/* Internals shared by spr-sandbox's three roles:
 *   monitor (sandbox.c)      outside, talks to the host, kills the run;
 *   init    (sandbox_init.c) pid 1 of the new namespaces, builds the root;
 *   worker  (sandbox_worker.c) the last steps before exec'ing Python.
 * The worker reports its setup on a close-on-exec "status" pipe: records
 * "L<landlock abi>\n", "S<0|1|2>\n" (which seccomp filter), or "E<message>" on
 * failure; EOF without "E" means exec succeeded. */
#ifndef SPR_SANDBOX_INTERNAL_H
#define SPR_SANDBOX_INTERNAL_H

#include <cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "buf.h"
#include "error.h"
#include "cgroup/cgroup.h"
#include "namespace/steps.h"

struct spr_rlimit_setting {
	int resource;
	const char *name;
	bool set;
	struct rlimit value;
};

#define SPR_NLIMITS 6

struct spr_worker_spec {
	int gate_fd; /* >= 0: wait for a byte here first (until placed in a cgroup) */
	char **argv, **envp;
	const char *workdir;
	const struct spr_rlimit_setting *limits;
	const cJSON *landlock_read, *landlock_write; /* NULL: no Landlock */
	const void *bpf;			    /* NULL: no seccomp */
	size_t bpf_len;
	/* SPR_SECCOMP_NO_UNIX, used instead when the network is shared and
	 * Landlock could not scope abstract unix sockets. */
	const void *bpf_no_unix;
	size_t bpf_no_unix_len;
	bool network_shared;
	bool allow_degraded;
	bool drop_caps;	   /* in a user namespace: clear every capability */
	bool become;	   /* as root without namespaces: switch to uid/gid */
	pid_t parent;	   /* the process whose death must end this one */
	struct spr_cg_run *cg; /* degraded, v1: the worker moves itself in first */
	uid_t uid;
	gid_t gid;
	sigset_t saved_mask;
};

/* What the worker's setup applied. */
struct spr_worker_setup {
	int landlock_abi; /* 0: none */
	int seccomp;	  /* 0: none, 1: the default filter, 2: the no-unix-socket one */
};

/* Runs in the forked child; never returns. */
SPR_HIDDEN __attribute__((noreturn)) void spr_worker_exec(const struct spr_worker_spec *w,
							  int status_fd);
/* Reads the status pipe to EOF. Returns -1 with the worker's message when
 * its setup failed. */
SPR_HIDDEN int spr_worker_status(int fd, struct spr_worker_setup *setup, spr_error **err);

/* The init role (pid 1 in the new namespaces). The monitor writes 'G' on
 * sync_fd once the id maps are in place; init reports on report_fd:
 *   "started <landlock_abi> <seccomp 0|1|2>\n"
 *   "exit <wait status> <maxrss kb>\n"
 *   "error <layer> <errno> <message>\n" */
struct spr_init_spec {
	const struct spr_worker_spec *worker;
	const cJSON *layout; /* from the plan: mounts, ids, hostname, network */
	int sync_fd, report_fd;
	struct spr_cg_run *cg; /* v1: init moves itself in first; NULL: no cgroup */
};
SPR_HIDDEN __attribute__((noreturn)) void spr_init_main(const struct spr_init_spec *spec);

#endif
