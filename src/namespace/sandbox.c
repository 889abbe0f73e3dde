/* spr-sandbox: sets up one run, supervises it, kills what is left of it,
 * and reports to the host over the control socket. The setup sequence in
 * spr_sandbox_main() is the checklist; each step is a small function. */
#include "namespace/sandbox.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "json.h"

struct rlimit_setting {
	int resource;
	const char *name;   /* in the plan */
	bool set;
	struct rlimit value;
};

struct sandbox {
	pid_t parent;
	cJSON *plan;
	char **argv;  /* point into plan */
	char **envp;
	struct rlimit_setting limits[6];
	char workdir[PATH_MAX];
	char env_home[PATH_MAX + 8], env_tmpdir[PATH_MAX + 8];
	int sigfd;
	pid_t worker;
	bool have_status;
	int status;
};

/* ---- reporting ------------------------------------------------------- */

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

static void report_started(pid_t pid)
{
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "event", "started");
	cJSON_AddNumberToObject(m, "pid", pid);
	send_json(m);
}

static void report_exit(const struct sandbox *sb)
{
	struct rusage ru = {0};
	getrusage(RUSAGE_CHILDREN, &ru);
	cJSON *m = cJSON_CreateObject();
	cJSON_AddStringToObject(m, "event", "exit");
	cJSON_AddNumberToObject(m, "status", sb->have_status ? sb->status : -1);
	cJSON_AddNumberToObject(m, "maxrss_kb", (double)ru.ru_maxrss);
	cJSON_AddNumberToObject(m, "utime_us",
				(double)ru.ru_utime.tv_sec * 1e6 + (double)ru.ru_utime.tv_usec);
	cJSON_AddNumberToObject(m, "stime_us",
				(double)ru.ru_stime.tv_sec * 1e6 + (double)ru.ru_stime.tv_usec);
	send_json(m);
}

/* ---- setup steps ------------------------------------------------------ */

static int check_descriptors(void)
{
	for (int fd = 0; fd < SPR_SANDBOX_NFDS; fd++)
		if (fcntl(fd, F_GETFD) < 0)
			return -1;
	/* Anything else the caller leaked to us must not reach the code. */
	close_range(SPR_SANDBOX_NFDS, ~0U, 0);
	return 0;
}

/* If the host dies, so does the run: PDEATHSIG, then a re-check in case
 * the parent died before the prctl took effect. */
static int die_with_parent(struct sandbox *sb, spr_error **err)
{
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "prctl(PR_SET_PDEATHSIG)");
	if (getppid() != sb->parent)
		return spr_fail(err, SPR_LAYER_SANDBOX, ESRCH, "the calling process has exited");
	return 0;
}

/* A NULL-terminated vector of the array's strings, with `spare` free slots
 * before the terminator. */
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
	} known[] = {
		{RLIMIT_AS, "as"},	 {RLIMIT_NOFILE, "nofile"}, {RLIMIT_FSIZE, "fsize"},
		{RLIMIT_CORE, "core"}, {RLIMIT_NPROC, "nproc"},   {RLIMIT_CPU, "cpu"},
	};
	_Static_assert(ARRAY_SIZE(known) == ARRAY_SIZE(((struct sandbox *)0)->limits), "limits");
	for (size_t i = 0; i < ARRAY_SIZE(known); i++) {
		struct rlimit_setting *s = &sb->limits[i];
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
	return read_rlimits(sb, cJSON_GetObjectItemCaseSensitive(sb->plan, "rlimits"), err);
}

/* Orphans of the run (double-forked daemons) are re-parented to us, so
 * the sweep after the run can find and kill them. */
static int become_subreaper(spr_error **err)
{
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "prctl(PR_SET_CHILD_SUBREAPER)");
	return 0;
}

/* SIGCHLD tells us the worker ended; SIGTERM/SIGINT/SIGHUP (a terminal's
 * ^C reaches the whole process group) kill the run cleanly. */
static int watch_signals(struct sandbox *sb, sigset_t *saved, spr_error **err)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, saved) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "sigprocmask");
	sb->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sb->sigfd < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "signalfd");
	return 0;
}

/* The run's private working directory (and $HOME, $TMPDIR). */
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
	/* The code's $HOME and $TMPDIR: the only place it may write. */
	snprintf(sb->env_home, sizeof(sb->env_home), "HOME=%s", sb->workdir);
	snprintf(sb->env_tmpdir, sizeof(sb->env_tmpdir), "TMPDIR=%s", sb->workdir);
	char **end = sb->envp;
	while (*end)
		end++;
	end[0] = sb->env_home;
	end[1] = sb->env_tmpdir;
	return 0;
}

/* ---- the worker ---------------------------------------------------------- */

enum child_step { STEP_SETSID = 1, STEP_PDEATHSIG, STEP_CHDIR, STEP_RLIMIT, STEP_EXEC };

struct child_failure {
	int step;
	int errnum;
	int detail; /* index into limits for STEP_RLIMIT */
};

static void child_fail(int fd, int step, int detail)
{
	struct child_failure f = {step, errno, detail};
	ssize_t unused = write(fd, &f, sizeof(f));
	(void)unused;
	_exit(127);
}

