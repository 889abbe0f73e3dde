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
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "base64.h"
#include "cgroup/cgroup.h"
#include "json.h"
#include "namespace/internal.h"

struct applied {
	bool namespaces, network_shared;
	int landlock_abi;
	int seccomp; /* as struct spr_worker_setup */
	enum spr_cg_version cgroup;
};

struct sandbox {
	pid_t parent;
	cJSON *plan;
	const cJSON *layout; /* plan.sandbox: NULL means "no namespaces wanted" */
	bool allow_degraded;
	char **argv, **envp;
	size_t env_count; /* plan entries; HOME and TMPDIR follow them */
	struct spr_rlimit_setting limits[SPR_NLIMITS];
	spr_buf bpf, bpf_no_unix;
	cJSON *degraded_write; /* Landlock write list incl. the run directory */
	char workdir[PATH_MAX];
	char env_home[PATH_MAX + 8], env_tmpdir[PATH_MAX + 8];
	int sigfd;
	sigset_t saved_mask;
	pid_t child;	/* init (namespaces) or the worker (degraded) */
	int report_fd;	/* init's reports, -1 in degraded mode */
	spr_buf report;
	bool have_status;
	int status;
	long maxrss_kb;
	struct applied applied;
	const cJSON *cg_plan;	   /* plan.cgroup: NULL when no cgroup is used */
	struct spr_cg_run cg;
	struct spr_cg_stats cg_stats;
	bool cpu_limit_hit;
	int cpu_timer;		   /* fires when the CPU-time budget may be spent */
	int pids_timer;		   /* v1: pids.events has no notification; look often */
	int ns_hold[2];		   /* the run's mount and network namespaces */
	bool run_over;		   /* init saw the worker end with nothing else left */
};

/* ---- talking to the host ------------------------------------------------- */

static void send_json(cJSON *msg)
{
	char *text = msg ? cJSON_PrintUnformatted(msg) : NULL;
	if (text)
		send(SPR_FD_CTRL, text, strlen(text), MSG_NOSIGNAL);
	free(text);
	cJSON_Delete(msg);
}

static void report_error(const spr_error *err)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "event", "error");
	cJSON_AddStringToObject(m, "layer", spr_layer_name(err->layer));
	cJSON_AddNumberToObject(m, "errno", err->errnum);
	cJSON_AddStringToObject(m, "message", err->message);
	send_json(m);
}

static void report_started(const struct sandbox *sb)
{
	const struct applied *a = &sb->applied;
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "event", "started");
	cJSON_AddNumberToObject(m, "pid", sb->child);
	cJSON_AddBoolToObject(m, "namespaces", a->namespaces);
	cJSON_AddBoolToObject(m, "network_shared", a->network_shared);
	cJSON_AddNumberToObject(m, "landlock_abi", a->landlock_abi);
	cJSON_AddNumberToObject(m, "seccomp", a->seccomp);
	cJSON_AddNumberToObject(m, "cgroup", a->cgroup);
	send_json(m);
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
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "event", "exit");
	cJSON_AddNumberToObject(m, "status", sb->have_status ? sb->status : -1);
	/* The cgroup's peak counts every process of the run; rusage only the
	 * largest one. */
	cJSON_AddNumberToObject(m, "maxrss_kb",
				(double)(cg->memory_peak_kb >= 0 && sb->applied.cgroup ? cg->memory_peak_kb
										: maxrss));
	cJSON_AddBoolToObject(m, "oom_killed", cg->oom_killed);
	cJSON_AddBoolToObject(m, "pids_limit_hit", cg->pids_limit_hit);
	cJSON_AddBoolToObject(m, "cpu_limit_hit", sb->cpu_limit_hit);
	if (cg->cpu_usage_us >= 0 && sb->applied.cgroup)
		cJSON_AddNumberToObject(m, "cpu_usage_us", (double)cg->cpu_usage_us);
	send_json(m);
}

/* ---- the plan --------------------------------------------------------------- */

