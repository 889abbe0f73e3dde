/* The sandbox plan's one codec (plan.h): visit_plan describes the fields
 * once, for both directions. */
#include "protocol/plan.h"

/* "SPRP" and the format's version: a helper from another build is told
 * apart instead of misreading the fields. Bump on any change below. */
#define PLAN_MAGIC 0x50525053u
#define PLAN_VERSION 8u

static void visit_paths(struct spr_wire *w, struct spr_paths *list)
{
	spr_wire_count(w, &list->n, SPR_PLAN_MAX_PATHS);
	for (size_t i = 0; i < list->n && !w->bad; i++) {
		spr_wire_str(w, &list->v[i]);
		if (w->reading && !list->v[i])
			spr_wire_fail(w, "NULL path");
	}
}

/* A destination: absolute, for every kind. */
static void visit_dst(struct spr_wire *w, const char **dst)
{
	spr_wire_str(w, dst);
	if (!w->bad && (!*dst || (*dst)[0] != '/'))
		spr_wire_fail(w, "mount destination not absolute");
}

static void visit_mount(struct spr_wire *w, struct spr_mount_op *op)
{
	spr_wire_enum(w, &op->kind, SPR_MOUNT_NKINDS);
	visit_dst(w, &op->dst);
	switch (op->kind) {
	case SPR_MOUNT_BIND_RO:
	case SPR_MOUNT_BIND_DEV:
	case SPR_MOUNT_BIND_RW:
		spr_wire_str(w, &op->src);
		if (!w->bad && (!op->src || op->src[0] != '/'))
			spr_wire_fail(w, "bind source not absolute");
		break;
	case SPR_MOUNT_TMPFS:
		spr_wire_u64(w, &op->size);
		spr_wire_u32(w, &op->mode);
		spr_wire_bool(w, &op->noexec);
		break;
	case SPR_MOUNT_FILE:
		spr_wire_str(w, &op->text);
		spr_wire_u32(w, &op->mode);
		break;
	case SPR_MOUNT_DIR:
		spr_wire_u32(w, &op->mode);
		break;
	case SPR_MOUNT_SYMLINK:
		spr_wire_str(w, &op->text);
		if (!w->bad && !op->text)
			spr_wire_fail(w, "symlink without a target");
		break;
	default: /* the destination is all */
		break;
	}
}

static void visit_layout(struct spr_wire *w, struct spr_layout *l)
{
	spr_wire_count(w, &l->nmounts, SPR_PLAN_MAX_MOUNTS);
	for (size_t i = 0; i < l->nmounts && !w->bad; i++)
		visit_mount(w, &l->mounts[i]);
	visit_paths(w, &l->landlock_read);
	visit_paths(w, &l->landlock_data);
	visit_paths(w, &l->landlock_write);
	spr_wire_u32(w, &l->uid);
	spr_wire_u32(w, &l->gid);
	spr_wire_u32(w, &l->outside_uid);
	spr_wire_u32(w, &l->outside_gid);
	spr_wire_str(w, &l->hostname);
	spr_wire_bool(w, &l->network);
	visit_dst(w, &l->workdir);
}

static void visit_degraded(struct spr_wire *w, struct spr_degraded_plan *d)
{
	visit_paths(w, &d->landlock_read);
	visit_paths(w, &d->landlock_write);
	spr_wire_bool(w, &d->run_as);
	spr_wire_u32(w, &d->uid);
	spr_wire_u32(w, &d->gid);
	spr_wire_str(w, &d->worker);
	visit_dst(w, &d->workdir_parent);
}

static void visit_cgroup(struct spr_wire *w, struct spr_cgroup_plan *c)
{
	spr_wire_enum(w, &c->version, 3);
	if (!c->version)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(c->base); i++)
		spr_wire_str(w, &c->base[i]);
	spr_wire_u64(w, &c->memory_bytes);
	spr_wire_i64(w, &c->pids_max);
	spr_wire_u64(w, &c->cpu_quota_us);
	spr_wire_u64(w, &c->cpu_period_us);
	spr_wire_double(w, &c->cpu_cores);
	spr_wire_double(w, &c->cpu_seconds);
}

