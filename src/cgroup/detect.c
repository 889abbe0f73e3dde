/* Where the caller's process sits in each cgroup hierarchy, and whether
 * spr may create run cgroups there. Reads /proc/self/cgroup and
 * /proc/self/mountinfo; changes nothing (spr_cgroup_prepare, called by an
 * engine, does). */
#include "where.h"
#include "cgroup/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>

#include "buf.h"
#include "proc.h"

static const char *const names[SPR_CG_NCTRL] = {"memory", "pids", "cpu", "cpuacct"};

struct mount_entry {
	char *root, *point;
	char opts[260]; /* ",<super options>,": the v1 controllers */
	bool v2;
};

struct proc_entry {
	char controllers[128]; /* "" for the v2 line */
	char *path;
};

static char *xstrdup(const char *s) { return s ? strdup(s) : NULL; }

/* mountinfo escapes spaces etc. as \ooo. */
static void unescape(char *s)
{
	char *w = s;
	for (char *r = s; *r;) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] && r[3]) {
			*w++ = (char)((r[1] - '0') * 64 + (r[2] - '0') * 8 + (r[3] - '0'));
			r += 4;
		} else {
			*w++ = *r++;
		}
	}
	*w = '\0';
}

static int read_mounts(struct mount_entry **out, size_t *n)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	while (getline(&line, &cap, f) > 0) {
		char root[PATH_MAX], point[PATH_MAX], fstype[64], super[256];
		char *sep = strstr(line, " - ");
		if (!sep || sscanf(line, "%*s %*s %*s %4095s %4095s", root, point) != 2 ||
		    sscanf(sep + 3, "%63s %*s %255s", fstype, super) != 2)
			continue;
		bool v2 = !strcmp(fstype, "cgroup2");
		if (!v2 && strcmp(fstype, "cgroup"))
			continue;
		struct mount_entry *grown = realloc(*out, (*n + 1) * sizeof(**out));
		if (!grown)
			break;
		*out = grown;
		unescape(root);
		unescape(point);
		struct mount_entry *m = &(*out)[(*n)++];
		m->root = strdup(root);
		m->point = strdup(point);
		m->v2 = v2;
		snprintf(m->opts, sizeof(m->opts), ",%s,", super);
	}
	free(line);
	return 0;
}

static int read_proc_cgroup(struct proc_entry **out, size_t *n)
{
	_cleanup_fclose_ FILE *f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return -1;
	char *line = NULL;
	size_t cap = 0;
	*out = NULL;
	*n = 0;
	while (getline(&line, &cap, f) > 0) {
		line[strcspn(line, "\n")] = '\0';
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		if (!c2)
			continue;
		struct proc_entry *grown = realloc(*out, (*n + 1) * sizeof(**out));
		if (!grown)
			break;
		*out = grown;
		struct proc_entry *e = &(*out)[(*n)++];
		*c2 = '\0';
		snprintf(e->controllers, sizeof(e->controllers), ",%s,", c1 + 1);
		e->path = strdup(c2 + 1);
	}
	free(line);
	return 0;
}

static bool has_word(const char *commas, const char *word)
{
	char needle[64];
	snprintf(needle, sizeof(needle), ",%s,", word);
	return strstr(commas, needle) != NULL;
}

/* A cgroup's directory: the mount point plus the path below the mount's
 * root (they differ inside a cgroup namespace). */
static char *cgroup_dir(const struct mount_entry *m, const char *path)
{
	size_t rl = strlen(m->root);
	const char *rel = path;
	if (strcmp(m->root, "/") && !strncmp(path, m->root, rl) && (path[rl] == '/' || !path[rl]))
		rel = path + rl;
	char *dir = NULL;
	if (asprintf(&dir, "%s%s", m->point, strcmp(rel, "/") ? rel : "") < 0)
		return NULL;
	return dir;
}

static bool v2_has_controller(const char *mount_point, const char *name)
{
	char path[PATH_MAX], buf[512];
	snprintf(path, sizeof(path), "%s/cgroup.controllers", mount_point);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (!f || !fgets(buf, sizeof(buf), f))
		return false;
	for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n"))
		if (!strcmp(tok, name))
			return true;
	return false;
}

