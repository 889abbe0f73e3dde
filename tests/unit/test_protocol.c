/* The typed contract between libspr and spr-sandbox (src/protocol): every
 * field of the sandbox plan and of each message survives encoding and
 * decoding, and malformed input is refused, never half-read. */
#include <fcntl.h>
#include <sys/socket.h>

#include "proc.h"
#include "protocol/frame.h"
#include "protocol/message.h"
#include "protocol/plan.h"
#include "unit.h"

static const char *const argv_in[] = {"/usr/bin/python3", "-I", "-S", "/opt/spr/w.pyc", NULL};
static const char *const env_in[] = {"PATH=/usr/bin", "LANG=C.UTF-8", "FOO=bar baz", NULL};
static const unsigned char bpf_a[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const unsigned char bpf_b[8] = {0, 0, 0, 0, 0xff, 0xff, 0xff, 0x7f};

/* A plan with every field set to something other than its zero value,
 * and every mount kind. */
static void full_plan(struct spr_sandbox_plan *p)
{
	*p = (struct spr_sandbox_plan){0};
	p->argv = (struct spr_strv){(const char **)argv_in, 4};
	p->env = (struct spr_strv){(const char **)env_in, 3};
	for (size_t i = 0; i < SPR_NRLIMITS; i++)
		p->rlimits[i] = (struct spr_rlimit_plan){i % 2 == 0, 100 + i, UINT64_MAX - i};
	p->filters[SPR_FILTER_DEFAULT].insns = bpf_a;
	p->filters[SPR_FILTER_DEFAULT].len = sizeof(bpf_a);
	p->filters[SPR_FILTER_NO_UNIX].insns = bpf_b;
	p->filters[SPR_FILTER_NO_UNIX].len = sizeof(bpf_b);
	p->allow_degraded = true;
	p->cgroup = (struct spr_cgroup_plan){
		.version = 1,
		.base = {"/sys/fs/cgroup/memory/x", "/sys/fs/cgroup/pids/x", NULL, "/c"},
		.memory_bytes = 1ULL << 40,
		.pids_max = 65536,
		.cpu_quota_us = 150000,
		.cpu_period_us = 100000,
		.cpu_cores = 1.5,
		.cpu_seconds = 0.25,
	};
	struct spr_layout *l = &p->layout;
	const struct spr_mount_op ops[] = {
		{.kind = SPR_MOUNT_BIND_RO, .dst = "/usr", .src = "/usr"},
		{.kind = SPR_MOUNT_BIND_DEV, .dst = "/dev/null", .src = "/dev/null"},
		{.kind = SPR_MOUNT_TMPFS, .dst = "/tmp", .size = 64 << 20, .mode = 01777, .noexec = true},
		{.kind = SPR_MOUNT_FILE, .dst = "/etc/passwd", .text = "root:x:0:0\n", .mode = 0644},
		{.kind = SPR_MOUNT_FILE, .dst = "/etc/resolv.conf", .text = "", .mode = 0600},
		{.kind = SPR_MOUNT_DIR, .dst = "/etc", .mode = 0755},
		{.kind = SPR_MOUNT_SYMLINK, .dst = "/bin", .text = "usr/bin"},
		{.kind = SPR_MOUNT_PROC, .dst = "/proc"},
		{.kind = SPR_MOUNT_MASK, .dst = "/proc/kcore"},
		{.kind = SPR_MOUNT_READONLY, .dst = "/proc/sys"},
		{.kind = SPR_MOUNT_SEAL, .dst = "/dev"},
		{.kind = SPR_MOUNT_BIND_RW, .dst = "/srv/.venv.spr/k", .src = "/srv/.venv.spr/k"},
	};
	ck_assert_uint_eq(ARRAY_SIZE(ops) - 1, SPR_MOUNT_NKINDS); /* every kind (file twice) */
	memcpy(l->mounts, ops, sizeof(ops));
	l->nmounts = ARRAY_SIZE(ops);
	spr_paths_add(&l->landlock_read, "/usr");
	spr_paths_add(&l->landlock_read, "/etc");
	spr_paths_add(&l->landlock_data, "/dev");
	spr_paths_add(&l->landlock_write, "/tmp");
	l->uid = 1000;
	l->gid = 1001;
	l->outside_uid = 65534;
	l->outside_gid = 65533;
	l->hostname = "sandbox";
	l->network = true;
	l->workdir = "/work";
	struct spr_degraded_plan *d = &p->degraded;
	spr_paths_add(&d->landlock_read, "/root/.pyenv");
	spr_paths_add(&d->landlock_write, "/dev/null");
	spr_paths_add(&d->landlock_write, "/dev/zero");
	d->run_as = true;
	d->uid = 123457;
	d->gid = 123458;
	d->worker = "/var/cache/spr/w.pyc";
	d->workdir_parent = "/var/tmp";
}

static void same_str(const char *a, const char *b)
{
	if (!a || !b)
		ck_assert_ptr_eq(a, b);
	else
		ck_assert_str_eq(a, b);
}

static void same_strv(const struct spr_strv *a, const struct spr_strv *b)
{
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		ck_assert_str_eq(a->v[i], b->v[i]);
	ck_assert_ptr_null(b->v[b->n]);
}

static void same_paths(const struct spr_paths *a, const struct spr_paths *b)
{
	ck_assert_uint_eq(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		ck_assert_str_eq(a->v[i], b->v[i]);
}

static void same_plan(const struct spr_sandbox_plan *a, const struct spr_sandbox_plan *b)
{
	same_strv(&a->argv, &b->argv);
	same_strv(&a->env, &b->env);
	for (size_t i = 0; i < SPR_NRLIMITS; i++) {
		ck_assert_int_eq(a->rlimits[i].set, b->rlimits[i].set);
		if (a->rlimits[i].set) {
			ck_assert_uint_eq(a->rlimits[i].soft, b->rlimits[i].soft);
			ck_assert_uint_eq(a->rlimits[i].hard, b->rlimits[i].hard);
		}
	}
	for (size_t i = 0; i < SPR_NFILTERS; i++) {
		ck_assert_uint_eq(a->filters[i].len, b->filters[i].len);
		ck_assert(!a->filters[i].len ||
			  !memcmp(a->filters[i].insns, b->filters[i].insns, a->filters[i].len));
	}
	ck_assert_int_eq(a->allow_degraded, b->allow_degraded);
	const struct spr_cgroup_plan *ca = &a->cgroup, *cb = &b->cgroup;
	ck_assert_int_eq(ca->version, cb->version);
	for (size_t i = 0; i < ARRAY_SIZE(ca->base); i++)
		same_str(ca->base[i], cb->base[i]);
	ck_assert_uint_eq(ca->memory_bytes, cb->memory_bytes);
	ck_assert_int_eq(ca->pids_max, cb->pids_max);
	ck_assert_uint_eq(ca->cpu_quota_us, cb->cpu_quota_us);
	ck_assert_uint_eq(ca->cpu_period_us, cb->cpu_period_us);
	ck_assert(ca->cpu_cores == cb->cpu_cores && ca->cpu_seconds == cb->cpu_seconds);
	const struct spr_layout *la = &a->layout, *lb = &b->layout;
	ck_assert_uint_eq(la->nmounts, lb->nmounts);
	for (size_t i = 0; i < la->nmounts; i++) {
		const struct spr_mount_op *x = &la->mounts[i], *y = &lb->mounts[i];
		ck_assert_int_eq(x->kind, y->kind);
		same_str(x->dst, y->dst);
		same_str(x->src, y->src);
		same_str(x->text, y->text);
		ck_assert_uint_eq(x->mode, y->mode);
		ck_assert_uint_eq(x->size, y->size);
		ck_assert_int_eq(x->noexec, y->noexec);
	}
	same_paths(&la->landlock_read, &lb->landlock_read);
	same_paths(&la->landlock_data, &lb->landlock_data);
	same_paths(&la->landlock_write, &lb->landlock_write);
	ck_assert_uint_eq(la->uid, lb->uid);
	ck_assert_uint_eq(la->gid, lb->gid);
	ck_assert_uint_eq(la->outside_uid, lb->outside_uid);
	ck_assert_uint_eq(la->outside_gid, lb->outside_gid);
	same_str(la->hostname, lb->hostname);
	ck_assert_int_eq(la->network, lb->network);
	same_str(la->workdir, lb->workdir);
	const struct spr_degraded_plan *da = &a->degraded, *db = &b->degraded;
	same_paths(&da->landlock_read, &db->landlock_read);
	same_paths(&da->landlock_write, &db->landlock_write);
	ck_assert_int_eq(da->run_as, db->run_as);
	ck_assert_uint_eq(da->uid, db->uid);
	ck_assert_uint_eq(da->gid, db->gid);
	same_str(da->worker, db->worker);
	same_str(da->workdir_parent, db->workdir_parent);
}

static void encode(const struct spr_sandbox_plan *p, spr_buf *out)
{
	spr_error *err = NULL;
	int rc = spr_plan_encode(p, out, &err);
	ck_assert_ok(rc, err);
}

START_TEST(plan_round_trips_every_field)
{
	struct spr_sandbox_plan in, out;
	full_plan(&in);
	spr_buf b = SPR_BUF_INIT;
	encode(&in, &b);
	struct spr_arena arena = SPR_ARENA_INIT;
	spr_error *err = NULL;
	int rc = spr_plan_decode(b.data, b.len, &out, &arena, &err);
	ck_assert_ok(rc, err);
	same_plan(&in, &out);
	/* Decoding does not depend on the input buffer afterwards. */
	memset(b.data, 0xaa, b.len);
	same_plan(&in, &out);
	spr_arena_free(&arena);
	/* The encoding is a function of the plan: the warm pool's key. */
	spr_buf again = SPR_BUF_INIT;
	full_plan(&in);
	encode(&in, &b);
	spr_buf_reset(&b);
	encode(&in, &b);
	encode(&in, &again);
	ck_assert_uint_eq(b.len, again.len);
	ck_assert(!memcmp(b.data, again.data, b.len));
	/* ...and any change to a field changes it. */
	in.layout.mounts[2].size++;
	spr_buf_reset(&again);
	encode(&in, &again);
	ck_assert(b.len != again.len || memcmp(b.data, again.data, b.len));
	spr_buf_free(&b);
	spr_buf_free(&again);
}
END_TEST

START_TEST(plan_without_optional_parts)
{
	struct spr_sandbox_plan in = {0}, out;
	in.argv = (struct spr_strv){(const char **)argv_in, 1};
	in.env = (struct spr_strv){(const char **)env_in, 0};
	in.layout.workdir = "/tmp";
	in.degraded.workdir_parent = "/tmp";
	spr_buf b = SPR_BUF_INIT;
	encode(&in, &b);
	struct spr_arena arena = SPR_ARENA_INIT;
	spr_error *err = NULL;
	int rc = spr_plan_decode(b.data, b.len, &out, &arena, &err);
	ck_assert_ok(rc, err);
	same_plan(&in, &out);
	ck_assert_int_eq(out.cgroup.version, 0);
	ck_assert_ptr_null(out.filters[0].insns);
	ck_assert_ptr_null(out.layout.hostname);
	spr_arena_free(&arena);
	spr_buf_free(&b);
}
END_TEST

/* A container's plan asks its agent for the layout: the request's fields
 * travel, the layout and degraded parts do not. */
START_TEST(plan_asking_the_agent)
{
	struct spr_sandbox_plan in, out;
	full_plan(&in);
	struct spr_layout_request *r = &in.layout_request;
	r->by_agent = true;
	r->scratch[0] = (struct spr_scratch){"/tmp", 7 << 20, 01777};
	r->scratch[1] = (struct spr_scratch){"/dev/shm", 5 << 20, 01777};
	spr_paths_add(&r->extra_ro, "/opt/spr/site");
	r->network = true;
	r->workdir = "/tmp";
	r->limits = true;
	spr_buf b = SPR_BUF_INIT;
	encode(&in, &b);
	struct spr_arena arena = SPR_ARENA_INIT;
	spr_error *err = NULL;
	int rc = spr_plan_decode(b.data, b.len, &out, &arena, &err);
	ck_assert_ok(rc, err);
	const struct spr_layout_request *o = &out.layout_request;
	ck_assert(o->by_agent && o->network && o->limits);
	for (size_t i = 0; i < SPR_PLAN_NSCRATCH; i++) {
		same_str(o->scratch[i].path, r->scratch[i].path);
		ck_assert_uint_eq(o->scratch[i].bytes, r->scratch[i].bytes);
		ck_assert_uint_eq(o->scratch[i].mode, r->scratch[i].mode);
	}
	same_paths(&o->extra_ro, &r->extra_ro);
	same_str(o->workdir, "/tmp");
	ck_assert_uint_eq(out.layout.nmounts, 0);
	ck_assert_ptr_null(out.layout.workdir);
	ck_assert_ptr_null(out.degraded.workdir_parent);
	same_strv(&in.argv, &out.argv);
	/* A relative working directory is refused, as a mount's would be. */
	r->workdir = "tmp";
	spr_buf_reset(&b);
	ck_assert_int_eq(spr_plan_encode(&in, &b, &err), -1);
	spr_error_free(err);
	spr_arena_free(&arena);
	spr_buf_free(&b);
}
END_TEST

/* Every cut-off prefix and every byte flipped: an error or a valid plan,
 * never a crash; a prefix is always refused. */
START_TEST(plan_refuses_malformed_input)
{
	struct spr_sandbox_plan in, out;
	full_plan(&in);
	spr_buf b = SPR_BUF_INIT;
	encode(&in, &b);
	for (size_t n = 0; n < b.len; n++) {
		struct spr_arena arena = SPR_ARENA_INIT;
		spr_error *err = NULL;
		ck_assert_int_lt(spr_plan_decode(b.data, n, &out, &arena, &err), 0);
		ck_assert_ptr_nonnull(strstr(err->message, "malformed sandbox plan"));
		spr_error_free(err);
		spr_arena_free(&arena);
	}
	char *copy = malloc(b.len + 1);
	for (size_t i = 0; i < b.len; i++) {
		memcpy(copy, b.data, b.len);
		copy[i] ^= 0x80;
		struct spr_arena arena = SPR_ARENA_INIT;
		spr_error *err = NULL;
		if (spr_plan_decode(copy, b.len, &out, &arena, &err) < 0)
			spr_error_free(err);
		spr_arena_free(&arena);
	}
	/* Trailing bytes. */
	memcpy(copy, b.data, b.len);
	copy[b.len] = 0;
	struct spr_arena arena = SPR_ARENA_INIT;
	spr_error *err = NULL;
	ck_assert_int_lt(spr_plan_decode(copy, b.len + 1, &out, &arena, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "trailing bytes"));
	spr_error_free(err);
	err = NULL;
	/* Another build's plan: named as such. */
	memcpy(copy, b.data, b.len);
	copy[4]++;
	ck_assert_int_lt(spr_plan_decode(copy, b.len, &out, &arena, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "different builds"));
	spr_error_free(err);
	spr_arena_free(&arena);
	free(copy);
	spr_buf_free(&b);
}
END_TEST

START_TEST(plan_refuses_what_the_helper_cannot_use)
{
	struct {
		const char *what;
		void (*spoil)(struct spr_sandbox_plan *);
	} cases[] = {
		{"empty argv", NULL},
		{"bind source not absolute", NULL},
		{"mount destination not absolute", NULL},
		{"seccomp program not whole instructions", NULL},
	};
	for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
		struct spr_sandbox_plan p;
		full_plan(&p);
		switch (c) {
		case 0: p.argv.n = 0; break;
		case 1: p.layout.mounts[0].src = "usr"; break;
		case 2: p.layout.mounts[3].dst = "etc/passwd"; break;
		case 3: p.filters[0].len = 12; break;
		}
		spr_buf b = SPR_BUF_INIT;
		spr_error *err = NULL;
		ck_assert_int_lt(spr_plan_encode(&p, &b, &err), 0);
		ck_assert_msg(strstr(err->message, cases[c].what), "%s: %s", cases[c].what,
			      err->message);
		spr_error_free(err);
		spr_buf_free(&b);
	}
	/* More mounts than a plan holds. */
	struct spr_sandbox_plan p;
	full_plan(&p);
	p.layout.nmounts = SPR_PLAN_MAX_MOUNTS + 1;
	spr_buf b = SPR_BUF_INIT;
	spr_error *err = NULL;
	ck_assert_int_lt(spr_plan_encode(&p, &b, &err), 0);
	spr_error_free(err);
	spr_buf_free(&b);
}
END_TEST

/* ---- messages ---- */

static void round_trip(const struct spr_msg *in, struct spr_msg *out)
{
	spr_buf b = SPR_BUF_INIT;
	ck_assert_int_eq(spr_msg_encode(in, &b), 0);
	uint32_t len;
	memcpy(&len, b.data, sizeof(len));
	ck_assert_uint_eq(len, b.len - sizeof(len));
	ck_assert_uint_le(b.len, SPR_MSG_MAX);
	const char *why = NULL;
	ck_assert_int_eq(spr_msg_decode(b.data + 4, b.len - 4, out, &why), 0);
	ck_assert_int_eq(out->type, in->type);
	spr_buf_free(&b);
}

START_TEST(messages_round_trip)
{
	struct spr_msg out;
	const int bare[] = {SPR_MSG_RUN, SPR_MSG_BYE, SPR_MSG_KILL};
	for (size_t i = 0; i < ARRAY_SIZE(bare); i++)
		round_trip(&(struct spr_msg){.type = bare[i]}, &out);

	round_trip(&(struct spr_msg){.type = SPR_MSG_MONITOR, .pid = 4242}, &out);
	ck_assert_int_eq(out.pid, 4242);

	struct spr_msg started = {.type = SPR_MSG_STARTED, .pid = 77,
				  .applied = {.namespaces = true, .network_shared = true,
					      .landlock_abi = 7,
					      .seccomp = SPR_SECCOMP_NO_UNIX_LOADED, .cgroup = 2}};
	round_trip(&started, &out);
	ck_assert_int_eq(out.pid, 77);
	ck_assert(out.applied.namespaces && out.applied.network_shared);
	ck_assert_int_eq(out.applied.landlock_abi, 7);
	ck_assert_int_eq(out.applied.seccomp, SPR_SECCOMP_NO_UNIX_LOADED);
	ck_assert_int_eq(out.applied.cgroup, 2);

	struct spr_msg setup = {.type = SPR_MSG_SETUP,
				.applied = {.landlock_abi = 4, .seccomp = SPR_SECCOMP_DEFAULT_LOADED}};
	round_trip(&setup, &out);
	ck_assert_int_eq(out.applied.landlock_abi, 4);
	ck_assert_int_eq(out.applied.seccomp, SPR_SECCOMP_DEFAULT_LOADED);

	struct spr_msg end = {.type = SPR_MSG_EXIT};
	end.exit.status = 9;
	end.exit.maxrss_kb = 1LL << 40;
	end.exit.oom_killed = end.exit.pids_limit_hit = end.exit.cpu_limit_hit = true;
	end.exit.alone = true;
	round_trip(&end, &out);
	ck_assert_int_eq(out.exit.status, 9);
	ck_assert_int_eq(out.exit.maxrss_kb, 1LL << 40);
	ck_assert(out.exit.oom_killed && out.exit.pids_limit_hit && out.exit.cpu_limit_hit);
	ck_assert(out.exit.alone);

	for (int type = SPR_MSG_ERROR; type <= SPR_MSG_FATAL; type++) {
		spr_error *cause = NULL;
		spr_fail(&cause, SPR_LAYER_CGROUP, EACCES, "line one\nline two");
		struct spr_msg e;
		spr_msg_from_error(&e, type, cause);
		round_trip(&e, &out);
		spr_error *back = NULL;
		spr_msg_to_error(&out, "sandbox setup failed: ", &back);
		ck_assert_int_eq(back->layer, SPR_LAYER_CGROUP);
		ck_assert_int_eq(back->errnum, EACCES);
		ck_assert_str_eq(back->message, "sandbox setup failed: line one line two");
		spr_error_free(cause);
		spr_error_free(back);
	}
	round_trip(&(struct spr_msg){.type = SPR_MSG_HELLO}, &out);
	struct spr_msg req = {.type = SPR_MSG_REQUEST,
			      .request = {.timeout_ms = 86400000, .output_cap = UINT64_MAX}};
	round_trip(&req, &out);
	ck_assert_int_eq(out.request.timeout_ms, 86400000);
	ck_assert_uint_eq(out.request.output_cap, UINT64_MAX);
	struct spr_msg done = {.type = SPR_MSG_DONE,
			       .done = {.timed_out = true, .out_total = 1, .err_total = 2,
					.result_total = 1ULL << 40}};
	done.exit = end.exit;
	round_trip(&done, &out);
	ck_assert(out.done.timed_out);
	ck_assert_uint_eq(out.done.out_total, 1);
	ck_assert_uint_eq(out.done.err_total, 2);
	ck_assert_uint_eq(out.done.result_total, 1ULL << 40);
	ck_assert_int_eq(out.exit.status, 9);
	ck_assert(out.exit.oom_killed && out.exit.pids_limit_hit && out.exit.alone);

	/* A message longer than the text field is cut, still one message. */
	struct spr_msg big = {.type = SPR_MSG_ERROR};
	memset(big.error.message, 'x', sizeof(big.error.message) - 1);
	round_trip(&big, &out);
	ck_assert_uint_eq(strlen(out.error.message), sizeof(out.error.message) - 1);
}
END_TEST

START_TEST(messages_refuse_malformed_input)
{
	struct spr_msg m;
	const char *why = NULL;
	ck_assert_int_lt(spr_msg_decode("", 0, &m, &why), 0);
	unsigned char unknown = SPR_MSG_NTYPES;
	ck_assert_int_lt(spr_msg_decode(&unknown, 1, &m, &why), 0);
	ck_assert_str_eq(why, "enum out of range");
	unsigned char none = SPR_MSG_NONE;
	ck_assert_int_lt(spr_msg_decode(&none, 1, &m, &why), 0);
	struct spr_msg end = {.type = SPR_MSG_EXIT};
	spr_buf b = SPR_BUF_INIT;
	spr_msg_encode(&end, &b);
	for (size_t n = 4; n < b.len - 1; n++)
		ck_assert_int_lt(spr_msg_decode(b.data + 4, n - 4 + 1 - 1, &m, &why), 0);
	ck_assert_int_lt(spr_msg_decode(b.data + 4, b.len - 4 - 1, &m, &why), 0);
	spr_buf_free(&b);
	/* A bool that is neither 0 nor 1. */
	struct spr_msg alone = {.type = SPR_MSG_EXIT};
	spr_msg_encode(&alone, &b);
	b.data[b.len - 1] = 2;
	ck_assert_int_lt(spr_msg_decode(b.data + 4, b.len - 4, &m, &why), 0);
	ck_assert_str_eq(why, "bad boolean");
	spr_buf_free(&b);
}
END_TEST

/* On a pipe, messages arrive back to back and in pieces. */
START_TEST(message_stream_reassembles)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	struct spr_msg a = {.type = SPR_MSG_SETUP, .applied = {.landlock_abi = 3}};
	struct spr_msg b = {.type = SPR_MSG_ERROR};
	snprintf(b.error.message, sizeof(b.error.message), "no");
	spr_buf wire = SPR_BUF_INIT;
	spr_msg_encode(&a, &wire);
	spr_msg_encode(&b, &wire);
	/* One byte at a time. */
	for (size_t i = 0; i < wire.len; i++)
		ck_assert_int_eq(write(fds[1], wire.data + i, 1), 1);
	close(fds[1]);
	struct spr_msg_stream s = {.fd = fds[0]};
	struct spr_msg m;
	ck_assert_int_eq(spr_msg_next(&s, &m), 1);
	ck_assert_int_eq(m.type, SPR_MSG_SETUP);
	ck_assert_int_eq(m.applied.landlock_abi, 3);
	ck_assert_int_eq(spr_msg_next(&s, &m), 1);
	ck_assert_int_eq(m.type, SPR_MSG_ERROR);
	ck_assert_str_eq(m.error.message, "no");
	ck_assert_int_eq(spr_msg_next(&s, &m), 0);
	spr_msg_stream_free(&s);
	close(fds[0]);

	/* EOF inside a message is malformed. */
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(write(fds[1], wire.data, 3), 3);
	close(fds[1]);
	s = (struct spr_msg_stream){.fd = fds[0]};
	ck_assert_int_lt(spr_msg_next(&s, &m), 0);
	ck_assert_int_eq(errno, EPROTO);
	spr_msg_stream_free(&s);
	close(fds[0]);
	spr_buf_free(&wire);
}
END_TEST

