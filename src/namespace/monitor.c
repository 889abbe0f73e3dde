/* spr-sandbox's monitor: reads the plan, starts the run (init in fresh
 * namespaces, or — degraded — the worker directly), tells the host what
 * was applied, kills the run on request, and reports how it ended. The
 * checklist is spr_sandbox_monitor() at the bottom; each monitor is a
 * fork of the engine's server (sandbox_server.c). */
#include "protocol/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/fsuid.h>
#include <sys/wait.h>

#include "cgroup/cgroup.h"
#include "namespace/internal.h"
#include "namespace/mounts.h"
#include "rundir.h"
#include "tree.h"
#include "uid_lease.h"
#include "protocol/message.h"
#include "protocol/plan.h"

struct sandbox {
	pid_t parent;
	struct spr_arena arena;	     /* the decoded plan's strings and arrays */
	struct spr_sandbox_plan *plan;
	char **envp;		     /* the plan's, with HOME and TMPDIR after it */
	size_t env_count;	     /* plan entries; HOME and TMPDIR follow them */
	struct spr_rlimit_plan rlimits[SPR_NRLIMITS]; /* the plan's, RLIMIT_AS added
							 when no cgroup can limit memory */
	struct spr_paths degraded_write; /* Landlock write list incl. the run directory */
	struct spr_rundir rundir; /* degraded: the run's directory in TMPDIR */
	char env_home[PATH_MAX + 8], env_tmpdir[PATH_MAX + 8];
	int sigfd;
	sigset_t saved_mask;
	pid_t child;	/* init (namespaces) or the worker (degraded) */
	struct spr_msg_stream report; /* init's messages (fd -1 in degraded mode) */
	bool have_status;
	int status;
	long maxrss_kb;
	struct spr_applied applied;
	bool use_cgroup;	   /* the plan asks for a cgroup */
	struct spr_cg_run cg;
	struct spr_cg_stats cg_stats;
	bool cpu_limit_hit;
	int cpu_timer;		   /* fires when the CPU-time budget may be spent */
	int pids_timer;		   /* v1: pids.events has no notification; look often */
	int ns_hold[2];		   /* the run's mount and network namespaces */
	int bind_fds[SPR_PLAN_MAX_MOUNTS]; /* root: detached bind sources, per mount */
	struct spr_uid_lease lease; /* root: the host uid of this run, held to the end */
	uid_t degraded_uid;	   /* degraded as root: the code's uid (0: none) */
	bool run_over;		   /* init saw the worker end with nothing else left */
};

/* ---- talking to the host ------------------------------------------------- */

static void tell_host(const struct spr_msg *m)
{
	spr_msg_send(SPR_FD_CTRL, m, NULL, 0); /* the host may be gone: nothing to do */
}

static void report_error(const spr_error *err)
{
	struct spr_msg m;
	spr_msg_from_error(&m, SPR_MSG_ERROR, err);
	tell_host(&m);
}

static void report_started(const struct sandbox *sb)
{
	struct spr_msg m = {.type = SPR_MSG_STARTED, .pid = sb->child, .applied = sb->applied};
	tell_host(&m);
}

static void report_exit(const struct sandbox *sb)
{
	long maxrss = sb->maxrss_kb;
	if (!maxrss) {
		struct rusage ru = {0};
		getrusage(RUSAGE_CHILDREN, &ru);
		maxrss = ru.ru_maxrss;
	}
	const struct spr_cg_stats *cg = &sb->cg_stats;
	struct spr_msg m = {.type = SPR_MSG_EXIT};
	m.exit.status = sb->have_status ? sb->status : -1;
	/* The cgroup's peak counts every process of the run; rusage only the
	 * largest one. */
	m.exit.maxrss_kb = cg->memory_peak_kb >= 0 && sb->applied.cgroup ? cg->memory_peak_kb : maxrss;
	m.exit.oom_killed = cg->oom_killed;
	m.exit.pids_limit_hit = cg->pids_limit_hit;
	m.exit.cpu_limit_hit = sb->cpu_limit_hit;
	tell_host(&m);
}

/* ---- the plan --------------------------------------------------------------- */

static int read_plan(struct sandbox *sb, spr_error **err)
{
	_cleanup_free_ char *msg = malloc(SPR_SANDBOX_MAX_MSG + 1);
	if (!msg)
		return spr_fail_oom(err);
	ssize_t n;
	do
		n = recv(SPR_FD_CTRL, msg, SPR_SANDBOX_MAX_MSG + 1, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "reading the plan");
	if (n == 0)
		return spr_fail(err, SPR_LAYER_SANDBOX, EPIPE, "the host closed the control socket");
	if (n > SPR_SANDBOX_MAX_MSG)
		return spr_fail(err, SPR_LAYER_SANDBOX, EMSGSIZE, "plan larger than %d bytes",
				SPR_SANDBOX_MAX_MSG);
	sb->plan = spr_arena_alloc(&sb->arena, sizeof(*sb->plan));
	if (!sb->plan)
		return spr_fail_oom(err);
	if (spr_plan_decode(msg, (size_t)n, sb->plan, &sb->arena, err) < 0)
		return -1;
	/* Two spare slots: HOME and TMPDIR, the run's directory. */
	sb->env_count = sb->plan->env.n;
	sb->envp = spr_arena_alloc(&sb->arena, (sb->env_count + 3) * sizeof(*sb->envp));
	if (!sb->envp)
		return spr_fail_oom(err);
	memcpy(sb->envp, sb->plan->env.v, sb->env_count * sizeof(*sb->envp));
	memcpy(sb->rlimits, sb->plan->rlimits, sizeof(sb->rlimits));
	sb->use_cgroup = sb->plan->cgroup.version != SPR_CG_NONE;
	return 0;
}

