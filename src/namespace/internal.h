/* Internals shared by spr-sandbox's three roles:
 *   monitor (monitor.c) outside, talks to the host, kills the run;
 *   init    (init.c)    pid 1 of the new namespaces, builds the root;
 *   worker  (exec.c)    the last steps before exec'ing Python.
 * They speak the messages of protocol/message.h: the worker sends SETUP
 * (or ERROR) on a close-on-exec pipe, EOF after SETUP meaning exec
 * succeeded; init sends STARTED, EXIT or ERROR on its report pipe. */
#ifndef SPR_SANDBOX_INTERNAL_H
#define SPR_SANDBOX_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "cgroup/cgroup.h"
#include "error.h"
#include "namespace/steps.h"
#include "protocol/message.h"
#include "protocol/plan.h"

struct spr_worker_spec {
	int gate_fd; /* >= 0: wait for a byte here first (until placed in a cgroup) */
	char **argv, **envp;
	const char *workdir;
	const struct spr_rlimit_plan *rlimits; /* SPR_NRLIMITS of them */
	/* NULL: no Landlock. */
	const struct spr_paths *landlock_read, *landlock_data, *landlock_write;
	/* Classic BPF per enum spr_filter_index (len 0: not sent; none at
	 * all: no seccomp). */
	const struct spr_filter_plan *filters;
	bool memfd_noexec; /* the kernel refuses executable memory files already */
	bool network_shared;
	/* Degraded (no namespaces): the filter bits that stand in for them
	 * (policy/seccomp.h), and whether Landlock must refuse TCP too. */
	unsigned filter_bits;
	bool deny_tcp;
	bool allow_degraded;
	bool drop_caps;	   /* in a user namespace: clear every capability */
	bool become;	   /* as root without namespaces: switch to uid/gid */
	pid_t parent;	   /* the process whose death must end this one */
	struct spr_cg_run *cg; /* degraded, v1: the worker moves itself in first */
	uid_t uid;
	gid_t gid;
	sigset_t saved_mask;
};

/* Runs in the forked child; never returns. */
SPR_HIDDEN __attribute__((noreturn)) void spr_worker_exec(const struct spr_worker_spec *w,
							  int status_fd);
/* Reads the status pipe to EOF: the worker's SETUP (landlock_abi and
 * seccomp of *setup), or -1 with its ERROR. */
SPR_HIDDEN int spr_worker_status(int fd, struct spr_applied *setup, spr_error **err);

/* The init role (pid 1 in the new namespaces). The monitor writes one byte
 * on sync_fd once the id maps are in place: 'M' when it also made the
 * kernel refuse executable memory files in the run's pid namespace, else
 * 'G'; init reports on report_fd. */
struct spr_init_spec {
	struct spr_worker_spec *worker;
	const struct spr_layout *layout;
	int *bind_fds; /* per mount: a detached source tree, or -1 */
	int sync_fd, report_fd;
	struct spr_cg_run *cg; /* v1: init moves itself in first; NULL: no cgroup */
};
SPR_HIDDEN __attribute__((noreturn)) void spr_init_main(const struct spr_init_spec *spec);
/* Starts child_main(arg) in a child that shares this process's memory,
 * on a stack of its own, until it executes or exits (vfork semantics:
 * the caller waits meanwhile; no copy-on-write faults, which cost most
 * of a fork on a virtual machine). Sanitizer builds fork instead. Returns
 * the child's pid, or -1. */
SPR_HIDDEN pid_t spr_start_sharing_child(int (*child_main)(void *), void *arg, size_t stack_size);

#endif
