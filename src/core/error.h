/* Error objects: every fallible function returns negative and fills an
 * spr_error (message + errno + layer). */
#ifndef SPR_ERROR_H
#define SPR_ERROR_H

#include "spr.h"
#include "util.h"

/* Sets *err (when err and not already set) and returns -1. The message is
 * printf-formatted; errnum 0 means "not a system-call failure". */
SPR_HIDDEN int spr_fail(spr_error **err, spr_layer layer, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Like spr_fail with errno, appending ": strerror(errno)". */
SPR_HIDDEN int spr_fail_errno(spr_error **err, spr_layer layer, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Out of memory: a static message, no allocation needed to report it. */
SPR_HIDDEN int spr_fail_oom(spr_error **err);
/* Prepends context ("loading policy: ") to an existing error. */
SPR_HIDDEN void spr_error_prefix(spr_error **err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
SPR_HIDDEN spr_error *spr_error_new(spr_layer layer, int errnum, const char *message);

/* The three return -1 where the caller can see it: a static analyser
 * (make lint) reads one file at a time, and without this took every
 * `if (spr_fail(...) < 0)` path for maybe not taken, its caller's output
 * for maybe written. error.c defines them as (spr_fail) etc. */
#define spr_fail(...) ({ spr_fail(__VA_ARGS__); -1; })
#define spr_fail_errno(...) ({ spr_fail_errno(__VA_ARGS__); -1; })
#define spr_fail_oom(err) ({ spr_fail_oom(err); -1; })

static inline void spr_error_freep(spr_error **e)
{
	spr_error_free(*e);
	*e = NULL;
}
#define _cleanup_error_ SPR_CLEANUP(spr_error_freep)

#endif
