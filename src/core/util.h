/* Small helpers shared by every module: cleanup attributes and checked
 * arithmetic. Internal to libspr. */
#ifndef SPR_UTIL_H
#define SPR_UTIL_H

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SPR_HIDDEN __attribute__((visibility("hidden")))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static inline void spr_freep(void *p) { free(*(void **)p); }
/* Closes *fd and resets it to -1 (crun's close_and_reset): a second call,
 * a cleanup attribute after an explicit close, closes nothing — never a
 * descriptor number some other open reused meanwhile. */
static inline void spr_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
	*fd = -1;
}
static inline void spr_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

/* A whole number as people type it on a command line: decimal digits (a
 * '-' first only when min < 0), nothing around them, within [min, max].
 * strtol alone would also take " 5", "+5" and "5" followed by nothing
 * but would wrap "99999999999999999999". */
static inline bool spr_parse_whole(const char *s, long long min, long long max, long long *out)
{
	const char *digits = s + (*s == '-' && min < 0);
	if (!*digits || strspn(digits, "0123456789") != strlen(digits))
		return false;
	errno = 0;
	char *end;
	long long v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return false;
	*out = v;
	return true;
}

/* Calls f(&variable) when the variable goes out of scope. cppcheck 2.10
 * (make lint) does not know the attribute and took such variables for
 * leaked: to it they are static, which its leak check leaves alone (as
 * for anything that outlives the call) while plain locals stay checked. */
#ifdef __CPPCHECK__
#define SPR_CLEANUP(f) static
#else
#define SPR_CLEANUP(f) __attribute__((cleanup(f)))
#endif

#define _cleanup_free_ SPR_CLEANUP(spr_freep)
#define _cleanup_close_ SPR_CLEANUP(spr_closep)
#define _cleanup_fclose_ SPR_CLEANUP(spr_fclosep)

/* Hand a cleanup-managed value to someone else: the variable no longer
 * owns it. */
#define steal_pointer(pp) ({ __typeof__(*(pp)) _v = *(pp); *(pp) = NULL; _v; })
#define steal_fd(pfd) ({ int _fd = *(pfd); *(pfd) = -1; _fd; })

#endif
