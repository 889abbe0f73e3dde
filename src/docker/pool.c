/* The warm pool. Each container runs the worker in serve mode
 * (docs/WORKER_PROTOCOL.md) and is attached through `docker run -i`:
 * stdin carries our frames (a socket, so a dead container cannot raise
 * SIGPIPE in the caller's process), stdout the worker's. One request at a
 * time per container; the calling thread does the I/O of the container it
 * holds, so the lock only guards the bookkeeping.
 *
 * Containers are keyed by image and limits — the reference keys by image
 * only, so a later run with a bigger memory limit silently got the first
 * run's limit. A container is retired after max_runs, ttl_seconds, a
 * timeout, an OOM kill, or any protocol error; the maintenance thread
 * retires idle ones whose TTL passed and starts spares in the background.
 * If the caller dies, the attached pipes close: the worker sees EOF and
 * the container stops by itself (--rm removes it). */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "argv.h"
#include "cache.h"
#include "docker/docker_engine.h"
#include "docker/profile.h"
#include "json.h"
#include "policy/seccomp.h"
#include "proc.h"

#define START_TIMEOUT_MS 120000
#define STOP_GRACE_MS 5000
#define RESULT_GRACE_MS 5000 /* the worker enforces the timeout; this is ours */
#define MAX_FRAME ((size_t)(64 << 20) + (64 << 10))

struct container {
	struct container *next;
	char *key;
	spr_plan *plan; /* a reference: what a replacement needs */
	char name[40];
	pid_t cli;
	int to, from, diag; /* container stdin (socket), stdout, CLI stderr */
	spr_buf diag_buf;
	int runs;
	int64_t started_ms;
	bool busy;
};

/* A container to start in the background (a rotated one's replacement). */
struct spare {
	char *key;
	spr_plan *plan; /* a reference */
};

struct spr_pool {
	struct spr_docker_engine *de;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct container *all;
	int starting;
	bool closing;
	pthread_t maintainer;
	bool have_maintainer;
	struct spare spares[16];
	size_t nspares;
};

