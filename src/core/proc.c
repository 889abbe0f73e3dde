#include "proc.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

int64_t spr_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int spr_fd_above(int fd, int min)
{
	if (fd >= min)
		return fd;
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
	int saved = errno;
	close(fd);
	errno = saved;
	return moved;
}

int spr_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

struct spawn_attrs {
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t actions;
	bool attr_ok, actions_ok;
};

static void spawn_attrs_free(struct spawn_attrs *s)
{
	if (s->attr_ok)
		posix_spawnattr_destroy(&s->attr);
	if (s->actions_ok)
		posix_spawn_file_actions_destroy(&s->actions);
}

int spr_spawn(const char *path, char *const argv[], char *const envp[], const char *cwd,
	      const int *fds, int nfds, pid_t *pid, spr_error **err)
{
	SPR_CLEANUP(spawn_attrs_free) struct spawn_attrs s = {0};
	int rc = posix_spawnattr_init(&s.attr);
	if (rc)
		goto fail;
	s.attr_ok = true;
	rc = posix_spawn_file_actions_init(&s.actions);
	if (rc)
		goto fail;
	s.actions_ok = true;

	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	rc = posix_spawnattr_setsigmask(&s.attr, &none);
	rc = rc ? rc : posix_spawnattr_setsigdefault(&s.attr, &all);
	rc = rc ? rc : posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK |
								POSIX_SPAWN_SETSIGDEF);
	for (int i = 0; !rc && i < nfds; i++) {
		if (fds[i] < nfds) {
			rc = EINVAL;
			break;
		}
		rc = posix_spawn_file_actions_adddup2(&s.actions, fds[i], i);
	}
	if (!rc && cwd)
		rc = posix_spawn_file_actions_addchdir_np(&s.actions, cwd);
	if (rc)
		goto fail;
	rc = posix_spawn(pid, path, &s.actions, &s.attr, argv, envp);
	if (rc)
		goto fail;
	return 0;
fail:
	return spr_fail(err, SPR_LAYER_CORE, rc, "cannot start %s: %s", path, strerror(rc));
}

/* Appends data, then drops the oldest bytes beyond keep. */
static void keep_tail(spr_buf *b, const char *data, size_t n, size_t keep)
{
	if (n >= keep) {
		b->len = 0;
		spr_buf_append(b, data + n - keep, keep);
		return;
	}
	spr_buf_append(b, data, n);
	if (b->oom || b->len <= keep)
		return;
	size_t drop = b->len - keep;
	memmove(b->data, b->data + drop, keep);
	b->len = keep;
	b->data[keep] = '\0';
}

int spr_capture_read(struct spr_capture *c)
{
	char chunk[65536];
	while (c->fd >= 0) {
		ssize_t n = read(c->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0)
			return -1;
		if (n == 0) {
			spr_capture_close(c);
			return 1;
		}
		c->total += (uint64_t)n;
		if (c->on_read)
			c->on_read(c->on_read_ctx, chunk, (size_t)n);
		if (c->to_stderr) {
			/* Progress only: a closed or full terminal must not stop the build. */
			ssize_t shown = write(STDERR_FILENO, chunk, (size_t)n);
			(void)shown;
		}
		if (c->tail) {
			keep_tail(&c->buf, chunk, (size_t)n, c->keep);
			if (c->buf.oom) {
				errno = ENOMEM;
				return -1;
			}
		} else if (c->buf.len < c->keep) {
			size_t room = c->keep - c->buf.len;
			spr_buf_append(&c->buf, chunk, (size_t)n < room ? (size_t)n : room);
			if (c->buf.oom) {
				errno = ENOMEM;
				return -1;
			}
		}
	}
	return 1;
}

void spr_capture_close(struct spr_capture *c)
{
	spr_closep(&c->fd);
	c->fd = -1;
}

int spr_feeder_pump(struct spr_feeder *f)
{
	while (f->fd >= 0 && f->off < f->len) {
		ssize_t n = send(f->fd, f->data + f->off, f->len - f->off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
			/* The reader is gone (the run ended early): not our error. */
			spr_feeder_close(f);
			return 1;
		}
		if (n < 0)
			return -1;
		f->off += (size_t)n;
	}
	spr_feeder_close(f);
	return 1;
}

void spr_feeder_close(struct spr_feeder *f)
{
	if (f->fd >= 0) {
		shutdown(f->fd, SHUT_WR);
		close(f->fd);
	}
	f->fd = -1;
}

int spr_reap(pid_t pid, int *status)
{
	int st = 0;
	for (;;) {
		pid_t r = waitpid(pid, &st, __WALL);
		if (r == pid)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECHILD) {
			/* SIGCHLD ignored by the caller: the kernel reaped it. */
			st = 0;
			break;
		}
		return -1;
	}
	if (status)
		*status = st;
	return 0;
}

