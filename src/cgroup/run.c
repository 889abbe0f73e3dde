/* One run's cgroup, in spr-sandbox's monitor: create, limit, place,
 * watch, measure, kill, remove. */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>

#include "cgroup/cgroup.h"
#include "proc.h"

static bool exists(const char *dir, const char *file)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	return access(path, F_OK) == 0;
}

/* Reads "key N" from a flat-keyed file (memory.events, pids.events,
 * memory.oom_control, cpu.stat); -1 when absent. */
static int64_t read_key(const char *dir, const char *file, const char *key)
{
	char path[PATH_MAX], line[256];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	size_t kl = strlen(key);
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ' ')
			return strtoll(line + kl + 1, NULL, 10);
	return -1;
}

static int64_t read_number(const char *dir, const char *file)
{
	char path[PATH_MAX], line[64];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || !fgets(line, sizeof(line), f))
		return -1;
	return strtoll(line, NULL, 10);
}

/* run-<pid>-<start time>: unique, and tells `spr cleanup` / the next
 * engine whether the monitor that made it is still alive. */
static void run_name(char *buf, size_t size)
{
	char state;
	unsigned long long start = 0;
	spr_proc_identity(getpid(), &state, &start);
	snprintf(buf, size, "run-%d-%llu", (int)getpid(), start);
}

/* mkdir <base>/spr and <base>/spr/<name>. A concurrent run may remove an
 * empty spr/ between the two steps: retry. */
static int make_run_dir(const char *base, const char *name, bool v2, char **out, spr_error **err)
{
	char spr[PATH_MAX];
	snprintf(spr, sizeof(spr), "%s/spr", base);
	for (int attempt = 0; attempt < 5; attempt++) {
		if (mkdir(spr, 0755) < 0 && errno != EEXIST)
			return spr_fail_errno(err, SPR_LAYER_CGROUP,
					      "creating %s (is %s writable for uid %d?)", spr, base,
					      (int)geteuid());
		if (v2 && (spr_cg_v2_enable_controllers(base, err) < 0 ||
			   spr_cg_v2_enable_controllers(spr, err) < 0))
			return -1;
		if (asprintf(out, "%s/%s", spr, name) < 0)
			return spr_fail_oom(err);
		if (mkdir(*out, 0755) == 0)
			return 0;
		int e = errno;
		free(*out);
		*out = NULL;
		if (e != ENOENT) {
			errno = e;
			return spr_fail_errno(err, SPR_LAYER_CGROUP, "creating the run cgroup in %s",
					      spr);
		}
	}
	return spr_fail(err, SPR_LAYER_CGROUP, EAGAIN, "creating the run cgroup in %s kept racing",
			spr);
}

static int set_limit(const char *dir, const char *file, const char *value, spr_error **err)
{
	if (spr_cg_write_file(dir, file, value) < 0)
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "writing %s to %s/%s", value, dir, file);
	return 0;
}

static int create_v2(struct spr_cg_run *run, const struct spr_cgroup_plan *plan,
		     const char *base, const char *name, spr_error **err)
{
	if (make_run_dir(base, name, true, &run->dir[0], err) < 0)
		return -1;
	const char *dir = run->dir[0];
	char v[64];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)plan->memory_bytes);
	if (set_limit(dir, "memory.max", v, err) < 0)
		return -1;
	/* No swap: a memory limit that swaps is no limit. */
	if (exists(dir, "memory.swap.max") && set_limit(dir, "memory.swap.max", "0", err) < 0)
		return -1;
	snprintf(v, sizeof(v), "%lld", (long long)plan->pids_max);
	if (set_limit(dir, "pids.max", v, err) < 0)
		return -1;
	snprintf(v, sizeof(v), "%llu %llu", (unsigned long long)plan->cpu_quota_us,
		 (unsigned long long)plan->cpu_period_us);
	if (set_limit(dir, "cpu.max", v, err) < 0)
		return -1;
	char path[PATH_MAX];
	run->v2_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/memory.events", dir);
	run->oom_fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/pids.events", dir);
	run->pids_fd = open(path, O_RDONLY | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/cgroup.events", dir);
	run->events_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (run->v2_fd < 0 || run->oom_fd < 0 || run->pids_fd < 0 || run->events_fd < 0)
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "opening %s", dir);
	return 0;
}

/* v1 has no pollable OOM event file; memory.oom_control notifies through
 * an eventfd registered in cgroup.event_control. */
static int v1_oom_eventfd(const char *dir, spr_error **err)
{
	char path[PATH_MAX], line[64];
	snprintf(path, sizeof(path), "%s/memory.oom_control", dir);
	_cleanup_close_ int ctl = open(path, O_RDONLY | O_CLOEXEC);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ctl < 0 || efd < 0) {
		if (efd >= 0)
			close(efd);
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "opening %s", path);
	}
	snprintf(line, sizeof(line), "%d %d", efd, ctl);
	if (spr_cg_write_file(dir, "cgroup.event_control", line) < 0) {
		close(efd);
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "registering an OOM eventfd for %s",
				      dir);
	}
	return efd;
}

