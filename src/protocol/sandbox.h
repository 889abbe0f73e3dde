/* spr-sandbox: the helper the LocalEngine runs for every run (DESIGN.md
 * "One run, LocalEngine"). It is a separate, single-threaded program so no
 * namespace or credential work ever happens in the library's (possibly
 * threaded) caller. The engine starts it once as a fork server; each run's
 * monitor is a fresh fork of that server.
 *
 * A monitor's descriptors when it starts:
 *   0  the worker's request (socket, read by the worker)
 *   1  the code's stdout (pipe)      2  the code's stderr (pipe)
 *   3  the worker's result (pipe)    4  control (SOCK_SEQPACKET)
 *
 * On control: the engine sends the sandbox plan (plan.h), then at most
 * KILL; the monitor answers STARTED or ERROR, then EXIT (message.h), and
 * exits right after EXIT or ERROR. If the engine goes away (control EOF,
 * or the server dies: PDEATHSIG), the run is killed.
 * docs/WORKER_PROTOCOL.md documents every channel.
 */
#ifndef SPR_SANDBOX_H
#define SPR_SANDBOX_H

#include <sys/types.h>

#include "error.h"

enum {
	SPR_FD_REQUEST = 0,
	SPR_FD_STDOUT = 1,
	SPR_FD_STDERR = 2,
	SPR_FD_RESULT = 3,
	SPR_FD_CTRL = 4,
	SPR_SANDBOX_NFDS = 5,
};

#define SPR_SANDBOX_MAX_MSG (1 << 20)

/* The host's ends of one sandbox's channels (non-blocking but ctrl). */
struct spr_sandbox_ends {
	int ctrl;	      /* the monitor's control socket */
	int request;	      /* the worker's stdin */
	int out, err, result; /* read ends of the worker's fds 1, 2, 3 */
};

#define SPR_SANDBOX_ENDS_INIT {.ctrl = -1, .request = -1, .out = -1, .err = -1, .result = -1}

/* Makes the five channels: ours, and the monitor's (child, in slot
 * order), all close-on-exec. On failure everything made is closed. */
SPR_HIDDEN int spr_sandbox_channels(struct spr_sandbox_ends *ours, int child[SPR_SANDBOX_NFDS],
				    spr_error **err);
SPR_HIDDEN void spr_sandbox_ends_close(struct spr_sandbox_ends *ends);
SPR_HIDDEN void spr_sandbox_child_ends_close(int child[SPR_SANDBOX_NFDS]);

/* Asks the fork server on sock for a monitor on fds (RUN; orphan_grace:
 * the run may go without namespaces, message.h) and reads its
 * answer: MONITOR (*pidfd set), ERROR (this request failed; *m says why),
 * FATAL (the server is exiting; *m says why) or BROKEN (no answer; errno). */
enum spr_monitor_reply {
	SPR_REPLY_MONITOR,
	SPR_REPLY_ERROR,
	SPR_REPLY_FATAL,
	SPR_REPLY_BROKEN,
};
struct spr_msg;
SPR_HIDDEN enum spr_monitor_reply spr_sandbox_ask_monitor(int sock,
							  const int fds[SPR_SANDBOX_NFDS],
							  bool orphan_grace, int *pidfd,
							  struct spr_msg *m);

/* `spr-sandbox --serve CALLER_PID`, the engine's fork server
 * (src/namespace/server.c; src/namespace/main.c calls it), its socket on
 * fd 0 (SOCK_SEQPACKET): the engine sends RUN with the five descriptors
 * above (SCM_RIGHTS, in slot order) or BYE; the server answers MONITOR
 * with a pidfd of the run's monitor, ERROR (that request failed) or FATAL
 * (the server is exiting). Returns the exit status: after BYE or EOF once
 * its monitors have exited; at once when the caller's process is gone. */
SPR_HIDDEN int spr_sandbox_serve(int argc, char **argv);
/* The same server on a socket already in hand, for a given caller (the
 * container agent's own). */
SPR_HIDDEN int spr_sandbox_serve_on(int sock, pid_t caller);

/* `spr-sandbox --container WORKER PYTHON BASE_PREFIX PREFIX`: the
 * DockerEngine's container agent (src/namespace/agent.c), pid 1 of a
 * pooled container, speaking frames (protocol/frame.h) on fds 0 and 1.
 * Returns the exit status. */
SPR_HIDDEN int spr_sandbox_agent(int argc, char **argv);

/* One run's monitor (src/namespace/monitor.c), forked by the server with the five
 * descriptors in place; parent is the server (PDEATHSIG). Returns the exit
 * status. */
SPR_HIDDEN int spr_sandbox_monitor(pid_t parent);

#endif
