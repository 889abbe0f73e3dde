/* Builds the sandbox's root from the layout's mount list (see layout.c),
 * inside the new user and mount namespaces. Modelled on bubblewrap: a
 * scratch tmpfs, pivot_root so the host tree sits at /oldroot, every
 * operation maps /oldroot<src> onto /newroot<dst>, then the host tree is
 * detached and /newroot becomes "/". */
#include "namespace/mounts.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>

#define OLD "/oldroot"
#define NEW "/newroot"

static int sys_pivot_root(const char *new_root, const char *put_old)
{
	return (int)syscall(SYS_pivot_root, new_root, put_old);
}

static int mkdir_p(char *path, mode_t mode)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int rc = mkdir(path, mode);
		*p = '/';
		if (rc < 0 && errno != EEXIST)
			return -1;
	}
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int make_parent(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof(buf), "%s", path);
	char *slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return 0;
	*slash = '\0';
	return mkdir_p(buf, 0755);
}

/* Flags may only be added to mounts that came from the host (some are
 * locked in a user namespace); mount_setattr adds them, recursively,
 * without having to repeat the locked ones. */
static int add_mount_attrs(const char *path, uint64_t attrs, bool recursive)
{
	struct mount_attr attr = {.attr_set = attrs};
	if (mount_setattr(AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr, sizeof(attr)) == 0)
		return 0;
	if (errno != ENOSYS)
		return -1;
	/* Before Linux 5.12: remount the top mount, keeping its flags. */
	struct statvfs sv;
	if (statvfs(path, &sv) < 0)
		return -1;
	unsigned long flags = MS_REMOUNT | MS_BIND;
	if (sv.f_flag & ST_NOSUID || attrs & MOUNT_ATTR_NOSUID)
		flags |= MS_NOSUID;
	if (sv.f_flag & ST_NODEV || attrs & MOUNT_ATTR_NODEV)
		flags |= MS_NODEV;
	if (sv.f_flag & ST_NOEXEC || attrs & MOUNT_ATTR_NOEXEC)
		flags |= MS_NOEXEC;
	if (sv.f_flag & ST_RDONLY || attrs & MOUNT_ATTR_RDONLY)
		flags |= MS_RDONLY;
	if (sv.f_flag & ST_NOATIME)
		flags |= MS_NOATIME;
	if (sv.f_flag & ST_NODIRATIME)
		flags |= MS_NODIRATIME;
	if (sv.f_flag & ST_RELATIME)
		flags |= MS_RELATIME;
	return mount(NULL, path, NULL, flags, NULL);
}

static int make_placeholder(const char *dst, const struct stat *st, spr_error **err)
{
	if (make_parent(dst) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "creating the parent of %s", dst);
	if (S_ISDIR(st->st_mode)) {
		if (mkdir(dst, 0755) < 0 && errno != EEXIST)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "mkdir %s", dst);
		return 0;
	}
	int placeholder = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (placeholder < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "creating %s", dst);
	close(placeholder);
	return 0;
}

/* A detached mount the monitor prepared (flags already set): attach it. */
static int attach_tree(int *fd, const char *src_rel, const char *dst, spr_error **err)
{
	struct stat st;
	if (fstat(*fd, &st) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "bind source %s", src_rel);
	if (make_placeholder(dst, &st, err) < 0)
		return -1;
	if (move_mount(*fd, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "attaching %s", src_rel);
	spr_closep(fd);
	return 0;
}

static int do_bind(const char *src_rel, int *fd, const char *dst, int kind, spr_error **err)
{
	if (*fd >= 0)
		return attach_tree(fd, src_rel, dst, err);
	char src[PATH_MAX];
	snprintf(src, sizeof(src), OLD "%s", src_rel);
	struct stat st;
	if (stat(src, &st) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "bind source %s", src_rel);
	if (make_placeholder(dst, &st, err) < 0)
		return -1;
	if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "bind mount %s", src_rel);
	if (add_mount_attrs(dst, spr_bind_attrs(kind), true) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "setting the flags of %s", src_rel);
	return 0;
}

static int do_tmpfs(const struct spr_mount_op *o, const char *dst, spr_error **err)
{
	char opts[96];
	snprintf(opts, sizeof(opts), "size=%llu,mode=%04o", (unsigned long long)o->size,
		 (unsigned)o->mode);
	unsigned long flags = MS_NOSUID | MS_NODEV | (o->noexec ? MS_NOEXEC : 0);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s", dst);
	if (mkdir_p(path, 0755) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "mkdir %s", dst);
	if (mount("tmpfs", dst, "tmpfs", flags, opts) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "mounting a tmpfs on %s", dst);
	return 0;
}

static int do_file(const struct spr_mount_op *o, const char *dst, spr_error **err)
{
	const char *content = o->text;
	if (make_parent(dst) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "creating the parent of %s", dst);
	_cleanup_close_ int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
				      (mode_t)o->mode);
	if (fd < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "creating %s", dst);
	size_t len = content ? strlen(content) : 0;
	if (len && write(fd, content, len) != (ssize_t)len)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "writing %s", dst);
	return 0;
}

