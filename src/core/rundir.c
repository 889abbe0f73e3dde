#include "rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proc.h"
#include "tree.h"

#define PREFIX "spr-run-"
#define WORK "work"

const char *spr_rundir_parent(void)
{
	const char *tmpdir = getenv("TMPDIR");
	return tmpdir && *tmpdir == '/' ? tmpdir : "/tmp";
}

/* Who made a directory: the pid namespace (a caller in a container sharing
 * /tmp has pids of its own), the pid and its start time (pids are reused). */
struct maker {
	uint64_t pidns;
	long long pid;
	unsigned long long start;
};

static int self_maker(struct maker *m)
{
	struct stat st;
	char state;
	if (stat("/proc/self/ns/pid", &st) < 0 ||
	    spr_proc_identity(getpid(), &state, &m->start) < 0)
		return -1;
	m->pidns = st.st_ino;
	m->pid = getpid();
	return 0;
}

int spr_rundir_create(const char *parent, struct spr_rundir *d, spr_error **err)
{
	d->outer[0] = d->work[0] = '\0';
	struct maker me;
	if (self_maker(&me) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX,
				      "reading /proc/self (is /proc mounted?)");
	int n = snprintf(d->outer, sizeof(d->outer), "%s/" PREFIX "%" PRIu64 ".%lld.%llu-XXXXXX",
			 parent, me.pidns, me.pid, me.start);
	int w = n < 0 ? -1 : snprintf(d->work, sizeof(d->work), "%s/" WORK, d->outer);
	if (w < 0 || (size_t)w >= sizeof(d->work)) {
		d->outer[0] = d->work[0] = '\0';
		return spr_fail(err, SPR_LAYER_SANDBOX, ENAMETOOLONG,
				"the run directory's path under %s is too long (set TMPDIR to a "
				"shorter one)",
				parent);
	}
	if (!mkdtemp(d->outer)) {
		int e = errno;
		d->outer[0] = d->work[0] = '\0';
		errno = e;
		return spr_fail_errno(err, SPR_LAYER_SANDBOX,
				      "cannot create the run directory under %s (is it writable? "
				      "set TMPDIR)",
				      parent);
	}
	/* The run's uid (when it has one) must reach work/ (its path has the
	 * length measured above: mkdtemp only filled in the X's). */
	if ((size_t)snprintf(d->work, sizeof(d->work), "%s/" WORK, d->outer) >= sizeof(d->work) ||
	    chmod(d->outer, 0711) < 0 || mkdir(d->work, 0700) < 0) {
		int e = errno;
		spr_rundir_remove(d);
		errno = e;
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "creating the run directory %s/" WORK,
				      d->outer);
	}
	return 0;
}

void spr_rundir_remove(struct spr_rundir *d)
{
	if (!d->outer[0])
		return;
	int fd = open(d->work, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		fchmod(fd, 0700);
		spr_remove_tree_at(fd);
	}
	rmdir(d->work);
	rmdir(d->outer);
	d->outer[0] = d->work[0] = '\0';
}

static bool parse_name(const char *name, struct maker *m)
{
	if (strncmp(name, PREFIX, strlen(PREFIX)))
		return false;
	int used = 0;
	if (sscanf(name + strlen(PREFIX), "%" SCNu64 ".%lld.%llu-%n", &m->pidns, &m->pid,
		   &m->start, &used) != 3 ||
	    !used)
		return false;
	return strlen(name + strlen(PREFIX) + used) == 6 && m->pid > 0;
}

static bool maker_alive(const struct maker *m)
{
	char state;
	unsigned long long start;
	if (m->pid > INT32_MAX || spr_proc_identity((pid_t)m->pid, &state, &start) < 0)
		return false;
	return start == m->start && state != 'Z';
}

int spr_rundir_sweep(const char *parent)
{
	struct maker me;
	if (self_maker(&me) < 0)
		return 0;
	int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return 0;
	DIR *dir = fdopendir(pfd);
	if (!dir) {
		close(pfd);
		return 0;
	}
	int removed = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		struct maker m;
		struct stat st;
		if (!parse_name(de->d_name, &m) || m.pidns != me.pidns || maker_alive(&m) ||
		    fstatat(pfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		/* work/ belonged to the run's uid, whose leftovers may still
		 * be moving things in it: removed going down only. */
		int fd = openat(pfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		spr_remove_tree_below(fd);
		if (unlinkat(pfd, de->d_name, AT_REMOVEDIR) == 0)
			removed++;
	}
	closedir(dir);
	return removed;
}
