/* Small helpers shared by every module: cleanup attributes and checked
 * arithmetic. Internal to libspr. */
#ifndef SPR_UTIL_H
#define SPR_UTIL_H

#include <errno.h>
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

#define _cleanup_free_ __attribute__((cleanup(spr_freep)))
#define _cleanup_close_ __attribute__((cleanup(spr_closep)))
#define _cleanup_fclose_ __attribute__((cleanup(spr_fclosep)))

/* Hand a cleanup-managed value to someone else: the variable no longer
 * owns it. */
#define steal_pointer(pp) ({ __typeof__(*(pp)) _v = *(pp); *(pp) = NULL; _v; })
#define steal_fd(pfd) ({ int _fd = *(pfd); *(pfd) = -1; _fd; })

#endif
