/* One LocalEngine run, host side: have spr-sandbox's server start the
 * run's monitor, feed the request,
 * drain the outputs with their caps, enforce the wall deadline, collect
 * the facts, marshal the RunnerResult. */
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/pidfd.h>
#include <sys/socket.h>

#include "json.h"
#include "protocol/layout.h"
#include "rundir.h"
#include "protocol/message.h"
#include "protocol/plan.h"
#include "local/engine.h"
#include "local/pool.h"
#include "protocol/sandbox.h"
#include "policy/seccomp.h"
#include "proc.h"

/* How long the helper may take to start the worker, how long it may take
 * to kill the run once asked, and how long we keep reading output after
 * the run ended (writers are dead by then; this only bounds a bug). */
#define SETUP_TIMEOUT_MS 30000
#define KILL_GRACE_MS 3000
#define DRAIN_GRACE_MS 2000

struct local_run {
	struct spr_local_engine *engine;
	spr_plan *plan;
	int64_t t0;

	int ctrl;
	int helper; /* the monitor's pidfd */
	struct spr_feeder request;
	struct spr_capture out, err, result;
	struct spr_output_tap tap; /* the caller's streaming, if any */
	spr_buf request_text;

	bool started, exited, kill_sent, ctrl_closed;
	int64_t run_deadline, kill_deadline, drain_deadline;

	struct spr_run_facts facts;
	spr_error *infra;
	struct spr_applied applied; /* from the monitor's STARTED */
	char *isolation;
};

static void local_run_free(struct local_run *r)
{
	spr_closep(&r->ctrl);
	spr_feeder_close(&r->request);
	spr_capture_close(&r->out);
	spr_capture_close(&r->err);
	spr_capture_close(&r->result);
	spr_buf_free(&r->out.buf);
	spr_buf_free(&r->err.buf);
	spr_buf_free(&r->result.buf);
	spr_buf_free(&r->request_text);
	spr_closep(&r->helper);
	spr_error_free(r->infra);
	free(r->isolation);
}

/* What a run that never started had: nothing. */
static const char isolation_none[] =
	"{\"engine\":\"local\",\"userns\":false,\"pidns\":false,\"netns\":false,"
	"\"mountns\":false,\"network\":\"host\",\"seccomp\":\"none\",\"landlock\":false,"
	"\"cgroup\":\"none\",\"memory\":\"rlimit\",\"degraded\":true}";

/* What a run without namespaces cannot hide from the code (SPEC §7
 * "Degraded mode"). */
static const char *const degraded_visible[] = {
	"host processes (/proc)", "hostname", "mountinfo", "/proc/net", "namespace inodes",
};

