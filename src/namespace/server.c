/* spr-sandbox --serve: the engine's fork server (DESIGN.md "One run,
 * LocalEngine"). Executing a program costs ~0.65 ms on the hosts we
 * measured, more than a fifth of a run's overhead; forking this small,
 * idle process costs a tenth of that. So the engine starts one server and
 * each run's monitor is a fresh fork of it, exactly as if spr-sandbox had
 * just been executed: nothing of an earlier run can be in it, because the
 * server itself never runs anything.
 *
 * The server outlives no one: it exits when its caller's process does
 * (a pidfd, not PDEATHSIG, which fires when the spawning *thread* ends),
 * and the monitors, whose PDEATHSIG names the server, die with it — so
 * killing the caller still kills every run. On "bye" (the engine is being
 * freed) it waits for its monitors to finish their clean-up first. */
#include "protocol/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct server {
	pid_t caller;
	int caller_fd; /* pidfd: readable once the caller's process is gone */
	int sigfd;
	sigset_t saved_mask;
	bool closing;
};

static void reply(int sock, const char *text, int fd);

/* The engine reads why on the socket (fatal: the server is gone). */
static int server_fail(int sock, const char *what)
{
	int errnum = errno ? errno : EINVAL;
	char text[256];
	snprintf(text, sizeof(text), "fatal %d spr-sandbox --serve: %s: %s", errnum, what,
		 strerror(errnum));
	reply(sock, text, -1);
	fprintf(stderr, "%s\n", text + 6);
	return 125;
}

/* Only the engine's socket on 0; 1 and 2 lead nowhere useful. */
static bool is_server_socket(int fd)
{
	int type;
	socklen_t len = sizeof(type);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_SEQPACKET;
}

static int watch_caller(struct server *s)
{
	if (getppid() != s->caller) {
		errno = ESRCH;
		return -1;
	}
	s->caller_fd = pidfd_open(s->caller, 0);
	if (s->caller_fd < 0)
		return -1;
	/* Re-checked: the pid could have been reused between the two calls. */
	if (getppid() != s->caller) {
		errno = ESRCH;
		return -1;
	}
	return 0;
}

/* SIGCHLD through a signalfd. A terminal's ^C (the whole process group)
 * and the like are held back: they are for the monitors, which kill their
 * runs and clean up; the server ends with its caller. */
static int watch_children(struct server *s)
{
	sigset_t set, held;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	held = set;
	sigaddset(&held, SIGINT);
	sigaddset(&held, SIGHUP);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGQUIT);
	if (sigprocmask(SIG_BLOCK, &held, &s->saved_mask) < 0)
		return -1;
	s->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	return s->sigfd < 0 ? -1 : 0;
}

/* Returns false when no monitor is left. */
static bool reap_monitors(void)
{
	for (;;) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid > 0)
			continue;
		return pid == 0;
	}
}

/* In the forked child: put the run's descriptors where a freshly executed
 * spr-sandbox finds them, drop the server's, and be that monitor. */
__attribute__((noreturn)) static void become_monitor(const struct server *s, pid_t server,
						     int fds[SPR_SANDBOX_NFDS])
{
	close(s->sigfd);
	close(s->caller_fd);
	sigprocmask(SIG_SETMASK, &s->saved_mask, NULL);
	for (int i = 0; i < SPR_SANDBOX_NFDS; i++) {
		int moved = fcntl(fds[i], F_DUPFD_CLOEXEC, SPR_SANDBOX_NFDS);
		if (moved < 0)
			_exit(125);
		close(fds[i]);
		fds[i] = moved;
	}
	for (int i = 0; i < SPR_SANDBOX_NFDS; i++)
		if (dup2(fds[i], i) < 0) /* also replaces the server socket on 0 */
			_exit(125);
	close_range(SPR_SANDBOX_NFDS, ~0U, 0);
	_exit(spr_sandbox_monitor(server));
}