static char **string_vector(const cJSON *array, size_t spare)
{
	if (!cJSON_IsArray(array))
		return NULL;
	int n = cJSON_GetArraySize(array);
	char **v = calloc((size_t)n + spare + 1, sizeof(*v));
	int i = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, array)
	{
		if (!v || !cJSON_IsString(item)) {
			free(v);
			return NULL;
		}
		v[i++] = item->valuestring;
	}
	return v;
}

static int read_rlimits(struct sandbox *sb, const cJSON *limits, spr_error **err)
{
	static const struct {
		int resource;
		const char *name;
	} known[SPR_NLIMITS] = {
		{RLIMIT_AS, "as"},     {RLIMIT_NOFILE, "nofile"}, {RLIMIT_FSIZE, "fsize"},
		{RLIMIT_CORE, "core"}, {RLIMIT_NPROC, "nproc"},   {RLIMIT_CPU, "cpu"},
	};
	for (size_t i = 0; i < SPR_NLIMITS; i++) {
		struct spr_rlimit_setting *s = &sb->limits[i];
		s->resource = known[i].resource;
		s->name = known[i].name;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(limits, known[i].name);
		if (!v)
			continue;
		const cJSON *soft = cJSON_GetArrayItem(v, 0), *hard = cJSON_GetArrayItem(v, 1);
		if (!cJSON_IsNumber(soft) || !cJSON_IsNumber(hard))
			return spr_fail(err, SPR_LAYER_SANDBOX, EINVAL,
					"plan: rlimit '%s' must be [soft, hard]", known[i].name);
		s->set = true;
		s->value.rlim_cur = (rlim_t)soft->valuedouble;
		s->value.rlim_max = (rlim_t)hard->valuedouble;
	}
	return 0;
}

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
	sb->plan = cJSON_ParseWithLength(msg, (size_t)n);
	if (!cJSON_IsObject(sb->plan))
		return spr_fail(err, SPR_LAYER_SANDBOX, EINVAL, "plan is not a JSON object");
	sb->argv = string_vector(cJSON_GetObjectItemCaseSensitive(sb->plan, "argv"), 0);
	sb->envp = string_vector(cJSON_GetObjectItemCaseSensitive(sb->plan, "env"), 2);
	if (!sb->argv || !sb->argv[0] || !sb->envp)
		return spr_fail(err, SPR_LAYER_SANDBOX, EINVAL,
				"plan: 'argv' and 'env' must be arrays of strings");
	while (sb->envp[sb->env_count])
		sb->env_count++;
	const cJSON *cg = cJSON_GetObjectItemCaseSensitive(sb->plan, "cgroup");
	sb->cg_plan = cJSON_IsObject(cg) ? cg : NULL;
	const cJSON *layout = cJSON_GetObjectItemCaseSensitive(sb->plan, "sandbox");
	sb->layout = cJSON_IsObject(layout) ? layout : NULL;
	sb->allow_degraded =
		cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sb->plan, "allow_degraded"));
	const cJSON *bpf = cJSON_GetObjectItemCaseSensitive(sb->plan, "seccomp_bpf");
	const cJSON *no_unix = cJSON_GetObjectItemCaseSensitive(sb->plan, "seccomp_bpf_no_unix");
	if ((cJSON_IsString(bpf) &&
	     spr_base64_decode(&sb->bpf, bpf->valuestring, strlen(bpf->valuestring)) < 0) ||
	    (cJSON_IsString(no_unix) &&
	     spr_base64_decode(&sb->bpf_no_unix, no_unix->valuestring,
			       strlen(no_unix->valuestring)) < 0))
		return spr_fail(err, SPR_LAYER_SECCOMP, EINVAL, "plan: malformed seccomp program");
	return read_rlimits(sb, cJSON_GetObjectItemCaseSensitive(sb->plan, "rlimits"), err);
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
	struct spr_worker_spec w = {
		.gate_fd = -1,
		.argv = sb->argv,
		.envp = sb->envp,
		.workdir = workdir,
		.limits = sb->limits,
		.bpf = sb->bpf.len ? sb->bpf.data : NULL,
		.bpf_len = sb->bpf.len,
		.bpf_no_unix = sb->bpf_no_unix.len ? sb->bpf_no_unix.data : NULL,
		.bpf_no_unix_len = sb->bpf_no_unix.len,
		.allow_degraded = sb->allow_degraded,
		.saved_mask = sb->saved_mask,
	};
	return w;
}