static bool parent_ok(const char *parent)
{
	if (!parent || !*parent || parent[0] == '/')
		return false;
	for (const char *p = parent; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

/* The caller's own v2 cgroup. A caller spr moved into <own>/spr-caller
 * (and its children: a forked spr-run) still counts as in <own>, so a
 * second engine puts its runs beside the first one's. */
static char *v2_own_dir(const struct mount_entry *v2, const char *path)
{
	char *own = cgroup_dir(v2, path);
	char *slash = own ? strrchr(own, '/') : NULL;
	if (slash && !strcmp(slash + 1, SPR_CG_CALLER_LEAF)) {
		*slash = '\0';
		if (!spr_cg_v2_has_controllers(own))
			*slash = '/';
	}
	return own;
}

static void set_problem(struct spr_cg_controller_info *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void set_problem(struct spr_cg_controller_info *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	free(c->problem);
	if (vasprintf(&c->problem, fmt, ap) < 0)
		c->problem = NULL;
	va_end(ap);
	c->usable = false;
}

static void read_comm(pid_t pid, char *comm, size_t size)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	if (f && fgets(comm, (int)size, f))
		comm[strcspn(comm, "\n")] = '\0';
}

/* The first process in dir/cgroup.procs that is not the caller: 0 when
 * there is none. */
static pid_t v2_other_process(const char *dir)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	long pid;
	while (f && fscanf(f, "%ld", &pid) == 1)
		if (pid != (long)getpid())
			return (pid_t)pid;
	return 0;
}

/* cgroup v2's no-internal-processes rule: a cgroup with processes cannot
 * hand the memory, pids and cpu controllers to child cgroups (the root is
 * exempt). The caller sits in its own cgroup, so runs can go below it only
 * when the caller is alone there and moves itself into a leaf,
 * <own>/spr-caller — what systemd asks of a Delegate=yes unit. Other
 * processes in it are not ours to move: that is an error with the fix.
 * Sets h->v2_caller_leaf when prepare must move the caller. */
static bool v2_can_delegate(struct spr_cg_host *h, const char *own, const char *base,
			    char **why)
{
	char path[PATH_MAX];
	if (strcmp(own, base)) {
		/* cgroup_parent: a cgroup below our own that must itself hold no
		 * processes (runs go in its child spr/). */
		pid_t other = v2_other_process(base);
		if (other && asprintf(why,
				      "%s (the cgroup_parent) contains processes (pid %d), so cgroup "
				      "v2 cannot give its child cgroups the memory, pids and cpu "
				      "controllers (no internal processes rule): pass an empty cgroup",
				      base, (int)other) < 0)
			*why = NULL;
		if (other)
			return false;
	}
	snprintf(path, sizeof(path), "%s/cgroup.type", own);
	bool root = access(path, F_OK) < 0; /* only non-root cgroups have cgroup.type */
	if (root || spr_cg_v2_has_controllers(own))
		return true;
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", own);
	if (access(path, W_OK) < 0) {
		if (asprintf(why,
			     "cannot enable controllers in %s (not writable for uid %d): run spr in "
			     "a cgroup delegated to it (systemd: `systemd-run --scope -p Delegate=yes "
			     "...`, or Delegate=yes in the service's unit)",
			     path, (int)geteuid()) < 0)
			*why = NULL;
		return false;
	}
	pid_t other = v2_other_process(own);
	if (other) {
		char comm[64] = "?";
		read_comm(other, comm, sizeof(comm));
		if (asprintf(why,
			     "%s also holds other processes (pid %d, %s), so cgroup v2 cannot give "
			     "run cgroups below it the memory, pids and cpu controllers (no internal "
			     "processes rule): start spr in a cgroup of its own, e.g. `systemd-run "
			     "--scope -p Delegate=yes spr-run ...` (rootless: `systemd-run --user "
			     "--scope -p Delegate=yes ...`) or a unit with Delegate=yes; spr then "
			     "moves itself into %s/" SPR_CG_CALLER_LEAF,
			     own, (int)other, comm, own) < 0)
			*why = NULL;
		return false;
	}
	if (asprintf(&h->v2_caller_leaf, "%s/" SPR_CG_CALLER_LEAF, own) < 0)
		h->v2_caller_leaf = NULL;
	return h->v2_caller_leaf != NULL;
}

static void check_usable(struct spr_cg_host *h, struct spr_cg_controller_info *c, const char *own)
{
	struct stat st;
	if (stat(c->base, &st) < 0 || !S_ISDIR(st.st_mode)) {
		set_problem(c, "%s does not exist (create it, or fix --cgroup-parent)", c->base);
		return;
	}
	char spr[PATH_MAX];
	snprintf(spr, sizeof(spr), "%s/spr", c->base);
	bool writable = access(spr, W_OK | X_OK) == 0 || access(c->base, W_OK | X_OK) == 0;
	c->writable = writable;
	if (!writable) {
		const char *container = spr_container_kind();
		if (container)
			set_problem(c,
				    "%s is not writable for uid %d: this runs inside %s, whose "
				    "cgroups are read-only: give the container a writable, delegated "
				    "cgroup (a cgroup v2 host, --cgroupns=private and a cgroup "
				    "mount it may write), or pass --allow-degraded to limit memory, "
				    "processes and CPU time with rlimits (reported in isolation)",
				    c->base, (int)geteuid(),
				    !strcmp(container, "kubernetes") ? "a Kubernetes pod" : "a container");
		else if (geteuid() == 0)
			set_problem(c,
				    "%s is not writable for root: is /sys/fs/cgroup mounted "
				    "read-only? (remount it read-write, or pass --allow-degraded to use "
				    "rlimits, reported in isolation)",
				    c->base);
		else
			set_problem(c,
				    "%s is not writable for uid %d: run as root, or have it delegated "
				    "(chown a child cgroup to this user and pass --cgroup-parent NAME; "
				    "on systemd, Delegate=yes)",
				    c->base, (int)geteuid());
		return;
	}
	if (c->version == SPR_CG_V2 && c == &h->ctl[SPR_CG_MEMORY]) {
		char *why = NULL;
		if (!v2_can_delegate(h, own, c->base, &why)) {
			set_problem(c, "%s", why ? why : "cgroup v2 delegation is missing");
			free(why);
			return;
		}
	}
	h->delegated = h->delegated || (st.st_uid == geteuid() && geteuid() != 0);
	c->usable = true;
}

int spr_cgroup_detect(const char *parent, struct spr_cg_host *h, spr_error **err)
{
	*h = (struct spr_cg_host){0};
	for (int i = 0; i < SPR_CG_NCTRL; i++)
		h->ctl[i].name = names[i];
	if (parent && !parent_ok(parent))
		return spr_fail(err, SPR_LAYER_CGROUP, EINVAL,
				"cgroup_parent '%s' must be a relative path below the caller's own "
				"cgroup (no '..', not absolute)",
				parent);
	struct mount_entry *mounts = NULL;
	struct proc_entry *procs = NULL;
	size_t nm = 0, np = 0;
	if (read_mounts(&mounts, &nm) < 0 || read_proc_cgroup(&procs, &np) < 0) {
		free(mounts);
		free(procs);
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "reading /proc/self/cgroup or mountinfo");
	}
	const struct mount_entry *v2 = NULL;
	for (size_t i = 0; i < nm; i++)
		if (mounts[i].v2 && (!v2 || !strcmp(mounts[i].point, "/sys/fs/cgroup")))
			v2 = &mounts[i];
	const char *v2_path = NULL;
	for (size_t i = 0; i < np; i++)
		if (!strcmp(procs[i].controllers, ",,"))
			v2_path = procs[i].path;
	h->v2_mount = v2 ? xstrdup(v2->point) : NULL;

	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		struct spr_cg_controller_info *ci = &h->ctl[c];
		char *own = NULL;
		if (v2 && v2_path && c != SPR_CG_CPUACCT && v2_has_controller(v2->point, names[c])) {
			ci->version = SPR_CG_V2;
			own = v2_own_dir(v2, v2_path);
		} else {
			for (size_t m = 0; m < nm && !own; m++) {
				if (mounts[m].v2 || !has_word(mounts[m].opts, names[c]))
					continue;
				for (size_t p = 0; p < np && !own; p++)
					if (has_word(procs[p].controllers, names[c])) {
						ci->version = SPR_CG_V1;
						own = cgroup_dir(&mounts[m], procs[p].path);
					}
			}
		}
		if (!own) {
			set_problem(ci, "the %s controller is not mounted on this host", names[c]);
			continue;
		}
		if (parent) {
			if (asprintf(&ci->base, "%s/%s", own, parent) < 0)
				ci->base = NULL;
		} else {
			ci->base = xstrdup(own);
		}
		if (ci->base)
			check_usable(h, ci, own);
		if (ci->version == SPR_CG_V2 && !h->v2_own)
			h->v2_own = own;
		else
			free(own);
	}
	h->version = h->ctl[SPR_CG_MEMORY].version;
	for (size_t i = 0; i < nm; i++) {
		free(mounts[i].root);
		free(mounts[i].point);
	}
	for (size_t i = 0; i < np; i++)
		free(procs[i].path);
	free(mounts);
	free(procs);
	return 0;
}

