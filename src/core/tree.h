/* Walking a directory tree someone else filled (a run's workdir, a venv a
 * sandboxed install wrote) without following anything planted in it:
 * every step is openat/unlinkat/fchownat relative to a directory fd, with
 * O_NOFOLLOW / AT_SYMLINK_NOFOLLOW. */
#ifndef SPR_TREE_H
#define SPR_TREE_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/* Removes everything below dirfd (closing it), best effort. */
SPR_HIDDEN void spr_remove_tree_at(int dirfd);
/* The same going down only (at most 64 levels): for a tree whose writer's
 * processes may still be alive and moving directories. */
SPR_HIDDEN void spr_remove_tree_below(int dirfd);
/* Removes path and everything below it; a missing path is no error.
 * Returns -1 (errno set) when something is left. */
SPR_HIDDEN int spr_remove_tree(const char *path);
/* A tree another uid wrote (an install's venv), made the caller's:
 * every entry owned by from_uid becomes to_uid:to_gid's (none when they
 * are equal: a rootless caller's own), set-id bits and writing by group
 * or others are cleared everywhere. Fails (-1, errno) on the first entry
 * that is not a regular file, directory or link (EINVAL), that belongs
 * to anyone else (EPERM), or deeper than 256 levels (ELOOP). */
struct tree_owner {
	uid_t from_uid, to_uid;
	gid_t to_gid;
};
SPR_HIDDEN int spr_hand_over_tree(const char *path, const struct tree_owner *o);

#endif