/* isolation (SPEC §3) says exactly what the helper applied. */
static char *isolation_json(const struct spr_applied *a)
{
	bool ns = a->namespaces, shared = a->network_shared;
	unsigned f = a->filter;
	_cleanup_cjson_ cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "engine", "local");
	cJSON_AddBoolToObject(o, "userns", ns);
	cJSON_AddBoolToObject(o, "pidns", ns);
	cJSON_AddBoolToObject(o, "netns", ns && !shared);
	cJSON_AddBoolToObject(o, "mountns", ns);
	cJSON_AddStringToObject(o, "network", !shared ? "loopback"
					      : (f & SPR_FILTER_NO_INET) ? "refused"
									 : "host");
	cJSON_AddStringToObject(o, "ipc", ns ? "private"
					  : (f & SPR_FILTER_NO_IPC) ? "refused"
								    : "host");
	cJSON_AddStringToObject(o, "unix_sockets", (f & SPR_FILTER_NO_UNIX) ? "socketpair only"
									 : "allowed");
	cJSON_AddStringToObject(o, "seccomp",
				a->seccomp == SPR_SECCOMP_NO_UNIX_LOADED ? SPR_SECCOMP_PROFILE_NO_UNIX
				: a->seccomp == SPR_SECCOMP_DEFAULT_LOADED ? SPR_SECCOMP_PROFILE
									   : "none");
	cJSON_AddBoolToObject(o, "landlock", a->landlock_abi > 0);
	if (a->landlock_abi > 0)
		cJSON_AddNumberToObject(o, "landlock_abi", a->landlock_abi);
	cJSON_AddBoolToObject(o, "landlock_tcp", a->landlock_net);
	/* Signals and abstract unix sockets stay inside the run (ABI 6). */
	cJSON_AddBoolToObject(o, "landlock_scoped", a->landlock_abi >= 6);
	cJSON_AddStringToObject(o, "cgroup", a->cgroup == SPR_CG_V2   ? "v2"
					     : a->cgroup == SPR_CG_V1 ? "v1"
								      : "none");
	cJSON_AddStringToObject(o, "memory", a->cgroup ? "cgroup" : "rlimit");
	cJSON_AddStringToObject(o, "memfd_exec", a->memfd_noexec ? "refused" : "allowed");
	cJSON_AddNumberToObject(o, "host_uid", a->host_uid);
	cJSON_AddStringToObject(o, "process_tree", ns ? "pid namespace" : "subreaper");
	if (!ns) {
		cJSON *visible = cJSON_AddArrayToObject(o, "visible");
		for (size_t i = 0; i < ARRAY_SIZE(degraded_visible); i++)
			cJSON_AddItemToArray(visible, cJSON_CreateString(degraded_visible[i]));
		/* Neither a uid of its own (root) nor Landlock's scope (ABI 6):
		 * the code can signal whatever runs as the caller. */
		if (a->landlock_abi < 6 && a->host_uid == (uint32_t)geteuid())
			cJSON_AddItemToArray(visible, cJSON_CreateString(
							      "signals to the caller's processes"));
		/* Running as the caller: Landlock covers no chmod, utimes or
		 * xattr calls, so the metadata of the caller's files (not
		 * their content) is the code's to change. */
		if (a->host_uid == (uint32_t)geteuid())
			cJSON_AddItemToArray(visible,
					     cJSON_CreateString("metadata of the caller's files (mode, "
								"times, extended attributes)"));
	}
	cJSON_AddBoolToObject(o, "degraded", !ns || !a->seccomp || !a->cgroup);
	return cJSON_PrintUnformatted(o);
}

static bool same_isolation(const struct spr_applied *a, const struct spr_applied *b)
{
	/* Not the host uid: each sandbox has its own. */
	return a->namespaces == b->namespaces && a->network_shared == b->network_shared &&
	       a->landlock_abi == b->landlock_abi && a->landlock_net == b->landlock_net &&
	       a->seccomp == b->seccomp && a->filter == b->filter && a->cgroup == b->cgroup &&
	       a->memfd_noexec == b->memfd_noexec;
}

/* ---- the sandbox plan ------------------------------------------------------ */

_Static_assert((int)SPR_SECCOMP_DEFAULT == (int)SPR_FILTER_DEFAULT &&
		       (int)SPR_SECCOMP_NO_UNIX == (int)SPR_FILTER_NO_UNIX &&
		       (int)SPR_SECCOMP_NO_MEMFD_EXEC == (int)SPR_FILTER_NO_MEMFD_EXEC &&
		       (int)SPR_SECCOMP_NO_IPC == (int)SPR_FILTER_NO_IPC &&
		       (int)SPR_SECCOMP_NO_INET == (int)SPR_FILTER_NO_INET &&
		       (int)SPR_SECCOMP_NVARIANTS == (int)SPR_NFILTERS,
	       "filter indices");

/* What runs in a sandbox: the worker for a run, or a command of the
 * engine's own (the interpreter probe, the worker's compilation). */
struct sandbox_spec {
	const char *const *argv; /* NULL: the interpreter, its flags, the worker */
	struct spr_layout_input layout;
	const char *degraded_argv_last; /* without namespaces, argv's last becomes this */
};

