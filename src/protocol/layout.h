/* The sandbox's view of the world, computed on the host (in the library):
 * which host paths appear read-only, what /etc holds, which paths Landlock
 * lets the code read or write, how ids are mapped. spr-sandbox executes
 * the resulting operations in order without interpreting them, so the
 * policy lives here, in testable code. The result is the plan's `layout`
 * and `degraded` parts (protocol/plan.h). */
#ifndef SPR_LAYOUT_H
#define SPR_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "arena.h"
#include "error.h"
#include "protocol/plan.h"

#define SPR_SANDBOX_UID 1000
#define SPR_SANDBOX_GID 1000
#define SPR_SANDBOX_HOSTNAME "sandbox"
/* Where the worker appears inside (its host path may be anywhere,
 * including under /tmp, which the sandbox's own /tmp would hide). */
#define SPR_SANDBOX_WORKER_DIR "/opt/spr"

struct spr_layout_input {
	const char *python_executable; /* the run's argv[0]: the real binary, or a
					  venv's link to it */
	const char *python_base_prefix;
	const char *python_prefix;
	const char *worker_path;
	/* Also shown read-only, at their own paths (the image's packages). */
	const struct spr_paths *extra_ro;
	/* A host directory shown writable at its own path (an install's
	 * venv), or NULL. */
	const char *writable_dir;
	bool network;
	/* The plan's writable places (policy/compile.h): tmpfs mounts, and
	 * the code's working directory among them. */
	const struct spr_scratch *scratch;
	size_t nscratch;
	const char *workdir;
	/* Outside ids the sandbox user maps to (nobody when root, the caller
	 * otherwise). */
	uid_t outside_uid;
	gid_t outside_gid;
	/* The caller is root: without namespaces (degraded) the code then
	 * runs as the outside ids instead of root. */
	bool caller_is_root;
	/* Host root to inspect (tests point it at a fake tree); "" for "/". */
	const char *host_root;
};

/* Fills layout and degraded (but degraded->worker and workdir_parent,
 * which are the engine's); strings go into arena. */
SPR_HIDDEN int spr_layout_build(const struct spr_layout_input *in, struct spr_layout *layout,
				struct spr_degraded_plan *degraded, struct spr_arena *arena,
				spr_error **err);

/* The worker's path inside the sandbox: SPR_SANDBOX_WORKER_DIR plus the
 * host file's name (the extension tells Python .py from .pyc). */
SPR_HIDDEN char *spr_layout_worker_inside(const char *worker_path);


/* An interpreter's own files, found without running it (it is as
 * untrusted as the code): its binary's directory, its prefix (the
 * landmark Python's getpath looks for: lib/python3.N/os.py, up from the
 * binary or a venv's `home`; never "/"; else /usr) and a venv's root
 * (pyvenv.cfg next to the path or one directory up). */
struct spr_python_paths {
	char *executable; /* the path as given */
	char *base_prefix, *prefix, *binary_dir;
};
SPR_HIDDEN int spr_python_paths_find(const char *path, struct spr_python_paths *out,
				     spr_error **err);
SPR_HIDDEN void spr_python_paths_free(struct spr_python_paths *p);

#endif
