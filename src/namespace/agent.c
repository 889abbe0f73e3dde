/* spr-sandbox --container: the DockerEngine's container agent (SPEC §5,
 * DESIGN.md "One run, DockerEngine", docs/WORKER_PROTOCOL.md "The
 * container agent"), pid 1 of every pooled container.
 *
 * A pooled container serves many runs, so each run gets a sandbox of the
 * LocalEngine's own kind inside the container's hardening: user, pid,
 * mount, IPC, UTS, cgroup and network namespaces, the minimal read-only
 * root, Landlock and the seccomp filter. A run then ends with its pid
 * namespace exactly as a local run does: the kernel kills whatever it
 * left, in any state; its IPC objects, tmpfs files and mqueues go with
 * its namespaces. The run cannot reach this process (another pid
 * namespace: nothing to signal, trace, prlimit or open in /proc).
 *
 * Sandboxes are forked by this agent's fork server (server.c), which
 * never sees a request: a run starts from a process no earlier run's
 * data ever was in. The next run's sandbox is prepared while a run runs
 * (the warm pool's pattern, as in the LocalEngine), so a run's cost is
 * handing over its request.
 *
 * After each run the agent proves the container clean before it reads
 * the next request (check_clean): no process but its own and the next
 * sandbox's, its and its server's limits unchanged, no IPC object or file
 * of the container's own, no memory still charged beyond what the
 * container held before its first run. What it cannot prove, it reports
 * FATAL and exits: the host retires the container and gives the run to
 * another. */
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arena.h"
#include "marshal.h"
#include "proc.h"
#include "protocol/frame.h"
#include "protocol/layout.h"
#include "protocol/message.h"
#include "protocol/plan.h"
#include "protocol/sandbox.h"

#define AGENT_IN 0
#define AGENT_OUT 1
/* How long a sandbox may take to be ready, a killed run to end, and its
 * output to drain once it ended (writers are dead by then). */
#define SETUP_TIMEOUT_MS 30000
#define KILL_GRACE_MS 3000
#define DRAIN_GRACE_MS 2000
/* cgroup v1 never signals a pids-limit hit: its counter is read this
 * often during a run (one small read). */
#define PIDS_CHECK_MS 50
/* How long what a run left may take to go (the kernel tears its
 * namespaces down asynchronously) before the container counts as dirty. */
#define CLEAN_TIMEOUT_MS 2000
#define CLEAN_STEP_MS 5
/* Charged memory a container may hold beyond its baseline: 5% of its
 * limit (what the next run may miss, SPEC §5), within these bounds. */
#define CHARGE_SLACK_MIN ((int64_t)2 << 20)
#define CHARGE_SLACK_MAX ((int64_t)16 << 20)
#define CHUNK 65536

/* The container's own cgroup files (cgroup v1 or v2, whichever the
 * runtime mounted at /sys/fs/cgroup): NULL where absent. */
struct container_cgroup {
	const char *oom_events; /* "oom_kill N" */
	const char *pids_events; /* "max N" */
	const char *stat;	 /* anon and shmem bytes */
	const char *stat_keys[2];
	const char *limit;	 /* the memory limit */
	int version;		 /* enum spr_cg_version of what was found; 0: none */
};

struct sandbox {
	struct spr_sandbox_ends ends;
	int monitor; /* pidfd */
	pid_t monitor_pid;
	bool started;
	struct spr_msg started_msg;
};

struct agent {
	const char *worker, *python, *base_prefix, *prefix;
	int server; /* the fork server's socket */
	pid_t server_pid;
	int server_pidfd;
	spr_buf plan; /* the completed plan, encoded: every sandbox's */
	struct sandbox *next; /* prepared for the next run */
	struct rlimit limits[RLIM_NLIMITS], server_limits[RLIM_NLIMITS];
	struct container_cgroup cg;
	int64_t baseline; /* bytes charged with one idle sandbox, -1: unknown */
	int64_t slack;
};

/* What one run did, as the host learns it. */
struct run {
	struct sandbox *sb;
	struct spr_msg request;
	const char *input;
	size_t input_len, input_off;
	struct spr_msg done;
	struct spr_msg error; /* type ERROR: the sandbox failed */
	struct spr_capture out, err, result; /* fd and total only: forwarded */
	bool exited, kill_sent, ctrl_closed;
	bool host_gone; /* stdin readable during a run: EOF, or out of step */
	int64_t deadline, kill_deadline, drain_deadline, pids_check;
	int64_t oom_before, pids_before;
};

