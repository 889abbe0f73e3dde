#include "protocol/wire.h"

#define NULL_STRING UINT32_MAX

void spr_wire_writer(struct spr_wire *w, spr_buf *out)
{
	*w = (struct spr_wire){.out = out};
}

void spr_wire_reader(struct spr_wire *w, const void *data, size_t len, struct spr_arena *arena)
{
	*w = (struct spr_wire){.reading = true, .in = data, .left = len, .arena = arena};
}

void spr_wire_fail(struct spr_wire *w, const char *why)
{
	if (!w->bad)
		w->why = why;
	w->bad = true;
}

bool spr_wire_done(struct spr_wire *w)
{
	if (w->reading && !w->bad && w->left)
		spr_wire_fail(w, "trailing bytes");
	if (!w->reading && w->out->oom)
		spr_wire_fail(w, "out of memory");
	return !w->bad;
}

/* Copies n bytes between the stream and p, in the direction of w. When
 * writing, nothing is ever stored through a visitor's pointer: the struct
 * being encoded may point into read-only memory. */
static void raw(struct spr_wire *w, void *p, size_t n)
{
	if (w->bad)
		return;
	if (!w->reading) {
		spr_buf_append(w->out, p, n);
		return;
	}
	if (w->left < n) {
		spr_wire_fail(w, "truncated");
		memset(p, 0, n);
		return;
	}
	memcpy(p, w->in, n);
	w->in += n;
	w->left -= n;
}

void spr_wire_u8(struct spr_wire *w, uint8_t *v) { raw(w, v, sizeof(*v)); }
void spr_wire_u32(struct spr_wire *w, uint32_t *v) { raw(w, v, sizeof(*v)); }
void spr_wire_i32(struct spr_wire *w, int32_t *v) { raw(w, v, sizeof(*v)); }
void spr_wire_u64(struct spr_wire *w, uint64_t *v) { raw(w, v, sizeof(*v)); }
void spr_wire_i64(struct spr_wire *w, int64_t *v) { raw(w, v, sizeof(*v)); }
void spr_wire_double(struct spr_wire *w, double *v) { raw(w, v, sizeof(*v)); }

void spr_wire_bool(struct spr_wire *w, bool *v)
{
	uint8_t b = *v ? 1 : 0;
	raw(w, &b, 1);
	if (!w->reading)
		return;
	if (b > 1)
		spr_wire_fail(w, "bad boolean");
	*v = b == 1;
}

void spr_wire_enum(struct spr_wire *w, int *v, int limit)
{
	uint8_t b = (uint8_t)*v;
	if (!w->reading && (*v < 0 || *v >= limit || *v > UINT8_MAX))
		spr_wire_fail(w, "enum out of range");
	raw(w, &b, 1);
	if (!w->reading)
		return;
	if (b >= limit)
		spr_wire_fail(w, "enum out of range");
	*v = w->bad ? 0 : b;
}

void spr_wire_count(struct spr_wire *w, size_t *n, size_t max)
{
	uint32_t c = (uint32_t)*n;
	if (!w->reading && *n > max)
		spr_wire_fail(w, "too many entries");
	raw(w, &c, sizeof(c));
	if (!w->reading)
		return;
	if (c > max)
		spr_wire_fail(w, "too many entries");
	*n = w->bad ? 0 : c;
}

/* A length, then the bytes; reading points *data at an arena copy with a
 * NUL after it. */
static void blob(struct spr_wire *w, const void **data, size_t *len, bool is_string)
{
	uint32_t n = *data ? (uint32_t)*len : NULL_STRING;
	if (!w->reading && *data && *len >= NULL_STRING)
		spr_wire_fail(w, "string too long");
	raw(w, &n, sizeof(n));
	if (w->bad) {
		if (w->reading)
			*data = NULL, *len = 0;
		return;
	}
	if (!w->reading) {
		if (*data)
			spr_buf_append(w->out, *data, *len);
		return;
	}
	*data = NULL;
	*len = 0;
	if (n == NULL_STRING)
		return;
	if (w->left < n) {
		spr_wire_fail(w, "truncated");
		return;
	}
	if (is_string && memchr(w->in, '\0', n)) {
		spr_wire_fail(w, "NUL byte in a string");
		return;
	}
	char *copy = spr_arena_strndup(w->arena, (const char *)w->in, n);
	if (!copy) {
		spr_wire_fail(w, "out of memory");
		return;
	}
	*data = copy;
	*len = n;
	w->in += n;
	w->left -= n;
}

void spr_wire_str(struct spr_wire *w, const char **s)
{
	const void *data = *s;
	size_t len = *s ? strlen(*s) : 0;
	blob(w, &data, &len, true);
	if (w->reading)
		*s = data;
}

void spr_wire_text(struct spr_wire *w, char *buf, size_t size)
{
	if (!w->reading) {
		const void *data = buf;
		size_t len = strnlen(buf, size - 1);
		blob(w, &data, &len, true);
		return;
	}
	const void *data = NULL;
	size_t len = 0;
	blob(w, &data, &len, true);
	if (len >= size)
		spr_wire_fail(w, "text too long");
	snprintf(buf, size, "%s", data && !w->bad ? (const char *)data : "");
}

void spr_wire_bytes(struct spr_wire *w, const void **data, size_t *len)
{
	blob(w, data, len, false);
}

void spr_wire_strv(struct spr_wire *w, struct spr_strv *v, size_t max)
{
	size_t n = v->n;
	spr_wire_count(w, &n, max);
	if (w->reading) {
		v->n = 0;
		v->v = w->bad ? NULL : spr_arena_alloc(w->arena, (n + 1) * sizeof(*v->v));
		if (!v->v) {
			spr_wire_fail(w, "out of memory");
			return;
		}
	}
	for (size_t i = 0; i < n && !w->bad; i++) {
		spr_wire_str(w, &v->v[i]);
		if (w->reading && !v->v[i])
			spr_wire_fail(w, "NULL in a string list");
	}
	if (w->reading && !w->bad)
		v->n = n;
}
