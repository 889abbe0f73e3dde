#include "uid_lease.h"

#include <fcntl.h>
#include <inttypes.h>
#include <sys/random.h>
#include <sys/stat.h>

#define OVERFLOW_ID 65534u
#define MAX_ID 4294967294u /* (uid_t)-1 is "no id" */

static int malformed(const char *text, spr_error **err)
{
	return spr_fail(err, SPR_LAYER_API, EINVAL,
			"uid range '%s' must be START:COUNT, two whole numbers (e.g. %u:%u)", text,
			SPR_UID_RANGE_DEFAULT_START, SPR_UID_RANGE_DEFAULT_COUNT);
}

int spr_uid_range_parse(const char *text, struct spr_uid_range *out, spr_error **err)
{
	*out = (struct spr_uid_range){SPR_UID_RANGE_DEFAULT_START, SPR_UID_RANGE_DEFAULT_COUNT};
	if (!text || !*text)
		return 0;
	const char *colon = strchr(text, ':');
	long long start, count;
	char head[32];
	if (!colon || (size_t)(colon - text) >= sizeof(head))
		return malformed(text, err);
	memcpy(head, text, (size_t)(colon - text));
	head[colon - text] = '\0';
	if (!spr_parse_whole(head, 1, MAX_ID, &start) || !spr_parse_whole(colon + 1, 1, MAX_ID, &count))
		return malformed(text, err);
	if (start + count - 1 > MAX_ID)
		return spr_fail(err, SPR_LAYER_API, ERANGE,
				"uid range '%s' ends past %u, the largest uid", text, MAX_ID);
	if (start <= OVERFLOW_ID && start + count > OVERFLOW_ID)
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"uid range '%s' includes %u, the kernel's overflow id (nobody): "
				"choose a range without it",
				text, OVERFLOW_ID);
	*out = (struct spr_uid_range){(uint32_t)start, (uint32_t)count};
	return 0;
}

void spr_uid_range_format(const struct spr_uid_range *r, char *buf, size_t size)
{
	snprintf(buf, size, "%" PRIu32 ":%" PRIu32, r->start, r->count);
}

static bool in_range(const struct spr_uid_range *r, unsigned long long id)
{
	return id >= r->start && id - r->start < r->count;
}

/* NAME:x:UID:GID:... lines of a passwd-format file. */
static bool passwd_overlap(const struct spr_uid_range *r, const char *path, char *buf,
			   size_t size)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[1024];
	while (f && fgets(line, sizeof(line), f)) {
		char *name = strtok(line, ":"), *pw = strtok(NULL, ":");
		char *uid = strtok(NULL, ":"), *gid = strtok(NULL, ":");
		if (!name || !pw || !uid || !gid)
			continue;
		unsigned long long u = strtoull(uid, NULL, 10), g = strtoull(gid, NULL, 10);
		if (in_range(r, u) || in_range(r, g)) {
			snprintf(buf, size, "the account '%s' (uid %llu, gid %llu in %s)", name, u, g,
				 path);
			return true;
		}
	}
	return false;
}

/* NAME:START:COUNT lines of /etc/subuid or /etc/subgid. */
static bool subid_overlap(const struct spr_uid_range *r, const char *path, char *buf,
			  size_t size)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		char *name = strtok(line, ":"), *start = strtok(NULL, ":"), *count = strtok(NULL, ":\n");
		if (!name || !start || !count)
			continue;
		unsigned long long s = strtoull(start, NULL, 10), n = strtoull(count, NULL, 10);
		if (n && s < (unsigned long long)r->start + r->count && r->start < s + n) {
			snprintf(buf, size, "the subordinate ids of '%s' (%llu-%llu in %s)", name, s,
				 s + n - 1, path);
			return true;
		}
	}
	return false;
}