/* ---- reporting ------------------------------------------------------------ */

static int say(const struct spr_msg *m)
{
	int rc = spr_frame_send_msg(AGENT_OUT, m, -1);
	return rc < 0 ? -1 : 0;
}

/* The container cannot serve another run: the host retires it. */
static int fatal(spr_error *err)
{
	struct spr_msg m;
	spr_msg_from_error(&m, SPR_MSG_FATAL, err);
	say(&m);
	spr_error_free(err);
	return 125;
}

/* ---- the container's cgroup ------------------------------------------------- */

static bool exists(const char *path) { return access(path, R_OK) == 0; }

/* A runtime mounts the container's own cgroup at /sys/fs/cgroup: the
 * v2 tree itself (cgroup namespace), or one v1 hierarchy per controller. */
static void find_cgroup(struct container_cgroup *cg)
{
	if (exists("/sys/fs/cgroup/memory.events")) {
		*cg = (struct container_cgroup){
			.oom_events = "/sys/fs/cgroup/memory.events",
			.pids_events = exists("/sys/fs/cgroup/pids.events") ? "/sys/fs/cgroup/pids.events"
									     : NULL,
			.stat = "/sys/fs/cgroup/memory.stat",
			.stat_keys = {"anon", "shmem"},
			.limit = "/sys/fs/cgroup/memory.max",
			.version = 2,
		};
		return;
	}
	*cg = (struct container_cgroup){
		.oom_events = exists("/sys/fs/cgroup/memory/memory.oom_control")
				      ? "/sys/fs/cgroup/memory/memory.oom_control"
				      : NULL,
		.pids_events = exists("/sys/fs/cgroup/pids/pids.events") ? "/sys/fs/cgroup/pids/pids.events"
									  : NULL,
		.stat = exists("/sys/fs/cgroup/memory/memory.stat") ? "/sys/fs/cgroup/memory/memory.stat"
								     : NULL,
		.stat_keys = {"total_rss", "total_shmem"},
		.limit = "/sys/fs/cgroup/memory/memory.limit_in_bytes",
	};
	cg->version = cg->oom_events ? 1 : 0;
}

/* The number after "key " on a line of a small keyed file; -1 if absent. */
static int64_t keyed_value(const char *path, const char *key)
{
	if (!path)
		return -1;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	char text[8192];
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	size_t klen = strlen(key);
	for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
		if (!strncmp(line, key, klen) && line[klen] == ' ')
			return strtoll(line + klen + 1, NULL, 10);
	return -1;
}

static int64_t plain_value(const char *path)
{
	_cleanup_close_ int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
	char text[64];
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	return strncmp(text, "max", 3) ? strtoll(text, NULL, 10) : INT64_MAX;
}

/* Memory nothing reclaims: anonymous and shared (tmpfs, IPC) pages. */
static int64_t charged(const struct container_cgroup *cg)
{
	int64_t anon = keyed_value(cg->stat, cg->stat_keys[0]);
	int64_t shmem = keyed_value(cg->stat, cg->stat_keys[1]);
	return anon < 0 || shmem < 0 ? -1 : anon + shmem;
}

/* ---- start ----------------------------------------------------------------- */

static int parse_args(struct agent *a, int argc, char **argv, spr_error **err)
{
	if (argc != 6)
		return spr_fail(err, SPR_LAYER_SANDBOX, EINVAL,
				"usage: spr-sandbox --container WORKER PYTHON BASE_PREFIX PREFIX "
				"(started by the DockerEngine only)");
	a->worker = argv[2];
	a->python = argv[3];
	a->base_prefix = argv[4];
	a->prefix = argv[5];
	return 0;
}

/* pid 1 of a container: nothing to inherit but the frames on 0 and 1 and
 * the runtime's stderr. */
static int take_descriptors(spr_error **err)
{
	close_range(3, ~0U, 0);
	signal(SIGPIPE, SIG_IGN);
	if (fcntl(AGENT_IN, F_GETFD) < 0 || fcntl(AGENT_OUT, F_GETFD) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "the agent's stdin/stdout");
	return 0;
}

static void save_limits(struct rlimit limits[RLIM_NLIMITS], pid_t pid)
{
	for (int r = 0; r < RLIM_NLIMITS; r++)
		prlimit(pid, (enum __rlimit_resource)r, NULL, &limits[r]);
}