/* Sockets: one message per packet, descriptors beside it. */
START_TEST(messages_carry_descriptors)
{
	int sp[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	int pipefd[2];
	ck_assert_int_eq(pipe2(pipefd, O_CLOEXEC), 0);
	ck_assert_int_eq(spr_msg_send(sp[0], &(struct spr_msg){.type = SPR_MSG_RUN}, pipefd, 2), 0);
	struct spr_msg m;
	int got[5];
	size_t n = 5;
	ck_assert_int_eq(spr_msg_recv(sp[1], &m, 0, got, &n), 1);
	ck_assert_int_eq(m.type, SPR_MSG_RUN);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(fcntl(got[0], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	ck_assert_int_eq(write(got[1], "x", 1), 1);
	char c;
	ck_assert_int_eq(read(pipefd[0], &c, 1), 1);
	close(got[0]);
	close(got[1]);
	/* More descriptors than the receiver takes: the rest are closed,
	 * and the message still arrives. */
	ck_assert_int_eq(spr_msg_send(sp[0], &(struct spr_msg){.type = SPR_MSG_RUN}, pipefd, 2), 0);
	n = 1;
	ck_assert_int_eq(spr_msg_recv(sp[1], &m, 0, got, &n), 1);
	ck_assert_uint_eq(n, 1);
	close(got[0]);
	/* A packet that is not a message: EPROTO, and its descriptors closed. */
	ck_assert_int_eq(send(sp[0], "kill", 4, 0), 4);
	n = 5;
	ck_assert_int_lt(spr_msg_recv(sp[1], &m, 0, got, &n), 0);
	ck_assert_int_eq(errno, EPROTO);
	ck_assert_uint_eq(n, 0);
	/* Nothing waiting: EAGAIN under MSG_DONTWAIT; EOF: 0. */
	ck_assert_int_lt(spr_msg_recv(sp[1], &m, MSG_DONTWAIT, NULL, NULL), 0);
	ck_assert_int_eq(errno, EAGAIN);
	close(sp[0]);
	ck_assert_int_eq(spr_msg_recv(sp[1], &m, 0, NULL, NULL), 0);
	close(sp[1]);
	close(pipefd[0]);
	close(pipefd[1]);
}
END_TEST

/* The DockerEngine's channel: every frame type there and back, on a pipe
 * (the agent's side) and on a socket (the host's), one byte at a time. */
static void frames_through(int w, int r)
{
	static const char boot[] = "print(1)\0\x7f" "ELF";
	struct spr_msg m = {.type = SPR_MSG_REQUEST, .request = {.timeout_ms = 5, .output_cap = 6}};
	spr_buf head = SPR_BUF_INIT;
	ck_assert_int_eq(spr_msg_encode(&m, &head), 0);
	int64_t deadline = spr_now_ms() + 10000;
	ck_assert_int_eq(spr_frame_send(w, SPR_FRAME_BOOT, boot, sizeof(boot), NULL, 0, deadline), 0);
	ck_assert_int_eq(spr_frame_send(w, SPR_FRAME_REQUEST, head.data, head.len, "{}", 2, deadline),
			 0);
	ck_assert_int_eq(spr_frame_send(w, SPR_FRAME_OUT, NULL, 0, NULL, 0, deadline), 0);
	ck_assert_int_eq(spr_frame_send_msg(w, &(struct spr_msg){.type = SPR_MSG_HELLO}, deadline), 0);
	spr_buf p = SPR_BUF_INIT;
	char type;
	ck_assert_int_eq(spr_frame_recv(r, &type, &p, deadline), 0);
	ck_assert_int_eq(type, SPR_FRAME_BOOT);
	ck_assert_uint_eq(p.len, sizeof(boot));
	ck_assert(!memcmp(p.data, boot, sizeof(boot)));
	ck_assert_int_eq(spr_frame_recv(r, &type, &p, deadline), 0);
	ck_assert_int_eq(type, SPR_FRAME_REQUEST);
	struct spr_msg back;
	size_t used;
	ck_assert_int_eq(spr_frame_msg(&p, &back, &used), 0);
	ck_assert_int_eq(back.type, SPR_MSG_REQUEST);
	ck_assert_int_eq(back.request.timeout_ms, 5);
	ck_assert_uint_eq(p.len - used, 2);
	ck_assert(!memcmp(p.data + used, "{}", 2));
	ck_assert_int_eq(spr_frame_recv(r, &type, &p, deadline), 0);
	ck_assert_int_eq(type, SPR_FRAME_OUT);
	ck_assert_uint_eq(p.len, 0);
	ck_assert_int_eq(spr_frame_recv(r, &type, &p, deadline), 0);
	ck_assert_int_eq(type, SPR_FRAME_MSG);
	ck_assert_int_eq(spr_frame_msg(&p, &back, &used), 0);
	ck_assert_int_eq(back.type, SPR_MSG_HELLO);
	ck_assert_uint_eq(used, p.len);
	/* Nothing more: a deadline passes; then EOF. */
	ck_assert_int_eq(spr_frame_recv(r, &type, &p, spr_now_ms() + 20), -ETIMEDOUT);
	close(w);
	ck_assert_int_eq(spr_frame_recv(r, &type, &p, deadline), -EPIPE);
	close(r);
	spr_buf_free(&p);
	spr_buf_free(&head);
}

START_TEST(frames_on_pipes_and_sockets)
{
	int fds[2];
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	frames_through(fds[1], fds[0]);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	frames_through(fds[0], fds[1]);
}
END_TEST

START_TEST(frames_refuse_what_is_not_one)
{
	int fds[2];
	char type;
	spr_buf p = SPR_BUF_INIT;
	int64_t deadline = spr_now_ms() + 10000;
	/* A length past the largest payload, before reading it. */
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(write(fds[1], "Q\xff\xff\xff\xff", 5), 5);
	ck_assert_int_eq(spr_frame_recv(fds[0], &type, &p, deadline), -EPROTO);
	close(fds[0]);
	close(fds[1]);
	/* EOF inside a frame. */
	ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
	ck_assert_int_eq(write(fds[1], "M\0\0\0\x10" "abc", 8), 8);
	close(fds[1]);
	ck_assert_int_eq(spr_frame_recv(fds[0], &type, &p, deadline), -EPIPE);
	close(fds[0]);
	/* Sending what no frame can hold. */
	ck_assert_int_eq(spr_frame_send(-1, SPR_FRAME_OUT, "", SPR_FRAME_MAX, "", 1, deadline),
			 -EMSGSIZE);
	/* A payload that is not a message, or one cut short. */
	spr_buf_reset(&p);
	spr_buf_append(&p, "\x02\0\0\0\x01", 5);
	struct spr_msg m;
	size_t used;
	ck_assert_int_eq(spr_frame_msg(&p, &m, &used), -EPROTO);
	spr_buf_reset(&p);
	ck_assert_int_eq(spr_msg_encode(&(struct spr_msg){.type = SPR_MSG_HELLO}, &p), 0);
	p.len--;
	ck_assert_int_eq(spr_frame_msg(&p, &m, &used), -EPROTO);
	spr_buf_free(&p);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("protocol");
	TCase *t = tcase_create("protocol");
	tcase_add_test(t, plan_round_trips_every_field);
	tcase_add_test(t, plan_without_optional_parts);
	tcase_add_test(t, plan_asking_the_agent);
	tcase_add_test(t, plan_refuses_malformed_input);
	tcase_add_test(t, plan_refuses_what_the_helper_cannot_use);
	tcase_add_test(t, messages_round_trip);
	tcase_add_test(t, messages_refuse_malformed_input);
	tcase_add_test(t, message_stream_reassembles);
	tcase_add_test(t, messages_carry_descriptors);
	tcase_add_test(t, frames_on_pipes_and_sockets);
	tcase_add_test(t, frames_refuse_what_is_not_one);
	suite_add_tcase(s, t);
	return s;
}