static void set_env_dirs(struct sandbox *sb, const char *dir)
{
	snprintf(sb->env_home, sizeof(sb->env_home), "HOME=%s", dir);
	snprintf(sb->env_tmpdir, sizeof(sb->env_tmpdir), "TMPDIR=%s", dir);
	/* Fixed slots: a degraded retry sets them again. */
	sb->envp[sb->env_count] = sb->env_home;
	sb->envp[sb->env_count + 1] = sb->env_tmpdir;
}

/* ---- setup steps shared by both modes ----------------------------------------- */

static int check_descriptors(void)
{
	for (int fd = 0; fd < SPR_SANDBOX_NFDS; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			return -1;
	/* Anything else the caller leaked to us must not reach the code. */
	close_range(SPR_SANDBOX_NFDS, ~0U, 0);
	return 0;
}

/* Once the run has its copies of the request, stdout, stderr and result
 * descriptors, ours must go: the host reads EOF on them when the run's
 * processes are gone, not when this monitor has finished its cleanup.
 * /dev/null keeps the numbers taken. */
static void release_run_streams(void)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = SPR_FD_REQUEST; fd <= SPR_FD_RESULT; fd++) {
		if (null >= 0)
			dup3(null, fd, O_CLOEXEC);
		else
			close(fd);
	}
	if (null > SPR_FD_RESULT)
		close(null);
}

/* If the host dies, so does the run: PDEATHSIG, then a re-check in case
 * the parent died before the prctl took effect. SIGKILL, not a signal we
 * could catch to tidy up: a stopped or starved monitor must still die, and
 * with it (init's own PDEATHSIG) the whole run. The run cgroup it leaves
 * is removed by the next engine start or `spr cleanup`. */
static int die_with_parent(struct sandbox *sb, spr_error **err)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "prctl(PR_SET_PDEATHSIG)");
	if (getppid() != sb->parent)
		return spr_fail(err, SPR_LAYER_SANDBOX, ESRCH, "the calling process has exited");
	return 0;
}

/* Orphans of a degraded run (double-forked daemons) are re-parented to
 * us, so the sweep can find them; with namespaces, init is that reaper. */
static int become_subreaper(spr_error **err)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "prctl(PR_SET_CHILD_SUBREAPER)");
	return 0;
}

/* SIGCHLD tells us the run ended; SIGTERM/SIGINT/SIGHUP (a terminal's ^C
 * reaches the whole process group) kill it. */
static int watch_signals(struct sandbox *sb, spr_error **err)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, &sb->saved_mask) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "sigprocmask");
	sb->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sb->sigfd < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "signalfd");
	/* A pipe whose reader died (init failing early) must be an EPIPE to
	 * handle, not the end of the monitor. Not in saved_mask: the worker
	 * starts with the caller's mask, and a child has no pending signals. */
	sigset_t pipe_set;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	if (sigprocmask(SIG_BLOCK, &pipe_set, NULL) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "sigprocmask");
	return 0;
}

static struct spr_worker_spec worker_spec(struct sandbox *sb, const char *workdir)
{
	const struct spr_sandbox_plan *p = sb->plan;
	struct spr_worker_spec w = {
		.gate_fd = -1,
		.argv = (char **)p->argv.v,
		.envp = sb->envp,
		.workdir = workdir,
		.rlimits = sb->rlimits,
		.filters = p->filters,
		.memfd_noexec = sb->applied.memfd_noexec,
		.allow_degraded = p->allow_degraded,
		.saved_mask = sb->saved_mask,
	};
	return w;
}

/* ---- with namespaces --------------------------------------------------------- */

/* Tearing down the run's mount namespace (some 30 mounts, an RCU grace
 * period) and network namespace would happen in init's exit, before we
 * learn the run ended. Holding them moves that cost after the exit report;
 * the processes are all gone by then all the same. Best effort. */
static void hold_namespaces(struct sandbox *sb, pid_t pid)
{
	static const char *const which[] = {"mnt", "net"};
	for (size_t i = 0; i < ARRAY_SIZE(which); i++) {
		char path[64];
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, which[i]);
		sb->ns_hold[i] = open(path, O_RDONLY | O_CLOEXEC);
	}
}

static void release_namespaces(struct sandbox *sb)
{
	for (size_t i = 0; i < ARRAY_SIZE(sb->ns_hold); i++)
		spr_closep(&sb->ns_hold[i]);
}