/* The fork server, forked before any request exists. */
static int start_server(struct agent *a, spr_error **err)
{
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "socketpair(SOCK_SEQPACKET)");
	pid_t agent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(sp[0]);
		close(sp[1]);
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "fork (the fork server)");
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != agent || null < 0 ||
		    dup2(null, AGENT_IN) < 0 || dup2(null, AGENT_OUT) < 0 || dup2(sp[1], 3) < 0)
			_exit(125);
		close_range(4, ~0U, 0);
		_exit(spr_sandbox_serve_on(3, agent));
	}
	close(sp[1]);
	a->server = sp[0];
	a->server_pid = pid;
	a->server_pidfd = pidfd_open(pid, 0);
	if (a->server_pidfd < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "pidfd_open (the fork server)");
	save_limits(a->server_limits, pid);
	return 0;
}

/* The host's plan, completed with what only the container shows: the
 * layout of its files, its interpreter and where the worker is. */
static int complete_plan(struct agent *a, const spr_buf *frame, spr_error **err)
{
	_cleanup_arena_ struct spr_arena arena = SPR_ARENA_INIT;
	_cleanup_free_ struct spr_sandbox_plan *p = calloc(1, sizeof(*p));
	if (!p)
		return spr_fail_oom(err);
	if (spr_plan_decode(frame->data, frame->len, p, &arena, err) < 0)
		return -1;
	if (!p->layout_request.by_agent || p->argv.n < 2)
		return spr_fail(err, SPR_LAYER_SANDBOX, EINVAL,
				"the host's plan is not a container plan (libspr and the agent come "
				"from different builds?)");
	struct spr_layout_input in = {
		.python_executable = a->python,
		.python_base_prefix = a->base_prefix,
		.python_prefix = a->prefix,
		.worker_path = a->worker,
		.extra_ro = &p->layout_request.extra_ro,
		.network = p->layout_request.network,
		.scratch = p->layout_request.scratch,
		.nscratch = SPR_PLAN_NSCRATCH,
		.workdir = p->layout_request.workdir,
		.outside_uid = getuid(),
		.outside_gid = getgid(),
		.host_root = "",
	};
	if (spr_layout_build(&in, &p->layout, &p->degraded, &arena, err) < 0)
		return -1;
	p->degraded.workdir_parent = "/tmp";
	_cleanup_free_ char *inside = spr_layout_worker_inside(a->worker);
	const char **argv = spr_arena_alloc(&arena, (p->argv.n + 1) * sizeof(*argv));
	if (!inside || !argv)
		return spr_fail_oom(err);
	memcpy(argv, p->argv.v, p->argv.n * sizeof(*argv));
	argv[0] = a->python;
	argv[p->argv.n - 1] = inside;
	p->argv.v = argv;
	/* Without container limits its cgroup files say nothing of ours. */
	if (!p->layout_request.limits)
		a->cg = (struct container_cgroup){0};
	p->layout_request = (struct spr_layout_request){0};
	p->allow_degraded = false; /* a container gets every layer, or no run */
	return spr_plan_encode(p, &a->plan, err);
}

/* ---- sandboxes --------------------------------------------------------------- */

static void sandbox_free(struct sandbox *sb)
{
	if (!sb)
		return;
	spr_sandbox_ends_close(&sb->ends);
	spr_closep(&sb->monitor);
	free(sb);
}

/* Has the server fork a monitor and hands it the plan; the sandbox is set
 * up meanwhile, up to the worker waiting for its request. */
static struct sandbox *sandbox_prepare(struct agent *a, spr_error **err)
{
	struct sandbox *sb = calloc(1, sizeof(*sb));
	if (!sb) {
		spr_fail_oom(err);
		return NULL;
	}
	sb->monitor = -1;
	int child[SPR_SANDBOX_NFDS];
	if (spr_sandbox_channels(&sb->ends, child, err) < 0) {
		free(sb);
		return NULL;
	}
	struct spr_msg reply;
	enum spr_monitor_reply kind = spr_sandbox_ask_monitor(a->server, child, false, &sb->monitor,
							   &reply);
	spr_sandbox_child_ends_close(child);
	int rc = 0;
	if (kind == SPR_REPLY_MONITOR)
		sb->monitor_pid = reply.pid;
	else if (kind == SPR_REPLY_BROKEN)
		rc = spr_fail_errno(err, SPR_LAYER_SANDBOX, "the agent's fork server did not answer");
	else
		rc = spr_msg_to_error(&reply, NULL, err);
	if (rc == 0 && send(sb->ends.ctrl, a->plan.data, a->plan.len, MSG_NOSIGNAL) < 0)
		rc = spr_fail_errno(err, SPR_LAYER_SANDBOX, "sending the plan to a monitor");
	if (rc < 0) {
		if (sb->monitor >= 0)
			pidfd_send_signal(sb->monitor, SIGKILL, NULL, 0);
		sandbox_free(sb);
		return NULL;
	}
	return sb;
}

