/* spr — run untrusted Python under a policy, contained by the kernel.
 *
 * This header is the whole public surface of libspr. Every fallible
 * function returns a negative value on failure and, when `err` is not NULL,
 * stores a newly allocated spr_error the caller frees with spr_error_free().
 * The library never prints and never exits the process. Strings returned
 * to the caller are freed with spr_free(). All functions are safe to call
 * from several threads at once on different objects; an spr_engine may be
 * shared by threads (spr_run is thread-safe).
 */
#ifndef SPR_H
#define SPR_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SPR_VERSION "0.1.0"

#if defined(__GNUC__)
#define SPR_API __attribute__((visibility("default")))
#else
#define SPR_API
#endif

/* ---- errors -------------------------------------------------------- */

/* Which part of spr failed: lets callers tell a bad policy from a host
 * that cannot sandbox. */
typedef enum spr_layer {
	SPR_LAYER_API = 0,  /* bad argument from the caller */
	SPR_LAYER_POLICY,   /* policy file / JSON invalid */
	SPR_LAYER_REQUEST,  /* run request invalid (code, input_data) */
	SPR_LAYER_CORE,     /* process supervision, pipes, memory */
	SPR_LAYER_SANDBOX,  /* the spr-sandbox helper */
	SPR_LAYER_NAMESPACE,
	SPR_LAYER_CGROUP,
	SPR_LAYER_SECCOMP,
	SPR_LAYER_DOCKER,
	SPR_LAYER_WORKER,   /* the Python worker */
} spr_layer;

typedef struct spr_error {
	char *message; /* one line: what failed, the path/value, and the fix */
	int errnum;    /* errno when a system call failed, else 0 */
	spr_layer layer;
} spr_error;

SPR_API void spr_error_free(spr_error *err);
SPR_API const char *spr_layer_name(spr_layer layer);
/* Frees a string returned by the library. */
SPR_API void spr_free(void *ptr);

/* ---- policy (SPEC §2) ---------------------------------------------- */

typedef struct spr_policy spr_policy;

/* A policy with the SPEC §2 defaults. */
SPR_API int spr_policy_new(spr_policy **out, spr_error **err);
/* A TOML policy file (keys under [policy] or at top level). Errors name
 * file:line:col. */
SPR_API int spr_policy_load_file(const char *path, spr_policy **out, spr_error **err);
/* A JSON object with policy fields; omitted fields keep their defaults. */
SPR_API int spr_policy_from_json(const char *json, size_t len, spr_policy **out,
				 spr_error **err);
/* Overrides the fields present in a JSON object (e.g. CLI --timeout). */
SPR_API int spr_policy_update_json(spr_policy *policy, const char *json, size_t len,
				   spr_error **err);
/* The complete policy as canonical JSON (every field). */
SPR_API int spr_policy_to_json(const spr_policy *policy, char **out, spr_error **err);
SPR_API void spr_policy_free(spr_policy *policy);

/* ---- engines ------------------------------------------------------- */

typedef struct spr_engine spr_engine;

/* Where pip finds the packages of an environment (the LocalEngine's venv,
 * the DockerEngine's image; SPEC §4 "Environments"). Zero: the index
 * pip is configured with by default (pypi.org). */
typedef struct spr_pip_options {
	const char *index_url;	/* --index-url: http(s):// or file:// */
	const char *find_links; /* --find-links: an absolute directory of wheels and
				   sdists, shown read-only to the install */
	bool no_index;		/* --no-index: find_links only, and no network */
} spr_pip_options;

/* Options for the LocalEngine. Zero-initialise and set what you need;
 * fields are only ever appended. The library reads the whole struct, so a
 * program built against an older header (a shorter struct) must not load
 * a newer library: appending a field bumps the soname (libspr.so.2 since
 * uid_range, libspr.so.3 since venv_dir, libspr.so.4 since
 * spr_cleanup_counts.run_dirs). */
