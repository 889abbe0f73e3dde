/* The last steps before the interpreter, in order. Each drops something
 * the next ones no longer need; seccomp comes last because it forbids
 * calls the earlier steps make. */
#include <fcntl.h>
#include <stdarg.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "namespace/internal.h"

/* The setup failed: the worker's ERROR, then out. */
__attribute__((noreturn)) static void fail(int fd, spr_error *err)
{
	struct spr_msg m;
	spr_msg_from_error(&m, SPR_MSG_ERROR, err);
	if (!err)
		snprintf(m.error.message, sizeof(m.error.message), "worker setup failed");
	spr_msg_write(fd, &m); /* the reader may be gone: the run is being torn down */
	_exit(127);
}

static int load_seccomp(const void *bpf, size_t len, const struct spr_worker_spec *w,
			spr_error **err)
{
	struct sock_fprog prog = {
		.len = (unsigned short)(len / sizeof(struct sock_filter)),
		.filter = (struct sock_filter *)bpf,
	};
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0)
		return 1;
	if (w->allow_degraded)
		return 0;
	return spr_fail_errno(err, SPR_LAYER_SECCOMP,
			      "loading the seccomp filter failed (the kernel needs "
			      "CONFIG_SECCOMP_FILTER; pass --allow-degraded to run without it)");
}

static const struct {
	int resource;
	const char *name;
} rlimit_names[SPR_NRLIMITS] = {
	[SPR_RLIM_AS] = {RLIMIT_AS, "RLIMIT_AS"},	    [SPR_RLIM_NOFILE] = {RLIMIT_NOFILE, "RLIMIT_NOFILE"},
	[SPR_RLIM_FSIZE] = {RLIMIT_FSIZE, "RLIMIT_FSIZE"}, [SPR_RLIM_CORE] = {RLIMIT_CORE, "RLIMIT_CORE"},
	[SPR_RLIM_NPROC] = {RLIMIT_NPROC, "RLIMIT_NPROC"}, [SPR_RLIM_CPU] = {RLIMIT_CPU, "RLIMIT_CPU"},
};

static int set_limits(const struct spr_worker_spec *w, spr_error **err)
{
	for (size_t i = 0; i < SPR_NRLIMITS; i++) {
		const struct spr_rlimit_plan *l = &w->rlimits[i];
		struct rlimit value = {.rlim_cur = (rlim_t)l->soft, .rlim_max = (rlim_t)l->hard};
		if (l->set && setrlimit(rlimit_names[i].resource, &value) < 0)
			return spr_fail_errno(err, SPR_LAYER_SANDBOX,
					      "setrlimit(%s, %llu) failed (the caller's hard limit "
					      "is lower? check `ulimit -a`)",
					      rlimit_names[i].name, (unsigned long long)l->hard);
	}
	return 0;
}