/* Waits for the sandbox's STARTED: its worker waits for the request. */
static int sandbox_ready(struct sandbox *sb, spr_error **err)
{
	int64_t deadline = spr_now_ms() + SETUP_TIMEOUT_MS;
	while (!sb->started) {
		struct pollfd p = {.fd = sb->ends.ctrl, .events = POLLIN};
		int64_t left = deadline - spr_now_ms();
		if (left <= 0)
			return spr_fail(err, SPR_LAYER_SANDBOX, ETIMEDOUT,
					"a sandbox in the container was not ready within %d s",
					SETUP_TIMEOUT_MS / 1000);
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return spr_fail_errno(err, SPR_LAYER_SANDBOX, "poll");
		struct spr_msg m;
		int rc = spr_msg_recv(sb->ends.ctrl, &m, MSG_DONTWAIT, NULL, NULL);
		if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
			continue;
		if (rc > 0 && m.type == SPR_MSG_STARTED) {
			sb->started = true;
			sb->started_msg = m;
		} else if (rc > 0 && m.type == SPR_MSG_ERROR) {
			return spr_msg_to_error(&m, "sandbox setup failed in the container: ", err);
		} else {
			return spr_fail(err, SPR_LAYER_SANDBOX, EPIPE,
					"a sandbox's monitor in the container ended before it was ready");
		}
	}
	return 0;
}

/* A ready sandbox that has not ended since: its monitor runs, and its
 * control socket holds no EXIT, ERROR or EOF. */
static bool sandbox_alive(struct sandbox *sb)
{
	struct pollfd p[2] = {{.fd = sb->monitor, .events = POLLIN},
			      {.fd = sb->ends.ctrl, .events = POLLIN}};
	return poll(p, 2, 0) == 0;
}

/* The prepared sandbox, ready; a new one if it failed or ended since. */
static struct sandbox *take_next(struct agent *a, spr_error **err)
{
	struct sandbox *sb = steal_pointer(&a->next);
	_cleanup_error_ spr_error *first = NULL;
	if (sb && sandbox_ready(sb, &first) == 0 && sandbox_alive(sb))
		return sb;
	sandbox_free(sb);
	sb = sandbox_prepare(a, err);
	if (sb && sandbox_ready(sb, err) < 0) {
		pidfd_send_signal(sb->monitor, SIGKILL, NULL, 0);
		sandbox_free(sb);
		return NULL;
	}
	return sb;
}

/* ---- one run ------------------------------------------------------------------- */

static void forward(struct spr_capture *c, char type, uint64_t keep)
{
	char chunk[CHUNK];
	for (;;) {
		ssize_t n = read(c->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			spr_closep(&c->fd);
			return;
		}
		uint64_t before = c->total;
		c->total += (uint64_t)n;
		if (before < keep) {
			uint64_t room = keep - before;
			spr_frame_send(AGENT_OUT, type, chunk, (uint64_t)n < room ? (size_t)n : (size_t)room,
				       NULL, 0, -1);
		}
	}
}

static void kill_run(struct run *r, int64_t now)
{
	if (r->kill_sent)
		return;
	r->kill_sent = true;
	spr_msg_send(r->sb->ends.ctrl, &(struct spr_msg){.type = SPR_MSG_KILL}, NULL, 0);
	r->kill_deadline = now + KILL_GRACE_MS;
}