typedef struct spr_local_options {
	const char *python;      /* interpreter; NULL: /usr/bin/python3 */
	const char *libexec_dir; /* spr-sandbox + spr_worker.py; NULL: $SPR_LIBEXEC_DIR,
				    else the installed libexec/spr */
	bool allow_degraded;     /* run even when a protection cannot be applied
				    (reported in isolation) */
	const char *cgroup_parent; /* runs go under this cgroup, relative to the
				      caller's own (a delegated subtree); NULL: the
				      caller's own cgroup */
	int pool_size; /* sandboxes kept set up for the next run with the same
			  policy (warm pool, SPEC §4); 0: 1; up to 8;
			  SPR_LOCAL_NO_POOL: none (one-shot callers) */
	const char *uid_range; /* as root, each run gets a host uid of its own from
				  "START:COUNT" (SPEC §4 "Identity"); NULL:
				  $SPR_UID_RANGE, else 1879048192:65536 */
	/* An environment spr makes and keeps (SPEC §4 "Environments"): the
	 * venv at venv_dir (absolute), made by venv_manager ("python": the
	 * interpreter's `-m venv`, the default; "uv") from `python`, with
	 * exactly `packages` (NULL-terminated "name==version"), installed in
	 * a sandbox. Runs then use its interpreter. */
	const char *venv_dir;
	const char *venv_manager;
	const char *const *packages;
	spr_pip_options pip;
	const spr_policy *install_policy; /* the install's limits (its timeout is
					     install_timeout_seconds); NULL: defaults */
	int install_timeout_seconds;	  /* 0: 600 */
	bool show_progress; /* a venv build writes what it does and pip's output
			       to fd 2 */
} spr_local_options;

#define SPR_LOCAL_NO_POOL (-1)

SPR_API int spr_local_engine_new(const spr_local_options *opts, spr_engine **out,
				 spr_error **err);
SPR_API void spr_engine_free(spr_engine *engine);

/* Options for the DockerEngine (SPEC §5). Zero-initialise; fields are
 * only ever appended. The engine drives the `docker` CLI, so it works with
 * whatever daemon the CLI can reach. */
typedef struct spr_docker_options {
	const char *image;	       /* container_registry: an explicit image */
	const char *const *packages;   /* NULL-terminated "name==version" list */
	int pool_size;		       /* 0: min(CPUs, 4) */
	int max_runs;		       /* runs per container; 0: 25 */
	int ttl_seconds;	       /* container lifetime; 0: 600 */
	const char *base_image;	       /* base for building the runtime image; NULL:
					  $SPR_DOCKER_BASE_IMAGE, else python:3.12-slim */
	const char *wheel_dir;	       /* local wheels for `packages` (no index) */
	bool show_build_progress;      /* image builds write their progress to fd 2 */
	/* Remote daemons (SPEC §5): a docker context, or a host URL / SSH. */
	const char *docker_context;
	const char *docker_host;       /* unix://, tcp://, ssh:// */
	const char *ssh_host, *ssh_user, *ssh_key_path;
	int ssh_port;		       /* 0: ssh's default */
	int acquire_timeout_seconds;   /* waiting for a free container; 0: 120 */
	const char *uid_range;	       /* each container runs as a host uid of its own
					  from "START:COUNT" (SPEC §5); NULL:
					  $SPR_UID_RANGE, else 1879048192:65536 */
	const char *container_cli;     /* "docker" (default; podman when that is what
					  `docker` is) or "podman" */
	bool allow_degraded;	       /* run where the runtime cannot enforce the
					  limits (rootless podman on cgroup v1): rlimits
					  instead, reported in isolation */
	spr_pip_options pip;	       /* where `packages` come from; wheel_dir is
					  the same as pip.find_links + pip.no_index */
} spr_docker_options;

SPR_API int spr_docker_engine_new(const spr_docker_options *opts, spr_engine **out,
				  spr_error **err);

