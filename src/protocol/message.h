/* The messages between libspr and spr-sandbox, and between spr-sandbox's
 * own processes (docs/WORKER_PROTOCOL.md "Messages"): one small typed set
 * with one codec, whichever channel carries it:
 *
 *   engine  -> server   RUN (with the run's five descriptors), BYE
 *   server  -> engine   MONITOR (pid, with its pidfd), ERROR, FATAL
 *   engine  -> monitor  the plan (plan.h), then KILL
 *   monitor -> engine   STARTED, ERROR, EXIT
 *   init    -> monitor  STARTED, ERROR, EXIT       (a pipe)
 *   worker  -> init     SETUP, ERROR               (a pipe; EOF after SETUP
 *                                                   means exec succeeded)
 *   host    -> agent    REQUEST                    (DockerEngine frames,
 *   agent   -> host     HELLO, STARTED, DONE,       protocol/frame.h)
 *                       ERROR, FATAL
 *
 * On the wire a message is a 4-byte length (host order) and its encoding
 * (wire.h): the type, then the fields that type uses. Sockets carry one
 * message per packet; pipes carry them back to back. */
#ifndef SPR_PROTOCOL_MESSAGE_H
#define SPR_PROTOCOL_MESSAGE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "error.h"

enum spr_msg_type {
	SPR_MSG_NONE = 0,
	SPR_MSG_RUN,	 /* engine -> server: start a monitor on these fds */
	SPR_MSG_BYE,	 /* engine -> server: the engine is being freed */
	SPR_MSG_MONITOR, /* server -> engine: pid (pidfd attached) */
	SPR_MSG_KILL,	 /* engine -> monitor: end the run */
	SPR_MSG_SETUP,	 /* worker -> init: what its last steps applied */
	SPR_MSG_STARTED, /* init -> monitor -> engine: the worker runs */
	SPR_MSG_EXIT,	 /* init -> monitor -> engine: how the run ended */
	SPR_MSG_ERROR,	 /* anyone: this request or setup failed */
	SPR_MSG_FATAL,	 /* server -> engine: the server is exiting; agent -> host:
			    the container cannot serve another run */
	SPR_MSG_HELLO,	 /* agent -> host: the container's first sandbox is ready */
	SPR_MSG_REQUEST, /* host -> agent: a run (its request's bytes follow) */
	SPR_MSG_DONE,	 /* agent -> host: how the run ended (exit, done) */
	SPR_MSG_NTYPES
};

/* Which filter the worker loaded (isolation.seccomp). */
enum spr_seccomp_applied { SPR_SECCOMP_NONE, SPR_SECCOMP_DEFAULT_LOADED, SPR_SECCOMP_NO_UNIX_LOADED };

/* What protected a run (isolation, SPEC §7). */
struct spr_applied {
	bool namespaces;     /* user, pid, mount, ipc, uts, cgroup (+net) */
	bool network_shared; /* no network namespace */
	int32_t landlock_abi; /* 0: none */
	int seccomp;	      /* enum spr_seccomp_applied */
	int cgroup;	      /* enum spr_cg_version */
	bool memfd_noexec;    /* executable memory files refused (the kernel or the filter) */
	uint8_t filter;	      /* the seccomp variant loaded (policy/seccomp.h bits) */
	bool landlock_net;    /* Landlock refuses TCP bind and connect */
	uint32_t host_uid;    /* the uid the code's processes have on the host */
};

/* Isolation layers a policy may require (its `require` list, SPEC §7
 * "Requiring isolation"): a run whose sandbox lacks one never gets its
 * request. By index; the names are the policy's words. */
enum spr_layer_req {
	SPR_REQ_NAMESPACES,	    /* user, pid, mount, IPC, UTS (+ network) namespaces */
	SPR_REQ_CGROUP,		    /* memory, pids and CPU limited by a cgroup */
	SPR_REQ_SECCOMP,	    /* the seccomp filter */
	SPR_REQ_LANDLOCK_FS,	    /* Landlock on the filesystem */
	SPR_REQ_LANDLOCK_TCP,	    /* Landlock refusing TCP bind and connect */
	SPR_REQ_LANDLOCK_SCOPED,    /* signals and abstract sockets kept inside */
	SPR_REQ_NETWORK_OFF,	    /* no network: a namespace of its own, or inet refused */
	SPR_REQ_IPC_PRIVATE,	    /* no host IPC: a namespace of its own, or IPC refused */
	SPR_REQ_OWN_UID,	    /* a host uid no one else has */
	SPR_REQ_MEMFD_EXEC_REFUSED, /* memory files cannot be executed */
	SPR_NREQ
};
SPR_HIDDEN extern const char *const spr_layer_req_names[SPR_NREQ];
/* The index of a layer's name, or -1. */
SPR_HIDDEN int spr_layer_req_find(const char *name);