/* The worker's process: argv, environment, limits, filters. */
static int plan_process(const struct spr_local_engine *le, const spr_plan *plan,
			const struct sandbox_spec *spec, struct spr_sandbox_plan *sp,
			struct spr_arena *arena, spr_error **err)
{
	size_t nargs = 0;
	const char **argv;
	if (spec->argv) {
		while (spec->argv[nargs])
			nargs++;
		argv = spr_arena_alloc(arena, (nargs + 1) * sizeof(*argv));
		if (argv)
			memcpy(argv, spec->argv, nargs * sizeof(*argv));
	} else {
		_cleanup_free_ char *inside = spr_layout_worker_inside(le->worker_run_path);
		size_t nflags = 0;
		while (plan->python_flags[nflags])
			nflags++;
		argv = inside ? spr_arena_alloc(arena, (nflags + 3) * sizeof(*argv)) : NULL;
		if (argv) {
			argv[0] = le->python.executable;
			memcpy(argv + 1, plan->python_flags, nflags * sizeof(*argv));
			/* The worker's path differs inside the namespaces; the
			 * degraded mode runs the host path (degraded.worker). */
			argv[nflags + 1] = spr_arena_strdup(arena, inside);
		}
		nargs = nflags + 2;
	}
	size_t nenv = 0;
	while (plan->env[nenv])
		nenv++;
	/* The worker's preloads, imported from where its request will say
	 * (a command of the engine's own has none). */
	_cleanup_free_ char *preload = NULL;
	if (!spec->argv &&
	    spr_worker_preload_env(plan,
				   &(struct spr_worker_request_opts){
					   .sys_path_json = le->python.sys_path_json,
					   .venv = le->python.venv ? le->python.prefix : NULL,
				   },
				   &preload, err) < 0)
		return -1;
	const char **env = spr_arena_alloc(arena, (nenv + 2) * sizeof(*env));
	if (!argv || !env || arena->oom)
		return spr_fail_oom(err);
	sp->argv = (struct spr_strv){argv, nargs};
	memcpy(env, plan->env, nenv * sizeof(*env));
	if (preload && !(env[nenv++] = spr_arena_strdup(arena, preload)))
		return spr_fail_oom(err);
	sp->env = (struct spr_strv){env, nenv};

	memcpy(sp->rlimits, plan->rlimits, sizeof(sp->rlimits));
	bool cgroup = spr_cgroup_usable(&le->cgroups);
	const struct spr_limits *l = &plan->limits;
	/* The cgroup limits memory; RLIMIT_AS would only break programs that
	 * reserve address space (threads, mmap). */
	if (!cgroup)
		sp->rlimits[SPR_RLIM_AS] = (struct spr_rlimit_plan){true, l->memory_bytes,
								    l->memory_bytes};
	/* With a pids cgroup, RLIMIT_NPROC is only a backstop: were it equal,
	 * it would refuse the fork first and the cgroup would never record
	 * the hit that reports "Process limit exceeded". */
	uint64_t nproc = (uint64_t)l->max_processes;
	if (cgroup)
		nproc = nproc * 2 + 16;
	sp->rlimits[SPR_RLIM_NPROC] = (struct spr_rlimit_plan){true, nproc, nproc};

	/* The variants the helper may pick (plan.h), compiled once per
	 * process on first use. */
	uint32_t needed = spr_filters_needed(plan->network, le->allow_degraded);
	if (spr_seccomp_plan_filters(sp, needed, err) < 0)
		return -1;
	sp->allow_degraded = le->allow_degraded;
	if (geteuid() == 0)
		sp->run_uid = (struct spr_uid_lease_plan){le->uid_range.start, le->uid_range.count,
							  SPR_UID_LEASE_FILE};
	if (cgroup)
		spr_cgroup_plan(&le->cgroups, l->memory_bytes, l->max_processes, l->cpu_cores,
				l->cpu_seconds, &sp->cgroup);
	return 0;
}

/* The encoded plan for a sandbox: the monitor's only input, and the warm
 * pool's key. */
static int sandbox_plan(const struct spr_local_engine *le, const spr_plan *plan,
			const struct sandbox_spec *spec, spr_buf *out, spr_error **err)
{
	_cleanup_arena_ struct spr_arena arena = SPR_ARENA_INIT;
	_cleanup_free_ struct spr_sandbox_plan *sp = calloc(1, sizeof(*sp));
	if (!sp)
		return spr_fail_oom(err);
	if (plan_process(le, plan, spec, sp, &arena, err) < 0)
		return -1;
	struct spr_layout_input in = spec->layout;
	in.network = plan->network;
	in.scratch = plan->scratch;
	in.nscratch = SPR_PLAN_NSCRATCH;
	in.workdir = plan->workdir;
	in.outside_uid = le->outside_uid;
	in.outside_gid = le->outside_gid;
	in.caller_is_root = geteuid() == 0;
	if (spr_layout_build(&in, &sp->layout, &sp->degraded, &arena, err) < 0)
		return -1;
	sp->degraded.worker = spec->degraded_argv_last;
	sp->degraded.workdir_parent = spr_rundir_parent();
	return spr_plan_encode(sp, out, err);
}