/* ---- managed containers (SPEC §5 admin, §6 `spr`) ----------------------
 *
 * What spr started on a daemon, and only that: containers carrying the
 * label io.spr.managed=1 and images carrying io.spr.image. A handle needs only the daemon
 * options of spr_docker_options (docker_context, docker_host, ssh_*); it
 * never builds or pulls. Results are JSON text (free with spr_free).
 *
 * Container ids: a full id, a name, or an unambiguous prefix of either.
 * Failures set err->layer = SPR_LAYER_DOCKER and err->errnum:
 *   EPERM     the container is not managed by spr (message:
 *             "Container '<id>' is not managed by spr and cannot be modified")
 *   ESRCH     no container matches
 *   ENOTUNIQ  the prefix matches several (the message lists them)
 *   other     the CLI is missing / the daemon unreachable (SPEC §5 messages)
 */
typedef struct spr_docker_admin spr_docker_admin;

SPR_API int spr_docker_admin_new(const spr_docker_options *opts, spr_docker_admin **out,
				 spr_error **err);
SPR_API void spr_docker_admin_free(spr_docker_admin *admin);

/* {"containers": [{"id", "name", "image", "state", "status", "created",
 *   "runs" (runs served, null when not running), "pool", "env",
 *   "creator", "creator_alive" (null: created on another host)}]};
 * running ones only unless all_states. */
SPR_API int spr_docker_list_containers(spr_docker_admin *admin, bool all_states, char **json,
				       spr_error **err);
/* {"images": [{"id", "tags": [...], "kind": "runtime"|"env", "size_bytes",
 *   "created", "containers": N (how many containers use it)}]} */
SPR_API int spr_docker_list_images(spr_docker_admin *admin, char **json, spr_error **err);
/* {"container": {list fields + "labels", "limits", "security"}} */
SPR_API int spr_docker_inspect_container(spr_docker_admin *admin, const char *id, char **json,
					 spr_error **err);
/* Stops (SIGTERM, then SIGKILL after timeout_seconds; < 0: 10) or kills
 * one managed container; *full_id (may be NULL) gets the id acted on. */
SPR_API int spr_docker_stop_container(spr_docker_admin *admin, const char *id,
				      int timeout_seconds, char **full_id, spr_error **err);
SPR_API int spr_docker_kill_container(spr_docker_admin *admin, const char *id, char **full_id,
				      spr_error **err);
/* What the container CLI runs on (spr doctor): {"cli": "docker"|"podman",
 *   "path", "version", "remote" (bool), and for podman "rootless" (bool),
 *   "cgroup_version" (1|2), "storage" (driver), "limits": {"memory",
 *   "pids", "cpu"} (bool: enforced)}. */
SPR_API int spr_docker_describe(spr_docker_admin *admin, char **json, spr_error **err);
/* Stops every running managed container: {"stopped": [ids]}. */
SPR_API int spr_docker_stop_all(spr_docker_admin *admin, int timeout_seconds, char **json,
				spr_error **err);

typedef struct spr_cleanup_counts {
	int containers;	 /* removed: exited, or their creating process is gone */
	int images;	 /* removed: env images no container uses */
	int run_cgroups; /* removed: LocalEngine run cgroups whose helper is gone */
	int run_dirs;	 /* removed: degraded runs' directories whose maker is gone */
} spr_cleanup_counts;
/* The docker part only (run_cgroups stays 0). */
SPR_API int spr_docker_cleanup_stale(spr_docker_admin *admin, spr_cleanup_counts *removed,
				     spr_error **err);
/* Everything killed callers left behind: the LocalEngine's run cgroups
 * (local: NULL for the defaults) and, when admin is not NULL, the docker
 * part. */
SPR_API int spr_cleanup_stale(const spr_local_options *local, spr_docker_admin *admin,
			      spr_cleanup_counts *removed, spr_error **err);

/* What this host offers the LocalEngine, as JSON (free with spr_free):
 * kernel and user, the interpreter, per cgroup controller the hierarchy,
 * the base directory, whether it is usable and the fix when not, and the
 * isolation a trivial run actually got (or why it failed). Returns 0 even
 * when problems are found; they are in the report ("problems": [...]). */