/* Hides a host-revealing /proc entry: a directory gets an empty read-only
 * tmpfs, a file gets /dev/null. Entries this kernel lacks are skipped.
 * A bind takes none of the flags passed with it (they need a remount), so
 * the file masks get theirs afterwards; nodev makes the node unopenable
 * (EACCES), which hides the entry at least as well as an empty read, and
 * leaves /dev's own nodes the only openable devices in the sandbox. */
static int do_mask(const char *dst, spr_error **err)
{
	struct stat st;
	if (lstat(dst, &st) < 0)
		return 0;
	int rc = S_ISDIR(st.st_mode)
			 ? mount("tmpfs", dst, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
				 "size=0,mode=0555")
			 : mount(OLD "/dev/null", dst, NULL, MS_BIND, NULL);
	if (rc == 0 && !S_ISDIR(st.st_mode))
		rc = add_mount_attrs(dst,
				     MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
					     MOUNT_ATTR_NOEXEC,
				     false);
	if (rc < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "masking %s", dst + strlen(NEW));
	return 0;
}

static int do_readonly(const char *dst, spr_error **err)
{
	struct stat st;
	if (lstat(dst, &st) < 0)
		return 0;
	if (mount(dst, dst, NULL, MS_BIND | MS_REC, NULL) < 0 ||
	    add_mount_attrs(dst, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "making %s read-only",
				      dst + strlen(NEW));
	return 0;
}

static int apply_op(const struct spr_mount_op *o, int *bind_fd, spr_error **err)
{
	const char *dst_rel = o->dst;
	char dst[PATH_MAX];
	snprintf(dst, sizeof(dst), NEW "%s", strcmp(dst_rel, "/") ? dst_rel : "");
	switch ((enum spr_mount_kind)o->kind) {
	case SPR_MOUNT_BIND_RO:
	case SPR_MOUNT_BIND_DEV:
	case SPR_MOUNT_BIND_RW:
		return do_bind(o->src, bind_fd, dst, o->kind, err);
	case SPR_MOUNT_TMPFS:
		return do_tmpfs(o, dst, err);
	case SPR_MOUNT_FILE:
		return do_file(o, dst, err);
	case SPR_MOUNT_MASK:
		return do_mask(dst, err);
	case SPR_MOUNT_READONLY:
		return do_readonly(dst, err);
	case SPR_MOUNT_DIR:
		if (mkdir_p(dst, (mode_t)o->mode) < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "mkdir %s", dst_rel);
		return 0;
	case SPR_MOUNT_SYMLINK:
		if (make_parent(dst) < 0 || symlink(o->text, dst) < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "symlink %s", dst_rel);
		return 0;
	case SPR_MOUNT_PROC:
		if (mkdir_p(dst, 0555) < 0 ||
		    mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE,
					      "mounting a fresh /proc for the new pid namespace");
		return 0;
	case SPR_MOUNT_SEAL:
		if (add_mount_attrs(dst, MOUNT_ATTR_RDONLY, false) < 0)
			return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "sealing %s", dst_rel);
		return 0;
	case SPR_MOUNT_NKINDS:
		break;
	}
	return spr_fail(err, SPR_LAYER_NAMESPACE, EINVAL, "unknown mount operation %d", o->kind);
}

/* A scratch tmpfs to pivot into; any existing directory serves, since the
 * mount namespace is private and the host tree moves to /oldroot. */
static int enter_scratch_root(spr_error **err)
{
	static const char *const bases[] = {"/tmp", "/mnt", "/run", "/var/tmp"};
	const char *base = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(bases) && !base; i++) {
		struct stat st;
		if (lstat(bases[i], &st) == 0 && S_ISDIR(st.st_mode))
			base = bases[i];
	}
	if (!base)
		return spr_fail(err, SPR_LAYER_NAMESPACE, ENOENT,
				"no directory to build the sandbox root on (/tmp, /mnt, /run)");
	if (mount("tmpfs", base, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "mounting the scratch tmpfs on %s",
				      base);
	if (chdir(base) < 0 || mkdir("newroot", 0755) < 0 || mkdir("oldroot", 0755) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "preparing the scratch root");
	if (mount("tmpfs", "newroot", "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755") < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "mounting the root tmpfs");
	if (sys_pivot_root(".", "oldroot") < 0 || chdir("/") < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "pivot_root into the scratch root");
	return 0;
}

/* Detach the host tree, make /newroot "/", and seal it read-only. */
static int leave_host(spr_error **err)
{
	if (mount(OLD, OLD, NULL, MS_REC | MS_PRIVATE, NULL) < 0 || umount2(OLD, MNT_DETACH) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "detaching the host root");
	if (chdir(NEW) < 0 || sys_pivot_root(".", ".") < 0 || umount2(".", MNT_DETACH) < 0 ||
	    chdir("/") < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "pivot_root into the sandbox root");
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "making the sandbox root read-only");
	return 0;
}

int spr_mounts_setup(const struct spr_layout *layout, int *bind_fds, spr_error **err)
{
	/* Nothing we mount may propagate back to the host. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return spr_fail_errno(err, SPR_LAYER_NAMESPACE, "making mounts private");
	if (enter_scratch_root(err) < 0)
		return -1;
	for (size_t i = 0; i < layout->nmounts; i++)
		if (apply_op(&layout->mounts[i], &bind_fds[i], err) < 0)
			return -1;
	return leave_host(err);
}