static void on_ctrl(struct run *r)
{
	for (;;) {
		struct spr_msg m;
		int rc = spr_msg_recv(r->sb->ends.ctrl, &m, MSG_DONTWAIT, NULL, NULL);
		if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (rc < 0 && (errno == EPROTO || errno == EINTR))
			continue;
		if (rc <= 0) {
			r->ctrl_closed = true;
			return;
		}
		if (m.type == SPR_MSG_EXIT || m.type == SPR_MSG_ERROR) {
			if (m.type == SPR_MSG_EXIT) {
				/* What the agent saw of the container's cgroup stays. */
				bool pids = r->done.exit.pids_limit_hit;
				r->done.exit = m.exit;
				r->done.exit.pids_limit_hit = pids || m.exit.pids_limit_hit;
			} else
				r->error = m;
			r->exited = true;
			r->drain_deadline = spr_now_ms() + DRAIN_GRACE_MS;
		}
	}
}

static void feed(struct run *r)
{
	while (r->input_off < r->input_len) {
		ssize_t n = send(r->sb->ends.request, r->input + r->input_off,
				 r->input_len - r->input_off, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0)
			break; /* the worker is gone: its exit says why */
		r->input_off += (size_t)n;
	}
	spr_closep(&r->sb->ends.request);
}

static bool finished(const struct run *r, int64_t now)
{
	return r->exited &&
	       ((r->out.fd < 0 && r->err.fd < 0 && r->result.fd < 0) || now >= r->drain_deadline);
}

/* Deadlines: the timeout, the kill's grace, the pids check. */
static void on_time(struct agent *a, struct run *r, int64_t now)
{
	if (!r->exited && !r->kill_sent && now >= r->deadline) {
		r->done.done.timed_out = true;
		kill_run(r, now);
	}
	if (!r->exited && r->kill_sent && now >= r->kill_deadline) {
		/* A wedged monitor: killing it takes the run (PDEATHSIG). */
		pidfd_send_signal(r->sb->monitor, SIGKILL, NULL, 0);
		r->exited = true;
		r->drain_deadline = now + DRAIN_GRACE_MS;
	}
	if (r->pids_before >= 0 && !r->exited && now >= r->pids_check) {
		r->pids_check = now + PIDS_CHECK_MS;
		if (keyed_value(a->cg.pids_events, "max") > r->pids_before) {
			r->done.exit.pids_limit_hit = true;
			kill_run(r, now);
		}
	}
}

static int64_t next_wakeup(const struct run *r)
{
	if (r->exited)
		return r->drain_deadline;
	int64_t t = r->kill_sent ? r->kill_deadline : r->deadline;
	return r->pids_before >= 0 && r->pids_check < t ? r->pids_check : t;
}

static void pump(struct agent *a, struct run *r, uint64_t keep)
{
	struct spr_sandbox_ends *e = &r->sb->ends;
	r->out.fd = steal_fd(&e->out);
	r->err.fd = steal_fd(&e->err);
	r->result.fd = steal_fd(&e->result);
	for (;;) {
		int64_t now = spr_now_ms();
		if (finished(r, now))
			break;
		if (r->ctrl_closed && !r->exited) {
			r->exited = true;
			r->drain_deadline = now + DRAIN_GRACE_MS;
		}
		on_time(a, r, now);
		enum { P_CTRL, P_OUT, P_ERR, P_RES, P_IN, P_HOST, NP };
		struct pollfd p[NP] = {
			[P_HOST] = {.fd = r->host_gone ? -1 : AGENT_IN, .events = POLLIN},
			[P_CTRL] = {.fd = r->ctrl_closed ? -1 : e->ctrl, .events = POLLIN},
			[P_OUT] = {.fd = r->out.fd, .events = POLLIN},
			[P_ERR] = {.fd = r->err.fd, .events = POLLIN},
			[P_RES] = {.fd = r->result.fd, .events = POLLIN},
			[P_IN] = {.fd = e->request, .events = POLLOUT},
		};
		int64_t wait = next_wakeup(r) - now;
		if (poll(p, NP, wait < 0 ? 0 : wait > 60000 ? 60000 : (int)wait) < 0 && errno != EINTR)
			break;
		/* The host sends nothing during a run: its caller went away (or
		 * it is out of step). The run ends now; the agent then exits. */
		if (p[P_HOST].revents) {
			r->host_gone = true;
			kill_run(r, now);
		}
		if (p[P_CTRL].revents)
			on_ctrl(r);
		if (p[P_OUT].revents)
			forward(&r->out, SPR_FRAME_OUT, keep);
		if (p[P_ERR].revents)
			forward(&r->err, SPR_FRAME_ERR, keep);
		if (p[P_RES].revents)
			forward(&r->result, SPR_FRAME_RESULT, (uint64_t)SPR_MAX_RESULT_BYTES);
		if (p[P_IN].revents)
			feed(r);
	}
	r->done.done.out_total = r->out.total;
	r->done.done.err_total = r->err.total;
	r->done.done.result_total = r->result.total;
	spr_closep(&r->out.fd);
	spr_closep(&r->err.fd);
	spr_closep(&r->result.fd);
}