#define SPR_MSG_TEXT 2048

struct spr_msg {
	int type; /* enum spr_msg_type */
	int32_t pid;		    /* MONITOR, STARTED: the monitor's / the run's first process */
	struct spr_applied applied; /* SETUP (landlock_abi, seccomp), STARTED */
	struct {
		int32_t status;	    /* wait status; -1 unknown */
		int64_t maxrss_kb;  /* the run's memory peak */
		bool oom_killed, pids_limit_hit, cpu_limit_hit;
		bool alone;	    /* init -> monitor: nothing else was left */
	} exit;		    /* EXIT, DONE */
	struct {
		int64_t timeout_ms;  /* from the request's handover to the kill */
		uint64_t output_cap; /* bytes of stdout and of stderr forwarded */
		uint32_t require;    /* layers the run needs (enum spr_layer_req) */
	} request;		     /* REQUEST */
	struct {
		/* The run may go without namespaces: should its caller die, its
		 * monitor is given time to end it (no pid namespace ends it). */
		bool orphan_grace;
	} run; /* RUN */
	struct {
		bool timed_out;
		uint64_t out_total, err_total, result_total; /* bytes written */
	} done;					     /* DONE */
	struct {
		int layer;	    /* spr_layer */
		int32_t errnum;
		char message[SPR_MSG_TEXT];
	} error; /* ERROR, FATAL */
};

/* The first layer of `require` (a mask over enum spr_layer_req) that a
 * sandbox with `a` lacks, or -1. caller: the uid of whoever asked (a run
 * as that uid, or as nobody, has no uid of its own). */
SPR_HIDDEN int spr_applied_lacks(const struct spr_applied *a, uint32_t require, uid_t caller);

/* The largest encoded message. */
#define SPR_MSG_MAX (SPR_MSG_TEXT + 128)

SPR_HIDDEN int spr_msg_encode(const struct spr_msg *m, spr_buf *out);
/* Decodes one message's body (without the length prefix). */
SPR_HIDDEN int spr_msg_decode(const void *data, size_t len, struct spr_msg *m,
			      const char **why);

/* Decodes a message with its length prefix (spr_msg_encode's output),
 * which must match len exactly. */
SPR_HIDDEN int spr_msg_decode_framed(const void *data, size_t len, struct spr_msg *m);

/* An ERROR (or FATAL) message carrying err. */
SPR_HIDDEN void spr_msg_from_error(struct spr_msg *m, int type, const spr_error *err);
/* The spr_error an ERROR/FATAL message describes, "<prefix><message>". */
SPR_HIDDEN int spr_msg_to_error(const struct spr_msg *m, const char *prefix, spr_error **err);

/* Sends one message as one packet or one write (MSG_NOSIGNAL on
 * sockets), with fd attached (SCM_RIGHTS) when fd >= 0 (fds: nfds of
 * them). Returns 0, or -1 with errno. */
SPR_HIDDEN int spr_msg_send(int sock, const struct spr_msg *m, const int *fds, size_t nfds);
/* Writes one message to a pipe. */
SPR_HIDDEN int spr_msg_write(int fd, const struct spr_msg *m);

/* Receives one packet from a SOCK_SEQPACKET socket. Descriptors that came
 * with it go to fds (up to *nfds, the rest closed; *nfds is set to the
 * count), close-on-exec. Returns 1 with a message, 0 at EOF, -1 with
 * errno (EAGAIN under MSG_DONTWAIT; EPROTO for a malformed message;
 * EMSGSIZE when descriptors were cut off). */
SPR_HIDDEN int spr_msg_recv(int sock, struct spr_msg *m, int flags, int *fds, size_t *nfds);

/* Messages on a pipe: bytes read so far are kept in pending. */
struct spr_msg_stream {
	int fd;
	spr_buf pending;
};
/* The next message: 1 with one, 0 at EOF (nothing pending), -1 with
 * errno (EAGAIN on a non-blocking pipe with no whole message; EPROTO for
 * a malformed one or EOF inside a message). */
SPR_HIDDEN int spr_msg_next(struct spr_msg_stream *s, struct spr_msg *m);
/* Frees what is pending (the descriptor is the caller's). */
static inline void spr_msg_stream_free(struct spr_msg_stream *s) { spr_buf_free(&s->pending); }

#endif