bool spr_uid_range_overlap(const struct spr_uid_range *r, const char *host_root, char *buf,
			   size_t size)
{
	static const char *const passwd_files[] = {"/etc/passwd", "/etc/group"};
	static const char *const subid_files[] = {"/etc/subuid", "/etc/subgid"};
	char path[512];
	const char *root = host_root ? host_root : "";
	for (size_t i = 0; i < ARRAY_SIZE(passwd_files); i++) {
		snprintf(path, sizeof(path), "%s%s", root, passwd_files[i]);
		/* group lines are NAME:x:GID:members: the same reader sees the
		 * gid twice, which is what matters. */
		if (passwd_overlap(r, path, buf, size))
			return true;
	}
	for (size_t i = 0; i < ARRAY_SIZE(subid_files); i++) {
		snprintf(path, sizeof(path), "%s%s", root, subid_files[i]);
		if (subid_overlap(r, path, buf, size))
			return true;
	}
	return false;
}

static int open_lease_file(const char *path, spr_error **err)
{
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 && errno == ENOENT) {
		/* Its directory, once: /run/spr. */
		char dir[512];
		snprintf(dir, sizeof(dir), "%s", path);
		char *slash = strrchr(dir, '/');
		if (slash && slash != dir) {
			*slash = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST)
				return spr_fail_errno(err, SPR_LAYER_SANDBOX,
						      "creating %s for the uid leases", dir);
		}
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	}
	if (fd < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX,
				      "opening the uid lease file %s (runs as root lease host uids "
				      "there; is /run writable?)",
				      path);
	return fd;
}

int spr_uid_lease_take(const struct spr_uid_range *r, const char *lease_file,
		       struct spr_uid_lease *out, spr_error **err)
{
	*out = (struct spr_uid_lease)SPR_UID_LEASE_INIT;
	if (!r->count)
		return spr_fail(err, SPR_LAYER_SANDBOX, EINVAL, "empty uid range");
	_cleanup_close_ int fd = open_lease_file(lease_file, err);
	if (fd < 0)
		return -1;
	/* Start anywhere: concurrent takers then rarely probe the same byte. */
	uint32_t first = 0;
	if (getrandom(&first, sizeof(first), GRND_NONBLOCK) != sizeof(first))
		first = (uint32_t)getpid();
	for (uint32_t i = 0; i < r->count; i++) {
		uint32_t index = (first + i) % r->count;
		struct flock lock = {.l_type = F_WRLCK, .l_whence = SEEK_SET,
				     .l_start = (off_t)index, .l_len = 1};
		if (fcntl(fd, F_OFD_SETLK, &lock) == 0) {
			out->uid = r->start + index;
			out->fd = steal_fd(&fd);
			return 0;
		}
		if (errno != EAGAIN && errno != EACCES)
			return spr_fail_errno(err, SPR_LAYER_SANDBOX, "locking %s", lease_file);
	}
	return spr_fail(err, SPR_LAYER_SANDBOX, EUSERS,
			"every uid of the range %" PRIu32 ":%" PRIu32 " is leased (that many runs "
			"at once?): widen it (--uid-range START:COUNT, SPR_UID_RANGE)",
			r->start, r->count);
}

void spr_uid_lease_release(struct spr_uid_lease *lease)
{
	spr_closep(&lease->fd);
}

int spr_uid_range_choose(const char *option, bool check_accounts, struct spr_uid_range *out,
			 spr_error **err)
{
	const char *text = option, *origin = "uid_range";
	if (!text) {
		text = getenv("SPR_UID_RANGE");
		origin = "$SPR_UID_RANGE";
	}
	if (spr_uid_range_parse(text, out, err) < 0) {
		spr_error_prefix(err, "%s: ", origin);
		return -1;
	}
	char who[512], range[32];
	if (!check_accounts || !spr_uid_range_overlap(out, NULL, who, sizeof(who)))
		return 0;
	spr_uid_range_format(out, range, sizeof(range));
	return spr_fail(err, SPR_LAYER_API, EEXIST,
			"the uid range %s for runs (%s) includes %s: a run would share that "
			"identity; choose ids nobody on this host has (--uid-range START:COUNT, "
			"SPR_UID_RANGE)",
			range, text ? origin : "the default", who);
}
