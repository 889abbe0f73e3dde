/* Small shared helpers for files spr keeps on the host: the private cache
 * directory (compiled worker, build locks) and content hashes. */
#ifndef SPR_CACHE_H
#define SPR_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* The cache directory, created if missing, or NULL when no directory we
 * own and only we may write is available: $SPR_CACHE_DIR, /var/cache/spr
 * for root, $XDG_CACHE_HOME/spr, ~/.cache/spr, /tmp/spr-cache-<uid>. */
SPR_HIDDEN char *spr_cache_dir(void);

#define SPR_FNV_OFFSET 0xcbf29ce484222325ULL
SPR_HIDDEN uint64_t spr_fnv1a(uint64_t h, const void *data, size_t len);
/* Appends a whole file to out; false when it cannot be read. */
SPR_HIDDEN bool spr_read_file(const char *path, spr_buf *out);

#endif
