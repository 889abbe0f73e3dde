/* The warm pool. Each container runs spr-sandbox's container agent
 * (src/namespace/agent.c) as its pid 1, under a host uid leased for that
 * container alone, and is attached through `docker run -i`: stdin carries
 * our frames (protocol/frame.h; a socket, so a dead container cannot raise
 * SIGPIPE in the caller's process), stdout the agent's. Every run gets a
 * sandbox of its own inside the container, prepared while the previous
 * run ran; the agent proves the container clean between runs or says
 * FATAL and exits. One request at a time per container; the calling
 * thread does the I/O of the container it holds, so the lock only guards
 * the bookkeeping.
 *
 * Containers are keyed by what they are made with: the container's limits
 * and the sandbox plan (the reference keyed by image only, so a later run
 * with a bigger memory limit silently got the first run's). A container
 * is retired after max_runs, ttl_seconds or any protocol error; the
 * maintenance thread retires idle ones whose TTL passed and starts spares
 * in the background. A run whose container could not take it (gone,
 * FATAL, no STARTED) goes to another: a retirement never fails a run. If
 * the caller dies, the attached pipes close: the agent sees EOF and the
 * container stops by itself (--rm removes it). */
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
#include "marshal.h"
#include "proc.h"
#include "protocol/frame.h"

#define START_TIMEOUT_MS 120000
#define STOP_GRACE_MS 5000
/* The agent enforces the timeout; these bound an agent that cannot: its
 * sandbox setup and clean check (30 s and 2 s), its kill (3 s). */
#define HANDOVER_TIMEOUT_MS 35000
#define RESULT_GRACE_MS 8000
/* Containers one run may try before its error is the last one's. */
#define RUN_ATTEMPTS 3