/* A run's sandbox: the engine's interpreter and worker. */
static struct sandbox_spec run_spec(const struct spr_local_engine *le)
{
	return (struct sandbox_spec){
		.layout = {
			.python_executable = le->python.executable,
			.python_base_prefix = le->python.base_prefix,
			.python_prefix = le->python.prefix,
			.worker_path = le->worker_run_path,
		},
		.degraded_argv_last = le->worker_run_path,
	};
}

/* ---- preparing a sandbox --------------------------------------------------- */

/* No cgroup means no real memory/pids/cpu limits: a protection the policy
 * needs, so exit 125 unless the caller allowed degrading. */
static int check_cgroups(const struct spr_local_engine *le, spr_error **err)
{
	if (spr_cgroup_usable(&le->cgroups) || le->allow_degraded)
		return 0;
	_cleanup_free_ char *problem = spr_cgroup_problem(&le->cgroups);
	return spr_fail(err, SPR_LAYER_CGROUP, EPERM,
			"cannot enforce the memory limit: %s (or pass --allow-degraded / "
			"allow_degraded to run with rlimits only, reported in isolation)",
			problem ? problem : "no usable cgroup");
}

/* Has spr-sandbox's server start a monitor and hands it the plan; the
 * monitor sets the sandbox up up to the worker reading its request, which
 * nobody has written yet. Returns NULL (err set) on failure. */
static struct spr_prepared *prepare_sandbox(struct spr_local_engine *le, const spr_buf *plan,
					    bool need_cgroup, spr_error **err)
{
	if (need_cgroup && check_cgroups(le, err) < 0)
		return NULL;
	struct spr_prepared *p = calloc(1, sizeof(*p));
	if (!p) {
		spr_fail_oom(err);
		return NULL;
	}
	*p = (struct spr_prepared){.ctrl = -1, .helper = -1, .request = -1,
				   .out = -1, .err = -1, .result = -1};
	int child[SPR_SANDBOX_NFDS] = {-1, -1, -1, -1, -1};
	spr_buf_append(&p->plan, plan->data, plan->len);
	struct spr_sandbox_ends ends;
	int rc = p->plan.oom ? spr_fail_oom(err) : spr_sandbox_channels(&ends, child, err);
	if (rc == 0) {
		p->ctrl = ends.ctrl;
		p->request = ends.request;
		p->out = ends.out;
		p->err = ends.err;
		p->result = ends.result;
		rc = spr_fork_server_start(&le->server, le->sandbox_path, child,
					   le->allow_degraded, &p->helper, &p->server, err);
	}
	spr_sandbox_child_ends_close(child);
	if (rc == 0 && send(p->ctrl, plan->data, plan->len, MSG_NOSIGNAL) < 0)
		rc = spr_fail_errno(err, SPR_LAYER_SANDBOX, "sending the plan to spr-sandbox");
	if (rc < 0) {
		if (p->helper >= 0)
			pidfd_send_signal(p->helper, SIGKILL, NULL, 0);
		spr_prepared_free(p);
		return NULL;
	}
	return p;
}

/* Whether a prepared sandbox is ready for its request: it has said
 * STARTED (waited for when its setup is still going on, so that no
 * request is written before its isolation is known), with the isolation
 * the run that asked for it got, and nothing else. An error, the worker's
 * exit, EOF from a dead monitor, a monitor whose server is gone (dying
 * with it) or a setup past SETUP_TIMEOUT_MS mean it is no use. */
