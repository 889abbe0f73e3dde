/* The encoding under every typed message that crosses a process boundary
 * between libspr and spr-sandbox (docs/WORKER_PROTOCOL.md "Between libspr
 * and spr-sandbox"): a byte string of fixed-width integers in host byte
 * order (both ends run on one machine) and length-prefixed strings.
 *
 * One function per message type describes its fields once, in order, by
 * calling the spr_wire_* visitors below; the same function encodes (the
 * visitors read the struct) and decodes (they fill it). An encoder and a
 * decoder written separately can drift apart field by field; one
 * description cannot.
 *
 * Decoding never trusts its input: every length is checked against what
 * is left, every count against its bound, enums against their range.
 * Strings and arrays go into the caller's arena. The first problem sets
 * `bad` and a reason; later visits do nothing. */
#ifndef SPR_WIRE_H
#define SPR_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"

struct spr_wire {
	bool reading;
	spr_buf *out;	    /* writing: appended to */
	const uint8_t *in;  /* reading: what is left */
	size_t left;
	struct spr_arena *arena; /* reading: where strings and arrays go */
	bool bad;
	const char *why;    /* the first problem (static text) */
};

/* A NULL-terminated string vector (argv, environment, path lists). */
struct spr_strv {
	const char **v; /* v[n] is NULL */
	size_t n;
};

SPR_HIDDEN void spr_wire_writer(struct spr_wire *w, spr_buf *out);
SPR_HIDDEN void spr_wire_reader(struct spr_wire *w, const void *data, size_t len,
				struct spr_arena *arena);
/* Marks the input malformed (first reason wins). */
SPR_HIDDEN void spr_wire_fail(struct spr_wire *w, const char *why);
/* Reading: everything was used (trailing bytes are malformed input). */
SPR_HIDDEN bool spr_wire_done(struct spr_wire *w);

SPR_HIDDEN void spr_wire_u8(struct spr_wire *w, uint8_t *v);
SPR_HIDDEN void spr_wire_bool(struct spr_wire *w, bool *v);
SPR_HIDDEN void spr_wire_u32(struct spr_wire *w, uint32_t *v);
SPR_HIDDEN void spr_wire_i32(struct spr_wire *w, int32_t *v);
SPR_HIDDEN void spr_wire_u64(struct spr_wire *w, uint64_t *v);
SPR_HIDDEN void spr_wire_i64(struct spr_wire *w, int64_t *v);
SPR_HIDDEN void spr_wire_double(struct spr_wire *w, double *v);
/* An enum stored as a byte; reading refuses values >= limit. */
SPR_HIDDEN void spr_wire_enum(struct spr_wire *w, int *v, int limit);
/* A count of at most max (array lengths). */
SPR_HIDDEN void spr_wire_count(struct spr_wire *w, size_t *n, size_t max);
/* A string without NUL bytes, or NULL. */
SPR_HIDDEN void spr_wire_str(struct spr_wire *w, const char **s);
/* A string into a fixed buffer (cut to fit when writing). */
SPR_HIDDEN void spr_wire_text(struct spr_wire *w, char *buf, size_t size);
/* Opaque bytes (len 0: none). */
SPR_HIDDEN void spr_wire_bytes(struct spr_wire *w, const void **data, size_t *len);
SPR_HIDDEN void spr_wire_strv(struct spr_wire *w, struct spr_strv *v, size_t max);

#endif
