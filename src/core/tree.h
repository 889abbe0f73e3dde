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
/* Removes path and everything below it; a missing path is no error.
 * Returns -1 (errno set) when something is left. */
SPR_HIDDEN int spr_remove_tree(const char *path);
/* Gives every entry under path (and path itself) owned by from_uid to
 * to_uid:to_gid; other entries are left alone. Set-id bits of what was
 * handed over are cleared. Returns -1 (errno set) on the first failure. */
SPR_HIDDEN int spr_chown_tree(const char *path, uid_t from_uid, uid_t to_uid, gid_t to_gid);

#endif
