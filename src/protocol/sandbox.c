/* The channels between a sandbox and whoever drives it (protocol/sandbox.h). */
#include "protocol/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/socket.h>

#include "proc.h"
#include "protocol/message.h"

static int nonblocking(int fd)
{
	int flags = fcntl(fd, F_GETFL);
	return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void spr_sandbox_ends_close(struct spr_sandbox_ends *e)
{
	spr_closep(&e->ctrl);
	spr_closep(&e->request);
	spr_closep(&e->out);
	spr_closep(&e->err);
	spr_closep(&e->result);
}

void spr_sandbox_child_ends_close(int child[SPR_SANDBOX_NFDS])
{
	for (int i = 0; i < SPR_SANDBOX_NFDS; i++)
		spr_closep(&child[i]);
}

int spr_sandbox_channels(struct spr_sandbox_ends *ours, int child[SPR_SANDBOX_NFDS],
			 spr_error **err)
{
	*ours = (struct spr_sandbox_ends)SPR_SANDBOX_ENDS_INIT;
	for (int i = 0; i < SPR_SANDBOX_NFDS; i++)
		child[i] = -1;
	int sp[2], fds[2];
	int rc = 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0) {
		rc = spr_fail_errno(err, SPR_LAYER_CORE, "socketpair");
	} else {
		ours->request = sp[0];
		child[SPR_FD_REQUEST] = sp[1];
	}
	int *read_ends[] = {&ours->out, &ours->err, &ours->result};
	const int slots[] = {SPR_FD_STDOUT, SPR_FD_STDERR, SPR_FD_RESULT};
	for (size_t i = 0; rc == 0 && i < ARRAY_SIZE(read_ends); i++) {
		if (pipe2(fds, O_CLOEXEC) < 0) {
			rc = spr_fail_errno(err, SPR_LAYER_CORE, "pipe2");
			break;
		}
		*read_ends[i] = fds[0];
		child[slots[i]] = fds[1];
	}
	if (rc == 0 && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		rc = spr_fail_errno(err, SPR_LAYER_CORE, "socketpair(SOCK_SEQPACKET)");
	else if (rc == 0) {
		ours->ctrl = sp[0];
		child[SPR_FD_CTRL] = sp[1];
	}
	if (rc == 0 && (nonblocking(ours->request) < 0 || nonblocking(ours->out) < 0 ||
			nonblocking(ours->err) < 0 || nonblocking(ours->result) < 0))
		rc = spr_fail_errno(err, SPR_LAYER_CORE, "fcntl(O_NONBLOCK)");
	if (rc < 0) {
		spr_sandbox_ends_close(ours);
		spr_sandbox_child_ends_close(child);
	}
	return rc;
}

/* Forking a monitor takes well under a millisecond; this only bounds a
 * server that is stopped or starved. */
#define SPR_REPLY_TIMEOUT_MS 10000

enum spr_monitor_reply spr_sandbox_ask_monitor(int sock, const int fds[SPR_SANDBOX_NFDS],
					       bool orphan_grace, int *pidfd, struct spr_msg *m)
{
	*pidfd = -1;
	struct spr_msg run = {.type = SPR_MSG_RUN, .run.orphan_grace = orphan_grace};
	if (spr_msg_send(sock, &run, fds, SPR_SANDBOX_NFDS) < 0)
		return SPR_REPLY_BROKEN;
	struct pollfd p = {.fd = sock, .events = POLLIN};
	int64_t deadline = spr_now_ms() + SPR_REPLY_TIMEOUT_MS;
	int ready;
	do {
		int64_t left = deadline - spr_now_ms();
		ready = poll(&p, 1, left > 0 ? (int)left : 0);
	} while (ready < 0 && errno == EINTR);
	if (ready <= 0) {
		if (ready == 0)
			errno = ETIMEDOUT;
		return SPR_REPLY_BROKEN;
	}
	size_t nfds = 1;
	int rc = spr_msg_recv(sock, m, 0, pidfd, &nfds);
	if (rc < 0 && errno == EMSGSIZE) {
		/* The monitor started; we could not take its pidfd. Without the
		 * control socket (closed by our caller) it ends by itself. */
		*m = (struct spr_msg){.type = SPR_MSG_ERROR};
		m->error.layer = SPR_LAYER_SANDBOX;
		m->error.errnum = EMFILE;
		snprintf(m->error.message, sizeof(m->error.message),
			 "receiving the run monitor's pidfd (the calling process is out of "
			 "descriptors: raise RLIMIT_NOFILE)");
		return SPR_REPLY_ERROR;
	}
	if (rc <= 0) {
		if (rc == 0)
			errno = EPIPE;
		return SPR_REPLY_BROKEN;
	}
	if (m->type == SPR_MSG_MONITOR && nfds == 1)
		return SPR_REPLY_MONITOR;
	if (nfds)
		spr_closep(pidfd);
	if (m->type == SPR_MSG_ERROR)
		return SPR_REPLY_ERROR;
	if (m->type == SPR_MSG_FATAL)
		return SPR_REPLY_FATAL;
	errno = EPROTO;
	return SPR_REPLY_BROKEN;
}

