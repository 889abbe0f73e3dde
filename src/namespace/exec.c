/* The last steps before the interpreter, in order. Each drops something
 * the next ones no longer need; seccomp comes last because it forbids
 * calls the earlier steps make. */
#include <fcntl.h>
#include <stdarg.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "namespace/internal.h"

static void report(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int fd, const char *fmt, ...)
{
	char line[64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0 && write(fd, line, (size_t)n) < 0) {
		/* The reader is gone: the run is being torn down. */
	}
}

__attribute__((noreturn)) static void fail(int fd, spr_error *err)
{
	char msg[1024];
	int n = snprintf(msg, sizeof(msg), "E%s", err ? err->message : "worker setup failed");
	if (n > 0 && write(fd, msg, (size_t)n) < 0) {
	}
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

static int set_limits(const struct spr_worker_spec *w, spr_error **err)
{
	for (size_t i = 0; i < SPR_NLIMITS; i++) {
		const struct spr_rlimit_setting *s = &w->limits[i];
		if (s->set && setrlimit(s->resource, &s->value) < 0)
			return spr_fail_errno(err, SPR_LAYER_SANDBOX,
					      "setrlimit(%s, %llu) failed (the caller's hard limit "
					      "is lower? check `ulimit -a`)",
					      s->name, (unsigned long long)s->value.rlim_max);
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
	int landlock_abi = 0;
	if (w->landlock_read) {
		landlock_abi = spr_landlock_apply(w->landlock_read, w->landlock_write, &err);
		if (landlock_abi < 0)
			fail(status_fd, err);
		report(status_fd, "L%d\n", landlock_abi);
	}
	/* Late: RLIMIT_AS could starve the allocations above. */
	if (set_limits(w, &err) < 0)
		fail(status_fd, err);
	/* Only the worker's four descriptors (and the status pipe, until
	 * exec) survive. */
	close_range(4, ~0U, CLOSE_RANGE_CLOEXEC);
	if (w->bpf) {
		/* Host network without Landlock's abstract-socket scope (ABI 6):
		 * the filter that refuses unix sockets (seccomp.h). */
		bool no_unix = w->network_shared && landlock_abi < 6 && w->bpf_no_unix;
		int applied = no_unix ? load_seccomp(w->bpf_no_unix, w->bpf_no_unix_len, w, &err)
				      : load_seccomp(w->bpf, w->bpf_len, w, &err);
		if (applied < 0)
			fail(status_fd, err);
		report(status_fd, "S%d\n", applied ? (no_unix ? 2 : 1) : 0);
	}
	sigprocmask(SIG_SETMASK, &w->saved_mask, NULL);
	execve(w->argv[0], w->argv, w->envp);
	spr_fail_errno(&err, SPR_LAYER_SANDBOX,
		       "cannot execute the interpreter %s (pass an existing interpreter with "
		       "--python PATH)",
		       w->argv[0]);
	fail(status_fd, err);
}

int spr_worker_status(int fd, struct spr_worker_setup *setup, spr_error **err)
{
	_cleanup_buf_ spr_buf b = SPR_BUF_INIT;
	char chunk[512];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		spr_buf_append(&b, chunk, (size_t)n);
	}
	*setup = (struct spr_worker_setup){0};
	for (const char *p = b.data; p && *p;) {
		if (*p == 'E')
			return spr_fail(err, SPR_LAYER_SANDBOX, 0, "%s", p + 1);
		if (*p == 'L')
			setup->landlock_abi = atoi(p + 1);
		else if (*p == 'S')
			setup->seccomp = atoi(p + 1);
		const char *nl = strchr(p, '\n');
		p = nl ? nl + 1 : p + strlen(p);
	}
	return 0;
}
