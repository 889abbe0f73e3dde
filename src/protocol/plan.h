/* The sandbox plan: everything spr-sandbox needs to set one run up, as one
 * typed struct (docs/WORKER_PROTOCOL.md "The sandbox plan"). The library
 * fills it (src/local/run.c, the layout from src/local/layout.c) and
 * encodes it; spr-sandbox's monitor receives it already decoded. The
 * encoded bytes are also the warm pool's key: two runs whose plans encode
 * alike would get identical sandboxes.
 *
 * Descriptors never travel in it (they go as SCM_RIGHTS beside it), and
 * every field sent is used by the helper; tests/unit/test_protocol.c
 * round-trips every one. Pointers are borrowed when encoding and point
 * into the decoder's arena after decoding. */
#ifndef SPR_PROTOCOL_PLAN_H
#define SPR_PROTOCOL_PLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "error.h"
#include "protocol/wire.h"

#define SPR_PLAN_MAX_MOUNTS 160
#define SPR_PLAN_MAX_PATHS 96
#define SPR_PLAN_MAX_ARGS 64
#define SPR_PLAN_MAX_ENV 4096

/* One step of building the sandbox's root (src/namespace/mounts.c), in
 * order; the fields a kind uses are listed with it. */
enum spr_mount_kind {
	SPR_MOUNT_BIND_RO,  /* dst, src: read-only, nosuid, nodev */
	SPR_MOUNT_BIND_DEV, /* dst, src: a device node, nosuid, noexec */
	SPR_MOUNT_TMPFS,    /* dst, size, mode, noexec */
	SPR_MOUNT_FILE,	    /* dst, text (content), mode */
	SPR_MOUNT_DIR,	    /* dst, mode */
	SPR_MOUNT_SYMLINK,  /* dst, text (target) */
	SPR_MOUNT_PROC,	    /* dst: a fresh proc for the new pid namespace */
	SPR_MOUNT_MASK,	    /* dst: hidden (empty tmpfs, or /dev/null) */
	SPR_MOUNT_READONLY, /* dst: remounted read-only */
	SPR_MOUNT_SEAL,	    /* dst: a mount made read-only once filled */
	SPR_MOUNT_BIND_RW,  /* dst, src: a directory the code may write (nosuid,
			       nodev); as root it is given to the run's own uid */
	SPR_MOUNT_NKINDS
};

struct spr_mount_op {
	int kind; /* enum spr_mount_kind */
	const char *dst, *src, *text;
	uint32_t mode;
	uint64_t size;
	bool noexec;
};

/* A writable place every engine gives the code: a tmpfs of `bytes`,
 * noexec, nosuid, nodev, counted toward the memory limit. */
struct spr_scratch {
	const char *path;
	uint64_t bytes;
	uint32_t mode;
};

#define SPR_PLAN_NSCRATCH 2

struct spr_paths {
	const char *v[SPR_PLAN_MAX_PATHS];
	size_t n;
};

/* The resource limits the worker gets (setrlimit), by index. */
enum spr_rlimit_index {
	SPR_RLIM_AS,
	SPR_RLIM_NOFILE,
	SPR_RLIM_FSIZE,
	SPR_RLIM_CORE,
	SPR_RLIM_NPROC,
	SPR_RLIM_CPU,
	SPR_NRLIMITS
};

struct spr_rlimit_plan {
	bool set;
	uint64_t soft, hard;
};

/* The run's cgroup (src/cgroup/run.c). version 0: no cgroup. */
struct spr_cgroup_plan {
	int version;		  /* enum spr_cg_version */
	const char *base[4];	  /* per enum spr_cg_controller; NULL: not used */
	uint64_t memory_bytes;
	int64_t pids_max;
	uint64_t cpu_quota_us, cpu_period_us;
	double cpu_cores;	  /* paces the CPU-time timer */
	double cpu_seconds;	  /* 0: no CPU-time budget */
};

/* What the namespaces show (computed on the host: src/local/layout.c). */
struct spr_layout {
	struct spr_mount_op mounts[SPR_PLAN_MAX_MOUNTS];
	size_t nmounts;
	/* Landlock: read (and execute: programs and libraries), read only
	 * (data: /dev, which holds /dev/shm), read and write (never execute). */
	struct spr_paths landlock_read, landlock_data, landlock_write;
	uint32_t uid, gid;		 /* the sandbox user inside */
	uint32_t outside_uid, outside_gid; /* what it is outside */
	const char *hostname;
	bool network;	      /* the host's network: no network namespace */
	const char *workdir;  /* cwd, HOME and TMPDIR of the code */
};