static bool prepared_alive(struct spr_prepared *p, unsigned server)
{
	if (p->server != server)
		return false;
	int64_t deadline = spr_now_ms() + SETUP_TIMEOUT_MS;
	for (;;) {
		struct spr_msg m;
		int rc = spr_msg_recv(p->ctrl, &m, MSG_DONTWAIT, NULL, NULL);
		if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (p->started)
				return true;
			struct pollfd ready = {.fd = p->ctrl, .events = POLLIN};
			int64_t left = deadline - spr_now_ms();
			if (left <= 0)
				return false;
			if (poll(&ready, 1, (int)left) < 0 && errno != EINTR)
				return false;
			continue;
		}
		if (rc <= 0 || m.type != SPR_MSG_STARTED)
			return false;
		/* Under allow_degraded a setup that failed (memory or pids
		 * pressure while another run ran) gives a weaker sandbox: not one
		 * to hand to a run whose predecessor got the full one. */
		if (p->expect_known && !same_isolation(&m.applied, &p->expect))
			return false;
		p->started = true;
		p->started_msg = m;
	}
}

/* A sandbox for this run: a prepared one made for the same plan, else
 * one set up now. */
static struct spr_prepared *acquire_sandbox(struct spr_local_engine *le, const spr_buf *plan,
					    bool *prepared, spr_error **err)
{
	struct spr_prepared *p;
	*prepared = true;
	unsigned server = spr_fork_server_current(&le->server);
	while ((p = spr_local_pool_take(&le->pool, plan))) {
		if (prepared_alive(p, server))
			return p;
		spr_prepared_free(p);
	}
	*prepared = false;
	return prepare_sandbox(le, plan, true, err);
}

struct spr_prepared *spr_local_prepare(void *engine, const spr_buf *plan)
{
	_cleanup_error_ spr_error *ignored = NULL; /* the run that asks again reports it */
	return prepare_sandbox(engine, plan, true, &ignored);
}

/* ---- control messages ------------------------------------------------------ */

static void on_exit_message(struct local_run *r, const struct spr_msg *m)
{
	struct spr_run_facts *f = &r->facts;
	spr_facts_from_exit(f, m);
	f->duration_ms = spr_now_ms() - r->t0;
	r->exited = true;
	r->drain_deadline = spr_now_ms() + DRAIN_GRACE_MS;
}

/* A layer the policy requires and the sandbox has not: the request is
 * never written (its feeding waits for STARTED), the run ends as an
 * infrastructure failure naming it. */
static void refuse_if_lacking(struct local_run *r)
{
	int lacks = spr_applied_lacks(&r->applied, r->plan->require, geteuid());
	if (lacks < 0)
		return;
	spr_fail(&r->infra, SPR_LAYER_SANDBOX, EPERM,
		 "the policy requires the isolation layer '%s', which this host cannot give the "
		 "run (isolation: %s); `spr doctor` says why",
		 spr_layer_req_names[lacks], r->isolation ? r->isolation : "{}");
	r->exited = true;
	r->drain_deadline = spr_now_ms();
}

static void on_ctrl_message(struct local_run *r, const struct spr_msg *m)
{
	switch (m->type) {
	case SPR_MSG_STARTED:
		r->started = true;
		r->applied = m->applied;
		free(r->isolation);
		r->isolation = isolation_json(&m->applied);
		r->run_deadline = spr_now_ms() + r->plan->limits.timeout_ms;
		refuse_if_lacking(r);
		break;
	case SPR_MSG_EXIT:
		on_exit_message(r, m);
		break;
	case SPR_MSG_ERROR:
		spr_msg_to_error(m, "sandbox setup failed: ", &r->infra);
		r->exited = true;
		r->drain_deadline = spr_now_ms() + DRAIN_GRACE_MS;
		break;
	default: /* nothing else is the monitor's to say */
		break;
	}
}

static void read_ctrl(struct local_run *r)
{
	for (;;) {
		struct spr_msg m;
		int rc = spr_msg_recv(r->ctrl, &m, MSG_DONTWAIT, NULL, NULL);
		if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (rc < 0 && errno == EPROTO)
			continue; /* not a message of ours: ignored, as any noise */
		if (rc <= 0) {
			r->ctrl_closed = true;
			return;
		}
		on_ctrl_message(r, &m);
	}
}

