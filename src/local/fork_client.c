/* The engine's side of the fork server: see fork_server.h and, for why it
 * exists, sandbox_server.c. */
#include "local/fork_client.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"
#include "protocol/message.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* ---- fork() in the caller ------------------------------------------------ */

/* A request holds its server's lock across a round trip. A caller that
 * forks meanwhile (another thread) would hand its child a lock nobody
 * there can release: fork waits for every round trip to end instead. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct spr_fork_server *registry;
static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

static void before_fork(void)
{
	pthread_mutex_lock(&registry_lock);
	for (struct spr_fork_server *s = registry; s; s = s->next)
		pthread_mutex_lock(&s->lock);
}

static void after_fork(void)
{
	for (struct spr_fork_server *s = registry; s; s = s->next)
		pthread_mutex_unlock(&s->lock);
	pthread_mutex_unlock(&registry_lock);
}

static void install_fork_handlers(void)
{
	pthread_atfork(before_fork, after_fork, after_fork);
}

void spr_fork_server_init(struct spr_fork_server *s)
{
	*s = (struct spr_fork_server){.sock = -1, .pidfd = -1, .owner = -1};
	pthread_mutex_init(&s->lock, NULL);
	pthread_once(&handlers_once, install_fork_handlers);
	pthread_mutex_lock(&registry_lock);
	s->next = registry;
	registry = s;
	pthread_mutex_unlock(&registry_lock);
}

static void unregister(struct spr_fork_server *s)
{
	pthread_mutex_lock(&registry_lock);
	for (struct spr_fork_server **p = &registry; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* ---- the server's life --------------------------------------------------- */

static void reap(int pidfd)
{
	siginfo_t info;
	while (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &info, WEXITED) < 0 &&
	       errno == EINTR) {
	}
}

static int spawn_server(struct spr_fork_server *s, const char *path, spr_error **err)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "socketpair(SOCK_SEQPACKET)");
	/* Sources above the target numbers (spr_spawn's rule); the server's
	 * stdout and stderr lead nowhere (it reports on its socket). */
	int fds[3] = {spr_fd_above(sp[1], 3), open("/dev/null", O_RDWR | O_CLOEXEC), -1};
	if (fds[1] >= 0)
		fds[1] = fds[2] = spr_fd_above(fds[1], 3);
	int rc;
	pid_t pid = -1;
	if (fds[0] < 0 || fds[1] < 0) {
		rc = spr_fail_errno(err, SPR_LAYER_SANDBOX, "preparing spr-sandbox's descriptors");
	} else {
		char caller[24];
		snprintf(caller, sizeof(caller), "%d", (int)getpid());
		char *argv[] = {(char *)path, (char *)"--serve", caller, NULL};
		char *envp[] = {NULL};
		rc = spr_spawn(path, argv, envp, NULL, fds, 3, &pid, err);
	}
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	/* Our child, not reaped before we do: the pidfd names it. */
	if (rc == 0 && (s->pidfd = pidfd_open(pid, 0)) < 0) {
		rc = spr_fail_errno(err, SPR_LAYER_SANDBOX,
				    "pidfd_open (spr needs Linux 5.3 or later)");
		kill(pid, SIGKILL);
		spr_reap(pid, NULL);
	}
	if (rc < 0) {
		close(sp[0]);
		return -1;
	}
	s->sock = sp[0];
	s->untried = true;
	s->generation++;
	s->owner = getpid();
	s->uid = geteuid();
	s->gid = getegid();
	return 0;
}

/* Lets the server go: it sees EOF, finishes its monitors and exits. It is
 * reaped now when wait is set, else later. A copy inherited through fork
 * is the parent process's: only forgotten. */