/* Reads exactly n bytes from the worker's stdout before the deadline. */
static int read_full(int fd, void *buf, size_t n, int64_t deadline)
{
	char *p = buf;
	while (n) {
		int64_t left = deadline - spr_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t got = read(fd, p, n);
		if (got < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (got <= 0)
			return -EPIPE;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t n, int64_t deadline)
{
	const char *p = buf;
	while (n) {
		ssize_t sent = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int64_t left = deadline - spr_now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
			continue;
		}
		if (sent < 0)
			return -EPIPE;
		p += sent;
		n -= (size_t)sent;
	}
	return 0;
}

static int send_frame(int fd, char type, const void *payload, size_t len, int64_t deadline)
{
	unsigned char head[5] = {(unsigned char)type, (unsigned char)(len >> 24),
				 (unsigned char)(len >> 16), (unsigned char)(len >> 8),
				 (unsigned char)len};
	int rc = write_full(fd, head, sizeof(head), deadline);
	return rc ? rc : write_full(fd, payload, len, deadline);
}

/* Reads one frame; the payload goes to `payload` (reset first). */
static int read_frame(int fd, char *type, spr_buf *payload, int64_t deadline)
{
	unsigned char head[5];
	int rc = read_full(fd, head, sizeof(head), deadline);
	if (rc)
		return rc;
	size_t len = (size_t)head[1] << 24 | (size_t)head[2] << 16 | (size_t)head[3] << 8 | head[4];
	if (len > MAX_FRAME)
		return -EPROTO;
	*type = (char)head[0];
	spr_buf_reset(payload);
	if (!spr_buf_reserve(payload, len))
		return -ENOMEM;
	rc = read_full(fd, payload->data, len, deadline);
	if (rc)
		return rc;
	payload->len = len;
	payload->data[len] = '\0';
	return 0;
}

/* What the CLI said on stderr (docker's own errors), kept small. */
static void drain_diag(struct container *c)
{
	char chunk[4096];
	ssize_t n;
	while (c->diag >= 0 && (n = read(c->diag, chunk, sizeof(chunk))) > 0)
		if (c->diag_buf.len < 16384)
			spr_buf_append(&c->diag_buf, chunk, (size_t)n);
}

/* Stops a container: EOF on its stdin ends the worker and the container;
 * a stuck one is killed. Runs without the pool lock. */
static void container_stop(struct spr_pool *pool, struct container *c)
{
	if (c->to >= 0) {
		shutdown(c->to, SHUT_WR);
		spr_closep(&c->to);
		c->to = -1;
	}
	_cleanup_close_ int pidfd = (int)syscall(SYS_pidfd_open, c->cli, 0);
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	if (pidfd < 0 || poll(&p, 1, STOP_GRACE_MS) <= 0) {
		char *args[] = {(char *)"kill", c->name, NULL};
		spr_docker_cmd(&pool->de->target, args, STOP_GRACE_MS, NULL, NULL, NULL);
		kill(c->cli, SIGKILL);
	}
	spr_reap(c->cli, NULL);
	spr_closep(&c->from);
	spr_closep(&c->diag);
	spr_buf_free(&c->diag_buf);
	spr_plan_unref(c->plan);
	free(c->key);
	free(c);
}

static char *bootstrap_source(void)
{
	/* Reads exactly N bytes from stdin (os.read: no buffering that could
	 * swallow the first frame): spr_worker.py, a NUL, spr_serve.py. Python
	 * source cannot hold a NUL (compile() refuses it), so one separates
	 * them and N stays one number. Serve mode runs in the one-shot
	 * worker's namespace (worker/spr_serve.py says why): both files are
	 * exec'd into one dict, in the order spr_serve.py uses when run as a
	 * program, under a __name__ that is not "__main__" so that the worker's
	 * main() does not run; then serve(). */
	/* posix, not os: a module imported here would stay in sys.modules,
	 * where the code could take it past the import policy. */
	return strdup("import posix, sys\n"
		      "n = int(sys.argv[1]); b = bytearray()\n"
		      "while len(b) < n:\n"
		      "    c = posix.read(0, n - len(b))\n"
		      "    if not c:\n"
		      "        raise SystemExit(3)\n"
		      "    b += c\n"
		      "w, _, s = bytes(b).partition(b'\\0')\n"
		      "g = {'__name__': 'spr_serve', '__builtins__': __builtins__}\n"
		      "exec(compile(s, '/opt/spr/spr_serve.py', 'exec'), g)\n"
		      "exec(compile(w, '/opt/spr/spr_worker.py', 'exec'), g)\n"
		      "g['serve']()\n");
}

/* docker run arguments for one container of this plan (SPEC §5): the
 * flags that render the plan (profile.c), then what makes it the pool's. */
static char **run_args(struct spr_pool *pool, const spr_plan *plan, const char *name,
		       const char *key, const char *boot, size_t worker_len)
{
	struct spr_docker_engine *de = pool->de;
	struct spr_argv b = {0};
#define ARG(s) spr_argv_add(&b, (s))
#define ARGF(...) spr_argv_addf(&b, __VA_ARGS__)
	ARG("run");
	ARG("--interactive");
	ARG("--rm");
	ARG("--name");
	ARG(name);
	spr_docker_run_flags(&b, plan, de->seccomp_file);
	ARG("--label");
	ARG(SPR_LABEL_MANAGED "=1");
	ARG("--label");
	ARG(SPR_LABEL_ENGINE "=docker");
	ARG("--label");
	ARGF(SPR_LABEL_ENV "=%s", de->image_id);
	ARG("--label");
	ARGF(SPR_LABEL_POOL "=%s", key);
	ARG("--label");
	ARGF(SPR_LABEL_CREATOR "=%s", de->creator);
	ARG(de->image);
	ARG("python3");
	for (const char *const *f = plan->python_flags; *f; f++)
		ARG(*f);
	ARG("-c");
	ARG(boot);
	ARGF("%zu", worker_len);
#undef ARG
#undef ARGF
	return spr_argv_finish(&b);
}

static int start_failed(struct spr_pool *pool, struct container *c, const char *what,
			spr_error **err)
{
	drain_diag(c);
	const char *docker_said = spr_docker_last_line(&c->diag_buf);
	/* "checked when the engine starts and again when a call fails" */
	_cleanup_error_ spr_error *ping_err = NULL;
	if (spr_docker_ping(&pool->de->target, &ping_err) < 0)
		spr_fail(err, SPR_LAYER_DOCKER, ping_err->errnum, "%s", ping_err->message);
	else
		spr_fail(err, SPR_LAYER_DOCKER, EIO, "starting a container of %s failed (%s): %s",
			 pool->de->image, what, docker_said);
	container_stop(pool, c);
	return -1;
}

/* Starts one container and waits for the worker's hello. No lock held. */
static struct container *container_start(struct spr_pool *pool, spr_plan *plan,
					 const char *key, spr_error **err)
{
	struct spr_docker_engine *de = pool->de;
	struct container *c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(key))) {
		free(c);
		spr_fail_oom(err);
		return NULL;
	}
	c->to = c->from = c->diag = -1;
	c->plan = spr_plan_ref(plan);
	unsigned char rnd[8];
	if (getentropy(rnd, sizeof(rnd)) < 0)
		memset(rnd, 0, sizeof(rnd));
	snprintf(c->name, sizeof(c->name), "spr-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);

	/* What bootstrap_source() reads: the worker, a NUL, serve mode. */
	_cleanup_buf_ spr_buf worker = SPR_BUF_INIT;
	const char *unread = NULL;
	if (!spr_read_file(de->worker_path, &worker))
		unread = de->worker_path;
	spr_buf_putc(&worker, '\0');
	if (!unread && !spr_read_file(de->serve_path, &worker))
		unread = de->serve_path;
	if (unread) {
		spr_fail_errno(err, SPR_LAYER_DOCKER, "reading %s", unread);
		spr_plan_unref(c->plan);
		free(c->key);
		free(c);
		return NULL;
	}
	_cleanup_free_ char *boot = bootstrap_source();
	char **args = boot ? run_args(pool, plan, c->name, key, boot, worker.len) : NULL;
	_cleanup_free_ char **argv = args ? spr_docker_argv(&de->target, args) : NULL;
	int sp[2] = {-1, -1}, out[2] = {-1, -1}, diag[2] = {-1, -1};
	int rc = argv ? 0 : spr_fail_oom(err);
	if (rc == 0 && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
			pipe2(out, O_CLOEXEC) < 0 || pipe2(diag, O_CLOEXEC) < 0))
		rc = spr_fail_errno(err, SPR_LAYER_CORE, "pipes for docker run");
	if (rc == 0) {
		int fds[3] = {spr_fd_above(sp[1], 3), spr_fd_above(out[1], 3),
			      spr_fd_above(diag[1], 3)};
		rc = spr_spawn(argv[0], argv, de->target.env, fds, 3, &c->cli, err);
		for (int i = 0; i < 3; i++)
			close(fds[i]);
		sp[1] = out[1] = diag[1] = -1;
	}
	spr_argv_free_vector(args);
	c->to = sp[0];
	c->from = out[0];
	c->diag = diag[0];
	spr_closep(&sp[1]);
	spr_closep(&out[1]);
	spr_closep(&diag[1]);
	if (rc < 0) {
		spr_closep(&c->to);
		spr_closep(&c->from);
		spr_closep(&c->diag);
		spr_plan_unref(c->plan);
		free(c->key);
		free(c);
		return NULL;
	}
	spr_set_nonblock(c->diag);
	int64_t deadline = spr_now_ms() + START_TIMEOUT_MS;
	_cleanup_buf_ spr_buf frame = SPR_BUF_INIT;
	char type = 0;
	if (write_full(c->to, worker.data, worker.len, deadline) < 0) {
		start_failed(pool, c, "sending the worker", err);
		return NULL;
	}
	int r = read_frame(c->from, &type, &frame, deadline);
	if (r < 0 || type != 'H') {
		start_failed(pool, c, r == -ETIMEDOUT ? "no hello within 120 s" : "no hello", err);
		return NULL;
	}
	c->started_ms = spr_now_ms();
	return c;
}