/* ---- the loop ------------------------------------------------------------- */

/* A pidfd cannot reach a process that reused the pid. */
static void kill_helper(const struct local_run *r)
{
	if (r->helper >= 0)
		pidfd_send_signal(r->helper, SIGKILL, NULL, 0);
}

static void request_kill(struct local_run *r)
{
	if (r->kill_sent)
		return;
	r->kill_sent = true;
	spr_msg_send(r->ctrl, &(struct spr_msg){.type = SPR_MSG_KILL}, NULL, 0);
	r->kill_deadline = spr_now_ms() + KILL_GRACE_MS;
}

/* Handles an expired deadline; returns false when the loop must end. */
static bool on_deadline(struct local_run *r, int64_t now)
{
	if (!r->started && !r->exited) {
		spr_fail(&r->infra, SPR_LAYER_SANDBOX, ETIMEDOUT,
			 "spr-sandbox did not start the worker within %d s", SETUP_TIMEOUT_MS / 1000);
		kill_helper(r);
		return false;
	}
	if (!r->exited && !r->kill_sent && now >= r->run_deadline) {
		r->facts.timed_out = true;
		r->facts.duration_ms = now - r->t0;
		request_kill(r);
		return true;
	}
	if (!r->exited && r->kill_sent && now >= r->kill_deadline) {
		/* The helper is wedged: kill it; PDEATHSIG takes the worker. */
		kill_helper(r);
		if (!r->facts.timed_out)
			spr_fail(&r->infra, SPR_LAYER_SANDBOX, ETIMEDOUT,
				 "spr-sandbox did not stop the run within %d s",
				 KILL_GRACE_MS / 1000);
		return false;
	}
	return !(r->exited && now >= r->drain_deadline);
}

static int64_t next_deadline(const struct local_run *r)
{
	if (!r->started && !r->exited)
		return r->t0 + SETUP_TIMEOUT_MS;
	if (!r->exited)
		return r->kill_sent ? r->kill_deadline : r->run_deadline;
	return r->drain_deadline;
}

static bool finished(const struct local_run *r)
{
	return r->exited && r->out.fd < 0 && r->err.fd < 0 && r->result.fd < 0;
}

static int pump(struct local_run *r, spr_error **err)
{
	while (!finished(r)) {
		if (r->ctrl_closed && !r->exited) {
			spr_fail(&r->infra, SPR_LAYER_SANDBOX, EPIPE,
				 "spr-sandbox exited without reporting the run's end");
			return 0;
		}
		int64_t now = spr_now_ms();
		if (now >= next_deadline(r)) {
			if (!on_deadline(r, now))
				return 0;
			continue;
		}
		enum { P_CTRL, P_OUT, P_ERR, P_RES, P_IN, NP };
		struct pollfd p[NP] = {
			[P_CTRL] = {.fd = r->ctrl_closed ? -1 : r->ctrl, .events = POLLIN},
			[P_OUT] = {.fd = r->out.fd, .events = POLLIN},
			[P_ERR] = {.fd = r->err.fd, .events = POLLIN},
			[P_RES] = {.fd = r->result.fd, .events = POLLIN},
			/* Nothing of the request before the sandbox said what it
			 * applied (a required layer may be missing). */
			[P_IN] = {.fd = r->started && !r->infra ? r->request.fd : -1,
				  .events = POLLOUT},
		};
		int64_t wait = next_deadline(r) - now;
		if (poll(p, NP, (int)(wait > 60000 ? 60000 : wait)) < 0) {
			if (errno == EINTR)
				continue;
			return spr_fail_errno(err, SPR_LAYER_CORE, "poll");
		}
		if (p[P_CTRL].revents)
			read_ctrl(r);
		if ((p[P_OUT].revents && spr_capture_read(&r->out) < 0) ||
		    (p[P_ERR].revents && spr_capture_read(&r->err) < 0) ||
		    (p[P_RES].revents && spr_capture_read(&r->result) < 0))
			return spr_fail_errno(err, SPR_LAYER_CORE, "reading the run's output");
		if (p[P_IN].revents && spr_feeder_pump(&r->request) < 0)
			return spr_fail_errno(err, SPR_LAYER_CORE, "writing the request");
	}
	return 0;
}