/* With a v2 cgroup fd, init starts inside the run cgroup (nothing of the
 * run is ever outside it); *placed says whether that happened, else the
 * caller moves it. */
static pid_t clone_namespaces(unsigned long flags, int cgroup_fd, bool *placed)
{
	struct clone_args args = {.flags = flags, .exit_signal = SIGCHLD};
	pid_t pid = -1;
	*placed = false;
	if (cgroup_fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)cgroup_fd;
		pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
		if (pid >= 0) {
			*placed = true;
			return pid;
		}
		args.flags = flags; /* before Linux 5.7: place it afterwards */
	}
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid < 0 && errno == ENOSYS)
		pid = (pid_t)syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	return pid;
}

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
		;
}

/* A writable directory (an install's venv, made empty by the library) is
 * written by the sandbox user, which as root is the run's leased uid: the
 * directory itself is handed to it. Only a directory root owns, and not
 * through a link. The library takes what the run wrote back afterwards
 * (src/local/venv.c). */
static int give_to_uid(const char *path, uid_t uid, spr_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "opening the writable directory %s",
				      path);
	if (st.st_uid == uid) /* given already (before degrading) */
		return 0;
	if (st.st_uid != 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, EPERM,
				"the writable directory %s is not root's (uid %u)", path,
				(unsigned)st.st_uid);
	if (fchown(fd, uid, uid) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
				      "giving the writable directory %s to the run's uid %u", path,
				      (unsigned)uid);
	return 0;
}

static int give_writable_dirs(const struct spr_layout *layout, uid_t uid, spr_error **err)
{
	for (size_t i = 0; i < layout->nmounts; i++)
		if (layout->mounts[i].kind == SPR_MOUNT_BIND_RW &&
		    give_to_uid(layout->mounts[i].src, uid, err) < 0)
			return -1;
	return 0;
}

/* As root, the monitor makes every bind source a detached mount (and sets
 * its flags there): init runs as the sandbox user and could not traverse,
 * say, /root to reach a pyenv interpreter or the worker's cache, nor
 * bind a mount from another namespace. init attaches them with
 * move_mount. A rootless caller needs none of this: init's identity is
 * the caller's own. */
static int open_bind_sources(struct sandbox *sb, spr_error **err)
{
	if (geteuid() != 0)
		return 0;
	const struct spr_layout *layout = &sb->plan->layout;
	for (size_t i = 0; i < layout->nmounts; i++) {
		const struct spr_mount_op *op = &layout->mounts[i];
		if (op->kind != SPR_MOUNT_BIND_RO && op->kind != SPR_MOUNT_BIND_DEV &&
		    op->kind != SPR_MOUNT_BIND_RW)
			continue;
		if (op->kind == SPR_MOUNT_BIND_RW && sb->lease.fd >= 0 &&
		    give_to_uid(op->src, sb->lease.uid, err) < 0)
			return -1;
		int fd = open_tree(AT_FDCWD, op->src,
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (fd < 0 && errno == ENOSYS)
			return 0; /* before Linux 5.2: init binds by path */
		if (fd < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
					      "cannot open %s to show it in the sandbox", op->src);
		sb->bind_fds[i] = fd;
		struct mount_attr attr = {.attr_set = spr_bind_attrs(op->kind)};
		if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "setting flags on %s",
					      op->src);
	}
	return 0;
}

static void close_bind_sources(struct sandbox *sb)
{
	for (size_t i = 0; i < ARRAY_SIZE(sb->bind_fds); i++)
		spr_closep(&sb->bind_fds[i]);
}

/* ---- the run's own host uid (core/uid_lease.h) ------------------------------ */

/* As root, a uid leased for this run alone; it is held until the monitor
 * exits, after everything of the run is gone. */
static int lease_run_uid(struct sandbox *sb, spr_error **err)
{
	const struct spr_uid_lease_plan *p = &sb->plan->run_uid;
	if (!p->count || geteuid() != 0 || sb->lease.fd >= 0)
		return 0;
	struct spr_uid_range range = {p->start, p->count};
	return spr_uid_lease_take(&range, p->lease_file, &sb->lease, err);
}

/* The kernel makes the creator of a user namespace its owner, and
 * charges per-user budgets up the chain of owners. So the monitor creates
 * the run's namespaces as the leased uid: only the effective ids change
 * (the saved ones stay root's to come back to), and the filesystem ids
 * stay root's, so placing init in the run cgroup (CLONE_INTO_CGROUP
 * checks write access) still works. */
static int become_owner(const struct spr_uid_lease *lease, spr_error **err)
{
	if (lease->fd < 0)
		return 0;
	if (setresgid(-1, lease->uid, -1) < 0 || setresuid(-1, lease->uid, -1) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
				      "switching to the run's own uid %u to create its namespaces",
				      lease->uid);
	setfsuid(0);
	setfsgid(0);
	return 0;
}

/* Any change of the effective ids clears PDEATHSIG: armed again (and the
 * parent checked) so that the run still dies with its caller. */