/* Runs in the forked child: the last steps before the interpreter. */
__attribute__((noreturn)) static void exec_worker(struct sandbox *sb, const sigset_t *saved,
						  int status_fd)
{
	if (setsid() < 0)
		child_fail(status_fd, STEP_SETSID, 0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(status_fd, STEP_PDEATHSIG, 0);
	if (chdir(sb->workdir) < 0)
		child_fail(status_fd, STEP_CHDIR, 0);
	for (size_t i = 0; i < ARRAY_SIZE(sb->limits); i++)
		if (sb->limits[i].set && setrlimit(sb->limits[i].resource, &sb->limits[i].value) < 0)
			child_fail(status_fd, STEP_RLIMIT, (int)i);
	/* Only the four worker descriptors survive exec. */
	close_range(SPR_FD_CTRL, ~0U, CLOSE_RANGE_CLOEXEC);
	sigprocmask(SIG_SETMASK, saved, NULL);
	execve(sb->argv[0], sb->argv, sb->envp);
	child_fail(status_fd, STEP_EXEC, 0);
	_exit(127);
}

static int describe_child_failure(const struct sandbox *sb, const struct child_failure *f,
				  spr_error **err)
{
	errno = f->errnum;
	switch (f->step) {
	case STEP_EXEC:
		return spr_fail_errno(err, SPR_LAYER_SANDBOX,
				      "cannot execute the interpreter %s (pass an existing "
				      "interpreter with --python PATH)",
				      sb->argv[0]);
	case STEP_RLIMIT: {
		const struct rlimit_setting *s = &sb->limits[f->detail];
		return spr_fail_errno(err, SPR_LAYER_SANDBOX,
				      "setrlimit(%s, %llu) failed (the caller's hard limit is "
				      "lower? check `ulimit -a`)",
				      s->name, (unsigned long long)s->value.rlim_max);
	}
	case STEP_CHDIR:
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "chdir(%s)", sb->workdir);
	case STEP_SETSID:
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "setsid");
	default:
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "prctl(PR_SET_PDEATHSIG) in the worker");
	}
}

static int spawn_worker(struct sandbox *sb, const sigset_t *saved, spr_error **err)
{
	int status_pipe[2];
	if (pipe2(status_pipe, O_CLOEXEC) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pipe2");
	_cleanup_close_ int status_rd = status_pipe[0];
	_cleanup_close_ int status_wr = status_pipe[1];

	pid_t pid = fork();
	if (pid < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "fork");
	if (pid == 0)
		exec_worker(sb, saved, status_wr);
	sb->worker = pid;
	close(steal_fd(&status_wr));

	/* EOF: exec succeeded (the pipe is close-on-exec). */
	struct child_failure f;
	ssize_t n;
	do
		n = read(status_rd, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(f)) {
		waitpid(pid, NULL, 0);
		sb->worker = 0;
		return describe_child_failure(sb, &f, err);
	}
	return 0;
}

/* ---- supervision and the sweep -------------------------------------------- */

static bool reap_worker(struct sandbox *sb, int flags)
{
	int st;
	pid_t r;
	do
		r = waitpid(sb->worker, &st, flags | __WALL);
	while (r < 0 && errno == EINTR);
	if (r == sb->worker) {
		sb->status = st;
		sb->have_status = true;
		return true;
	}
	return false;
}

/* Waits until the worker exits or the host asks for (or forces) a kill.
 * Returns true when the run must be killed. */
static bool supervise(struct sandbox *sb)
{
	struct pollfd fds[2] = {
		{.fd = sb->sigfd, .events = POLLIN},
		{.fd = SPR_FD_CTRL, .events = POLLIN},
	};
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return true;
		}
		if (fds[0].revents) {
			struct signalfd_siginfo si;
			bool stop = false;
			while (read(sb->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				if (si.ssi_signo != SIGCHLD)
					stop = true;
			if (stop)
				return true;
			if (reap_worker(sb, WNOHANG))
				return false;
		}
		if (fds[1].revents) {
			/* Any message ("kill"), EOF or error from the host: stop. */
			char buf[64];
			ssize_t n = recv(SPR_FD_CTRL, buf, sizeof(buf), MSG_DONTWAIT);
			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			return true;
		}
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

/* Kills the whole tree: the worker's process group, then every process
 * that ends up as our child, until none is left. */
static void sweep(struct sandbox *sb)
{
	if (sb->worker > 0 && !sb->have_status)
		kill(-sb->worker, SIGKILL);
	for (;;) {
		kill_children();
		int st;
		pid_t r = waitpid(-1, &st, __WALL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break; /* ECHILD: nothing left */
		}
		if (r == sb->worker && !sb->have_status) {
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
		int sub = openat(dirfd, de->d_name,
				 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
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
	spr_closep(&sb->sigfd);
	free(sb->argv);
	free(sb->envp);
	cJSON_Delete(sb->plan);
}

/* ---- the checklist --------------------------------------------------------- */

int spr_sandbox_main(int argc, char **argv)
{
	__attribute__((cleanup(sandbox_free))) struct sandbox sb = {.sigfd = -1};
	_cleanup_error_ spr_error *err = NULL;
	sigset_t saved;

	if (check_descriptors() < 0)
		return 125; /* not started by libspr: nobody to report to */
	if (argc != 2 || (sb.parent = (pid_t)atoi(argv[1])) <= 1) {
		spr_fail(&err, SPR_LAYER_SANDBOX, EINVAL,
			 "usage: spr-sandbox PARENT_PID (started by libspr only)");
		report_error(err);
		return 125;
	}
	if (die_with_parent(&sb, &err) < 0 || read_plan(&sb, &err) < 0 ||
	    become_subreaper(&err) < 0 || watch_signals(&sb, &saved, &err) < 0 ||
	    make_workdir(&sb, &err) < 0 || spawn_worker(&sb, &saved, &err) < 0) {
		report_error(err);
		return 125;
	}
	report_started(sb.worker);
	supervise(&sb);
	sweep(&sb);
	report_exit(&sb);
	return 0;
}
