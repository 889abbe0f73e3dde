/* pid 1 of the run's namespaces: finishes the setup that needs the new
 * namespaces (identity, hostname, loopback, the root filesystem), starts
 * the worker, reaps, and reports the worker's end to the monitor. When it
 * exits, the kernel kills everything left in the pid namespace. */
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "namespace/mounts.h"
#include "namespace/internal.h"

/* To the monitor; if it is gone, PDEATHSIG is about to end us anyway. */
static void report(int fd, const struct spr_msg *m)
{
	spr_msg_write(fd, m);
}

__attribute__((noreturn)) static void init_fail(const struct spr_init_spec *s, spr_error *err)
{
	struct spr_msg m;
	spr_msg_from_error(&m, SPR_MSG_ERROR, err);
	report(s->report_fd, &m);
	_exit(125);
}

/* The sandbox user, keeping this process's capabilities in its own user
 * namespace (uid 0 is not mapped, so the kernel does not clear them). */
static int become_sandbox_user(const struct spr_layout *layout, spr_error **err)
{
	gid_t gid = (gid_t)layout->gid;
	uid_t uid = (uid_t)layout->uid;
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "switching to the sandbox user %d",
				      (int)uid);
	return 0;
}

static int set_hostname(const struct spr_layout *layout, spr_error **err)
{
	const char *name = layout->hostname ? layout->hostname : "sandbox";
	/* In its own UTS namespace only a seccomp filter refuses this: that
	 * of a container spr runs in (podman's default profile). The run's
	 * hostname would be the container's: no run, not a silent leak. */
	if (sethostname(name, strlen(name)) == 0)
		return 0;
	if (errno != EPERM)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "sethostname");
	return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
			      "sethostname in the sandbox's own UTS namespace (refused by the "
			      "seccomp profile of the container spr runs in, as podman's default "
			      "profile does: run that container with a profile that allows "
			      "sethostname, e.g. --security-opt seccomp=unconfined)");
}

/* The kernel clears PDEATHSIG whenever the euid changes (as root, init's
 * goes 0 -> nobody): arm it again, then make sure the monitor did not die
 * in between — getppid() is 0 in a new pid namespace, but the monitor's
 * end of the report pipe closes when it dies. */
static int rearm_parent_death(int report_fd, spr_error **err)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "prctl(PR_SET_PDEATHSIG)");
	struct pollfd p = {.fd = report_fd, .events = POLLOUT};
	if (poll(&p, 1, 0) < 0 || (p.revents & (POLLERR | POLLHUP)))
		_exit(125); /* nobody left to report to: end the run now */
	return 0;
}

/* The monitor's go: 'G', or 'M' when the kernel already refuses
 * executable memory files in this pid namespace (the worker then needs
 * no seccomp rule for them). */