static int back_to_root(struct sandbox *sb, spr_error **err)
{
	if (sb->lease.fd < 0)
		return 0;
	if (setresuid(-1, 0, -1) < 0 || setresgid(-1, 0, -1) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
				      "switching back to root after creating the namespaces");
	return die_with_parent(sb, err);
}

static int memfd_writer_main(void *unused)
{
	(void)unused;
	int fd = open("/proc/sys/vm/memfd_noexec", O_WRONLY | O_CLOEXEC);
	bool done = fd >= 0 && write(fd, "2", 1) == 1;
	/* This writer took pid 2 of the namespace: hand it back, so the
	 * run's processes are numbered as if it had never been (the worker
	 * is pid 2). Reaped before init goes on. */
	int last = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
	if (last >= 0 && write(last, "1", 1) != 1) {
		/* only the numbering differs */
	}
	_exit(done ? 0 : 1);
}

/* The writer shares the monitor's memory until it exits (vfork semantics,
 * as init starts the worker): the monitor only waits meanwhile, and a
 * fork's copy-on-write of the monitor's pages cost ~0.5-1 ms per run on a
 * virtual machine, where each fault goes through the hypervisor. It gets
 * a stack of its own. Sanitizer builds fork (init.c says why). */
static pid_t start_memfd_writer(void)
{
	return spr_start_sharing_child(memfd_writer_main, NULL, 64 * 1024);
}

/* vm.memfd_noexec=2 in the run's pid namespace: memory files the code
 * creates cannot be executed (noexec mounts and Landlock do not cover
 * them: glibc's fexecve runs one through /proc/self/fd). The sysctl
 * belongs to the writer's pid namespace and only the host's root may
 * write it: a child of the monitor joins the run's pid namespace to write
 * it, before init lets anything of the run start. Root only. */
static bool forbid_memfd_exec(pid_t init)
{
	if (geteuid() != 0)
		return false;
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)init);
	_cleanup_close_ int theirs = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_close_ int ours = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (theirs < 0 || ours < 0 || setns(theirs, CLONE_NEWPID) < 0)
		return false;
	pid_t writer = start_memfd_writer();
	/* Later children of the monitor are its own again. */
	bool back = setns(ours, CLONE_NEWPID) == 0;
	int status = -1;
	while (writer > 0 && waitpid(writer, &status, 0) < 0 && errno == EINTR) {
	}
	return back && writer > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* init's next message (blocking until setup is over). */
static int next_report(struct sandbox *sb, struct spr_msg *m)
{
	return spr_msg_next(&sb->report, m);
}

/* Returns 1 when the namespaces could not be created at all (the caller
 * may degrade), 0 on success, -1 on any other failure. */