static int v2_move_caller(const char *leaf, spr_error **err)
{
	if (mkdir(leaf, 0755) < 0 && errno != EEXIST)
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "creating %s", leaf);
	char path[PATH_MAX], pid[32];
	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", leaf) >= sizeof(path))
		return spr_fail(err, SPR_LAYER_CGROUP, ENAMETOOLONG, "cgroup path too long: %s", leaf);
	int len = snprintf(pid, sizeof(pid), "%d", (int)getpid());
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, pid, (size_t)len) != len)
		return spr_fail_errno(err, SPR_LAYER_CGROUP, "moving the caller into %s", leaf);
	return 0;
}

int spr_cgroup_prepare(struct spr_cg_host *h)
{
	_cleanup_error_ spr_error *e = NULL;
	spr_error **err = &e;
	if (h->version != SPR_CG_V2 || !spr_cgroup_usable(h) || !h->v2_own)
		return 0;
	const char *base = h->ctl[SPR_CG_MEMORY].base;
	int rc = h->v2_caller_leaf ? v2_move_caller(h->v2_caller_leaf, err) : 0;
	/* own, then each cgroup down to the base (cgroup_parent): a child
	 * only has the controllers its parent enables. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", h->v2_own);
	for (size_t at = strlen(dir); rc == 0;) {
		if ((rc = spr_cg_v2_enable_controllers(dir, err)) < 0 || !base[at])
			break;
		size_t next = at + 1 + strcspn(base + at + 1, "/");
		snprintf(dir, sizeof(dir), "%.*s", (int)next, base);
		at = next;
	}
	if (rc < 0) {
		for (int c = SPR_CG_MEMORY; c <= SPR_CG_CPU; c++)
			set_problem(&h->ctl[c], "%s", e ? e->message : "out of memory");
		return -1;
	}
	free(h->v2_caller_leaf);
	h->v2_caller_leaf = NULL;
	return 0;
}

void spr_cgroup_host_free(struct spr_cg_host *h)
{
	for (int i = 0; i < SPR_CG_NCTRL; i++) {
		free(h->ctl[i].base);
		free(h->ctl[i].problem);
	}
	free(h->v2_mount);
	free(h->v2_own);
	free(h->v2_caller_leaf);
	*h = (struct spr_cg_host){0};
}

bool spr_cgroup_usable(const struct spr_cg_host *h)
{
	for (int c = SPR_CG_MEMORY; c <= SPR_CG_CPU; c++)
		if (!h->ctl[c].usable || h->ctl[c].version != h->version)
			return false;
	return h->version != SPR_CG_NONE;
}

char *spr_cgroup_problem(const struct spr_cg_host *h)
{
	for (int c = SPR_CG_MEMORY; c <= SPR_CG_CPU; c++) {
		const struct spr_cg_controller_info *ci = &h->ctl[c];
		char *msg = NULL;
		if (!ci->usable && asprintf(&msg, "cgroup %s controller unusable: %s", ci->name,
					    ci->problem ? ci->problem : "unknown reason") >= 0)
			return msg;
		if (ci->usable && ci->version != h->version &&
		    asprintf(&msg, "the %s controller is on cgroup v%d but memory is on v%d (mixed "
				   "hierarchies are not supported)",
			     ci->name, ci->version, h->version) >= 0)
			return msg;
	}
	return NULL;
}

cJSON *spr_cgroup_describe(const struct spr_cg_host *h)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "version", h->version == SPR_CG_V2   ? "v2"
					      : h->version == SPR_CG_V1 ? "v1"
									: "none");
	cJSON_AddBoolToObject(o, "usable", spr_cgroup_usable(h));
	cJSON_AddBoolToObject(o, "delegated", h->delegated);
	if (h->v2_caller_leaf)
		cJSON_AddStringToObject(o, "moves_caller_to", h->v2_caller_leaf);
	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		const struct spr_cg_controller_info *ci = &h->ctl[c];
		cJSON *x = cJSON_AddObjectToObject(o, ci->name);
		cJSON_AddStringToObject(x, "hierarchy", ci->version == SPR_CG_V2   ? "v2"
							: ci->version == SPR_CG_V1 ? "v1"
										   : "none");
		if (ci->base)
			cJSON_AddStringToObject(x, "base", ci->base);
		cJSON_AddBoolToObject(x, "usable", ci->usable);
		if (ci->version != SPR_CG_NONE)
			cJSON_AddBoolToObject(x, "writable", ci->writable);
		if (ci->problem)
			cJSON_AddStringToObject(x, "problem", ci->problem);
	}
	return o;
}

void spr_cgroup_plan(const struct spr_cg_host *h, uint64_t memory_bytes, int64_t pids_max,
		     double cpu_cores, double cpu_seconds, struct spr_cgroup_plan *out)
{
	*out = (struct spr_cgroup_plan){.version = h->version};
	for (int c = 0; c < SPR_CG_NCTRL; c++)
		if (h->ctl[c].usable && h->ctl[c].version == h->version)
			out->base[c] = h->ctl[c].base;
	out->memory_bytes = memory_bytes;
	out->pids_max = pids_max;
	out->cpu_period_us = 100000;
	out->cpu_quota_us = (uint64_t)(cpu_cores * 100000.0 + 0.5);
	out->cpu_cores = cpu_cores;
	out->cpu_seconds = cpu_seconds;
}

/* ---- stale run cgroups ------------------------------------------------------------ */

/* run-<pid>-<start time>: stale when that process no longer exists (or is
 * a zombie: its killed caller cannot reap it). */
static bool run_is_stale(const char *name)
{
	long pid;
	unsigned long long start, actual;
	char state;
	if (sscanf(name, "run-%ld-%llu", &pid, &start) != 2)
		return false;
	if (spr_proc_identity((pid_t)pid, &state, &actual) < 0)
		return true;
	return actual != start || state == 'Z' || state == 'X';
}

void spr_cgroup_release(const struct spr_cg_host *h)
{
	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		const struct spr_cg_controller_info *ci = &h->ctl[c];
		if (!ci->usable || ci->version != h->version)
			continue;
		char spr[PATH_MAX];
		snprintf(spr, sizeof(spr), "%s/spr", ci->base);
		rmdir(spr); /* EBUSY: another caller's runs are in it */
	}
}

int spr_cgroup_cleanup_stale(const struct spr_cg_host *h, spr_error **err)
{
	(void)err;
	int removed = 0;
	for (int c = 0; c < SPR_CG_NCTRL; c++) {
		const struct spr_cg_controller_info *ci = &h->ctl[c];
		if (!ci->usable || ci->version != h->version)
			continue;
		char spr[PATH_MAX];
		snprintf(spr, sizeof(spr), "%s/spr", ci->base);
		DIR *d = opendir(spr);
		if (!d)
			continue;
		struct dirent *de;
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, "run-", 4) || !run_is_stale(de->d_name))
				continue;
			char run[PATH_MAX];
			if (snprintf(run, sizeof(run), "%s/%s", spr, de->d_name) >= (int)sizeof(run))
				continue;
			spr_cg_kill_dir(run);
			if (rmdir(run) == 0 && c == SPR_CG_MEMORY)
				removed++;
		}
		closedir(d);
	}
	spr_cgroup_release(h);
	return removed;
}