static int collect(struct local_run *r, struct spr_result **out, spr_error **err)
{
	struct spr_run_facts *f = &r->facts;
	f->infra_error = r->infra;
	f->timeout_seconds = r->plan->limits.timeout_seconds;
	f->worker_msg = r->result.buf.data;
	f->worker_msg_len = r->result.buf.len;
	f->worker_msg_too_big = r->result.total > SPR_MAX_RESULT_BYTES;
	f->out = r->out.buf.data;
	f->out_len = r->out.buf.len;
	f->out_total = r->out.total;
	f->err = r->err.buf.data;
	f->err_len = r->err.buf.len;
	f->err_total = r->err.total;
	f->output_cap = r->plan->limits.output_cap;
	if (!f->duration_ms)
		f->duration_ms = spr_now_ms() - r->t0;
	if (!r->exited)
		f->memory_peak_kb = -1;
	f->isolation_json = r->isolation ? r->isolation : isolation_none;
	return spr_marshal(f, out, err);
}

/* The run takes over the sandbox's descriptors and what it said so far. */
static void adopt_sandbox(struct local_run *r, struct spr_prepared *p)
{
	r->ctrl = steal_fd(&p->ctrl);
	r->helper = steal_fd(&p->helper);
	r->request.fd = steal_fd(&p->request);
	r->out.fd = steal_fd(&p->out);
	r->err.fd = steal_fd(&p->err);
	r->result.fd = steal_fd(&p->result);
	if (p->started)
		on_ctrl_message(r, &p->started_msg);
	spr_prepared_free(p);
}

static struct local_run run_init(struct spr_local_engine *le, spr_plan *plan)
{
	return (struct local_run){
		.engine = le,
		.plan = plan,
		.t0 = spr_now_ms(),
		.ctrl = -1,
		.helper = -1,
		.request = {.fd = -1},
		/* A few bytes past the cap, so a character that straddles the
		 * cap is seen whole and cut before, not garbled. */
		.out = {.fd = -1, .keep = plan->limits.output_cap + 4},
		.err = {.fd = -1, .keep = plan->limits.output_cap + 4},
		.result = {.fd = -1, .keep = SPR_MAX_RESULT_BYTES},
	};
}

/* Runs r in a sandbox made with `sandbox` (a prepared one when pooled)
 * to its end. Returns -1 only for errors of the caller's process; what
 * went wrong with the sandbox is r->infra. */
static int run_sandboxed(struct local_run *r, const spr_buf *sandbox, bool pooled,
			 bool *prepared, spr_error **err)
{
	int rc = -1;
	*prepared = false;
	/* The engine's own commands (pooled is false) run with rlimits where
	 * no cgroup can limit them: they are short, and runs still need one. */
	struct spr_prepared *p = pooled ? acquire_sandbox(r->engine, sandbox, prepared, &r->infra)
					: prepare_sandbox(r->engine, sandbox, false, &r->infra);
	if (p) {
		adopt_sandbox(r, p);
		/* The plan works (a sandbox made with it was waiting): the next
		 * one is set up while this run runs. */
		if (*prepared)
			spr_local_pool_refill(&r->engine->pool, sandbox,
					      r->started ? &r->applied : NULL);
		rc = pump(r, err);
	}
	/* After a failure the helper may be waiting on us: stop it. After a
	 * clean end it may still be removing the run's cgroup: the server
	 * reaps it whenever it is done. */
	if (rc < 0 || !r->exited || r->infra)
		kill_helper(r);
	return rc < 0 && !r->infra ? -1 : 0;
}

static void stream_stdout(void *tap, const char *data, size_t len)
{
	spr_output_tap_send(tap, 1, data, len);
}

static void stream_stderr(void *tap, const char *data, size_t len)
{
	spr_output_tap_send(tap, 2, data, len);
}