/* One request: hand it to the prepared sandbox, prepare the next, forward
 * what the run writes, say how it ended. 1: the host went away meanwhile. */
static int serve_request(struct agent *a, const spr_buf *frame, spr_error **err)
{
	struct run r = {.done = {.type = SPR_MSG_DONE, .exit = {.status = -1, .maxrss_kb = -1}},
			.out.fd = -1, .err.fd = -1, .result.fd = -1};
	size_t used;
	if (spr_frame_msg(frame, &r.request, &used) < 0 || r.request.type != SPR_MSG_REQUEST)
		return spr_fail(err, SPR_LAYER_SANDBOX, EPROTO, "the host sent a malformed request");
	r.input = frame->data + used;
	r.input_len = frame->len - used;
	r.sb = take_next(a, err);
	if (!r.sb)
		return -1; /* before STARTED: the host gives the run to another container */
	/* The container's cgroup limits memory, processes and CPU. */
	r.sb->started_msg.applied.cgroup = a->cg.version;
	int lacks = spr_applied_lacks(&r.sb->started_msg.applied, r.request.request.require,
				      (uid_t)-1);
	if (lacks >= 0) {
		/* Not this run's sandbox: it stays for the next. */
		a->next = steal_pointer(&r.sb);
		struct spr_msg refusal = {.type = SPR_MSG_ERROR};
		refusal.error.layer = SPR_LAYER_SANDBOX;
		refusal.error.errnum = EPERM;
		snprintf(refusal.error.message, sizeof(refusal.error.message),
			 "the policy requires the isolation layer '%s', which a container of this "
			 "image cannot give the run",
			 spr_layer_req_names[lacks]);
		return say(&refusal) < 0 ? spr_fail_errno(err, SPR_LAYER_SANDBOX,
							 "writing to the host")
					 : 0;
	}
	if (say(&r.sb->started_msg) < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "writing to the host");
	int64_t now = spr_now_ms();
	r.deadline = now + r.request.request.timeout_ms;
	r.pids_check = now + PIDS_CHECK_MS;
	r.oom_before = keyed_value(a->cg.oom_events, "oom_kill");
	r.pids_before = keyed_value(a->cg.pids_events, "max");
	feed(&r);
	/* The next run's sandbox is set up while this one runs. A failure
	 * here is retried when the next request comes. */
	_cleanup_error_ spr_error *ignored = NULL;
	a->next = sandbox_prepare(a, &ignored);
	/* A few bytes past the cap, so that a character straddling it is
	 * seen whole and cut before (as the LocalEngine keeps). */
	uint64_t cap = r.request.request.output_cap;
	pump(a, &r, cap > UINT64_MAX - 4 ? UINT64_MAX : cap + 4);
	int64_t ooms = keyed_value(a->cg.oom_events, "oom_kill");
	r.done.exit.oom_killed = r.done.exit.oom_killed || (r.oom_before >= 0 && ooms > r.oom_before);
	/* A run that met the pids limit and finished before the next check
	 * (the code caught EAGAIN and went on) still met it: the LocalEngine
	 * reads its pids.events once more at the end, and so does this. */
	int64_t pids_hits = keyed_value(a->cg.pids_events, "max");
	r.done.exit.pids_limit_hit = r.done.exit.pids_limit_hit ||
				     (r.pids_before >= 0 && pids_hits > r.pids_before);
	int rc = r.host_gone ? -1 : say(r.error.type == SPR_MSG_ERROR ? &r.error : &r.done);
	struct sandbox *sb = r.sb;
	/* Its monitor exits after EXIT; a wedged one is killed. */
	struct pollfd gone = {.fd = sb->monitor, .events = POLLIN};
	if (poll(&gone, 1, KILL_GRACE_MS) <= 0)
		pidfd_send_signal(sb->monitor, SIGKILL, NULL, 0);
	sandbox_free(sb);
	if (r.host_gone)
		return 1; /* nobody to tell */
	if (rc < 0)
		return spr_fail_errno(err, SPR_LAYER_SANDBOX, "writing to the host");
	return 0;
}