static int create_v1(struct spr_cg_run *run, const struct spr_cgroup_plan *plan,
		     const char *name, spr_error **err)
{
	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		const char *b = plan->base[c];
		if (!b)
			continue;
		/* Co-mounted controllers (cpu,cpuacct) share one hierarchy, so
		 * one directory. */
		for (int e = 0; e < c && !run->dir[c]; e++) {
			if (run->dir[e] && plan->base[e] && !strcmp(plan->base[e], b) &&
			    !(run->dir[c] = strdup(run->dir[e])))
				return spr_fail_oom(err);
		}
		if (!run->dir[c] && make_run_dir(b, name, false, &run->dir[c], err) < 0)
			return -1;
	}
	const char *mem = run->dir[SPR_CG_MEMORY], *pids = run->dir[SPR_CG_PIDS],
		   *cpu = run->dir[SPR_CG_CPU];
	if (!mem || !pids || !cpu)
		return spr_fail(err, SPR_LAYER_CGROUP, ENOENT, "plan lacks a v1 base");
	char v[64];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)plan->memory_bytes);
	/* limit first: memsw must never be below it. */
	if (set_limit(mem, "memory.limit_in_bytes", v, err) < 0)
		return -1;
	if (exists(mem, "memory.memsw.limit_in_bytes")) {
		if (set_limit(mem, "memory.memsw.limit_in_bytes", v, err) < 0)
			return -1;
	} else if (set_limit(mem, "memory.swappiness", "0", err) < 0) {
		return -1;
	}
	snprintf(v, sizeof(v), "%lld", (long long)plan->pids_max);
	if (set_limit(pids, "pids.max", v, err) < 0)
		return -1;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)plan->cpu_period_us);
	if (set_limit(cpu, "cpu.cfs_period_us", v, err) < 0)
		return -1;
	snprintf(v, sizeof(v), "%llu", (unsigned long long)plan->cpu_quota_us);
	if (set_limit(cpu, "cpu.cfs_quota_us", v, err) < 0)
		return -1;
	run->oom_fd = v1_oom_eventfd(mem, err);
	if (run->oom_fd < 0)
		return -1;
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/pids.events", pids);
	run->pids_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (run->pids_fd < 0)
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "opening %s", path);
	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		bool shared = false;
		for (int e = 0; e < c && run->dir[c]; e++)
			shared = shared || (run->dir[e] && !strcmp(run->dir[e], run->dir[c]));
		if (!run->dir[c] || shared)
			continue;
		snprintf(path, sizeof(path), "%s/tasks", run->dir[c]);
		run->tasks_fd[c] = open(path, O_WRONLY | O_CLOEXEC);
		if (run->tasks_fd[c] < 0)
			return spr_fail_errno(err, SPR_LAYER_CGROUP, "opening %s", path);
	}
	return 0;
}

int spr_cg_run_create(struct spr_cg_run *run, const struct spr_cgroup_plan *plan,
		      spr_error **err)
{
	*run = (struct spr_cg_run)SPR_CG_RUN_INIT;
	run->version = (enum spr_cg_version)plan->version;
	run->cpu_seconds = plan->cpu_seconds;
	run->cpu_cores = plan->cpu_cores;
	char name[64];
	run_name(name, sizeof(name));
	if (run->version == SPR_CG_V2) {
		if (!plan->base[SPR_CG_MEMORY])
			return spr_fail(err, SPR_LAYER_CGROUP, EINVAL, "plan lacks the v2 base");
		return create_v2(run, plan, plan->base[SPR_CG_MEMORY], name, err);
	}
	if (run->version == SPR_CG_V1)
		return create_v1(run, plan, name, err);
	return spr_fail(err, SPR_LAYER_CGROUP, EINVAL, "plan: unknown cgroup version");
}

int spr_cg_run_attach(struct spr_cg_run *run, pid_t pid, spr_error **err)
{
	char v[32];
	snprintf(v, sizeof(v), "%d", (int)pid);
	for (int c = 0; c < SPR_CG_NCTRL; c++)
		if (run->dir[c] && spr_cg_write_file(run->dir[c], "cgroup.procs", v) < 0)
			return spr_fail_errno(err, SPR_LAYER_CGROUP, "moving the run into %s",
					      run->dir[c]);
	return 0;
}

void spr_cg_run_close_tasks(struct spr_cg_run *run)
{
	for (int c = 0; c < SPR_CG_NCTRL; c++)
		spr_closep(&run->tasks_fd[c]);
}

bool spr_cg_run_self_enter(const struct spr_cg_run *run)
{
	for (int c = 0; c < SPR_CG_NCTRL; c++)
		if (run->tasks_fd[c] >= 0)
			return true;
	return false;
}