/* ---- bookkeeping (pool lock held) ------------------------------------------------ */

static bool expired(const struct spr_pool *pool, const struct container *c, int64_t now)
{
	const struct spr_docker_engine *de = pool->de;
	return c->runs >= de->max_runs || now - c->started_ms >= (int64_t)de->ttl_seconds * 1000;
}

/* An idle container's worker writes nothing until it gets a request, so
 * anything pending on its stdout (EOF above all), or a docker CLI that has
 * exited, means the container is gone — stopped or killed from outside
 * (`spr stop container`, `docker kill`) — or out of step. Handing it out
 * would fail the run with "stopped answering" instead of starting a fresh
 * one. (WNOWAIT: container_stop reaps the CLI.) */
static bool idle_and_alive(const struct container *c)
{
	struct pollfd p = {.fd = c->from, .events = POLLIN};
	if (poll(&p, 1, 0) != 0)
		return false;
	siginfo_t si = {0};
	return waitid(P_PID, (id_t)c->cli, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

static int live_count(const struct spr_pool *pool)
{
	int n = pool->starting;
	for (const struct container *c = pool->all; c; c = c->next)
		n++;
	return n;
}

static void unlink_container(struct spr_pool *pool, struct container *c)
{
	for (struct container **p = &pool->all; *p; p = &(*p)->next)
		if (*p == c) {
			*p = c->next;
			c->next = NULL;
			return;
		}
}

/* Idle containers that must go (expired or dead, or any when `all`): moved
 * to a list the caller stops after unlocking. */
static struct container *take_retirees(struct spr_pool *pool, bool all, const char *other_than)
{
	struct container *out = NULL;
	int64_t now = spr_now_ms();
	for (struct container **p = &pool->all; *p;) {
		struct container *c = *p;
		bool go = !c->busy && (all || expired(pool, c, now) || !idle_and_alive(c) ||
				       (other_than && strcmp(c->key, other_than)));
		if (go) {
			*p = c->next;
			c->next = out;
			out = c;
			if (other_than)
				break; /* one is enough to make room */
		} else {
			p = &c->next;
		}
	}
	return out;
}

static void stop_list(struct spr_pool *pool, struct container *list)
{
	while (list) {
		struct container *next = list->next;
		container_stop(pool, list);
		list = next;
	}
}

/* ---- acquire / release ------------------------------------------------------------- */

static struct container *acquire(struct spr_pool *pool, spr_plan *plan, const char *key,
				 spr_error **err)
{
	struct spr_docker_engine *de = pool->de;
	int64_t deadline = spr_now_ms() + (int64_t)de->acquire_timeout_seconds * 1000;
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		if (pool->closing) {
			pthread_mutex_unlock(&pool->lock);
			spr_fail(err, SPR_LAYER_DOCKER, ECANCELED, "the DockerEngine is closing");
			return NULL;
		}
		struct container *retire = take_retirees(pool, false, NULL);
		if (retire) {
			pthread_mutex_unlock(&pool->lock);
			stop_list(pool, retire);
			pthread_mutex_lock(&pool->lock);
			continue;
		}
		for (struct container *c = pool->all; c; c = c->next)
			if (!c->busy && !strcmp(c->key, key)) {
				c->busy = true;
				pthread_mutex_unlock(&pool->lock);
				return c;
			}
		if (live_count(pool) < de->pool_size) {
			pool->starting++;
			pthread_mutex_unlock(&pool->lock);
			struct container *c = container_start(pool, plan, key, err);
			pthread_mutex_lock(&pool->lock);
			pool->starting--;
			if (c) {
				c->busy = true;
				c->next = pool->all;
				pool->all = c;
			}
			pthread_cond_broadcast(&pool->changed);
			pthread_mutex_unlock(&pool->lock);
			return c;
		}
		/* Full: an idle container of another key makes room. */
		struct container *other = take_retirees(pool, false, key);
		if (other) {
			pthread_mutex_unlock(&pool->lock);
			stop_list(pool, other);
			pthread_mutex_lock(&pool->lock);
			continue;
		}
		int64_t now = spr_now_ms();
		if (now >= deadline) {
			pthread_mutex_unlock(&pool->lock);
			spr_fail(err, SPR_LAYER_DOCKER, ETIMEDOUT,
				 "no container of the DockerEngine's pool became free within %d s "
				 "(pool_size %d, all busy): raise pool_size or "
				 "acquire_timeout_seconds, or run fewer calls at once",
				 de->acquire_timeout_seconds, de->pool_size);
			return NULL;
		}
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		int64_t wait = deadline - now;
		until.tv_sec += wait / 1000;
		until.tv_nsec += (wait % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&pool->changed, &pool->lock, &until);
	}
}

static void release(struct spr_pool *pool, struct container *c, bool retire)
{
	pthread_mutex_lock(&pool->lock);
	c->runs++;
	c->busy = false;
	bool go = retire || pool->closing || expired(pool, c, spr_now_ms());
	if (go)
		unlink_container(pool, c);
	/* Rotation (and max_runs = 1, single use) keeps a spare warm: the
	 * maintenance thread starts it off the caller's path. */
	if (go && !pool->closing && pool->nspares < ARRAY_SIZE(pool->spares)) {
		struct spare *sp = &pool->spares[pool->nspares];
		sp->key = strdup(c->key);
		sp->plan = spr_plan_ref(c->plan);
		if (sp->key)
			pool->nspares++;
		else
			spr_plan_unref(sp->plan);
	}
	pthread_cond_broadcast(&pool->changed);
	pthread_mutex_unlock(&pool->lock);
	if (go)
		container_stop(pool, c);
}

/* ---- maintenance -------------------------------------------------------------------- */

/* Retires idle containers whose TTL passed (nobody may come to notice)
 * and starts the spares rotations asked for. */
static void *maintain(void *arg)
{
	struct spr_pool *pool = arg;
	pthread_mutex_lock(&pool->lock);
	while (!pool->closing) {
		struct container *retire = take_retirees(pool, false, NULL);
		if (retire) {
			pthread_mutex_unlock(&pool->lock);
			stop_list(pool, retire);
			pthread_mutex_lock(&pool->lock);
			continue;
		}
		if (pool->nspares && live_count(pool) < pool->de->pool_size) {
			struct spare sp = pool->spares[--pool->nspares];
			pool->starting++;
			pthread_mutex_unlock(&pool->lock);
			_cleanup_error_ spr_error *err = NULL;
			struct container *c = container_start(pool, sp.plan, sp.key, &err);
			free(sp.key);
			spr_plan_unref(sp.plan);
			pthread_mutex_lock(&pool->lock);
			pool->starting--;
			if (c && pool->closing) {
				pthread_mutex_unlock(&pool->lock);
				container_stop(pool, c);
				pthread_mutex_lock(&pool->lock);
			} else if (c) {
				c->next = pool->all;
				pool->all = c;
			}
			pthread_cond_broadcast(&pool->changed);
			continue;
		}
		/* Sleep until the next idle container expires or something
		 * changes (a release, a spare request, close). */
		int64_t next = INT64_MAX, ttl = (int64_t)pool->de->ttl_seconds * 1000;
		for (const struct container *c = pool->all; c; c = c->next)
			if (!c->busy && c->started_ms + ttl < next)
				next = c->started_ms + ttl;
		if (next == INT64_MAX) {
			pthread_cond_wait(&pool->changed, &pool->lock);
			continue;
		}
		int64_t wait = next - spr_now_ms() + 1;
		if (wait <= 0)
			continue;
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += wait / 1000;
		until.tv_nsec += (wait % 1000) * 1000000;
		if (until.tv_nsec >= 1000000000) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&pool->changed, &pool->lock, &until);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

struct spr_pool *spr_pool_new(struct spr_docker_engine *de)
{
	struct spr_pool *pool = calloc(1, sizeof(*pool));
	if (!pool)
		return NULL;
	pool->de = de;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_cond_init(&pool->changed, &attr);
	pthread_condattr_destroy(&attr);
	/* The maintenance thread must not take the caller's signals. */
	sigset_t all, saved;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	pool->have_maintainer = pthread_create(&pool->maintainer, NULL, maintain, pool) == 0;
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	return pool;
}

void spr_pool_free(struct spr_pool *pool)
{
	if (!pool)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->closing = true;
	pthread_cond_broadcast(&pool->changed);
	/* Wait for runs in progress and containers being started. */
	for (;;) {
		bool busy = pool->starting > 0;
		for (struct container *c = pool->all; c; c = c->next)
			busy = busy || c->busy;
		if (!busy)
			break;
		pthread_cond_wait(&pool->changed, &pool->lock);
	}
	struct container *all = pool->all;
	pool->all = NULL;
	pthread_mutex_unlock(&pool->lock);
	if (pool->have_maintainer)
		pthread_join(pool->maintainer, NULL);
	/* Closing every stdin first lets the containers stop in parallel. */
	for (struct container *c = all; c; c = c->next) {
		shutdown(c->to, SHUT_WR);
		spr_closep(&c->to);
		c->to = -1;
	}
	stop_list(pool, all);
	for (size_t i = 0; i < pool->nspares; i++) {
		free(pool->spares[i].key);
		spr_plan_unref(pool->spares[i].plan);
	}
	pthread_cond_destroy(&pool->changed);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

/* ---- one request ---------------------------------------------------------------------- */

/* Containers serve runs whose plans agree on what a container is made
 * with (limits, network, environment); the Python policy, the timeout and
 * the output cap travel with each request. */
static char *pool_key(const spr_plan *plan)
{
	const struct spr_limits *l = &plan->limits;
	uint64_t h = SPR_FNV_OFFSET;
	for (char **e = plan->env; *e; e++)
		h = spr_fnv1a(h, *e, strlen(*e) + 1);
	char *key = NULL;
	if (asprintf(&key, "m%llu-p%lld-c%g-t%llu-n%d-e%08llx", (unsigned long long)l->memory_bytes,
		     (long long)l->max_processes, l->cpu_cores, (unsigned long long)l->tmp_bytes,
		     plan->network ? 1 : 0, (unsigned long long)(h & 0xffffffffULL)) < 0)
		return NULL;
	return key;
}

static void capture(spr_buf *b, uint64_t *total, const spr_buf *chunk, size_t keep)
{
	*total += chunk->len;
	if (b->len < keep) {
		size_t room = keep - b->len;
		spr_buf_append(b, chunk->data, chunk->len < room ? chunk->len : room);
	}
}

static void apply_done(struct spr_run_facts *f, const char *json, size_t len)
{
	_cleanup_cjson_ cJSON *d = cJSON_ParseWithLength(json, len);
	const cJSON *status = cJSON_GetObjectItemCaseSensitive(d, "status");
	const cJSON *peak = cJSON_GetObjectItemCaseSensitive(d, "memory_peak_kb");
	const cJSON *ooms = cJSON_GetObjectItemCaseSensitive(d, "oom_kills");
	const cJSON *out_total = cJSON_GetObjectItemCaseSensitive(d, "out_total");
	const cJSON *err_total = cJSON_GetObjectItemCaseSensitive(d, "err_total");
	if (cJSON_IsNumber(status) && status->valueint >= 0) {
		int st = status->valueint;
		f->have_status = true;
		f->exited = WIFEXITED(st);
		f->exit_status = f->exited ? WEXITSTATUS(st) : 0;
		f->signaled = WIFSIGNALED(st);
		f->term_signal = f->signaled ? WTERMSIG(st) : 0;
	}
	f->timed_out = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "timed_out"));
	f->oom_killed = cJSON_IsNumber(ooms) && ooms->valuedouble > 0;
	f->pids_limit_hit = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "pids_limit_hit"));
	f->memory_peak_kb = cJSON_IsNumber(peak) ? (int64_t)peak->valuedouble : -1;
	if (cJSON_IsNumber(out_total))
		f->out_total = (uint64_t)out_total->valuedouble;
	if (cJSON_IsNumber(err_total))
		f->err_total = (uint64_t)err_total->valuedouble;
}