static int start_in_namespaces(struct sandbox *sb, spr_error **err)
{
	const struct spr_layout *layout = &sb->plan->layout;
	struct spr_idmap map = {
		.uid = layout->uid,
		.gid = layout->gid,
		.outside_uid = layout->outside_uid,
		.outside_gid = layout->outside_gid,
	};
	bool network = layout->network;
	unsigned long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC |
			      CLONE_NEWUTS | CLONE_NEWCGROUP | (network ? 0 : CLONE_NEWNET);
	int sync[2], rep[2];
	if (spr_userns_drop_groups(err) < 0 || lease_run_uid(sb, err) < 0) {
		close_bind_sources(sb);
		return -1;
	}
	if (open_bind_sources(sb, err) < 0) {
		close_bind_sources(sb);
		/* Root without CAP_SYS_ADMIN (an unprivileged container): no
		 * namespaces to be had either. */
		if (errno != EPERM)
			return -1;
		spr_error_free(*err);
		*err = NULL;
		spr_userns_explain(EPERM, err);
		return 1;
	}
	if (sb->lease.fd >= 0)
		map.outside_uid = map.outside_gid = sb->lease.uid;
	if (pipe2(sync, O_CLOEXEC) < 0) {
		close_bind_sources(sb);
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pipe2");
	}
	if (pipe2(rep, O_CLOEXEC) < 0) {
		close(sync[0]);
		close(sync[1]);
		close_bind_sources(sb);
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pipe2");
	}
	set_env_dirs(sb, layout->workdir);
	struct spr_worker_spec w = worker_spec(sb, layout->workdir);
	w.drop_caps = true;
	w.network_shared = network;
	w.landlock_read = &layout->landlock_read;
	w.landlock_data = &layout->landlock_data;
	w.landlock_write = &layout->landlock_write;

	bool placed = false;
	if (become_owner(&sb->lease, err) < 0) {
		close(sync[0]);
		close(sync[1]);
		close(rep[0]);
		close(rep[1]);
		close_bind_sources(sb);
		return -1;
	}
	pid_t pid = clone_namespaces(flags, sb->applied.cgroup ? sb->cg.v2_fd : -1, &placed);
	if (pid == 0) {
		close(sync[1]);
		close(rep[0]);
		struct spr_init_spec spec = {.worker = &w, .layout = layout,
					     .bind_fds = sb->bind_fds,
					     .sync_fd = sync[0], .report_fd = rep[1],
					     .cg = sb->applied.cgroup ? &sb->cg : NULL};
		spr_init_main(&spec);
	}
	int clone_errno = errno;
	int restored = back_to_root(sb, err);
	close_bind_sources(sb);
	close(sync[0]);
	close(rep[1]);
	_cleanup_close_ int go = sync[1];
	if (restored < 0) {
		if (pid > 0)
			kill_and_reap(pid);
		close(rep[0]);
		return -1;
	}
	if (pid < 0) {
		close(rep[0]);
		spr_userns_explain(clone_errno, err);
		return 1;
	}
	sb->child = pid;
	sb->report.fd = rep[0];
	hold_namespaces(sb, pid);
	/* v1: init moves itself in (spr_cg_run_enter), first thing. */
	if ((sb->applied.cgroup && !placed && !spr_cg_run_self_enter(&sb->cg) &&
	     spr_cg_run_attach(&sb->cg, pid, err) < 0) ||
	    spr_userns_write_maps(pid, &map, err) < 0) {
		kill_and_reap(pid);
		sb->child = 0;
		return -1;
	}
	sb->applied.memfd_noexec = forbid_memfd_exec(pid);
	sb->applied.host_uid = map.outside_uid;
	struct spr_msg m;
	if (write(go, sb->applied.memfd_noexec ? "M" : "G", 1) != 1) {
		/* init already gave up: its report says why. */
		int saved = errno;
		bool told = next_report(sb, &m) > 0 && m.type == SPR_MSG_ERROR;
		kill_and_reap(pid);
		sb->child = 0;
		if (told)
			return spr_msg_to_error(&m, NULL, err);
		errno = saved;
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "starting the sandbox init");
	}
	int rc = next_report(sb, &m);
	if (rc > 0 && m.type == SPR_MSG_STARTED) {
		sb->applied.namespaces = true;
		sb->applied.network_shared = network;
		sb->applied.landlock_abi = m.applied.landlock_abi;
		sb->applied.landlock_net = m.applied.landlock_net;
		sb->applied.seccomp = m.applied.seccomp;
		sb->applied.filter = m.applied.filter;
		/* The kernel's refusal, or the filter's where it could not be had. */
		sb->applied.memfd_noexec = sb->applied.memfd_noexec || m.applied.memfd_noexec;
		spr_cg_run_close_tasks(&sb->cg); /* init is in: not needed anymore */
		/* From now on reports are read when poll says so (supervise). */
		fcntl(sb->report.fd, F_SETFL, fcntl(sb->report.fd, F_GETFL) | O_NONBLOCK);
		return 0;
	}
	kill_and_reap(pid);
	sb->child = 0;
	if (rc > 0 && m.type == SPR_MSG_ERROR)
		return spr_msg_to_error(&m, NULL, err);
	return spr_fail(err, SPR_LAYER_SANDBOX, EPIPE, "the sandbox init exited during setup");
}

/* ---- degraded: no namespaces ----------------------------------------------------- */

static int make_workdir(struct sandbox *sb, spr_error **err)
{
	if (spr_rundir_create(sb->plan->degraded.workdir_parent, &sb->rundir, err) < 0)
		return -1;
	set_env_dirs(sb, sb->rundir.work);
	return 0;
}

