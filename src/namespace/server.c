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
 * killing the caller still kills every run, at once: a run's pid
 * namespace ends with its monitor, whether or not that monitor gets the
 * CPU. Only a run that may go without namespaces (the engine allows
 * degraded runs) is given a moment first: its processes do not die with a
 * pid namespace, so its monitor, which sees its control socket close with
 * the caller, ends the run itself (the sweep and the run's uid find them).
 * On "bye" (the engine is being freed) it waits for its monitors to
 * finish their clean-up too. */
#include "proc.h"
#include "protocol/message.h"
#include "protocol/sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* How long monitors may take to end their runs once the caller is gone. */
#define ORPHANED_GRACE_MS 5000

/* A monitor the server forked, until it is reaped. */
struct monitor {
	pid_t pid;
	bool orphan_grace; /* message.h: the run may go without namespaces */
};

struct server {
	pid_t caller;
	struct monitor *monitors;
	size_t nmonitors, cap;
	int caller_fd; /* pidfd: readable once the caller's process is gone */
	int sigfd;
	sigset_t saved_mask;
	bool closing;
	int64_t give_up; /* the caller is gone: monitors left by then are killed */
};

/* The descriptors die with the process; the list is all there is to free. */
static void server_free(struct server *s)
{
	free(s->monitors);
}

/* An ERROR (this request failed) or FATAL (the server is exiting). */
static void reply_error(int sock, int type, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void reply_error(int sock, int type, int errnum, const char *fmt, ...)
{
	struct spr_msg m = {.type = type};
	m.error.layer = SPR_LAYER_SANDBOX;
	m.error.errnum = errnum;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m.error.message, sizeof(m.error.message), fmt, ap);
	va_end(ap);
	if (sock >= 0)
		spr_msg_send(sock, &m, NULL, 0);
	if (type == SPR_MSG_FATAL)
		fprintf(stderr, "%s\n", m.error.message);
}

/* The engine reads why on the socket (fatal: the server is gone). */
static int server_fail(int sock, const char *what)
{
	int errnum = errno ? errno : EINVAL;
	reply_error(sock, SPR_MSG_FATAL, errnum, "spr-sandbox --serve: %s: %s", what,
		    strerror(errnum));
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

static void forget_monitor(struct server *s, pid_t pid)
{
	for (size_t i = 0; i < s->nmonitors; i++)
		if (s->monitors[i].pid == pid) {
			s->monitors[i] = s->monitors[--s->nmonitors];
			return;
		}
}

/* Returns false when no monitor is left. */
static bool reap_monitors(struct server *s)
{
	for (;;) {
		pid_t pid = waitpid(-1, NULL, WNOHANG);
		if (pid > 0) {
			forget_monitor(s, pid);
			continue;
		}
		return pid == 0;
	}
}

/* The caller is gone: runs that have namespaces end now (SIGKILL to the
 * monitor: its pid namespace goes with it); returns whether any monitor
 * is owed the grace. A monitor owed it is woken too: one stopped (job
 * control, a debugger, or degraded code running as the same user) could
 * not end its run in the grace, and its PDEATHSIG would then leave the
 * run's own children behind (no pid namespace takes them). */
static bool end_orphaned_runs(const struct server *s)
{
	bool lingering = false;
	for (size_t i = 0; i < s->nmonitors; i++) {
		if (s->monitors[i].orphan_grace) {
			lingering = true;
			kill(s->monitors[i].pid, SIGCONT);
		} else {
			kill(s->monitors[i].pid, SIGKILL);
		}
	}
	return lingering;
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

/* A RUN message carries the run's descriptors in slot order; the reply
 * is MONITOR with a pidfd of its monitor, or ERROR. */
static void start_monitor(struct server *s, int sock, int fds[SPR_SANDBOX_NFDS],
			  bool orphan_grace)
{
	if (s->nmonitors == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct monitor *grown = realloc(s->monitors, cap * sizeof(*grown));
		if (!grown) {
			reply_error(sock, SPR_MSG_ERROR, ENOMEM,
				    "spr-sandbox could not start a run's monitor: out of memory");
			return;
		}
		s->monitors = grown;
		s->cap = cap;
	}
	pid_t server = getpid();
	pid_t pid = fork();
	if (pid == 0)
		become_monitor(s, server, fds);
	if (pid > 0)
		s->monitors[s->nmonitors++] = (struct monitor){pid, orphan_grace};
	int pidfd = -1;
	/* Not reaped before this: SIGCHLD is only handled by the loop. */
	if (pid > 0 && (pidfd = pidfd_open(pid, 0)) >= 0) {
		struct spr_msg m = {.type = SPR_MSG_MONITOR, .pid = pid};
		spr_msg_send(sock, &m, &pidfd, 1);
		close(pidfd);
		return;
	}
	int errnum = errno;
	reply_error(sock, SPR_MSG_ERROR, errnum,
		    "spr-sandbox could not start a run's monitor: %s: %s",
		    pid < 0 ? "fork" : "pidfd_open", strerror(errnum));
	if (pid > 0)
		kill(pid, SIGKILL);
}

/* Reads one request. Returns false when the engine said goodbye or left. */
static bool handle_request(struct server *s, int sock)
{
	struct spr_msg m;
	int fds[SPR_SANDBOX_NFDS];
	size_t nfds = SPR_SANDBOX_NFDS;
	int rc = spr_msg_recv(sock, &m, 0, fds, &nfds);
	if (rc < 0 && errno == EMSGSIZE) {
		reply_error(sock, SPR_MSG_ERROR, EMFILE,
			    "spr-sandbox could not receive a run's descriptors (its "
			    "RLIMIT_NOFILE, inherited from the caller, is exhausted)");
		return true;
	}
	if (rc < 0 && errno == EPROTO) {
		reply_error(sock, SPR_MSG_ERROR, EINVAL, "spr-sandbox --serve: not a run request");
		return true;
	}
	if (rc < 0) /* a shortage passes; the engine times the request out */
		return errno == EINTR || errno == EAGAIN || errno == ENOMEM || errno == ENOBUFS;
	if (rc == 0 || m.type == SPR_MSG_BYE)
		return false;
	if (m.type == SPR_MSG_RUN && nfds == SPR_SANDBOX_NFDS)
		start_monitor(s, sock, fds, m.run.orphan_grace);
	else
		reply_error(sock, SPR_MSG_ERROR, EINVAL, "spr-sandbox --serve: not a run request");
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	return true;
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
	return spr_sandbox_serve_on(sock, (pid_t)caller);
}

int spr_sandbox_serve_on(int sock, pid_t caller)
{
	SPR_CLEANUP(server_free) struct server s = {
		.caller = caller, .caller_fd = -1, .sigfd = -1};
	/* Out of the caller's process group: a terminal's ^Z must not stop
	 * the server, which has to see its caller die to end the runs. */
	if (setpgid(0, 0) < 0)
		return server_fail(sock, "setpgid");
	if (watch_caller(&s) < 0)
		return server_fail(sock, "watching the calling process (pidfd_open)");
	if (watch_children(&s) < 0)
		return server_fail(sock, "watching the monitors (signalfd)");

	for (;;) {
		bool monitors_left = reap_monitors(&s);
		if (s.closing && !monitors_left)
			return 0;
		int64_t now = spr_now_ms();
		if (s.give_up && now >= s.give_up)
			return 0; /* (PDEATHSIG) the monitors left go with us */
		enum { P_SOCK, P_CALLER, P_CHILD, NP };
		struct pollfd p[NP] = {
			[P_SOCK] = {.fd = s.closing ? -1 : sock, .events = POLLIN},
			[P_CALLER] = {.fd = s.give_up ? -1 : s.caller_fd, .events = POLLIN},
			[P_CHILD] = {.fd = s.sigfd, .events = POLLIN},
		};
		if (poll(p, NP, s.give_up ? (int)(s.give_up - now) : -1) < 0) {
			if (errno == EINTR)
				continue;
			return server_fail(sock, "poll");
		}
		/* The caller is gone: runs with namespaces end now; monitors of
		 * runs that may have none see their control sockets close and
		 * end their runs; then we go, and any monitor still there with
		 * us (PDEATHSIG), as if the caller had run them. */
		if (p[P_CALLER].revents) {
			if (!end_orphaned_runs(&s))
				return 0;
			s.closing = true;
			s.give_up = spr_now_ms() + ORPHANED_GRACE_MS;
			continue;
		}
		if (p[P_CHILD].revents) {
			struct signalfd_siginfo si;
			while (read(s.sigfd, &si, sizeof(si)) > 0) {
			}
		}
		if (p[P_SOCK].revents && !handle_request(&s, sock))
			s.closing = true;
	}
}