SPR_API int spr_local_doctor(const spr_local_options *opts, char **json, spr_error **err);
/* Removes what killed callers left behind: run cgroups whose helper is
 * gone (*removed counts them) and degraded runs' directories whose maker
 * is gone (spr_cleanup_stale counts those). */
SPR_API int spr_local_cleanup(const spr_local_options *opts, int *removed, spr_error **err);

/* ---- runs (SPEC §1, §3) -------------------------------------------- */

typedef struct spr_result spr_result;

/* Runs `code` (UTF-8, code_len bytes) with `input_json` (a JSON value as
 * text, NULL for {}) under `policy` (NULL for the defaults).
 *
 * Returns 0 and a result for every run outcome, including timeouts, limit
 * hits and infrastructure failures (exit_code 125). Returns negative only
 * when the request itself is invalid (not UTF-8, malformed input JSON) or
 * memory runs out. */
SPR_API int spr_run(spr_engine *engine, const spr_policy *policy, const char *code,
		    size_t code_len, const char *input_json, spr_result **out,
		    spr_error **err);

/* Output as the code produces it (SPEC §3 "Streaming"): called on the
 * thread running the run, for each chunk the code wrote to stdout
 * (stream 1) or stderr (stream 2), in order per stream, as it arrives.
 * Bytes as written: a chunk may end inside a line or a UTF-8 character.
 * Only the first output cap bytes of each stream are delivered (the rest
 * is counted, as in the result); the result still carries the captured,
 * capped streams and their truncation flags. */
typedef void (*spr_output_fn)(void *user, int stream, const char *data, size_t len);
typedef struct spr_run_options {
	spr_output_fn on_output; /* NULL: nothing streamed */
	void *user;		 /* passed to on_output */
} spr_run_options;
/* spr_run with options (NULL: as spr_run). */
SPR_API int spr_run_with(spr_engine *engine, const spr_policy *policy, const char *code,
			 size_t code_len, const char *input_json, const spr_run_options *opts,
			 spr_result **out, spr_error **err);

/* The shared entry for the CLI and language bindings. Request:
 *   {"code": "...", "input_data": <any JSON>, "policy": {...} | "policy_file": "path"}
 * Result: the RunnerResult as JSON text (free with spr_free). */
SPR_API int spr_run_json(spr_engine *engine, const char *request_json, size_t len,
			 char **result_json, spr_error **err);
/* spr_run_json with options (streaming; NULL: as spr_run_json). */
SPR_API int spr_run_json_with(spr_engine *engine, const char *request_json, size_t len,
			      const spr_run_options *opts, char **result_json, spr_error **err);

SPR_API bool spr_result_ok(const spr_result *r);
SPR_API int spr_result_exit_code(const spr_result *r);
SPR_API bool spr_result_timed_out(const spr_result *r);
SPR_API bool spr_result_resource_exceeded(const spr_result *r);
/* NULL when there is no error. */
SPR_API const char *spr_result_error(const spr_result *r);
/* The captured streams (valid UTF-8, capped); len may be NULL. */
SPR_API const char *spr_result_stdout(const spr_result *r, size_t *len);
SPR_API const char *spr_result_stderr(const spr_result *r, size_t *len);
/* The JSON text of `result` ("null" when not ok). */
SPR_API const char *spr_result_value_json(const spr_result *r);

enum { SPR_JSON_COMPACT = 0, SPR_JSON_PRETTY = 1 };
/* The RunnerResult (SPEC §3) as JSON text; free with spr_free. */
SPR_API int spr_result_to_json(const spr_result *r, int flags, char **out, spr_error **err);
SPR_API void spr_result_free(spr_result *r);
/* A RunnerResult for a run that could not start (engine creation failed):
 * exit_code 125 and the error's message. */
SPR_API int spr_result_from_error(const spr_error *cause, spr_result **out, spr_error **err);

#ifdef __cplusplus
}
#endif
#endif