static int start_degraded(struct sandbox *sb, spr_error **err)
{
	const struct spr_degraded_plan *degraded = &sb->plan->degraded;
	if (make_workdir(sb, err) < 0)
		return -1;
	/* The worker by its host path (argv ends with the in-sandbox one). */
	struct spr_strv *argv = &sb->plan->argv;
	if (degraded->worker)
		argv->v[argv->n - 1] = degraded->worker;
	struct spr_worker_spec w = worker_spec(sb, sb->rundir.work);
	w.parent = getpid();
	w.network_shared = true; /* no network namespace */
	/* What the namespaces would have given, from the filter and Landlock
	 * instead: no host IPC, no unix socket to a host service (Landlock
	 * does not cover connecting to a pathname socket), and without
	 * network in the policy no inet socket and no TCP at all. */
	bool network = sb->plan->layout.network;
	w.filter_bits = spr_filter_degraded(network);
	w.deny_tcp = !network;
	w.cg = sb->applied.cgroup ? &sb->cg : NULL;
	if (degraded->run_as) {
		/* Root without namespaces: the code runs as the run's own uid
		 * (no host process has it: kill(-1) has nothing to hit, and
		 * RLIMIT_NPROC counts the run alone), else as nobody. */
		if (lease_run_uid(sb, err) < 0)
			return -1;
		w.become = true;
		w.uid = sb->lease.fd >= 0 ? sb->lease.uid : degraded->uid;
		w.gid = sb->lease.fd >= 0 ? sb->lease.uid : degraded->gid;
		if (sb->lease.fd >= 0)
			sb->degraded_uid = w.uid;
		if (chown(sb->rundir.work, w.uid, w.gid) < 0)
			return spr_fail_errno(err, SPR_LAYER_SANDBOX, "chown %s", sb->rundir.work);
		if (give_writable_dirs(&sb->plan->layout, w.uid, err) < 0)
			return -1;
	}
	sb->degraded_write = degraded->landlock_write;
	if (!spr_paths_add(&sb->degraded_write, sb->rundir.work))
		return spr_fail(err, SPR_LAYER_SANDBOX, E2BIG, "too many Landlock paths");
	w.landlock_read = &degraded->landlock_read;
	w.landlock_write = &sb->degraded_write;
	/* The worker waits at a gate until it is in the run cgroup. */
	int status_pipe[2], gate[2];
	if (pipe2(status_pipe, O_CLOEXEC) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pipe2");
	if (pipe2(gate, O_CLOEXEC) < 0) {
		close(status_pipe[0]);
		close(status_pipe[1]);
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pipe2");
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(status_pipe[0]);
		close(status_pipe[1]);
		close(gate[0]);
		close(gate[1]);
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "fork");
	}
	if (pid == 0) {
		close(status_pipe[0]);
		close(gate[1]);
		w.gate_fd = gate[0];
		spr_worker_exec(&w, status_pipe[1]);
	}
	close(status_pipe[1]);
	close(gate[0]);
	sb->child = pid;
	/* v1: the worker moves itself in before it passes the gate. */
	int rc = sb->applied.cgroup && !spr_cg_run_self_enter(&sb->cg)
			 ? spr_cg_run_attach(&sb->cg, pid, err)
			 : 0;
	if (rc == 0 && write(gate[1], "G", 1) != 1)
		rc = spr_fail_errno(err, SPR_LAYER_SANDBOX, "starting the worker");
	close(gate[1]);
	struct spr_applied setup;
	if (rc == 0)
		rc = spr_worker_status(status_pipe[0], &setup, err);
	close(status_pipe[0]);
	if (rc != 0) {
		kill_and_reap(pid);
		sb->child = 0;
		return -1;
	}
	sb->applied.network_shared = true;
	sb->applied.landlock_abi = setup.landlock_abi;
	sb->applied.landlock_net = setup.landlock_net;
	sb->applied.seccomp = setup.seccomp;
	sb->applied.filter = setup.filter;
	sb->applied.memfd_noexec = setup.memfd_noexec;
	sb->applied.host_uid = w.become ? w.uid : getuid();
	return 0;
}

/* ---- supervision -------------------------------------------------------------------- */

static void on_report(struct sandbox *sb)
{
	struct spr_msg m;
	while (sb->report.fd >= 0 && next_report(sb, &m) > 0) {
		if (m.type == SPR_MSG_EXIT && m.exit.status >= 0) {
			sb->status = m.exit.status;
			sb->have_status = true;
			sb->maxrss_kb = (long)m.exit.maxrss_kb;
			sb->run_over = m.exit.alone;
		}
	}
}

static bool reap_child(struct sandbox *sb)
{
	int st;
	pid_t r;
	do
		r = waitpid(sb->child, &st, WNOHANG | __WALL);
	while (r < 0 && errno == EINTR);
	if (r != sb->child)
		return false;
	if (sb->report.fd >= 0)
		on_report(sb); /* init's last words: the worker's status */
	else if (!sb->have_status) {
		sb->status = st;
		sb->have_status = true;
	}
	sb->child = 0;
	return true;
}

/* The CPU-time budget (cpu_seconds) is counted over the whole cgroup; the
 * timer fires when the run could have spent it at full cpu_cores speed,
 * so there is no polling in between. */
static void arm_cpu_timer(struct sandbox *sb)
{
	if (sb->cpu_timer < 0)
		return;
	double used = 0;
	if (sb->cg_stats.cpu_usage_us > 0)
		used = (double)sb->cg_stats.cpu_usage_us / 1e6;
	double cores = sb->cg.cpu_cores > 0 ? sb->cg.cpu_cores : 1;
	double wait = (sb->cg.cpu_seconds - used) / cores;
	if (wait < 0.01)
		wait = 0.01;
	struct itimerspec its = {.it_value = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)}};
	timerfd_settime(sb->cpu_timer, 0, &its, NULL);
}

static bool cpu_budget_spent(struct sandbox *sb)
{
	uint64_t expirations;
	if (read(sb->cpu_timer, &expirations, sizeof(expirations)) < 0) {
		/* spurious wakeup: nothing expired */
	}
	spr_cg_run_stats(&sb->cg, &sb->cg_stats);
	if (sb->cg_stats.cpu_usage_us >= (int64_t)(sb->cg.cpu_seconds * 1e6)) {
		sb->cpu_limit_hit = true;
		return true;
	}
	arm_cpu_timer(sb);
	return false;
}

/* A limit the kernel enforces inside the run (an OOM kill, the pids
 * limit) ends the run: a fork bomb must not run until the timeout. */
