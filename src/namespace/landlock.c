/* Landlock: a second wall behind the mount setup. Even if a bind mount were
 * wrong, the code could read only the paths the layout meant to show and
 * write only /tmp. Best effort by ABI: newer kernels restrict more. */
#include <fcntl.h>
#include <stddef.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "namespace/steps.h"

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#ifndef LANDLOCK_ACCESS_NET_BIND_TCP
#define LANDLOCK_ACCESS_NET_BIND_TCP (1ULL << 0)
#define LANDLOCK_ACCESS_NET_CONNECT_TCP (1ULL << 1)
#endif
#define SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define SCOPE_SIGNAL (1ULL << 1)

/* The attribute struct grows with the ABI; we pass the size the running
 * kernel knows. */
struct ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define FS_READ (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_FILE_RIGHTS                                                                       \
	(LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE | \
	 LANDLOCK_ACCESS_FS_TRUNCATE | LANDLOCK_ACCESS_FS_IOCTL_DEV)

static uint64_t handled_for_abi(int abi)
{
	uint64_t fs = (LANDLOCK_ACCESS_FS_MAKE_SYM << 1) - 1; /* ABI 1: bits 0..12 */
	if (abi >= 2)
		fs |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		fs |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		fs |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return fs;
}

static int add_rules(int ruleset, const struct spr_paths *paths, uint64_t allowed,
		     uint64_t handled, spr_error **err)
{
	for (size_t i = 0; i < paths->n; i++) {
		const char *path = paths->v[i];
		_cleanup_close_ int fd = open(path, O_PATH | O_CLOEXEC);
		if (fd < 0)
			continue; /* not in this sandbox (optional path) */
		struct stat st;
		if (fstat(fd, &st) < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "landlock: stat %s", path);
		struct landlock_path_beneath_attr rule = {
			.allowed_access = allowed & handled,
			.parent_fd = fd,
		};
		/* Directory-only rights are invalid on a file rule. */
		if (!S_ISDIR(st.st_mode))
			rule.allowed_access &= FS_FILE_RIGHTS;
		if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &rule, 0) < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "landlock rule for %s", path);
	}
	return 0;
}

int spr_landlock_apply(const struct spr_paths *read, const struct spr_paths *data,
		       const struct spr_paths *write, bool deny_tcp, bool *tcp_denied,
		       spr_error **err)
{
	*tcp_denied = false;
	int abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
			       LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 0)
		return 0; /* ENOSYS / EOPNOTSUPP: this kernel has no Landlock */
	struct ruleset_attr attr = {.handled_access_fs = handled_for_abi(abi)};
	size_t size = sizeof(uint64_t);
	if (deny_tcp && abi >= 4) {
		/* Handled and never allowed: no TCP port can be bound or
		 * connected to (a second wall behind the seccomp filter). */
		attr.handled_access_net = LANDLOCK_ACCESS_NET_BIND_TCP | LANDLOCK_ACCESS_NET_CONNECT_TCP;
		size = offsetof(struct ruleset_attr, scoped);
	}
	if (abi >= 6) {
		/* Abstract unix sockets and signals of processes outside the
		 * sandbox (matters when the network namespace is shared). */
		attr.scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	_cleanup_close_ int ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (ruleset < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "landlock_create_ruleset (ABI %d)",
				      abi);
	uint64_t handled = attr.handled_access_fs;
	static const struct spr_paths none = {0};
	if (add_rules(ruleset, read, FS_READ, handled, err) < 0 ||
	    add_rules(ruleset, data ? data : &none, FS_READ & ~LANDLOCK_ACCESS_FS_EXECUTE, handled,
		      err) < 0 ||
	    /* Writable places hold data, never programs: no execute, there
	     * as on their noexec mounts (without namespaces, the run's
	     * directory is on the host's /tmp); no device nodes. */
	    add_rules(ruleset, write,
		      handled & ~(LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
				  LANDLOCK_ACCESS_FS_EXECUTE),
		      handled, err) < 0)
		return -1;
	if (syscall(SYS_landlock_restrict_self, ruleset, 0) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "landlock_restrict_self");
	*tcp_denied = attr.handled_access_net != 0;
	return abi;
}
