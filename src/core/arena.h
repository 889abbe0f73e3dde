/* An arena: many small allocations freed together. A decoded plan or
 * message, and the layout the library builds, are trees of small strings
 * and arrays that live and die as one; an arena makes that one free and
 * no per-node ownership rules. Allocation failure sets `oom` and returns
 * NULL, so a builder checks once at the end. */
#ifndef SPR_ARENA_H
#define SPR_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct spr_arena_block;

struct spr_arena {
	struct spr_arena_block *head;
	bool oom;
};

#define SPR_ARENA_INIT {0}

/* n zeroed bytes, aligned for any type. */
SPR_HIDDEN void *spr_arena_alloc(struct spr_arena *a, size_t n);
SPR_HIDDEN char *spr_arena_strdup(struct spr_arena *a, const char *s);
SPR_HIDDEN char *spr_arena_strndup(struct spr_arena *a, const char *s, size_t n);
SPR_HIDDEN char *spr_arena_printf(struct spr_arena *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
SPR_HIDDEN void spr_arena_free(struct spr_arena *a);

#define _cleanup_arena_ SPR_CLEANUP(spr_arena_free)

#endif