int spr_local_run(spr_engine *engine, spr_plan *plan, const struct spr_request *req,
		  struct spr_result **out, spr_error **err)
{
	SPR_CLEANUP(local_run_free) struct local_run r =
		run_init((struct spr_local_engine *)engine, plan);
	r.tap = spr_output_tap_for(req, plan->limits.output_cap);
	if (r.tap.fn) {
		r.out.on_read = stream_stdout;
		r.err.on_read = stream_stderr;
		r.out.on_read_ctx = r.err.on_read_ctx = &r.tap;
	}
	const struct spr_python_info *py = &r.engine->python;
	spr_worker_request(&r.request_text, plan, req,
			   &(struct spr_worker_request_opts){
				   .sys_path_json = py->sys_path_json,
				   .venv = py->venv ? py->prefix : NULL,
			   });
	if (r.request_text.oom)
		return spr_fail_oom(err);
	r.request.data = r.request_text.data;
	r.request.len = r.request_text.len;

	_cleanup_buf_ spr_buf sandbox = SPR_BUF_INIT;
	struct sandbox_spec spec = run_spec(r.engine);
	bool prepared = false;
	if (sandbox_plan(r.engine, plan, &spec, &sandbox, &r.infra) == 0 &&
	    run_sandboxed(&r, &sandbox, true, &prepared, err) < 0)
		return -1;
	int rc = collect(&r, out, err);
	/* A sandbox set up for this run: only after it worked, so a failing
	 * setup is not repeated in the background. */
	if (rc == 0 && !prepared && !r.infra)
		spr_local_pool_refill(&r.engine->pool, &sandbox, r.started ? &r.applied : NULL);
	return rc;
}

/* ---- the engine's own commands ---------------------------------------------- */

int spr_local_command(struct spr_local_engine *le, struct spr_local_command *cmd,
		      spr_buf *out, int *status, spr_error **err)
{
	_cleanup_policy_ struct spr_policy *policy = NULL;
	_cleanup_plan_ spr_plan *plan = NULL;
	if ((cmd->limits ? spr_policy_copy(cmd->limits, &policy, err)
			 : spr_policy_new(&policy, err)) < 0)
		return -1;
	policy->timeout_seconds = (double)cmd->timeout_ms / 1000.0;
	policy->max_output_kb = (int64_t)(cmd->output_cap / 1024);
	policy->network = cmd->network;
	if (spr_plan_compile(policy, &plan, err) < 0)
		return -1;
	/* An install from an index has the network by design; every other
	 * layer the policy requires still holds for it. */
	if (cmd->network)
		plan->require &= ~(1u << SPR_REQ_NETWORK_OFF);
	SPR_CLEANUP(local_run_free) struct local_run r = run_init(le, plan);
	r.request.data = cmd->input;
	r.request.len = cmd->input_len;
	r.out.keep = cmd->output_cap;
	r.err.tail = cmd->errout_tail;
	r.err.to_stderr = cmd->show_progress;
	struct sandbox_spec spec = {.argv = cmd->argv, .layout = cmd->layout};
	spec.layout.writable_dir = cmd->writable_dir;
	spec.layout.extra_ro = cmd->extra_ro;
	_cleanup_buf_ spr_buf sandbox = SPR_BUF_INIT;
	bool prepared;
	if (sandbox_plan(le, plan, &spec, &sandbox, err) < 0 ||
	    run_sandboxed(&r, &sandbox, false, &prepared, err) < 0)
		return -1;
	if (r.infra) {
		*err = steal_pointer(&r.infra);
		return -1;
	}
	if (r.facts.timed_out)
		return spr_fail(err, SPR_LAYER_SANDBOX, ETIMEDOUT, "%s did not finish within %lld s",
				cmd->argv[0], (long long)(cmd->timeout_ms / 1000));
	if (r.out.total > cmd->output_cap)
		return spr_fail(err, SPR_LAYER_SANDBOX, EMSGSIZE,
				"%s wrote more than %zu bytes", cmd->argv[0], cmd->output_cap);
	const struct spr_run_facts *f = &r.facts;
	cmd->host_uid = r.applied.host_uid;
	*status = !f->have_status ? -1 : f->exited ? f->exit_status : 128 + f->term_signal;
	spr_buf_append(out, r.out.buf.data, r.out.buf.len);
	if (cmd->errout)
		spr_buf_append(cmd->errout, r.err.buf.data, r.err.buf.len);
	return out->oom ? spr_fail_oom(err) : 0;
}
