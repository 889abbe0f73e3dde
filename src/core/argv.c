#include "argv.h"

#include <stdarg.h>

static void take(struct spr_argv *b, char *s)
{
	if (!s || b->failed) {
		free(s);
		b->failed = true;
		return;
	}
	if (b->len + 2 > b->cap) {
		size_t cap = b->cap ? 2 * b->cap : 64;
		char **v = realloc(b->v, cap * sizeof(*v));
		if (!v) {
			free(s);
			b->failed = true;
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->len++] = s;
	b->v[b->len] = NULL;
}

void spr_argv_add(struct spr_argv *b, const char *s)
{
	take(b, strdup(s));
}

void spr_argv_addf(struct spr_argv *b, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	take(b, s);
}

void spr_argv_free_vector(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

char **spr_argv_finish(struct spr_argv *b)
{
	if (!b->failed)
		return b->v;
	for (size_t i = 0; i < b->len; i++)
		free(b->v[i]);
	free(b->v);
	*b = (struct spr_argv){0};
	return NULL;
}