static void let_go(struct spr_fork_server *s, bool wait, bool say_bye)
{
	if (s->sock < 0)
		return;
	bool ours = s->owner == getpid();
	if (ours && say_bye)
		spr_msg_send(s->sock, &(struct spr_msg){.type = SPR_MSG_BYE}, NULL, 0);
	spr_closep(&s->sock);
	if (ours && !wait && s->nretired < SPR_FORK_SERVER_RETIRED) {
		s->retired[s->nretired++] = s->pidfd;
	} else {
		if (ours) /* waited for, or many at once: the oldest can wait no longer */
			reap(s->pidfd);
		close(s->pidfd);
	}
	s->pidfd = -1;
}

static void reap_retired(struct spr_fork_server *s, bool blocking)
{
	size_t kept = 0;
	for (size_t i = 0; i < s->nretired; i++) {
		siginfo_t info = {0};
		int rc;
		while ((rc = waitid((idtype_t)P_PIDFD, (id_t)s->retired[i], &info,
				    WEXITED | (blocking ? 0 : WNOHANG))) < 0 &&
		       errno == EINTR) {
		}
		if (rc == 0 && info.si_pid == 0) /* still finishing its monitors */
			s->retired[kept++] = s->retired[i];
		else
			close(s->retired[i]);
	}
	s->nretired = kept;
}

/* ---- one request ------------------------------------------------------------ */

/* Whether the server would have to be replaced before the next run. */
static bool needs_replacing(const struct spr_fork_server *s)
{
	return s->sock >= 0 &&
	       (s->owner != getpid() || s->uid != geteuid() || s->gid != getegid());
}

int spr_fork_server_start(struct spr_fork_server *s, const char *path,
			  const int fds[SPR_SANDBOX_NFDS], bool orphan_grace, int *pidfd,
			  unsigned *generation,
			  spr_error **err)
{
	pthread_mutex_lock(&s->lock);
	reap_retired(s, false);
	/* A forked copy of the caller, or one whose credentials changed since
	 * the server started (its monitors would not match the plans): a new
	 * server. */
	if (needs_replacing(s))
		let_go(s, false, true);
	int rc = -1;
	/* A server that died since the last run (killed, or its caller's
	 * resources ran out) is replaced once. */
	for (int attempt = 0; attempt < 2; attempt++) {
		bool fresh = s->sock < 0 || s->untried;
		if (s->sock < 0 && spawn_server(s, path, err) < 0)
			break;
		s->untried = false;
		struct spr_msg reply;
		enum spr_monitor_reply kind = spr_sandbox_ask_monitor(s->sock, fds, orphan_grace, pidfd,
								   &reply);
		if (kind == SPR_REPLY_MONITOR) {
			*generation = s->generation;
			rc = 0;
			break;
		}
		if (kind == SPR_REPLY_ERROR) {
			rc = spr_msg_to_error(&reply, NULL, err);
			break;
		}
		int broken = errno;
		let_go(s, false, false);
		if (kind == SPR_REPLY_FATAL) {
			rc = spr_msg_to_error(&reply, NULL, err);
			break;
		}
		if (fresh) {
			rc = spr_fail(err, SPR_LAYER_SANDBOX, broken,
				      "spr-sandbox (%s --serve) did not answer", path);
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

void spr_fork_server_spawn(struct spr_fork_server *s, const char *path)
{
	pthread_mutex_lock(&s->lock);
	_cleanup_error_ spr_error *ignored = NULL;
	if (s->sock < 0)
		spawn_server(s, path, &ignored);
	pthread_mutex_unlock(&s->lock);
}

unsigned spr_fork_server_current(struct spr_fork_server *s)
{
	pthread_mutex_lock(&s->lock);
	struct pollfd exited = {.fd = s->pidfd, .events = POLLIN};
	bool alive = s->sock >= 0 && !needs_replacing(s) && poll(&exited, 1, 0) == 0;
	unsigned generation = alive ? s->generation : 0;
	pthread_mutex_unlock(&s->lock);
	return generation;
}

void spr_fork_server_stop(struct spr_fork_server *s)
{
	unregister(s);
	pthread_mutex_lock(&s->lock);
	let_go(s, true, true);
	reap_retired(s, true);
	pthread_mutex_unlock(&s->lock);
	pthread_mutex_destroy(&s->lock);
}
