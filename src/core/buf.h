/* A growable byte buffer. Allocation failure is sticky (`oom`) so that a
 * sequence of appends can be checked once at the end. */
#ifndef SPR_BUF_H
#define SPR_BUF_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

typedef struct spr_buf {
	char *data; /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	bool oom;
} spr_buf;

#define SPR_BUF_INIT {0}

SPR_HIDDEN bool spr_buf_reserve(spr_buf *b, size_t extra);
SPR_HIDDEN void spr_buf_append(spr_buf *b, const void *data, size_t len);
SPR_HIDDEN void spr_buf_puts(spr_buf *b, const char *s);
SPR_HIDDEN void spr_buf_putc(spr_buf *b, char c);
SPR_HIDDEN void spr_buf_printf(spr_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (NULL if allocation failed); b is reset. */
SPR_HIDDEN char *spr_buf_steal(spr_buf *b, size_t *len);
SPR_HIDDEN void spr_buf_reset(spr_buf *b);
SPR_HIDDEN void spr_buf_free(spr_buf *b);

static inline void spr_buf_freep(spr_buf *b) { spr_buf_free(b); }
#define _cleanup_buf_ SPR_CLEANUP(spr_buf_freep)

#endif