void spr_worker_exec(const struct spr_worker_spec *w, int status_fd)
{
	spr_error *err = NULL;
	if (spr_cg_run_enter(w->cg) < 0) {
		spr_fail_errno(&err, SPR_LAYER_CGROUP, "moving the worker into its run cgroup");
		fail(status_fd, err);
	}
	if (w->gate_fd >= 0) {
		char go;
		if (read(w->gate_fd, &go, 1) != 1)
			_exit(127); /* the monitor gave up on us */
		close(w->gate_fd);
	}
	if (setsid() < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) {
		spr_fail_errno(&err, SPR_LAYER_SANDBOX, "setsid/prctl in the worker");
		fail(status_fd, err);
	}
	if (chdir(w->workdir) < 0) {
		spr_fail_errno(&err, SPR_LAYER_SANDBOX, "chdir(%s)", w->workdir);
		fail(status_fd, err);
	}
	if (w->become) {
		if (spr_caps_become(w->uid, w->gid, &err) < 0)
			fail(status_fd, err);
		/* The uid change cleared PDEATHSIG: arm it again, and leave if
		 * the parent already died. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != w->parent)
			_exit(127);
	}
	if (w->drop_caps && spr_caps_drop_all(&err) < 0)
		fail(status_fd, err);
	if (spr_no_new_privs(&err) < 0)
		fail(status_fd, err);
	struct spr_msg setup = {.type = SPR_MSG_SETUP};
	if (w->landlock_read) {
		int abi = spr_landlock_apply(w->landlock_read, w->landlock_data, w->landlock_write,
					     w->deny_tcp,
					     &setup.applied.landlock_net, &err);
		if (abi < 0)
			fail(status_fd, err);
		setup.applied.landlock_abi = abi;
	}
	/* Late: RLIMIT_AS could starve the allocations above. */
	if (set_limits(w, &err) < 0)
		fail(status_fd, err);
	/* Only the worker's four descriptors (and the status pipe, until
	 * exec) survive. */
	close_range(4, ~0U, CLOSE_RANGE_CLOEXEC);
	/* The variant: the table, plus refusing unix sockets where the
	 * network is the host's and Landlock cannot scope abstract ones
	 * (ABI < 6), plus refusing executable memory files where the kernel
	 * could not be told to, plus what stands in for missing namespaces
	 * (seccomp.h). The engine sends every variant the run can need: one
	 * missing is refused, never replaced by a weaker one. */
	unsigned variant = w->filter_bits |
			   (w->network_shared && setup.applied.landlock_abi < 6 ? SPR_FILTER_NO_UNIX : 0) |
			   (w->memfd_noexec ? 0 : SPR_FILTER_NO_MEMFD_EXEC);
	bool any = false;
	for (size_t v = 0; v < SPR_NFILTERS; v++)
		any = any || w->filters[v].len;
	if (any && !w->filters[variant].len) {
		spr_fail(&err, SPR_LAYER_SECCOMP, ENOENT,
			 "the sandbox plan has no seccomp filter variant %u (libspr and "
			 "spr-sandbox come from different builds: reinstall spr)",
			 variant);
		fail(status_fd, err);
	}
	if (any) {
		int applied = load_seccomp(w->filters[variant].insns, w->filters[variant].len, w, &err);
		if (applied < 0)
			fail(status_fd, err);
		setup.applied.seccomp = !applied ? SPR_SECCOMP_NONE
					: variant & SPR_FILTER_NO_UNIX ? SPR_SECCOMP_NO_UNIX_LOADED
								       : SPR_SECCOMP_DEFAULT_LOADED;
		setup.applied.filter = applied ? (uint8_t)variant : 0;
		setup.applied.memfd_noexec = applied && (variant & SPR_FILTER_NO_MEMFD_EXEC);
	}
	spr_msg_write(status_fd, &setup);
	sigprocmask(SIG_SETMASK, &w->saved_mask, NULL);
	execve(w->argv[0], w->argv, w->envp);
	spr_fail_errno(&err, SPR_LAYER_SANDBOX,
		       "cannot execute the interpreter %s (pass an existing interpreter with "
		       "--python PATH)",
		       w->argv[0]);
	fail(status_fd, err);
}

int spr_worker_status(int fd, struct spr_applied *setup, spr_error **err)
{
	SPR_CLEANUP(spr_msg_stream_free) struct spr_msg_stream s = {.fd = fd};
	*setup = (struct spr_applied){0};
	for (;;) {
		struct spr_msg m;
		int rc = spr_msg_next(&s, &m);
		/* EOF: the worker executed Python, or died on the way, which
		 * its exit status reports. */
		if (rc == 0)
			return 0;
		if (rc < 0)
			return spr_fail_errno(err, SPR_LAYER_SANDBOX, "reading the worker's setup");
		if (m.type == SPR_MSG_ERROR)
			return spr_msg_to_error(&m, NULL, err);
		if (m.type == SPR_MSG_SETUP)
			*setup = m.applied;
	}
}