void spr_pool_outcome_free(struct spr_pool_outcome *o)
{
	spr_buf_free(&o->out);
	spr_buf_free(&o->err);
	spr_buf_free(&o->result);
	spr_error_free(o->infra);
	o->infra = NULL;
}

int spr_pool_run(struct spr_pool *pool, spr_plan *plan, const spr_buf *request,
		 struct spr_pool_outcome *o, spr_error **err)
{
	struct spr_run_facts *f = &o->facts;
	_cleanup_free_ char *key = pool_key(plan);
	if (!key)
		return spr_fail_oom(err);
	struct container *c = acquire(pool, plan, key, &o->infra);
	if (!c)
		return 0;
	int64_t t0 = spr_now_ms();
	/* The worker kills the run at the timeout; the grace is for a worker
	 * that cannot answer any more. */
	int64_t deadline = t0 + plan->limits.timeout_ms + RESULT_GRACE_MS;
	bool retire = false, done = false;
	_cleanup_buf_ spr_buf frame = SPR_BUF_INIT;
	uint64_t out_total = 0, err_total = 0;
	size_t keep = plan->limits.output_cap + 4;
	int rc = send_frame(c->to, 'Q', request->data, request->len, deadline);
	while (rc == 0 && !done) {
		char type = 0;
		rc = read_frame(c->from, &type, &frame, deadline);
		if (rc)
			break;
		switch (type) {
		case 'O': capture(&o->out, &out_total, &frame, keep); break;
		case 'E': capture(&o->err, &err_total, &frame, keep); break;
		case 'R':
			/* The worker cuts a result message at the frame limit. */
			if (frame.len > SPR_MAX_RESULT_BYTES) {
				f->worker_msg_too_big = true;
				break;
			}
			spr_buf_reset(&o->result);
			spr_buf_append(&o->result, frame.data, frame.len);
			break;
		case 'D':
			f->out_total = out_total;
			f->err_total = err_total;
			apply_done(f, frame.data, frame.len);
			done = true;
			break;
		default: rc = -EPROTO; break;
		}
	}
	f->duration_ms = spr_now_ms() - t0;
	if (rc == -ETIMEDOUT) {
		/* The worker itself did not answer: the host's own timeout. */
		f->timed_out = true;
		f->have_status = false;
		retire = true;
	} else if (rc) {
		drain_diag(c);
		spr_fail(&o->infra, SPR_LAYER_DOCKER, -rc,
			 "the container %s stopped answering (%s)%s%s", c->name,
			 rc == -EPROTO ? "protocol error" : strerror(-rc),
			 c->diag_buf.len ? ": " : "", c->diag_buf.len ? spr_docker_last_line(&c->diag_buf) : "");
		retire = true;
	}
	/* After a timeout or an OOM kill, a fresh container. */
	retire = retire || f->timed_out || f->oom_killed;
	release(pool, c, retire);
	return 0;
}
