#include "buf.h"

#include <stdarg.h>
#include <stdint.h>

bool spr_buf_reserve(spr_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (extra > SIZE_MAX - b->len - 1) {
		b->oom = true;
		return false;
	}
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	char *p = realloc(b->data, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	b->data[b->len] = '\0';
	return true;
}

void spr_buf_append(spr_buf *b, const void *data, size_t len)
{
	if (!spr_buf_reserve(b, len))
		return;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void spr_buf_puts(spr_buf *b, const char *s) { spr_buf_append(b, s, strlen(s)); }

void spr_buf_putc(spr_buf *b, char c) { spr_buf_append(b, &c, 1); }

void spr_buf_printf(spr_buf *b, const char *fmt, ...)
{
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
	} else if (spr_buf_reserve(b, (size_t)n)) {
		vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
		b->len += (size_t)n;
	}
	va_end(ap2);
}

char *spr_buf_steal(spr_buf *b, size_t *len)
{
	char *data = NULL;
	if (!b->oom) {
		if (!b->data)
			spr_buf_reserve(b, 0);
		data = b->oom ? NULL : b->data;
		if (len)
			*len = b->len;
	}
	if (!data)
		free(b->data);
	*b = (spr_buf)SPR_BUF_INIT;
	return data;
}

void spr_buf_reset(spr_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

void spr_buf_free(spr_buf *b)
{
	free(b->data);
	*b = (spr_buf)SPR_BUF_INIT;
}