/* ---- between runs -------------------------------------------------------------- */

static pid_t parent_of(pid_t pid)
{
	char path[64], text[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (n <= 0)
		return -1;
	text[n] = '\0';
	const char *end = strrchr(text, ')'); /* the name may hold anything */
	int ppid;
	return end && sscanf(end + 1, " %*c %d", &ppid) == 1 ? ppid : -1;
}

/* Ours: the agent, its server, and the prepared sandbox's processes. */
static bool is_ours(const struct agent *a, pid_t pid)
{
	pid_t monitor = a->next ? a->next->monitor_pid : -1;
	for (int depth = 0; depth < 64 && pid > 0; depth++) {
		if (pid == getpid() || pid == a->server_pid)
			return depth == 0;
		if (pid == monitor)
			return true;
		pid = parent_of(pid);
	}
	return false;
}

/* Processes of the container that are not ours: killed; returns how many
 * there were (0: clean), the first one's pid in *first. */
static int strays(const struct agent *a, pid_t *first)
{
	/* Orphans become ours (pid 1): reap them. Never the server. */
	siginfo_t si;
	while ((si.si_pid = 0, waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) == 0) &&
	       si.si_pid > 0 && si.si_pid != a->server_pid)
		waitpid(si.si_pid, NULL, 0);
	DIR *d = opendir("/proc");
	if (!d)
		return -1;
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0 || is_ours(a, (pid_t)pid))
			continue;
		if (!n++)
			*first = (pid_t)pid;
		kill((pid_t)pid, SIGKILL);
	}
	closedir(d);
	return n;
}

static bool same_limits(const struct rlimit a[RLIM_NLIMITS], pid_t pid)
{
	struct rlimit now[RLIM_NLIMITS];
	save_limits(now, pid);
	return !memcmp(a, now, sizeof(now));
}

/* Lines beyond the header in /proc/sysvipc/<kind>: objects of the
 * container's own IPC namespace. */
static int ipc_objects(const char *kind)
{
	char path[64], text[4096];
	snprintf(path, sizeof(path), "/proc/sysvipc/%s", kind);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, text, sizeof(text) - 1);
	if (n < 0)
		return 0; /* no SysV IPC in this kernel */
	text[n] = '\0';
	int lines = 0;
	for (char *p = text; (p = strchr(p, '\n')); p++)
		lines++;
	return lines > 1 ? lines - 1 : 0;
}

/* Entries of the container's /tmp but the agent's own spr/ directory. */
static int tmp_entries(const char **name)
{
	DIR *d = opendir("/tmp");
	if (!d)
		return 0;
	static char first[256];
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, "spr"))
			continue;
		if (!n++)
			snprintf(first, sizeof(first), "%s", e->d_name);
	}
	closedir(d);
	*name = first;
	return n;
}

/* Nothing of the last run is left (the module comment says what that
 * means), or the container is not proven clean: -1. */
static int check_clean(struct agent *a, spr_error **err)
{
	/* The prepared sandbox first: the measurements below count it. */
	if (a->next && sandbox_ready(a->next, err) < 0)
		return -1;
	struct pollfd server = {.fd = a->server_pidfd, .events = POLLIN};
	if (poll(&server, 1, 0) != 0)
		return spr_fail(err, SPR_LAYER_SANDBOX, ESRCH, "the agent's fork server ended");
	int64_t give_up = spr_now_ms() + CLEAN_TIMEOUT_MS;
	pid_t stray = 0;
	int left;
	while ((left = strays(a, &stray)) != 0) {
		if (left < 0)
			return spr_fail_errno(err, SPR_LAYER_SANDBOX, "listing /proc");
		if (spr_now_ms() >= give_up)
			return spr_fail(err, SPR_LAYER_SANDBOX, EBUSY,
					"process %d survived a run and could not be killed",
					(int)stray);
		usleep(CLEAN_STEP_MS * 1000);
	}
	if (!same_limits(a->limits, 0) || !same_limits(a->server_limits, a->server_pid))
		return spr_fail(err, SPR_LAYER_SANDBOX, EPERM,
				"the agent's or its server's resource limits changed");
	static const char *const kinds[] = {"shm", "sem", "msg"};
	for (size_t i = 0; i < ARRAY_SIZE(kinds); i++)
		if (ipc_objects(kinds[i]))
			return spr_fail(err, SPR_LAYER_SANDBOX, EEXIST,
					"the container's own IPC namespace holds SysV %s objects",
					kinds[i]);
	const char *name;
	if (tmp_entries(&name))
		return spr_fail(err, SPR_LAYER_SANDBOX, EEXIST,
				"the container's /tmp holds %s, which the agent did not make", name);
	if (a->baseline < 0)
		return 0;
	int64_t now_charged;
	while ((now_charged = charged(&a->cg)) > a->baseline + a->slack) {
		if (spr_now_ms() >= give_up)
			return spr_fail(err, SPR_LAYER_SANDBOX, EBUSY,
					"%lld KiB of memory stay charged to the container after a "
					"run (%lld KiB before the first)",
					(long long)(now_charged >> 10), (long long)(a->baseline >> 10));
		usleep(CLEAN_STEP_MS * 1000);
	}
	return 0;
}

