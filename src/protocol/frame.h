/* Frames: the DockerEngine's channel between the host (src/docker/pool.c)
 * and a container's agent (src/namespace/agent.c), carried by `docker run
 * -i`'s stdin and stdout (docs/WORKER_PROTOCOL.md "The container agent").
 * A frame is a type byte, the payload's length (4 bytes, big-endian) and
 * the payload:
 *
 *   host  -> python B  the worker's source, a NUL, spr-sandbox: read by the
 *                      container's bootstrap (src/docker/pool.c), once
 *   host  -> agent  P  the sandbox plan (plan.h), once, first
 *                   Q  a run: a REQUEST message (message.h, with its length
 *                      prefix), then the worker's request bytes
 *   agent -> host   M  a message: HELLO, STARTED, DONE, ERROR or FATAL
 *                   O, E, R  the run's stdout, stderr and result bytes, as
 *                      they come (stdout and stderr cut at the output cap)
 *
 * Both ends use these functions; deadlines are absolute spr_now_ms()
 * values, or -1 for none. They return 0, or a negative errno: -ETIMEDOUT,
 * -EPIPE (the other end is gone), -EPROTO (not a frame of ours), -ENOMEM. */
#ifndef SPR_PROTOCOL_FRAME_H
#define SPR_PROTOCOL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "protocol/message.h"

enum spr_frame_type {
	SPR_FRAME_BOOT = 'B',
	SPR_FRAME_PLAN = 'P',
	SPR_FRAME_REQUEST = 'Q',
	SPR_FRAME_MSG = 'M',
	SPR_FRAME_OUT = 'O',
	SPR_FRAME_ERR = 'E',
	SPR_FRAME_RESULT = 'R',
};

/* The largest payload: a 64 MiB request and its header. */
#define SPR_FRAME_MAX (((size_t)64 << 20) + ((size_t)64 << 10))

/* Sends one frame whose payload is head then body (either may be empty). */
SPR_HIDDEN int spr_frame_send(int fd, char type, const void *head, size_t head_len,
			      const void *body, size_t body_len, int64_t deadline);
/* Sends m as an 'M' frame. */
SPR_HIDDEN int spr_frame_send_msg(int fd, const struct spr_msg *m, int64_t deadline);
/* Receives one frame; its payload replaces *payload's content. */
SPR_HIDDEN int spr_frame_recv(int fd, char *type, spr_buf *payload, int64_t deadline);
/* The message at the start of a payload ('M', or a 'Q''s header); *used
 * is set to the bytes it took. Returns 0, or -EPROTO. */
SPR_HIDDEN int spr_frame_msg(const spr_buf *payload, struct spr_msg *m, size_t *used);

#endif