struct container {
	struct container *next;
	char *key;
	spr_plan *plan; /* a reference: what a replacement needs */
	/* The encoded sandbox plan its agent was given. key holds only a
	 * 48-bit FNV-1a of it, which a policy's env can be made to collide
	 * with (seconds of search): a run takes a container of its very
	 * plan only, compared byte for byte (as the LocalEngine's pool). */
	spr_buf sandbox;
	char name[40];
	struct spr_uid_lease uid; /* the container's own host uid */
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

/* What the CLI said on stderr (docker's own errors), kept small. */
static void drain_diag(struct container *c)
{
	char chunk[4096];
	ssize_t n;
	while (c->diag >= 0 && (n = read(c->diag, chunk, sizeof(chunk))) > 0)
		if (c->diag_buf.len < 16384)
			spr_buf_append(&c->diag_buf, chunk, (size_t)n);
}

static void container_free(struct container *c)
{
	spr_closep(&c->to);
	spr_closep(&c->from);
	spr_closep(&c->diag);
	spr_buf_free(&c->diag_buf);
	spr_uid_lease_release(&c->uid);
	spr_plan_unref(c->plan);
	spr_buf_free(&c->sandbox);
	free(c->key);
	free(c);
}

/* Whether c serves runs of this key and sandbox plan. */
static bool serves(const struct container *c, const char *key, const spr_buf *sandbox)
{
	return !strcmp(c->key, key) && c->sandbox.len == sandbox->len &&
	       (!sandbox->len || !memcmp(c->sandbox.data, sandbox->data, sandbox->len));
}

/* Stops a container: EOF on its stdin ends the agent and the container;
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
	container_free(c);
}

/* The container's first program, run by the image's python3 before
 * anything else: it reads one frame (protocol/frame.h) from stdin
 * (os.read: no buffering that could swallow the next frame), 'B': the
 * worker's source, a NUL (never in Python source) and spr-sandbox; compiles the worker into
 * /tmp/spr (the container's own tmpfs, which no run sees) as the
 * LocalEngine does (optimize=2, a header nothing checks); and executes
 * spr-sandbox from a memory file as the container agent, telling it the
 * interpreter's own paths (this python is the image's, and no run has
 * happened yet). Only builtin modules: nothing is imported from the
 * image's files. */
static const char bootstrap_source[] =
	"import posix, sys, marshal\n"
	"def get(n):\n"
	"    b = bytearray()\n"
	"    while len(b) < n:\n"
	"        c = posix.read(0, n - len(b))\n"
	"        if not c:\n"
	"            raise SystemExit(3)\n"
	"        b += c\n"
	"    return bytes(b)\n"
	"h = get(5)\n"
	"if h[:1] != b'B':\n"
	"    raise SystemExit(4)\n"
	"w, _, agent = get(int.from_bytes(h[1:], 'big')).partition(b'\\0')\n"
	"code = compile(w, '/opt/spr/spr_worker.py', 'exec', dont_inherit=True, optimize=2)\n"
	"pyc = sys.modules['_frozen_importlib_external'].MAGIC_NUMBER + bytes(12) + "
	"marshal.dumps(code)\n"
	"def put(fd, data):\n"
	"    v = memoryview(data)\n"
	"    while v:\n"
	"        v = v[posix.write(fd, v):]\n"
	"posix.mkdir('/tmp/spr', 0o755)\n"
	"fd = posix.open('/tmp/spr/spr_worker.pyc', posix.O_WRONLY | posix.O_CREAT | posix.O_EXCL, 0o444)\n"
	"put(fd, pyc); posix.close(fd)\n"
	"fd = posix.memfd_create('spr-sandbox', posix.MFD_CLOEXEC)\n"
	"put(fd, agent)\n"
	"posix.execve(fd, ['spr-sandbox', '--container', '/tmp/spr/spr_worker.pyc', "
	"sys.executable, sys.base_prefix, sys.prefix], {})\n";

/* docker run arguments for one container of this plan (SPEC §5): the
 * flags that render the plan (profile.c), then what makes it the pool's. */
static char **run_args(struct spr_pool *pool, const spr_plan *plan, const struct container *c)
{
	struct spr_docker_engine *de = pool->de;
	struct spr_argv b = {0};
#define ARG(s) spr_argv_add(&b, (s))
#define ARGF(...) spr_argv_addf(&b, __VA_ARGS__)
	ARG("run");
	ARG("--interactive");
	ARG("--rm");
	/* The engine resolved (and pulled) its image when it started: a name
	 * that no longer resolves here must not become a pull from a registry
	 * (podman tries registries for short names). */
	ARG("--pull");
	ARG("never");
	ARG("--name");
	ARG(c->name);
	spr_docker_run_flags(&b, plan, de->seccomp_file, c->uid.uid, &de->target);
	ARG("--label");
	ARG(SPR_LABEL_MANAGED "=1");
	ARG("--label");
	ARGF(SPR_LABEL_ENGINE "=%s", spr_docker_cli_name(&de->target));
	ARG("--label");
	ARGF(SPR_LABEL_ENV "=%s", de->image_id);
	ARG("--label");
	ARGF(SPR_LABEL_POOL "=%s", c->key);
	ARG("--label");
	ARGF(SPR_LABEL_CREATOR "=%s", de->creator);
	ARG("--label");
	ARGF(SPR_LABEL_MAX_RUNS "=%d", spr_docker_max_runs(de, plan));
	ARG(de->image);
	ARG("python3");
	ARG("-I");
	ARG("-S");
	ARG("-c");
	ARG(bootstrap_source);
#undef ARG
#undef ARGF
	return spr_argv_finish(&b);
}

/* What the container CLI's words mean to do, where they name a host
 * setting rather than spr's arguments (rootless podman's network). */
static const char *fix_for(const char *said)
{
	static const struct {
		const char *words, *fix;
	} fixes[] = {
		{"/dev/net/tun", " (rootless podman's network, network = true, needs /dev/net/tun "
				 "open to the user: chmod 0666 /dev/net/tun, as Debian's udev rule "
				 "makes it; or run without network)"},
		{"rootless netns",
		 " (rootless podman's network, network = true, could not be set up: its network "
		 "namespace needs /dev/net/tun open to the user (chmod 0666 /dev/net/tun, as "
		 "Debian's udev rule makes it) and XDG_RUNTIME_DIR at /run/user/<uid>, as a login "
		 "session makes it; or run without network)"},
	};
	for (size_t i = 0; i < sizeof(fixes) / sizeof(fixes[0]); i++)
		if (strstr(said, fixes[i].words))
			return fixes[i].fix;
	return "";
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
		spr_fail(err, SPR_LAYER_DOCKER, EIO, "starting a container of %s failed (%s): %s%s",
			 pool->de->image, what, docker_said, fix_for(docker_said));
	container_stop(pool, c);
	return -1;
}

/* Spawns `docker run` for c with its stdin, stdout and stderr ours. */
static int container_spawn(struct spr_pool *pool, struct container *c, spr_error **err)
{
	struct spr_docker_engine *de = pool->de;
	char **args = run_args(pool, c->plan, c);
	_cleanup_free_ char **argv = args ? spr_docker_argv(&de->target, args) : NULL;
	int sp[2] = {-1, -1}, out[2] = {-1, -1}, diag[2] = {-1, -1};
	int rc = argv ? 0 : spr_fail_oom(err);
	if (rc == 0 && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) < 0 ||
			pipe2(out, O_CLOEXEC) < 0 || pipe2(diag, O_CLOEXEC) < 0))
		rc = spr_fail_errno(err, SPR_LAYER_CORE, "pipes for docker run");
	if (rc == 0) {
		int fds[3] = {spr_fd_above(sp[1], 3), spr_fd_above(out[1], 3),
			      spr_fd_above(diag[1], 3)};
		rc = spr_spawn(argv[0], argv, de->target.env, de->cli_dir, fds, 3, &c->cli, err);
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
	if (rc == 0)
		spr_set_nonblock(c->diag);
	return rc;
}