int spr_command_output(char *const argv[], char *const envp[], int64_t timeout_ms,
		       spr_buf *out, spr_buf *err_out, int *status, spr_error **err)
{
	int out_pipe[2], err_pipe[2];
	_cleanup_close_ int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || (devnull = spr_fd_above(devnull, 3)) < 0)
		return spr_fail_errno(err, SPR_LAYER_CORE, "open /dev/null");
	if (pipe2(out_pipe, O_CLOEXEC) < 0)
		return spr_fail_errno(err, SPR_LAYER_CORE, "pipe2");
	_cleanup_close_ int out_w = spr_fd_above(out_pipe[1], 3);
	struct spr_capture co = {.fd = out_pipe[0], .keep = 1 << 20};
	if (pipe2(err_pipe, O_CLOEXEC) < 0) {
		spr_capture_close(&co);
		return spr_fail_errno(err, SPR_LAYER_CORE, "pipe2");
	}
	_cleanup_close_ int err_w = spr_fd_above(err_pipe[1], 3);
	struct spr_capture ce = {.fd = err_pipe[0], .keep = 1 << 20};
	int rc = -1;
	pid_t pid;
	int fds[3] = {devnull, out_w, err_w};
	if (out_w < 0 || err_w < 0) {
		spr_fail_errno(err, SPR_LAYER_CORE, "fcntl(F_DUPFD_CLOEXEC)");
		goto done;
	}
	if (spr_spawn(argv[0], argv, envp, NULL, fds, 3, &pid, err) < 0)
		goto done;
	close(steal_fd(&out_w));
	close(steal_fd(&err_w));
	spr_set_nonblock(co.fd);
	spr_set_nonblock(ce.fd);
	int64_t deadline = spr_now_ms() + timeout_ms;
	bool killed = false;
	while (co.fd >= 0 || ce.fd >= 0) {
		struct pollfd p[2] = {{.fd = co.fd, .events = POLLIN}, {.fd = ce.fd, .events = POLLIN}};
		int64_t left = deadline - spr_now_ms();
		if (left <= 0) {
			kill(pid, SIGKILL);
			killed = true;
			break;
		}
		if (poll(p, 2, (int)left) < 0 && errno != EINTR)
			break;
		if ((p[0].revents && spr_capture_read(&co) < 0) ||
		    (p[1].revents && spr_capture_read(&ce) < 0))
			break;
	}
	spr_reap(pid, status);
	if (killed) {
		spr_fail(err, SPR_LAYER_CORE, ETIMEDOUT, "%s did not finish within %lld ms", argv[0],
			 (long long)timeout_ms);
		goto done;
	}
	rc = 0;
done:
	if (out)
		spr_buf_append(out, co.buf.data ? co.buf.data : "", co.buf.len);
	if (err_out)
		spr_buf_append(err_out, ce.buf.data ? ce.buf.data : "", ce.buf.len);
	spr_capture_close(&co);
	spr_capture_close(&ce);
	spr_buf_free(&co.buf);
	spr_buf_free(&ce.buf);
	return rc;
}

int spr_proc_identity(pid_t pid, char *state, unsigned long long *start_time)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* The name (field 2) may hold spaces and parentheses: parse after
	 * the last ')'. Fields 3 (state) and 22 (starttime). */
	char *p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d "
				"%*d %*d %*d %llu",
			 state, start_time) != 2)
		return -1;
	return 0;
}

int spr_command_passthrough(char *const argv[], char *const envp[], int out_fd,
			    int64_t timeout_ms, int *status, spr_error **err)
{
	_cleanup_close_ int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (devnull < 0 || (devnull = spr_fd_above(devnull, 3)) < 0)
		return spr_fail_errno(err, SPR_LAYER_CORE, "open /dev/null");
	_cleanup_close_ int out = fcntl(out_fd, F_DUPFD_CLOEXEC, 3);
	if (out < 0)
		return spr_fail_errno(err, SPR_LAYER_CORE, "dup of fd %d", out_fd);
	int fds[3] = {devnull, out, out};
	pid_t pid;
	if (spr_spawn(argv[0], argv, envp, NULL, fds, 3, &pid, err) < 0)
		return -1;
	/* Wait on a pidfd so the timeout needs no polling loop. */
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd >= 0) {
		struct pollfd p = {.fd = pidfd, .events = POLLIN};
		int n;
		do
			n = poll(&p, 1, timeout_ms > INT32_MAX ? -1 : (int)timeout_ms);
		while (n < 0 && errno == EINTR);
		if (n == 0) {
			kill(pid, SIGKILL);
			spr_reap(pid, status);
			return spr_fail(err, SPR_LAYER_CORE, ETIMEDOUT, "%s did not finish within %lld ms",
					argv[0], (long long)timeout_ms);
		}
	}
	return spr_reap(pid, status) < 0 ? spr_fail_errno(err, SPR_LAYER_CORE, "waitpid") : 0;
}