/* What applies when namespaces are refused and allow_degraded is set. */
struct spr_degraded_plan {
	struct spr_paths landlock_read, landlock_write; /* host paths; the run
							   directory is added */
	bool run_as;	      /* root: the code runs as uid/gid */
	uint32_t uid, gid;
	const char *worker;   /* the worker by its host path (argv's last) */
	const char *workdir_parent; /* the private run directory goes here */
};

/* Filter variants (policy/seccomp.h), by bits: NO_UNIX (1) where the
 * network is shared and Landlock cannot scope abstract unix sockets (and
 * always without namespaces: the host's pathname sockets), NO_MEMFD_EXEC
 * (2) where vm.memfd_noexec could not be set, NO_IPC (4) and NO_INET (8)
 * without namespaces (the host's IPC; no network in the policy). A plan
 * carries the variants its sandbox can need, the rest empty. */
enum spr_filter_index {
	SPR_FILTER_DEFAULT = 0,
	SPR_FILTER_NO_UNIX = 1,
	SPR_FILTER_NO_MEMFD_EXEC = 2,
	SPR_FILTER_NO_IPC = 4,
	SPR_FILTER_NO_INET = 8,
	SPR_NFILTERS = 16
};

/* The variant a run without namespaces loads (degraded: its rlimits, no
 * pid namespace, so no vm.memfd_noexec either). */
static inline unsigned spr_filter_degraded(bool network)
{
	return SPR_FILTER_NO_UNIX | SPR_FILTER_NO_MEMFD_EXEC | SPR_FILTER_NO_IPC |
	       (network ? 0 : SPR_FILTER_NO_INET);
}

/* The variants a sandbox of a plan may load, as a mask over variants:
 * with namespaces the table, with or without executable memory files,
 * and where the network is the host's also without unix sockets; plus
 * the degraded one when the plan allows degrading. */
static inline uint32_t spr_filters_needed(bool network, bool allow_degraded)
{
	uint32_t mask = 1u << SPR_FILTER_DEFAULT | 1u << SPR_FILTER_NO_MEMFD_EXEC;
	if (network)
		mask |= 1u << SPR_FILTER_NO_UNIX | 1u << (SPR_FILTER_NO_UNIX | SPR_FILTER_NO_MEMFD_EXEC);
	if (allow_degraded)
		mask |= 1u << spr_filter_degraded(network);
	return mask;
}

/* As root, the run's user namespace is created by a host uid leased for
 * this run from [start, start + count) (core/uid_lease.h), so the kernel
 * charges its per-user budgets to that uid, not to root. count 0: none
 * (a rootless caller's runs are its own uid's). */
struct spr_uid_lease_plan {
	uint32_t start, count;
	const char *lease_file;
};

/* The DockerEngine's container agent (spr-sandbox --container) computes
 * the layout itself: it sees the container's files, the host does not.
 * The host says what it decides: the writable places, what else to show
 * read-only (the image's packages), the network and the working
 * directory; a plan that asks the agent carries no layout or degraded
 * part. The agent fills them, and argv's interpreter and worker, before
 * any monitor reads the plan. */
struct spr_layout_request {
	bool by_agent; /* false: the layout is in the plan already */
	struct spr_scratch scratch[SPR_PLAN_NSCRATCH];
	struct spr_paths extra_ro;
	bool network;	     /* the container's network, not a namespace's */
	const char *workdir; /* cwd, HOME and TMPDIR of the code */
	bool limits;	     /* the container's cgroup limits the run (else rlimits) */
};

struct spr_sandbox_plan {
	struct spr_strv argv; /* the interpreter, its flags, the worker inside */
	struct spr_strv env;  /* HOME and TMPDIR (the workdir) are added */
	struct spr_rlimit_plan rlimits[SPR_NRLIMITS];
	/* Classic BPF per enum spr_filter_index (len 0: not sent): the
	 * worker picks the variant (policy/seccomp.h). */
	struct spr_filter_plan {
		const void *insns;
		size_t len;
	} filters[SPR_NFILTERS];
	bool allow_degraded;
	struct spr_uid_lease_plan run_uid;
	struct spr_cgroup_plan cgroup;
	struct spr_layout_request layout_request;
	struct spr_layout layout;
	struct spr_degraded_plan degraded;
};

/* Appends the plan's encoding to out. */
SPR_HIDDEN int spr_plan_encode(const struct spr_sandbox_plan *plan, spr_buf *out,
			       spr_error **err);
/* Decodes a plan; strings and arrays go into arena. */
SPR_HIDDEN int spr_plan_decode(const void *data, size_t len, struct spr_sandbox_plan *plan,
			       struct spr_arena *arena, spr_error **err);

/* Appends a path to a list; false when it is full. */
SPR_HIDDEN bool spr_paths_add(struct spr_paths *list, const char *path);

#endif