static const cJSON *plan_landlock(const cJSON *from, const char *which)
{
	const cJSON *ll = cJSON_GetObjectItemCaseSensitive(from, "landlock");
	return cJSON_GetObjectItemCaseSensitive(ll, which);
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

static int read_report_line(struct sandbox *sb, char **line)
{
	for (;;) {
		char *nl = sb->report.data ? memchr(sb->report.data, '\n', sb->report.len) : NULL;
		if (nl) {
			*nl = '\0';
			*line = strdup(sb->report.data);
			size_t rest = sb->report.len - (size_t)(nl + 1 - sb->report.data);
			memmove(sb->report.data, nl + 1, rest);
			sb->report.len = rest;
			sb->report.data[rest] = '\0';
			return *line ? 1 : -1;
		}
		char chunk[1024];
		ssize_t n = read(sb->report_fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return 0;
		spr_buf_append(&sb->report, chunk, (size_t)n);
	}
}

static int parse_init_error(const char *line, spr_error **err)
{
	char layer[32] = "";
	int errnum = 0, consumed = 0;
	if (sscanf(line, "error %31s %d %n", layer, &errnum, &consumed) < 2)
		return spr_fail(err, SPR_LAYER_SANDBOX, EPROTO, "sandbox init: %s", line);
	spr_layer l = SPR_LAYER_NAMESPACE;
	for (int i = SPR_LAYER_API; i <= SPR_LAYER_WORKER; i++)
		if (!strcmp(spr_layer_name((spr_layer)i), layer))
			l = (spr_layer)i;
	return spr_fail(err, l, errnum, "%s", line + consumed);
}

static void kill_and_reap(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
		;
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
	cJSON *op;
	cJSON_ArrayForEach(op, cJSON_GetObjectItemCaseSensitive(sb->layout, "mounts"))
	{
		const cJSON *kind = cJSON_GetObjectItemCaseSensitive(op, "op");
		const cJSON *src = cJSON_GetObjectItemCaseSensitive(op, "src");
		const cJSON *flags = cJSON_GetObjectItemCaseSensitive(op, "flags");
		if (!cJSON_IsString(kind) || strcmp(kind->valuestring, "bind") || !cJSON_IsString(src))
			continue;
		int fd = open_tree(AT_FDCWD, src->valuestring,
				   OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
		if (fd < 0 && errno == ENOSYS)
			return 0; /* before Linux 5.2: init binds by path */
		if (fd < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
					      "cannot open %s to show it in the sandbox",
					      src->valuestring);
		bool dev = cJSON_IsString(flags) && !strcmp(flags->valuestring, "dev");
		struct mount_attr attr = {
			.attr_set = dev ? MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC
					: MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
		};
		if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0) {
			close(fd);
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "setting flags on %s",
					      src->valuestring);
		}
		cJSON_AddNumberToObject(op, "fd", fd);
	}
	return 0;
}

static void close_bind_sources(struct sandbox *sb)
{
	cJSON *op;
	cJSON_ArrayForEach(op, cJSON_GetObjectItemCaseSensitive(sb->layout, "mounts"))
	{
		const cJSON *fd = cJSON_GetObjectItemCaseSensitive(op, "fd");
		if (cJSON_IsNumber(fd))
			close(fd->valueint);
	}
}

/* Returns 1 when the namespaces could not be created at all (the caller
 * may degrade), 0 on success, -1 on any other failure. */
static int start_in_namespaces(struct sandbox *sb, spr_error **err)
{
	const cJSON *ids = cJSON_GetObjectItemCaseSensitive(sb->layout, "ids");
	struct spr_idmap map = {
		.uid = (uid_t)cJSON_GetObjectItemCaseSensitive(ids, "uid")->valuedouble,
		.gid = (gid_t)cJSON_GetObjectItemCaseSensitive(ids, "gid")->valuedouble,
		.outside_uid = (uid_t)cJSON_GetObjectItemCaseSensitive(ids, "outside_uid")->valuedouble,
		.outside_gid = (gid_t)cJSON_GetObjectItemCaseSensitive(ids, "outside_gid")->valuedouble,
	};
	bool network = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sb->layout, "network"));
	unsigned long flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC |
			      CLONE_NEWUTS | CLONE_NEWCGROUP | (network ? 0 : CLONE_NEWNET);
	int sync[2], rep[2];
	if (spr_userns_drop_groups(err) < 0 || open_bind_sources(sb, err) < 0)
		return -1;
	if (pipe2(sync, O_CLOEXEC) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pipe2");
	if (pipe2(rep, O_CLOEXEC) < 0) {
		close(sync[0]);
		close(sync[1]);
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pipe2");
	}
	set_env_dirs(sb, "/tmp");
	struct spr_worker_spec w = worker_spec(sb, "/tmp");
	w.drop_caps = true;
	w.network_shared = network;
	w.landlock_read = plan_landlock(sb->layout, "read");
	w.landlock_write = plan_landlock(sb->layout, "write");

	bool placed = false;
	pid_t pid = clone_namespaces(flags, sb->applied.cgroup ? sb->cg.v2_fd : -1, &placed);
	if (pid == 0) {
		close(sync[1]);
		close(rep[0]);
		struct spr_init_spec spec = {.worker = &w, .layout = sb->layout,
					     .sync_fd = sync[0], .report_fd = rep[1],
					     .cg = sb->applied.cgroup ? &sb->cg : NULL};
		spr_init_main(&spec);
	}
	int clone_errno = errno;
	close_bind_sources(sb);
	close(sync[0]);
	close(rep[1]);
	_cleanup_close_ int go = sync[1];
	if (pid < 0) {
		close(rep[0]);
		spr_userns_explain(clone_errno, err);
		return 1;
	}
	sb->child = pid;
	sb->report_fd = rep[0];
	hold_namespaces(sb, pid);
	/* v1: init moves itself in (spr_cg_run_enter), first thing. */
	if ((sb->applied.cgroup && !placed && !spr_cg_run_self_enter(&sb->cg) &&
	     spr_cg_run_attach(&sb->cg, pid, err) < 0) ||
	    spr_userns_write_maps(pid, &map, err) < 0) {
		kill_and_reap(pid);
		sb->child = 0;
		return -1;
	}
	if (write(go, "G", 1) != 1) {
		/* init already gave up: its report says why. */
		int saved = errno;
		_cleanup_free_ char *why = NULL;
		bool told = read_report_line(sb, &why) > 0 && !strncmp(why, "error ", 6);
		kill_and_reap(pid);
		sb->child = 0;
		if (told)
			return parse_init_error(why, err);
		errno = saved;
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "starting the sandbox init");
	}
	_cleanup_free_ char *line = NULL;
	int rc = read_report_line(sb, &line);
	int landlock = 0, seccomp = 0;
	if (rc > 0 && sscanf(line, "started %d %d", &landlock, &seccomp) == 2) {
		sb->applied.namespaces = true;
		sb->applied.network_shared = network;
		sb->applied.landlock_abi = landlock;
		sb->applied.seccomp = seccomp;
		spr_cg_run_close_tasks(&sb->cg); /* init is in: not needed anymore */
		/* From now on reports are read when poll says so (supervise). */
		fcntl(sb->report_fd, F_SETFL, fcntl(sb->report_fd, F_GETFL) | O_NONBLOCK);
		return 0;
	}
	kill_and_reap(pid);
	sb->child = 0;
	if (rc > 0)
		return parse_init_error(line, err);
	return spr_fail(err, SPR_LAYER_SANDBOX, EPIPE, "the sandbox init exited during setup");
}

