#include "arena.h"

#include <stdarg.h>
#include <stdint.h>

#define BLOCK_SIZE 8192

struct spr_arena_block {
	struct spr_arena_block *next;
	size_t used, size;
	max_align_t data[];
};

void *spr_arena_alloc(struct spr_arena *a, size_t n)
{
	size_t align = _Alignof(max_align_t);
	n = (n + align - 1) & ~(align - 1);
	struct spr_arena_block *b = a->head;
	if (!b || b->size - b->used < n) {
		/* Large requests get a block of their own. */
		size_t size = n > BLOCK_SIZE / 2 ? n : BLOCK_SIZE;
		b = malloc(sizeof(*b) + size);
		if (!b) {
			a->oom = true;
			return NULL;
		}
		*b = (struct spr_arena_block){.size = size};
		/* A dedicated block goes behind the current one, which keeps
		 * its free space for the small allocations to come. */
		if (size > BLOCK_SIZE && a->head) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

char *spr_arena_strndup(struct spr_arena *a, const char *s, size_t n)
{
	char *copy = spr_arena_alloc(a, n + 1);
	if (copy)
		memcpy(copy, s, n);
	return copy;
}

char *spr_arena_strdup(struct spr_arena *a, const char *s)
{
	return s ? spr_arena_strndup(a, s, strlen(s)) : NULL;
}

char *spr_arena_printf(struct spr_arena *a, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	char *s = n < 0 ? NULL : spr_arena_alloc(a, (size_t)n + 1);
	if (!s)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

void spr_arena_free(struct spr_arena *a)
{
	while (a->head) {
		struct spr_arena_block *next = a->head->next;
		free(a->head);
		a->head = next;
	}
	a->oom = false;
}