static int wait_for_go(int fd, bool *memfd_noexec)
{
	char c = 0;
	ssize_t n;
	do
		n = read(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	*memfd_noexec = c == 'M';
	return n == 1 && (c == 'G' || c == 'M') ? 0 : -1;
}

/* Every process of the namespace descends from init (orphans are
 * re-parented to it): with no child left, nothing of the run is left. */
static bool nothing_else_left(void)
{
	for (;;) {
		int st;
		pid_t r = waitpid(-1, &st, WNOHANG | __WALL);
		if (r > 0)
			continue; /* an exited one, reaped now */
		return r < 0 && errno == ECHILD;
	}
}

struct worker_start {
	const struct spr_init_spec *spec;
	int status_fd;
};

static int worker_main(void *arg)
{
	const struct worker_start *ws = arg;
	close(ws->spec->report_fd);
	spr_worker_exec(ws->spec->worker, ws->status_fd);
}

/* The worker shares init's memory until it executes Python (vfork
 * semantics, like posix_spawn): init only waits meanwhile, and copying
 * its page tables for a fork was a tenth of a millisecond per run. It
 * gets a stack of its own; its descriptors, directory, credentials,
 * limits and filters are its own anyway. */
static pid_t start_worker(const struct spr_init_spec *s, int status_fd)
{
	struct worker_start ws = {.spec = s, .status_fd = status_fd};
	return spr_start_sharing_child(worker_main, &ws, 256 * 1024);
}

pid_t spr_start_sharing_child(int (*child_main)(void *), void *arg, size_t stack_size)
{
#ifdef __SANITIZE_ADDRESS__
	/* ASan cannot follow a child running on another stack in shared
	 * memory (it warns, and its report file is outside the sandbox):
	 * sanitizer builds pay for a plain fork. */
	(void)stack_size;
	pid_t child = fork();
	if (child == 0)
		_exit(child_main(arg));
	return child;
#else
	void *stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	if (stack == MAP_FAILED)
		return -1;
	pid_t pid = clone(child_main, (char *)stack + stack_size,
			  CLONE_VM | CLONE_VFORK | SIGCHLD, arg);
	munmap(stack, stack_size);
	return pid;
#endif
}

void spr_init_main(const struct spr_init_spec *s)
{
	spr_error *err = NULL;
	/* Into the run cgroup before anything of the run allocates or forks;
	 * then a cgroup namespace rooted there (on v1 the one made at clone
	 * time is rooted at the caller's cgroup, whose path the code would
	 * see in /proc/self/cgroup). */
	int entered = spr_cg_run_enter(s->cg);
	if (entered < 0) {
		spr_fail_errno(&err, SPR_LAYER_CGROUP, "moving the sandbox init into its run cgroup");
		init_fail(s, err);
	}
	if (entered > 0 && unshare(CLONE_NEWCGROUP) < 0) {
		spr_fail_errno(&err, SPR_LAYER_NAMESPACE, "unshare(CLONE_NEWCGROUP)");
		init_fail(s, err);
	}
	/* The monitor may have died before PDEATHSIG was armed: then the sync
	 * pipe reads EOF instead of 'G'. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || wait_for_go(s->sync_fd, &s->worker->memfd_noexec) < 0)
		_exit(125);
	close(s->sync_fd);
	const struct spr_layout *layout = s->layout;
	if (become_sandbox_user(layout, &err) < 0 || rearm_parent_death(s->report_fd, &err) < 0 ||
	    set_hostname(layout, &err) < 0 || (!layout->network && spr_net_loopback_up(&err) < 0) ||
	    spr_mounts_setup(layout, s->bind_fds, &err) < 0)
		init_fail(s, err);

	int status_pipe[2];
	if (pipe2(status_pipe, O_CLOEXEC) < 0) {
		spr_fail_errno(&err, SPR_LAYER_SANDBOX, "pipe2");
		init_fail(s, err);
	}
	pid_t worker = start_worker(s, status_pipe[1]);
	if (worker < 0) {
		spr_fail_errno(&err, SPR_LAYER_SANDBOX, "starting the worker (clone)");
		init_fail(s, err);
	}
	close(status_pipe[1]);
	struct spr_msg started = {.type = SPR_MSG_STARTED};
	if (spr_worker_status(status_pipe[0], &started.applied, &err) < 0)
		init_fail(s, err);
	close(status_pipe[0]);
	/* init needs none of the run's streams (the host sees EOF as soon as
	 * the worker and its children are gone) and nothing else of the
	 * monitor's (its control socket, signalfd, cgroup files): only the
	 * report pipe stays. */
	if (s->report_fd > 0)
		close_range(0, (unsigned)s->report_fd - 1, 0);
	close_range((unsigned)s->report_fd + 1, ~0U, 0);
	report(s->report_fd, &started);

	/* Reap everything; the worker's end is the run's end. */
	for (;;) {
		int st;
		pid_t r = waitpid(-1, &st, __WALL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == worker || r < 0) {
			struct spr_msg end = {.type = SPR_MSG_EXIT};
			end.exit.alone = r == worker && nothing_else_left();
			struct rusage ru = {0};
			getrusage(RUSAGE_CHILDREN, &ru);
			end.exit.status = r == worker ? st : -1;
			end.exit.maxrss_kb = ru.ru_maxrss;
			report(s->report_fd, &end);
			_exit(0);
		}
	}
}