/* ---- degraded: no namespaces ----------------------------------------------------- */

static int make_workdir(struct sandbox *sb, spr_error **err)
{
	const cJSON *parent = cJSON_GetObjectItemCaseSensitive(sb->plan, "workdir_parent");
	const char *dir = cJSON_IsString(parent) ? parent->valuestring : "/tmp";
	int n = snprintf(sb->workdir, sizeof(sb->workdir), "%s/spr-run-XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(sb->workdir))
		return spr_fail(err, SPR_LAYER_SANDBOX, ENAMETOOLONG, "workdir path too long");
	if (!mkdtemp(sb->workdir)) {
		int e = errno;
		sb->workdir[0] = '\0';
		errno = e;
		return spr_fail_errno(err, SPR_LAYER_SANDBOX,
				      "cannot create the run directory under %s (is it writable? "
				      "set TMPDIR)",
				      dir);
	}
	set_env_dirs(sb, sb->workdir);
	return 0;
}

static int start_degraded(struct sandbox *sb, spr_error **err)
{
	const cJSON *degraded = cJSON_GetObjectItemCaseSensitive(sb->plan, "degraded");
	if (make_workdir(sb, err) < 0)
		return -1;
	/* The worker by its host path (argv ends with the in-sandbox one). */
	const cJSON *worker = cJSON_GetObjectItemCaseSensitive(degraded, "worker");
	if (cJSON_IsString(worker)) {
		char **last = sb->argv;
		while (last[1])
			last++;
		*last = worker->valuestring;
	}
	struct spr_worker_spec w = worker_spec(sb, sb->workdir);
	w.parent = getpid();
	w.network_shared = true; /* no network namespace */
	w.cg = sb->applied.cgroup ? &sb->cg : NULL;
	if (degraded) {
		const cJSON *run_as = cJSON_GetObjectItemCaseSensitive(degraded, "run_as");
		if (cJSON_IsObject(run_as)) {
			/* Root without namespaces: run the code as nobody. */
			w.become = true;
			w.uid = (uid_t)cJSON_GetObjectItemCaseSensitive(run_as, "uid")->valuedouble;
			w.gid = (gid_t)cJSON_GetObjectItemCaseSensitive(run_as, "gid")->valuedouble;
			if (chown(sb->workdir, w.uid, w.gid) < 0)
				return spr_fail_errno(err, SPR_LAYER_SANDBOX, "chown %s",
						      sb->workdir);
		}
		sb->degraded_write = cJSON_Duplicate(plan_landlock(degraded, "write"), true);
		if (!sb->degraded_write)
			sb->degraded_write = cJSON_CreateArray();
		cJSON_AddItemToArray(sb->degraded_write, cJSON_CreateString(sb->workdir));
		w.landlock_read = plan_landlock(degraded, "read");
		w.landlock_write = sb->degraded_write;
	}
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
	struct spr_worker_setup setup;
	if (rc == 0)
		rc = spr_worker_status(status_pipe[0], &setup, err);
	close(status_pipe[0]);
	if (rc < 0) {
		kill_and_reap(pid);
		sb->child = 0;
		return -1;
	}
	sb->applied.network_shared = true;
	sb->applied.landlock_abi = setup.landlock_abi;
	sb->applied.seccomp = setup.seccomp;
	return 0;
}

/* ---- supervision -------------------------------------------------------------------- */

static void on_report(struct sandbox *sb)
{
	_cleanup_free_ char *line = NULL;
	while (sb->report_fd >= 0 && read_report_line(sb, &line) > 0) {
		int st = -1, alone = 0;
		long rss = 0;
		if (sscanf(line, "exit %d %ld %d", &st, &rss, &alone) >= 2 && st >= 0) {
			sb->status = st;
			sb->have_status = true;
			sb->maxrss_kb = rss;
			sb->run_over = alone == 1;
		}
		free(steal_pointer(&line));
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
	if (sb->report_fd >= 0)
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
	struct itimerspec its = {.it_value = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)}};
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
			{.fd = killing ? -1 : sb->report_fd, .events = POLLIN},
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
			if (sb->report_fd < 0)
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

/* Nothing the code started survives the run. With namespaces the kernel
 * already killed the pid namespace; this also covers the degraded mode. */
static void sweep(struct sandbox *sb)
{
	if (sb->child > 0)
		kill(-sb->child, SIGKILL);
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

/* Removes the run directory without following anything the code planted. */
static void remove_tree_at(int dirfd)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		close(dirfd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(dirfd, de->d_name, 0) == 0)
			continue;
		int sub = openat(dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub >= 0) {
			fchmod(sub, 0700);
			remove_tree_at(sub);
		}
		unlinkat(dirfd, de->d_name, AT_REMOVEDIR);
	}
	closedir(d);
}

