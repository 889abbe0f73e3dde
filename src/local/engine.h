/* The LocalEngine: runs the worker under spr-sandbox on this machine. */
#ifndef SPR_LOCAL_ENGINE_H
#define SPR_LOCAL_ENGINE_H

#include "cgroup/cgroup.h"
#include "engine/engine.h"
#include "local/fork_client.h"
#include "protocol/layout.h"
#include "local/pool.h"
#include "policy/seccomp.h"
#include "uid_lease.h"

/* What we learned about the interpreter once, when the engine started
 * (running it per run would cost as much as the run). */
struct spr_python_info {
	char *path;	   /* as given (--python, spr_local_options.python) */
	char *base_prefix; /* sys.base_prefix: where the stdlib lives */
	char *prefix;	   /* sys.prefix once site has run: a venv's root (resolved)
			      when in one, else base_prefix */
	bool venv;	   /* prefix is a venv: the worker is told, as it runs with -S
			      and site.venv() never sets sys.prefix there */
	char *version;	   /* "3.11.2" */
	char *executable;  /* argv[0] of every run: realpath of sys.executable (a
			      pyenv shim resolves to the real interpreter); in a venv
			      the venv's own bin/python, by which the interpreter
			      finds pyvenv.cfg */
	char *sys_path_json; /* JSON array: the site-packages site would add, which
				the code may import */
};

struct spr_local_engine {
	spr_engine base;
	struct spr_python_info python;
	char *sandbox_path; /* .../libexec/spr/spr-sandbox */
	char *worker_path;  /* .../libexec/spr/spr_worker.py */
	char *worker_run_path; /* what the interpreter runs: a cached .pyc for this
				  interpreter when it could be made, else worker_path */
	bool allow_degraded;
	struct spr_uid_range uid_range; /* root: each run's own host uid comes from it */
	uid_t outside_uid; /* what the sandbox user is outside (rootless; degraded) */
	gid_t outside_gid;
	struct spr_cg_host cgroups; /* detected once, at engine start */
	struct spr_fork_server server; /* spr-sandbox --serve: forks the monitors */
	struct spr_local_pool pool;    /* sandboxes prepared for the next run */
	int venv_hold; /* the venv's marker, locked shared (venv.c), or -1 */
};

/* python.c: asks the interpreter at path about itself (in a sandbox;
 * cached), filling engine->python. */
SPR_HIDDEN int spr_local_probe_python(struct spr_local_engine *le, const char *path,
				      spr_error **err);
/* The worker compiled for the engine's interpreter (in a sandbox; cached):
 * its path, or NULL when it could not be made (the source still works). */
SPR_HIDDEN char *spr_local_compiled_worker(struct spr_local_engine *le);
SPR_HIDDEN void spr_python_info_free(struct spr_python_info *p);

/* venv.c: the environment at dir (SPEC §4 "Environments"), made with the
 * engine's interpreter (engine->python, the base) if it is not there.
 * *python gets the venv's interpreter, *hold the marker's descriptor the
 * engine keeps (a shared lock: the venv is not removed while held). */
struct spr_local_venv_request {
	const char *dir;
	const char *manager; /* "python" or "uv" */
	const char *const *packages;
	spr_pip_options pip;
	const spr_policy *limits;
	int timeout_seconds;
	bool show_progress;
};
SPR_HIDDEN int spr_local_venv_prepare(struct spr_local_engine *le,
				      const struct spr_local_venv_request *req, char **python,
				      int *hold, spr_error **err);

/* Sets a sandbox up for the pool (spr_prepare_fn; engine: the local engine). */
SPR_HIDDEN struct spr_prepared *spr_local_prepare(void *engine, const spr_buf *plan);

SPR_HIDDEN int spr_local_run(spr_engine *engine, spr_plan *plan, const struct spr_request *req,
			     struct spr_result **out, spr_error **err);

/* A command of the engine's own, run in a sandbox like any run (never
 * on the caller's host as the caller): the interpreter probe and the
 * worker's compilation execute the interpreter given to spr, which (a
 * venv's .pth files, a fake binary) is as untrusted as the code. */
struct spr_local_command {
	const char *const *argv;
	struct spr_layout_input layout; /* the python_* fields; worker_path NULL */
	const char *input;		/* its stdin */
	size_t input_len;
	size_t output_cap;		/* stdout beyond it is an error */
	int64_t timeout_ms;
	spr_buf *errout;		/* its stderr (capped), or NULL */
	/* An install (src/local/venv.c) also has: */
	const spr_policy *limits;	/* memory, processes, CPU, tmp from it;
					   NULL: the defaults */
	const char *writable_dir;	/* shown writable (layout.h) */
	const struct spr_paths *extra_ro;
	bool network;			/* the host's network */
	bool errout_tail;		/* errout keeps the last output_cap bytes */
	bool show_progress;		/* stderr is copied to fd 2 as it arrives */
	uint32_t host_uid;		/* out: the host uid the command ran as */
};
/* *status: its exit status, 128 + n when killed by signal n. */
SPR_HIDDEN int spr_local_command(struct spr_local_engine *le, struct spr_local_command *cmd,
				 spr_buf *out, int *status, spr_error **err);

/* spr_local_cleanup that also counts the degraded runs' directories it
 * removed (core/rundir.h). */
SPR_HIDDEN int spr_local_cleanup_counted(const spr_local_options *opts, int *removed,
					 int *removed_dirs, spr_error **err);

#endif