static void visit_layout_request(struct spr_wire *w, struct spr_layout_request *r)
{
	spr_wire_bool(w, &r->by_agent);
	if (!r->by_agent)
		return;
	for (size_t i = 0; i < SPR_PLAN_NSCRATCH; i++) {
		visit_dst(w, &r->scratch[i].path);
		spr_wire_u64(w, &r->scratch[i].bytes);
		spr_wire_u32(w, &r->scratch[i].mode);
	}
	visit_paths(w, &r->extra_ro);
	spr_wire_bool(w, &r->network);
	visit_dst(w, &r->workdir);
	spr_wire_bool(w, &r->limits);
}

static void visit_plan(struct spr_wire *w, struct spr_sandbox_plan *p)
{
	uint32_t magic = PLAN_MAGIC, version = PLAN_VERSION;
	spr_wire_u32(w, &magic);
	spr_wire_u32(w, &version);
	if (magic != PLAN_MAGIC || version != PLAN_VERSION) {
		spr_wire_fail(w, "not a plan of this spr version (libspr and spr-sandbox come "
				 "from different builds: reinstall spr)");
		return;
	}
	spr_wire_strv(w, &p->argv, SPR_PLAN_MAX_ARGS);
	if (!w->bad && !p->argv.n)
		spr_wire_fail(w, "empty argv");
	spr_wire_strv(w, &p->env, SPR_PLAN_MAX_ENV);
	for (size_t i = 0; i < SPR_NRLIMITS; i++) {
		spr_wire_bool(w, &p->rlimits[i].set);
		if (p->rlimits[i].set) {
			spr_wire_u64(w, &p->rlimits[i].soft);
			spr_wire_u64(w, &p->rlimits[i].hard);
		}
	}
	for (size_t i = 0; i < SPR_NFILTERS; i++) {
		spr_wire_bytes(w, &p->filters[i].insns, &p->filters[i].len);
		if (!w->bad && p->filters[i].len % 8)
			spr_wire_fail(w, "seccomp program not whole instructions");
	}
	spr_wire_bool(w, &p->allow_degraded);
	spr_wire_u32(w, &p->run_uid.count);
	if (p->run_uid.count) {
		spr_wire_u32(w, &p->run_uid.start);
		visit_dst(w, &p->run_uid.lease_file);
	}
	visit_cgroup(w, &p->cgroup);
	visit_layout_request(w, &p->layout_request);
	if (p->layout_request.by_agent)
		return; /* the layout is the agent's to add */
	visit_layout(w, &p->layout);
	visit_degraded(w, &p->degraded);
}

int spr_plan_encode(const struct spr_sandbox_plan *plan, spr_buf *out, spr_error **err)
{
	struct spr_wire w;
	spr_wire_writer(&w, out);
	/* The visitor only reads the struct when writing. */
	visit_plan(&w, (struct spr_sandbox_plan *)plan);
	if (!spr_wire_done(&w))
		return spr_fail(err, SPR_LAYER_SANDBOX, w.out->oom ? ENOMEM : EINVAL,
				"encoding the sandbox plan: %s", w.why);
	return 0;
}

int spr_plan_decode(const void *data, size_t len, struct spr_sandbox_plan *plan,
		    struct spr_arena *arena, spr_error **err)
{
	struct spr_wire w;
	*plan = (struct spr_sandbox_plan){0};
	spr_wire_reader(&w, data, len, arena);
	visit_plan(&w, plan);
	if (!spr_wire_done(&w))
		return spr_fail(err, SPR_LAYER_SANDBOX, EINVAL, "malformed sandbox plan: %s",
				w.why);
	return 0;
}

bool spr_paths_add(struct spr_paths *list, const char *path)
{
	if (list->n >= SPR_PLAN_MAX_PATHS)
		return false;
	list->v[list->n++] = path;
	return true;
}
