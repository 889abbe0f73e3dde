/* Process supervision building blocks shared by both engines: spawning a
 * helper from a possibly threaded caller, capped capture of its output,
 * non-blocking feeding of its input, monotonic deadlines. */
#ifndef SPR_PROC_H
#define SPR_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "error.h"

/* Monotonic milliseconds. */
SPR_HIDDEN int64_t spr_now_ms(void);

/* Runs path with argv/envp in directory cwd (NULL: ours). Child fd i is fds[i] (i < nfds; every source
 * must be >= nfds so the dup2 sequence cannot clobber one). All other fds
 * are close-on-exec (the library opens everything O_CLOEXEC). The child
 * starts with an empty signal mask and default dispositions. Uses
 * posix_spawn (vfork-like), so it is safe from threaded callers. */
SPR_HIDDEN int spr_spawn(const char *path, char *const argv[], char *const envp[],
			 const char *cwd, const int *fds, int nfds, pid_t *pid, spr_error **err);

/* Moves fd to the lowest free number >= min (close-on-exec), closing the
 * original; used to keep spawn sources clear of 0..nfds. */
SPR_HIDDEN int spr_fd_above(int fd, int min);
SPR_HIDDEN int spr_set_nonblock(int fd);

/* One output stream: keeps the first `keep` bytes, counts all of them, and
 * never stops reading (a writer blocked on a full pipe would otherwise
 * hang the run). */
struct spr_capture {
	int fd;	     /* -1 once at EOF */
	spr_buf buf;
	size_t keep;
	uint64_t total;
	bool tail;	/* keep the last `keep` bytes rather than the first */
	bool to_stderr; /* also copy what arrives to fd 2 (progress of a build) */
	/* Also handed every chunk as it arrives (streaming), when set. */
	void (*on_read)(void *ctx, const char *data, size_t len);
	void *on_read_ctx;
};
/* Reads what is available. Returns 1 at EOF, 0 otherwise, -1 on error. */
SPR_HIDDEN int spr_capture_read(struct spr_capture *c);
SPR_HIDDEN void spr_capture_close(struct spr_capture *c);

/* Feeds data to a socket without ever raising SIGPIPE in the caller's
 * process (MSG_NOSIGNAL); shuts the write side down when done. */
struct spr_feeder {
	int fd; /* -1 once done */
	const char *data;
	size_t len, off;
};
/* Returns 1 when done (all written, or the reader went away), 0 when more
 * remains, -1 on error. */
SPR_HIDDEN int spr_feeder_pump(struct spr_feeder *f);
SPR_HIDDEN void spr_feeder_close(struct spr_feeder *f);

/* Waits for a specific child (never -1: the caller's other children are
 * not ours). Tolerates a caller that ignores SIGCHLD (ECHILD). */
SPR_HIDDEN int spr_reap(pid_t pid, int *status);



/* Runs a short command to completion (interpreter probes, later docker CLI
 * queries): stdin /dev/null, stdout and stderr captured (up to 1 MiB each),
 * killed after timeout_ms. *status is the wait status. */
SPR_HIDDEN int spr_command_output(char *const argv[], char *const envp[], int64_t timeout_ms,
				  spr_buf *out, spr_buf *err_out, int *status, spr_error **err);
/* Like spr_command_output, but the command writes its stdout and stderr
 * straight to out_fd (a terminal showing build progress). */
SPR_HIDDEN int spr_command_passthrough(char *const argv[], char *const envp[], int out_fd,
				       int64_t timeout_ms, int *status, spr_error **err);

/* A process's state letter and start time (clock ticks since boot) from
 * /proc/<pid>/stat: together with the pid they identify it across pid
 * reuse. Returns -1 when the process does not exist. */
SPR_HIDDEN int spr_proc_identity(pid_t pid, char *state, unsigned long long *start_time);

#endif