/* ---- the agent ---------------------------------------------------------------- */

/* The container is ready: its first sandbox is, and what a clean
 * container holds is measured with it. */
static int first_sandbox(struct agent *a, spr_error **err)
{
	a->next = sandbox_prepare(a, err);
	if (!a->next || sandbox_ready(a->next, err) < 0)
		return -1;
	a->baseline = charged(&a->cg);
	int64_t limit = plain_value(a->cg.limit);
	int64_t slack = limit > 0 && limit < INT64_MAX ? limit / 20 : CHARGE_SLACK_MAX;
	a->slack = slack < CHARGE_SLACK_MIN ? CHARGE_SLACK_MIN
		   : slack > CHARGE_SLACK_MAX ? CHARGE_SLACK_MAX
					       : slack;
	return 0;
}

/* Runs served, in the agent's process name (`spr-runs-N`): what `spr
 * list containers` shows, through `docker top`, without entering the
 * container. */
static void count_runs(unsigned runs)
{
	char name[16];
	snprintf(name, sizeof(name), "spr-runs-%u", runs);
	prctl(PR_SET_NAME, name);
}

static int serve(struct agent *a, spr_error **err)
{
	_cleanup_buf_ spr_buf frame = SPR_BUF_INIT;
	for (unsigned runs = 0;; runs++) {
		count_runs(runs);
		char type;
		int rc = spr_frame_recv(AGENT_IN, &type, &frame, -1);
		if (rc == -EPIPE)
			return 0; /* the host let the container go */
		if (rc < 0 || type != SPR_FRAME_REQUEST)
			return spr_fail(err, SPR_LAYER_SANDBOX, rc < 0 ? -rc : EPROTO,
					"reading the host's frames: %s",
					rc < 0 ? strerror(-rc) : "not a request");
		rc = serve_request(a, &frame, err);
		/* The request was the run's: none of it stays in the agent, and
		 * its memory goes back before the container is measured. */
		if (frame.data)
			explicit_bzero(frame.data, frame.len);
		spr_buf_free(&frame);
		malloc_trim(0);
		if (rc > 0)
			return 0; /* the host let the container go during a run */
		if (rc < 0 || check_clean(a, err) < 0)
			return -1;
	}
}

int spr_sandbox_agent(int argc, char **argv)
{
	struct agent a = {.server = -1, .server_pidfd = -1, .baseline = -1};
	spr_error *err = NULL;
	_cleanup_buf_ spr_buf frame = SPR_BUF_INIT;
	char type = 0;
	int rc = parse_args(&a, argc, argv, &err);
	if (rc == 0)
		rc = take_descriptors(&err);
	if (rc == 0) {
		find_cgroup(&a.cg);
		save_limits(a.limits, 0);
		rc = start_server(&a, &err);
	}
	if (rc == 0 && (rc = spr_frame_recv(AGENT_IN, &type, &frame, -1)) == 0 &&
	    type != SPR_FRAME_PLAN)
		rc = -EPROTO;
	if (rc < 0 && !err)
		spr_fail(&err, SPR_LAYER_SANDBOX, -rc, "reading the host's plan: %s", strerror(-rc));
	if (rc == 0)
		rc = complete_plan(&a, &frame, &err);
	if (rc == 0)
		rc = first_sandbox(&a, &err);
	if (rc == 0)
		rc = say(&(struct spr_msg){.type = SPR_MSG_HELLO});
	if (rc == 0)
		rc = serve(&a, &err);
	if (rc < 0 && err)
		return fatal(err);
	return rc < 0 ? 125 : 0;
}