/* Starts one container and waits for the agent's hello, which comes once
 * its first sandbox is ready. No lock held. */
static struct container *container_start(struct spr_pool *pool, spr_plan *plan,
					 const char *key, spr_error **err)
{
	struct spr_docker_engine *de = pool->de;
	_cleanup_buf_ spr_buf sandbox = SPR_BUF_INIT;
	if (spr_docker_sandbox_plan(plan, de->target.limits, &sandbox, err) < 0)
		return NULL;
	struct container *c = calloc(1, sizeof(*c));
	if (!c || !(c->key = strdup(key))) {
		free(c);
		spr_fail_oom(err);
		return NULL;
	}
	c->to = c->from = c->diag = -1;
	c->uid = (struct spr_uid_lease)SPR_UID_LEASE_INIT;
	c->plan = spr_plan_ref(plan);
	spr_buf_append(&c->sandbox, sandbox.data, sandbox.len);
	if (c->sandbox.oom) {
		container_free(c);
		spr_fail_oom(err);
		return NULL;
	}
	unsigned char rnd[8];
	if (getentropy(rnd, sizeof(rnd)) < 0)
		memset(rnd, 0, sizeof(rnd));
	snprintf(c->name, sizeof(c->name), "spr-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1],
		 rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if (spr_uid_lease_take(&de->uid_range, de->lease_file, &c->uid, err) < 0 ||
	    container_spawn(pool, c, err) < 0) {
		container_free(c);
		return NULL;
	}
	int64_t deadline = spr_now_ms() + START_TIMEOUT_MS;
	int rc = spr_frame_send(c->to, SPR_FRAME_BOOT, de->payload.data, de->payload.len, NULL, 0,
				deadline);
	if (rc == 0)
		rc = spr_frame_send(c->to, SPR_FRAME_PLAN, sandbox.data, sandbox.len, NULL, 0,
				    deadline);
	_cleanup_buf_ spr_buf frame = SPR_BUF_INIT;
	char type = 0;
	struct spr_msg m = {0};
	size_t used;
	if (rc == 0)
		rc = spr_frame_recv(c->from, &type, &frame, deadline);
	if (rc == 0 && (type != SPR_FRAME_MSG || spr_frame_msg(&frame, &m, &used) < 0))
		rc = -EPROTO;
	if (rc == 0 && m.type == SPR_MSG_FATAL) {
		/* The agent's own words: what the container lacks. */
		spr_fail(err, SPR_LAYER_DOCKER, m.error.errnum,
			 "a container of %s could not set a sandbox up: %s", de->image,
			 m.error.message);
		container_stop(pool, c);
		return NULL;
	}
	if (rc < 0 || m.type != SPR_MSG_HELLO) {
		start_failed(pool, c,
			     rc == -ETIMEDOUT ? "no hello within 120 s"
			     : rc == -EPIPE	? "it ended before its hello"
						: "no hello",
			     err);
		return NULL;
	}
	c->started_ms = spr_now_ms();
	return c;
}

/* ---- bookkeeping (pool lock held) ------------------------------------------------ */

static bool expired(const struct spr_pool *pool, const struct container *c, int64_t now)
{
	const struct spr_docker_engine *de = pool->de;
	return c->runs >= spr_docker_max_runs(de, c->plan) ||
	       now - c->started_ms >= (int64_t)de->ttl_seconds * 1000;
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
 * to a list the caller stops after unlocking. With other_than, also the
 * first idle one that does not serve that key and sandbox plan. */
static struct container *take_retirees(struct spr_pool *pool, bool all, const char *other_than,
				       const spr_buf *other_sandbox)
{
	struct container *out = NULL;
	int64_t now = spr_now_ms();
	for (struct container **p = &pool->all; *p;) {
		struct container *c = *p;
		bool go = !c->busy && (all || expired(pool, c, now) || !idle_and_alive(c) ||
				       (other_than && !serves(c, other_than, other_sandbox)));
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
				 const spr_buf *sandbox, spr_error **err)
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
		struct container *retire = take_retirees(pool, false, NULL, NULL);
		if (retire) {
			pthread_mutex_unlock(&pool->lock);
			stop_list(pool, retire);
			pthread_mutex_lock(&pool->lock);
			continue;
		}
		for (struct container *c = pool->all; c; c = c->next)
			if (!c->busy && serves(c, key, sandbox)) {
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
		struct container *other = take_retirees(pool, false, key, sandbox);
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
		struct container *retire = take_retirees(pool, false, NULL, NULL);
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

/* Containers serve runs whose plans make the same container: its limits
 * and network, and the sandbox plan its agent was given (environment,
 * interpreter flags, rlimits, writable places); the Python policy, the
 * timeout and the output cap travel with each request. */
static char *pool_key(const spr_plan *plan, const spr_buf *sandbox)
{
	const struct spr_limits *l = &plan->limits;
	uint64_t h = spr_fnv1a(SPR_FNV_OFFSET, sandbox->data, sandbox->len);
	char *key = NULL;
	if (asprintf(&key, "m%llu-p%lld-c%g-n%d-s%012llx", (unsigned long long)l->memory_bytes,
		     (long long)l->max_processes, l->cpu_cores, plan->network ? 1 : 0,
		     (unsigned long long)(h & 0xffffffffffffULL)) < 0)
		return NULL;
	return key;
}

static void keep_first(spr_buf *b, const spr_buf *chunk, size_t keep)
{
	if (b->len < keep) {
		size_t room = keep - b->len;
		spr_buf_append(b, chunk->data, chunk->len < room ? chunk->len : room);
	}
}

void spr_pool_outcome_free(struct spr_pool_outcome *o)
{
	spr_buf_free(&o->out);
	spr_buf_free(&o->err);
	spr_buf_free(&o->result);
	spr_error_free(o->infra);
	o->infra = NULL;
}

/* How the run ended, from the agent's DONE. */
static void on_done(struct spr_run_facts *f, const struct spr_msg *m)
{
	spr_facts_from_exit(f, m);
	f->timed_out = m->done.timed_out;
	f->out_total = m->done.out_total;
	f->err_total = m->done.err_total;
	f->worker_msg_too_big = m->done.result_total > SPR_MAX_RESULT_BYTES;
}

enum handover {
	RAN,	     /* the run happened: the outcome is its */
	NOT_TAKEN,   /* the container could not take it: another may */
};

/* One request through container c. *retire is set when c must go. */
static enum handover run_in(struct container *c, const spr_plan *plan, const spr_buf *request,
			    struct spr_pool_outcome *o, bool *retire)
{
	struct spr_run_facts *f = &o->facts;
	const struct spr_limits *l = &plan->limits;
	struct spr_msg q = {.type = SPR_MSG_REQUEST,
			    .request = {.timeout_ms = l->timeout_ms, .output_cap = l->output_cap,
					.require = plan->require}};
	_cleanup_buf_ spr_buf head = SPR_BUF_INIT, frame = SPR_BUF_INIT;
	if (spr_msg_encode(&q, &head) < 0) {
		spr_fail_oom(&o->infra);
		return RAN;
	}
	int64_t t0 = spr_now_ms(), deadline = t0 + HANDOVER_TIMEOUT_MS;
	int rc = spr_frame_send(c->to, SPR_FRAME_REQUEST, head.data, head.len, request->data,
				request->len, deadline);
	/* A few bytes past the cap (as the agent sends): a character that
	 * straddles the cap is seen whole and cut before. */
	size_t keep = l->output_cap + 4;
	bool started = false, done = false;
	while (rc == 0 && !done) {
		char type = 0;
		struct spr_msg m;
		size_t used;
		rc = spr_frame_recv(c->from, &type, &frame, deadline);
		if (rc)
			break;
		if (type != SPR_FRAME_MSG && !started) {
			rc = -EPROTO;
			break;
		}
		switch (type) {
		case SPR_FRAME_OUT:
			keep_first(&o->out, &frame, keep);
			spr_output_tap_send(o->tap, 1, frame.data, frame.len);
			continue;
		case SPR_FRAME_ERR:
			keep_first(&o->err, &frame, keep);
			spr_output_tap_send(o->tap, 2, frame.data, frame.len);
			continue;
		case SPR_FRAME_RESULT: keep_first(&o->result, &frame, SPR_MAX_RESULT_BYTES); continue;
		case SPR_FRAME_MSG:
			if (spr_frame_msg(&frame, &m, &used) == 0)
				break;
			__attribute__((fallthrough));
		default: rc = -EPROTO; continue;
		}
		switch (m.type) {
		case SPR_MSG_STARTED:
			started = o->started = true;
			o->applied = m.applied;
			t0 = spr_now_ms();
			deadline = t0 + l->timeout_ms + RESULT_GRACE_MS;
			break;
		case SPR_MSG_DONE:
			on_done(f, &m);
			done = true;
			break;
		case SPR_MSG_ERROR: /* its sandbox failed, or cannot give the run a layer */
			spr_msg_to_error(&m, started ? "sandbox setup failed: " : "", &o->infra);
			done = true;
			break;
		case SPR_MSG_FATAL: /* it cannot go on */
			spr_msg_to_error(&m, "", &o->infra);
			*retire = true;
			if (!started)
				return NOT_TAKEN;
			done = true;
			break;
		default: rc = -EPROTO; break;
		}
	}
	f->duration_ms = spr_now_ms() - t0;
	if (rc == 0)
		return RAN;
	*retire = true;
	if (rc == -ETIMEDOUT && started) {
		/* The agent itself did not answer: the host's own timeout. */
		f->timed_out = true;
		f->have_status = false;
		return RAN;
	}
	drain_diag(c);
	spr_fail(&o->infra, SPR_LAYER_DOCKER, -rc, "the container %s stopped answering (%s)%s%s",
		 c->name, rc == -EPROTO ? "protocol error" : strerror(-rc),
		 c->diag_buf.len ? ": " : "", c->diag_buf.len ? spr_docker_last_line(&c->diag_buf) : "");
	return started ? RAN : NOT_TAKEN;
}

int spr_pool_run(struct spr_pool *pool, spr_plan *plan, const spr_buf *request,
		 struct spr_pool_outcome *o, spr_error **err)
{
	_cleanup_buf_ spr_buf sandbox = SPR_BUF_INIT;
	if (spr_docker_sandbox_plan(plan, pool->de->target.limits, &sandbox, err) < 0)
		return -1;
	_cleanup_free_ char *key = pool_key(plan, &sandbox);
	if (!key)
		return spr_fail_oom(err);
	for (int attempt = 1;; attempt++) {
		struct container *c = acquire(pool, plan, key, &sandbox, &o->infra);
		if (!c)
			return 0;
		bool retire = false;
		enum handover h = run_in(c, plan, request, o, &retire);
		snprintf(o->container, sizeof(o->container), "%s", c->name);
		o->container_run = c->runs + 1;
		o->host_uid = c->uid.uid;
		release(pool, c, retire);
		/* Nothing of the run happened there: another container. */
		if (h == RAN || attempt == RUN_ATTEMPTS)
			return 0;
		spr_pool_outcome_free(o);
		*o = (struct spr_pool_outcome){.facts = {.memory_peak_kb = -1}};
	}
}