static void remove_workdir(struct sandbox *sb)
{
	if (!sb->workdir[0])
		return;
	int fd = open(sb->workdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		fchmod(fd, 0700);
		remove_tree_at(fd);
	}
	rmdir(sb->workdir);
	sb->workdir[0] = '\0';
}

static void sandbox_free(struct sandbox *sb)
{
	remove_workdir(sb);
	spr_cg_run_free(&sb->cg);
	spr_closep(&sb->cpu_timer);
	spr_closep(&sb->pids_timer);
	release_namespaces(sb);
	spr_closep(&sb->sigfd);
	spr_closep(&sb->report_fd);
	spr_buf_free(&sb->report);
	spr_buf_free(&sb->bpf);
	spr_buf_free(&sb->bpf_no_unix);
	cJSON_Delete(sb->degraded_write);
	free(sb->argv);
	free(sb->envp);
	cJSON_Delete(sb->plan);
}

/* ---- the checklist -------------------------------------------------------------------- */

/* The run's cgroup, before anything of the run exists. When it cannot be
 * made and the caller allowed degrading, RLIMIT_AS stands in for the
 * memory limit (and isolation says cgroup "none"). */
static int make_cgroup(struct sandbox *sb, spr_error **err)
{
	if (!sb->cg_plan)
		return 0;
	_cleanup_error_ spr_error *cg_err = NULL;
	if (spr_cg_run_create(&sb->cg, sb->cg_plan, &cg_err) < 0) {
		spr_cg_run_remove(&sb->cg, NULL);
		spr_cg_run_free(&sb->cg);
		if (!sb->allow_degraded) {
			*err = steal_pointer(&cg_err);
			return -1;
		}
		const cJSON *mem = cJSON_GetObjectItemCaseSensitive(sb->cg_plan, "memory_bytes");
		struct spr_rlimit_setting *as = &sb->limits[0]; /* RLIMIT_AS, see read_rlimits */
		if (cJSON_IsNumber(mem) && as->resource == RLIMIT_AS) {
			as->set = true;
			as->value.rlim_cur = as->value.rlim_max = (rlim_t)mem->valuedouble;
		}
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
	if (sb->layout) {
		_cleanup_error_ spr_error *ns_err = NULL;
		int rc = start_in_namespaces(sb, &ns_err);
		if (rc == 0)
			return 0;
		/* Only a refused namespace may degrade, and only when asked. */
		if (rc < 0 || !sb->allow_degraded) {
			*err = steal_pointer(&ns_err);
			return -1;
		}
	}
	return start_degraded(sb, err);
}

int spr_sandbox_monitor(pid_t parent)
{
	__attribute__((cleanup(sandbox_free))) struct sandbox sb = {
		.parent = parent, .sigfd = -1, .report_fd = -1, .cpu_timer = -1, .pids_timer = -1,
		.ns_hold = {-1, -1}, .cg = SPR_CG_RUN_INIT};
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
