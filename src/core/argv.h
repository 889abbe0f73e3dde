/* A NULL-terminated argv that grows as it is filled (docker command lines).
 * One failed allocation poisons it, so the caller checks once at the end. */
#ifndef SPR_ARGV_H
#define SPR_ARGV_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

struct spr_argv {
	char **v;
	size_t len, cap;
	bool failed;
};

/* Appends a copy of s. */
SPR_HIDDEN void spr_argv_add(struct spr_argv *b, const char *s);
SPR_HIDDEN void spr_argv_addf(struct spr_argv *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* The vector (the caller frees it with spr_argv_free_vector), or NULL
 * when an allocation failed (everything freed). */
SPR_HIDDEN char **spr_argv_finish(struct spr_argv *b);
SPR_HIDDEN void spr_argv_free_vector(char **v);

#endif