static bool cgroup_limit_hit(struct sandbox *sb, int fd)
{
	/* Consume the wakeup: re-read the events file (kernfs re-arms on
	 * read), or drain the eventfd / timerfd (not seekable). */
	char buf[512];
	if (pread(fd, buf, sizeof(buf), 0) < 0 && errno == ESPIPE &&
	    read(fd, buf, sizeof(uint64_t)) < 0) {
		/* nothing pending: a spurious wakeup */
	}
	return spr_cg_run_limit_hit(&sb->cg, &sb->cg_stats);
}

/* Waits until the run ends or the host asks for (or forces) a kill. */
static void supervise(struct sandbox *sb)
{
	bool killing = false;
	bool cg = sb->applied.cgroup != SPR_CG_NONE;
	arm_cpu_timer(sb);
	while (sb->child > 0) {
		/* v1 signals OOM through an eventfd (POLLIN); v2 through
		 * memory.events (POLLPRI), like pids.events on both. */
		short oom_events = sb->applied.cgroup == SPR_CG_V1 ? POLLIN : POLLPRI;
		struct pollfd fds[7] = {
			{.fd = sb->sigfd, .events = POLLIN},
			{.fd = killing ? -1 : SPR_FD_CTRL, .events = POLLIN},
			{.fd = cg && !killing ? sb->cg.oom_fd : -1, .events = oom_events},
			{.fd = cg && !killing ? sb->cg.pids_fd : -1, .events = POLLPRI},
			{.fd = killing ? -1 : sb->cpu_timer, .events = POLLIN},
			{.fd = killing ? -1 : sb->pids_timer, .events = POLLIN},
			{.fd = killing ? -1 : sb->report.fd, .events = POLLIN},
		};
		if (poll(fds, 7, -1) < 0 && errno != EINTR)
			break;
		/* init's last words can come before its death: when nothing
		 * else is left in the namespace, the run is over already (init
		 * is reaped after the exit report). */
		if (fds[6].revents) {
			on_report(sb);
			if (sb->have_status && sb->run_over)
				break;
		}
		bool stop = false;
		if ((fds[2].revents && cgroup_limit_hit(sb, fds[2].fd)) ||
		    (fds[3].revents && cgroup_limit_hit(sb, fds[3].fd)) ||
		    (fds[4].revents && cpu_budget_spent(sb)) ||
		    (fds[5].revents && cgroup_limit_hit(sb, fds[5].fd)))
			stop = true;
		if (fds[0].revents) {
			struct signalfd_siginfo si;
			while (read(sb->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				if (si.ssi_signo != SIGCHLD)
					stop = true;
			if (reap_child(sb))
				break;
		}
		if (fds[1].revents) {
			/* Any message ("kill"), EOF or error from the host: stop. */
			char buf[64];
			ssize_t n = recv(SPR_FD_CTRL, buf, sizeof(buf), MSG_DONTWAIT);
			if (!(n < 0 && (errno == EAGAIN || errno == EINTR)))
				stop = true;
		}
		if (stop && !killing) {
			/* SIGKILL to init takes the whole pid namespace with it. */
			killing = true;
			kill(sb->child, SIGKILL);
			if (sb->report.fd < 0)
				kill(-sb->child, SIGKILL);
			if (cg)
				spr_cg_run_kill(&sb->cg);
		}
	}
	if (killing && !sb->have_status) {
		sb->status = SIGKILL; /* the run was killed: a SIGKILL wait status */
		sb->have_status = true;
	}
}

/* SIGKILLs every direct child (orphans of the run are re-parented to us). */
static int kill_children(void)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	int killed = 0;
	if (f) {
		long pid;
		while (fscanf(f, "%ld", &pid) == 1)
			if (pid > 0 && kill((pid_t)pid, SIGKILL) == 0)
				killed++;
		return killed;
	}
	/* No CONFIG_PROC_CHILDREN: scan /proc for our children. */
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *de;
	pid_t self = getpid();
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		char stat_path[64], buf[512];
		snprintf(stat_path, sizeof(stat_path), "/proc/%ld/stat", pid);
		_cleanup_close_ int fd = open(stat_path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
		if (n <= 0)
			continue;
		buf[n] = '\0';
		char *close_paren = strrchr(buf, ')');
		int ppid = 0;
		if (close_paren && sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == self &&
		    kill((pid_t)pid, SIGKILL) == 0)
			killed++;
	}
	closedir(d);
	return killed;
}

/* Degraded as root, every process of the run's own uid is the run's:
 * killed by a child that takes that uid and kills all it may signal
 * (kill(-1) spares the caller). This reaches what left our tree too. */
static void kill_run_uid(uid_t uid)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setresgid(uid, uid, uid) == 0 && setresuid(uid, uid, uid) == 0)
			kill(-1, SIGKILL);
		_exit(0);
	}
	if (pid > 0)
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
}

/* Nothing the code started survives the run. With namespaces the kernel
 * already killed the pid namespace; in the degraded mode the process
 * group, the run's uid and (subreaper) every orphan of the tree. */