int spr_cg_run_enter(struct spr_cg_run *run)
{
	if (!run || !spr_cg_run_self_enter(run))
		return 0;
	int rc = 1;
	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		if (run->tasks_fd[c] < 0)
			continue;
		if (rc == 1 && write(run->tasks_fd[c], "0", 1) != 1)
			rc = -1;
		int saved = errno;
		spr_closep(&run->tasks_fd[c]);
		errno = saved;
	}
	return rc;
}

static const char *dir_of(const struct spr_cg_run *run, enum spr_cg_controller c)
{
	return run->version == SPR_CG_V2 ? run->dir[0] : run->dir[c];
}

bool spr_cg_run_limit_hit(const struct spr_cg_run *run, struct spr_cg_stats *s)
{
	const char *mem = dir_of(run, SPR_CG_MEMORY), *pids = dir_of(run, SPR_CG_PIDS);
	if (mem) {
		int64_t ooms = run->version == SPR_CG_V2 ? read_key(mem, "memory.events", "oom_kill")
							: read_key(mem, "memory.oom_control", "oom_kill");
		s->oom_killed = s->oom_killed || ooms > 0;
	}
	if (pids)
		s->pids_limit_hit = s->pids_limit_hit || read_key(pids, "pids.events", "max") > 0;
	return s->oom_killed || s->pids_limit_hit;
}

void spr_cg_run_stats(const struct spr_cg_run *run, struct spr_cg_stats *s)
{
	spr_cg_run_limit_hit(run, s);
	const char *mem = dir_of(run, SPR_CG_MEMORY);
	int64_t peak = -1, usage = -1;
	if (mem)
		peak = read_number(mem, run->version == SPR_CG_V2 ? "memory.peak"
								   : "memory.max_usage_in_bytes");
	s->memory_peak_kb = peak >= 0 ? peak / 1024 : -1;
	if (run->version == SPR_CG_V2 && run->dir[0]) {
		usage = read_key(run->dir[0], "cpu.stat", "usage_usec");
	} else if (run->dir[SPR_CG_CPUACCT]) {
		int64_t ns = read_number(run->dir[SPR_CG_CPUACCT], "cpuacct.usage");
		usage = ns >= 0 ? ns / 1000 : -1;
	}
	s->cpu_usage_us = usage;
}

void spr_cg_run_kill(const struct spr_cg_run *run)
{
	for (int c = 0; c < SPR_CG_NCTRL; c++)
		if (run->dir[c])
			spr_cg_kill_dir(run->dir[c]);
}

/* Reads cgroup.events through the descriptor poll watches: kernfs keeps
 * reporting an event until the file is read again, so reading it by path
 * would turn the poll below into a busy loop. */
static bool v2_populated(const struct spr_cg_run *run)
{
	char buf[256];
	ssize_t n = pread(run->events_fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return read_key(run->dir[0], "cgroup.events", "populated") == 1;
	buf[n] = '\0';
	const char *p = strstr(buf, "populated ");
	return p && p[10] == '1';
}

/* The pid namespace is gone by now, so the cgroup empties at once; the
 * wait covers the kernel finishing the exits: on v2 a poll for POLLPRI on
 * cgroup.events (no sleeping), bounded at 2 s; v1 has no such event, so a
 * short bounded retry of rmdir. */
int spr_cg_run_remove(struct spr_cg_run *run, spr_error **err)
{
	bool v2 = run->version == SPR_CG_V2 && run->dir[0];
	if (v2) {
		int64_t deadline = spr_now_ms() + 2000, left;
		while (v2_populated(run) && (left = deadline - spr_now_ms()) > 0) {
			spr_cg_run_kill(run);
			struct pollfd p = {.fd = run->events_fd, .events = POLLPRI};
			poll(&p, 1, (int)left);
		}
	}
	int rc = 0;
	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		if (!run->dir[c])
			continue;
		int tries = 0;
		while (rmdir(run->dir[c]) < 0 && errno == EBUSY && !v2 && tries++ < 200) {
			spr_cg_kill_dir(run->dir[c]);
			struct timespec ts = {0, 5 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (access(run->dir[c], F_OK) == 0 && rc == 0)
			rc = spr_fail_errno(err, SPR_LAYER_CGROUP, "removing %s", run->dir[c]);
		/* spr/ stays for the next run (creating and removing it each time
		 * costs two more operations under the kernel's global cgroup
		 * lock); the engine removes it when it is freed. */
	}
	return rc;
}

void spr_cg_run_free(struct spr_cg_run *run)
{
	for (int c = 0; c < SPR_CG_NCTRL; c++)
		free(run->dir[c]);
	spr_closep(&run->v2_fd);
	spr_closep(&run->oom_fd);
	spr_closep(&run->pids_fd);
	spr_closep(&run->events_fd);
	for (int c = 0; c < SPR_CG_NCTRL; c++)
		spr_closep(&run->tasks_fd[c]);
	*run = (struct spr_cg_run)SPR_CG_RUN_INIT;
}
