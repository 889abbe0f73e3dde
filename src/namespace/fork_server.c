/* The engine's side of the fork server: see fork_server.h and, for why it
 * exists, sandbox_server.c. */
#include "namespace/fork_server.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proc.h"

/* Forking a monitor takes well under a millisecond; this only bounds a
 * server that is stopped or starved. */
#define REPLY_TIMEOUT_MS 10000

void spr_fork_server_init(struct spr_fork_server *s)
{
	pthread_mutex_init(&s->lock, NULL);
	s->pid = -1;
	s->owner = -1;
	s->sock = -1;
}

static int spawn_server(struct spr_fork_server *s, const char *path, spr_error **err)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "socketpair(SOCK_SEQPACKET)");
	/* Sources above the target numbers (spr_spawn's rule); the server's
	 * stdout and stderr lead nowhere. */
	int fds[3] = {spr_fd_above(sp[1], 3), open("/dev/null", O_RDWR | O_CLOEXEC), -1};
	if (fds[1] >= 0)
		fds[1] = spr_fd_above(fds[1], 3);
	if (fds[1] >= 0)
		fds[2] = fds[1];
	int rc;
	if (fds[0] < 0 || fds[1] < 0) {
		rc = spr_fail_errno(err, SPR_LAYER_SANDBOX, "preparing spr-sandbox's descriptors");
	} else {
		char caller[24];
		snprintf(caller, sizeof(caller), "%d", (int)getpid());
		char *argv[] = {(char *)path, (char *)"--serve", caller, NULL};
		char *envp[] = {NULL};
		rc = spr_spawn(path, argv, envp, fds, 3, &s->pid, err);
	}
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	if (rc < 0) {
		close(sp[0]);
		return -1;
	}
	s->sock = sp[0];
	s->owner = getpid();
	return 0;
}

/* Our process's server: told goodbye (and waited for) or killed. A copy
 * inherited through fork belongs to the parent process: only forgotten. */
static void drop_server(struct spr_fork_server *s, bool gently)
{
	if (s->sock < 0)
		return;
	if (s->owner == getpid()) {
		if (gently)
			send(s->sock, "bye", 3, MSG_NOSIGNAL);
		else
			kill(s->pid, SIGKILL);
		close(s->sock);
		spr_reap(s->pid, NULL);
	} else {
		close(s->sock);
	}
	s->sock = -1;
	s->pid = -1;
}

static int send_run(int sock, const int fds[SPR_SANDBOX_NFDS])
{
	struct iovec iov = {.iov_base = (void *)"run", .iov_len = 3};
	union {
		char buf[CMSG_SPACE(sizeof(int) * SPR_SANDBOX_NFDS)];
		struct cmsghdr align;
	} u = {0};
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * SPR_SANDBOX_NFDS);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * SPR_SANDBOX_NFDS);
	return sendmsg(sock, &msg, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

/* Returns the monitor's pid (> 0), -1 when the server is broken (errno),
 * or -2 when it answered with an error (*server_errno). */
static int receive_reply(int sock, int *pidfd, int *server_errno)
{
	struct pollfd p = {.fd = sock, .events = POLLIN};
	int64_t deadline = spr_now_ms() + REPLY_TIMEOUT_MS;
	int ready;
	while ((ready = poll(&p, 1, (int)(deadline - spr_now_ms()))) < 0 && errno == EINTR) {
	}
	if (ready <= 0) {
		if (ready == 0)
			errno = ETIMEDOUT;
		return -1;
	}
	char text[32];
	struct iovec iov = {.iov_base = text, .iov_len = sizeof(text) - 1};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n <= 0) {
		if (n == 0)
			errno = EPIPE;
		return -1;
	}
	text[n] = '\0';
	*pidfd = -1;
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
	if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int)))
		memcpy(pidfd, CMSG_DATA(c), sizeof(int));
	int pid = atoi(text);
	if (pid > 0 && *pidfd >= 0)
		return pid;
	if (*pidfd >= 0)
		close(*pidfd);
	*pidfd = -1;
	if (sscanf(text, "error %d", server_errno) == 1)
		return -2;
	errno = EPROTO;
	return -1;
}

int spr_fork_server_start(struct spr_fork_server *s, const char *path,
			  const int fds[SPR_SANDBOX_NFDS], int *pidfd, spr_error **err)
{
	pthread_mutex_lock(&s->lock);
	if (s->sock >= 0 && s->owner != getpid())
		drop_server(s, false);
	int rc = -1;
	/* A server that died since the last run (killed, or its caller's
	 * resources ran out) is replaced once. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = s->sock < 0;
		if (fresh && spawn_server(s, path, err) < 0)
			break;
		int server_errno = 0;
		rc = send_run(s->sock, fds);
		if (rc == 0)
			rc = receive_reply(s->sock, pidfd, &server_errno);
		if (rc > 0) {
			rc = 0;
			break;
		}
		if (rc == -2) {
			rc = spr_fail(err, SPR_LAYER_SANDBOX, server_errno,
				      "spr-sandbox could not start a run's monitor (fork)");
			break;
		}
		int broken = errno;
		drop_server(s, false);
		if (fresh) {
			rc = spr_fail(err, SPR_LAYER_SANDBOX, broken,
				      "spr-sandbox (%s --serve) did not answer", path);
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void spr_fork_server_stop(struct spr_fork_server *s)
{
	pthread_mutex_lock(&s->lock);
	drop_server(s, true);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
}