static void sweep(struct sandbox *sb)
{
	if (sb->child > 0)
		kill(-sb->child, SIGKILL);
	if (sb->degraded_uid)
		kill_run_uid(sb->degraded_uid);
	for (;;) {
		kill_children();
		int st;
		pid_t r = waitpid(-1, &st, __WALL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: nothing left */
		}
		if (r == sb->child && !sb->have_status) {
			sb->status = st;
			sb->have_status = true;
		}
	}
}

static void sandbox_free(struct sandbox *sb)
{
	spr_rundir_remove(&sb->rundir);
	spr_cg_run_free(&sb->cg);
	spr_closep(&sb->cpu_timer);
	spr_closep(&sb->pids_timer);
	release_namespaces(sb);
	close_bind_sources(sb);
	spr_closep(&sb->sigfd);
	spr_closep(&sb->report.fd);
	spr_msg_stream_free(&sb->report);
	spr_arena_free(&sb->arena);
	spr_uid_lease_release(&sb->lease);
}

/* ---- the checklist -------------------------------------------------------------------- */

/* The run's cgroup, before anything of the run exists. When it cannot be
 * made and the caller allowed degrading, RLIMIT_AS stands in for the
 * memory limit (and isolation says cgroup "none"). */
static int make_cgroup(struct sandbox *sb, spr_error **err)
{
	if (!sb->use_cgroup)
		return 0;
	_cleanup_error_ spr_error *cg_err = NULL;
	const struct spr_cgroup_plan *plan = &sb->plan->cgroup;
	if (spr_cg_run_create(&sb->cg, plan, &cg_err) < 0) {
		spr_cg_run_remove(&sb->cg, NULL);
		spr_cg_run_free(&sb->cg);
		if (!sb->plan->allow_degraded) {
			*err = steal_pointer(&cg_err);
			return -1;
		}
		sb->rlimits[SPR_RLIM_AS] = (struct spr_rlimit_plan){true, plan->memory_bytes,
								    plan->memory_bytes};
		return 0;
	}
	sb->applied.cgroup = sb->cg.version;
	sb->cg_stats.cpu_usage_us = -1;
	sb->cg_stats.memory_peak_kb = -1;
	if (sb->cg.cpu_seconds > 0) {
		sb->cpu_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (sb->cpu_timer < 0)
			return spr_fail_errno(err, SPR_LAYER_CGROUP, "timerfd_create");
	}
	if (sb->cg.version == SPR_CG_V1) {
		/* v1 counts pids-limit hits but never signals them: look every
		 * 50 ms (one small read), so a fork bomb ends within that. */
		sb->pids_timer = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		struct itimerspec every = {{0, 50 * 1000 * 1000}, {0, 50 * 1000 * 1000}};
		if (sb->pids_timer < 0 || timerfd_settime(sb->pids_timer, 0, &every, NULL) < 0)
			return spr_fail_errno(err, SPR_LAYER_CGROUP, "timerfd for pids.events");
	}
	return 0;
}

/* After the report: the host is no longer waiting for us. */
static void finish_cgroup(struct sandbox *sb)
{
	if (sb->applied.cgroup)
		spr_cg_run_remove(&sb->cg, NULL);
}

static int start_run(struct sandbox *sb, spr_error **err)
{
	_cleanup_error_ spr_error *ns_err = NULL;
	int rc = start_in_namespaces(sb, &ns_err);
	if (rc == 0)
		return 0;
	/* Only a refused namespace may degrade, and only when asked. */
	if (rc < 0 || !sb->plan->allow_degraded) {
		*err = steal_pointer(&ns_err);
		return -1;
	}
	return start_degraded(sb, err);
}

int spr_sandbox_monitor(pid_t parent)
{
	SPR_CLEANUP(sandbox_free) struct sandbox sb = {
		.parent = parent, .sigfd = -1, .report = {.fd = -1}, .cpu_timer = -1,
		.pids_timer = -1, .ns_hold = {-1, -1}, .cg = SPR_CG_RUN_INIT,
		.bind_fds = {[0 ... SPR_PLAN_MAX_MOUNTS - 1] = -1}, .lease = SPR_UID_LEASE_INIT};
	_cleanup_error_ spr_error *err = NULL;

	if (check_descriptors() < 0)
		return 125; /* not started by libspr: nobody to report to */
	if (die_with_parent(&sb, &err) < 0 || read_plan(&sb, &err) < 0 ||
	    become_subreaper(&err) < 0 || watch_signals(&sb, &err) < 0 ||
	    make_cgroup(&sb, &err) < 0 || start_run(&sb, &err) < 0) {
		report_error(err);
		finish_cgroup(&sb);
		return 125;
	}
	report_started(&sb);
	release_run_streams();
	supervise(&sb);
	if (!sb.run_over)
		sweep(&sb);
	if (sb.applied.cgroup)
		spr_cg_run_stats(&sb.cg, &sb.cg_stats);
	report_exit(&sb);
	if (sb.run_over)
		sweep(&sb); /* init, exiting by itself */
	release_namespaces(&sb);
	finish_cgroup(&sb);
	return 0;
}
