/* The DockerEngine (SPEC §5, DESIGN.md "One run, DockerEngine"): the same
 * plan, worker and marshaller as the LocalEngine, in hardened containers
 * started through the docker CLI and kept warm in a pool. */
#ifndef SPR_DOCKER_ENGINE_H
#define SPR_DOCKER_ENGINE_H

#include <pthread.h>

#include "docker/client.h"
#include "engine/engine.h"
#include "policy/seccomp.h"
#include "protocol/message.h"
#include "uid_lease.h"

/* Labels on everything spr creates: what `spr list/stop/cleanup` may touch. */
#define SPR_LABEL_MANAGED "io.spr.managed"
#define SPR_LABEL_ENGINE "io.spr.engine"
#define SPR_LABEL_ENV "io.spr.env"
#define SPR_LABEL_POOL "io.spr.pool"
#define SPR_LABEL_CREATOR "io.spr.creator" /* host:boot-id:pid:start time of the caller */
#define SPR_LABEL_MAX_RUNS "io.spr.max-runs" /* runs the container may serve */
/* Images carry their own label, never io.spr.managed: a container inherits
 * its image's labels, and one started by hand from spr's image is not
 * spr's to stop. "runtime" or "env"; env images also the package hash. */
#define SPR_LABEL_IMAGE "io.spr.image"
#define SPR_LABEL_ENV_HASH "io.spr.env-hash"
#define SPR_LABEL_BUILD "io.spr.build" /* one build's layers: removed when it fails */
#define SPR_RUNTIME_REPO "spr-runtime"
#define SPR_ENV_REPO "spr-env"

struct spr_pool;

struct spr_docker_engine {
	spr_engine base;
	struct spr_docker_target target;
	char *image;		/* resolved image the runs use */
	char *image_id;		/* its sha256 ID */
	char *sys_path_json;	/* where the image's packages live */
	char *seccomp_file;	/* the container's profile, written once for the CLI */
	char *cli_dir;		/* where `docker run` runs: podman's conmon writes a
				   file named oom into its working directory when
				   the container's cgroup has an OOM kill */
	char *worker_path;	/* injected into every container at start... */
	char *agent_path;	/* ...with spr-sandbox, linked statically */
	spr_buf payload;	/* both, as the bootstrap reads them (pool.c) */
	struct spr_uid_range uid_range; /* each container's own uid comes from it */
	struct spr_id_map rootless_map; /* rootless podman: where the leased uids go */
	char *lease_file;	/* where the leases are held */
	char *creator;		/* label value identifying this process */
	int pool_size, max_runs, ttl_seconds, acquire_timeout_seconds;
	struct spr_pool *pool;
};

/* image.c: the image the engine runs (SPEC §5 resolution order), built if
 * needed (serialized across processes). */
SPR_HIDDEN int spr_docker_resolve_image(struct spr_docker_engine *de, const spr_docker_options *o,
					const char *libexec_dir, spr_error **err);
/* Runs a container of plan serves. With the policy's network every run
 * would share the container's network namespace (its ports, its
 * connections in /proc/net): such containers serve one run each. */
static inline int spr_docker_max_runs(const struct spr_docker_engine *de, const spr_plan *plan)
{
	return plan->network ? 1 : de->max_runs;
}

/* pool.c */
SPR_HIDDEN struct spr_pool *spr_pool_new(struct spr_docker_engine *de);
SPR_HIDDEN void spr_pool_free(struct spr_pool *pool);

/* What one request through the pool produced. */
struct spr_pool_outcome {
	struct spr_run_facts facts; /* how the run ended, as the container saw it */
	spr_buf out, err, result;   /* the streams (capped) and the result message */
	spr_error *infra;	    /* the container could not run it (exit 125) */
	bool started;		    /* the run's sandbox took the request... */
	struct spr_applied applied; /* ...with this isolation */
	char container[40];	    /* the container's name */
	int container_run;	    /* which of its runs this was (1: the first) */
	uint32_t host_uid;	    /* the container's own uid */
	struct spr_output_tap *tap; /* the caller's streaming, or NULL */
};
/* One request (the worker's request text) through a warm container for
 * the plan. Returns -1 only for errors of the caller's process (memory). */
SPR_HIDDEN int spr_pool_run(struct spr_pool *pool, spr_plan *plan, const spr_buf *request,
			    struct spr_pool_outcome *outcome, spr_error **err);
SPR_HIDDEN void spr_pool_outcome_free(struct spr_pool_outcome *outcome);

#endif
