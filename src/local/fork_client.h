/* The engine's side of spr-sandbox's fork server (sandbox.h): started at
 * the first run (a one-shot engine's at its creation), asked for one
 * monitor per run, told "bye" when the engine is freed. */
#ifndef SPR_FORK_SERVER_H
#define SPR_FORK_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "error.h"
#include "protocol/sandbox.h"

#define SPR_FORK_SERVER_RETIRED 8

struct spr_fork_server {
	pthread_mutex_t lock; /* one request and its reply at a time */
	int sock;	      /* -1: not started */
	int pidfd;	      /* the server's */
	pid_t owner;	      /* the process that started it (a fork of the caller
				 must not share it: replies would cross) */
	unsigned generation;  /* bumped whenever a new server starts */
	bool untried;	      /* started ahead (spr_fork_server_spawn), never asked
				 yet: a failure to answer is its start's */
	uid_t uid;	      /* the credentials it runs with */
	gid_t gid;
	/* Servers let go (they finish their monitors, then exit), reaped
	 * later: never killed, so no run in flight dies with them. */
	int retired[SPR_FORK_SERVER_RETIRED];
	size_t nretired;
	struct spr_fork_server *next; /* every live server: fork() holds them still */
};

SPR_HIDDEN void spr_fork_server_init(struct spr_fork_server *s);

/* Starts a run's monitor on fds (slot order, sandbox.h), starting the
 * server at path first when needed (and once more if it died). *pidfd is
 * the monitor's, for killing it; *generation the server's that forked it.
 * orphan_grace: the run may go without namespaces (message.h). */
SPR_HIDDEN int spr_fork_server_start(struct spr_fork_server *s, const char *path,
				     const int fds[SPR_SANDBOX_NFDS], bool orphan_grace, int *pidfd,
				     unsigned *generation, spr_error **err);

/* Starts the server at path now, when none runs, so that its start (an
 * execution of spr-sandbox) overlaps the caller's own work before the
 * first run. A failure is only forgotten: the first run starts it again
 * and reports why it could not. */
SPR_HIDDEN void spr_fork_server_spawn(struct spr_fork_server *s, const char *path);

/* The generation of the server that would fork the next monitor, 0 when a
 * new one would have to start (it died, the caller forked, credentials
 * changed). A monitor of another generation is not the current server's:
 * one forked by a dead server dies with it (PR_SET_PDEATHSIG). */
SPR_HIDDEN unsigned spr_fork_server_current(struct spr_fork_server *s);

/* Says goodbye and waits until the server and its monitors have finished
 * (their runs' clean-up included). */
SPR_HIDDEN void spr_fork_server_stop(struct spr_fork_server *s);

#endif