static void reply(int sock, const char *text, int fd)
{
	if (sock < 0)
		return;
	struct iovec iov = {.iov_base = (void *)text, .iov_len = strlen(text)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u = {0};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (fd >= 0) {
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	sendmsg(sock, &msg, MSG_NOSIGNAL);
}

/* A "run" request carries the run's descriptors in slot order; the reply
 * is "<pid>" with a pidfd of its monitor, or "error <errno>". */
static void start_monitor(struct server *s, int sock, int fds[SPR_SANDBOX_NFDS])
{
	pid_t server = getpid();
	pid_t pid = fork();
	if (pid == 0)
		become_monitor(s, server, fds);
	char text[160];
	int pidfd = -1;
	/* Not reaped before this: SIGCHLD is only handled by the loop. */
	if (pid > 0 && (pidfd = pidfd_open(pid, 0)) >= 0) {
		snprintf(text, sizeof(text), "%d", (int)pid);
	} else {
		snprintf(text, sizeof(text), "error %d spr-sandbox could not start a run's monitor: "
			 "%s: %s", errno, pid < 0 ? "fork" : "pidfd_open", strerror(errno));
		if (pid > 0)
			kill(pid, SIGKILL);
	}
	reply(sock, text, pidfd);
	if (pidfd >= 0)
		close(pidfd);
}

/* Reads one request. Returns false when the engine said goodbye or left. */
static bool handle_request(struct server *s, int sock)
{
	char text[16];
	struct iovec iov = {.iov_base = text, .iov_len = sizeof(text) - 1};
	union {
		char buf[CMSG_SPACE(sizeof(int) * SPR_SANDBOX_NFDS)];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	if (n < 0) /* a shortage passes; the engine times the request out */
		return errno == EINTR || errno == EAGAIN || errno == ENOMEM || errno == ENOBUFS;
	text[n] = '\0';
	int fds[SPR_SANDBOX_NFDS];
	size_t nfds = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (nfds < SPR_SANDBOX_NFDS)
				fds[nfds++] = fd;
			else
				close(fd);
		}
	}
	bool keep_going = n > 0 && strcmp(text, "bye") != 0;
	if (keep_going && !strcmp(text, "run") && nfds == SPR_SANDBOX_NFDS &&
	    !(msg.msg_flags & MSG_CTRUNC))
		start_monitor(s, sock, fds);
	else if (keep_going && (msg.msg_flags & MSG_CTRUNC))
		reply(sock, "error 24 spr-sandbox could not receive a run's descriptors (its "
			    "RLIMIT_NOFILE, inherited from the caller, is exhausted)", -1);
	else if (keep_going)
		reply(sock, "error 22 spr-sandbox --serve: not a run request", -1);
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	return keep_going;
}

int spr_sandbox_serve(int argc, char **argv)
{
	const int sock = 0;
	if (!is_server_socket(sock)) {
		errno = ENOTSOCK;
		return server_fail(-1, "descriptor 0 is not the engine's socket (started by libspr "
				       "only)");
	}
	close_range(3, ~0U, 0); /* whatever the caller leaked */
	int caller;
	if (argc != 3 || strcmp(argv[1], "--serve") || (caller = atoi(argv[2])) < 1) {
		errno = EINVAL;
		return server_fail(sock, "usage: spr-sandbox --serve CALLER_PID");
	}
	struct server s = {.caller = (pid_t)caller, .caller_fd = -1, .sigfd = -1};
	/* Out of the caller's process group: a terminal's ^Z must not stop
	 * the server, which has to see its caller die to end the runs. */
	if (setpgid(0, 0) < 0)
		return server_fail(sock, "setpgid");
	if (watch_caller(&s) < 0)
		return server_fail(sock, "watching the calling process (pidfd_open)");
	if (watch_children(&s) < 0)
		return server_fail(sock, "watching the monitors (signalfd)");

	for (;;) {
		bool monitors_left = reap_monitors();
		if (s.closing && !monitors_left)
			return 0;
		enum { P_SOCK, P_CALLER, P_CHILD, NP };
		struct pollfd p[NP] = {
			[P_SOCK] = {.fd = s.closing ? -1 : sock, .events = POLLIN},
			[P_CALLER] = {.fd = s.caller_fd, .events = POLLIN},
			[P_CHILD] = {.fd = s.sigfd, .events = POLLIN},
		};
		if (poll(p, NP, -1) < 0) {
			if (errno == EINTR)
				continue;
			return server_fail(sock, "poll");
		}
		/* The caller is gone: so are we, and (PDEATHSIG) every monitor
		 * with its run, clean-up or not — as if it had run them itself. */
		if (p[P_CALLER].revents)
			return 0;
		if (p[P_CHILD].revents) {
			struct signalfd_siginfo si;
			while (read(s.sigfd, &si, sizeof(si)) > 0) {
			}
		}
		if (p[P_SOCK].revents && !handle_request(&s, sock))
			s.closing = true;
	}
}
