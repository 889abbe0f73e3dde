/* libFuzzer target for what spr-sandbox and libspr read from each other
 * (src/protocol): the sandbox plan and the messages. The first byte picks
 * the decoder. Whatever decodes must encode again to a fixed point (the
 * same bytes when decoded and encoded once more), and nothing may read
 * out of bounds (ASan) or leave the arena half-freed. */
#include <stdint.h>
#include <stdlib.h>

#include "protocol/message.h"
#include "protocol/plan.h"

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void plan_fixed_point(const uint8_t *data, size_t size)
{
	struct spr_arena arena = SPR_ARENA_INIT;
	struct spr_sandbox_plan *p = malloc(sizeof(*p)), *q = malloc(sizeof(*q));
	spr_error *err = NULL;
	if (p && q && spr_plan_decode(data, size, p, &arena, &err) == 0) {
		spr_buf once = SPR_BUF_INIT, twice = SPR_BUF_INIT;
		check(spr_plan_encode(p, &once, NULL) == 0);
		check(spr_plan_decode(once.data, once.len, q, &arena, NULL) == 0);
		check(spr_plan_encode(q, &twice, NULL) == 0);
		check(once.len == twice.len && !memcmp(once.data, twice.data, once.len));
		spr_buf_free(&once);
		spr_buf_free(&twice);
	}
	spr_error_free(err);
	spr_arena_free(&arena);
	free(p);
	free(q);
}

static void message_fixed_point(const uint8_t *data, size_t size)
{
	struct spr_msg m, again;
	if (spr_msg_decode(data, size, &m, NULL) < 0)
		return;
	spr_buf b = SPR_BUF_INIT;
	check(spr_msg_encode(&m, &b) == 0);
	check(spr_msg_decode(b.data + 4, b.len - 4, &again, NULL) == 0);
	spr_buf c = SPR_BUF_INIT;
	check(spr_msg_encode(&again, &c) == 0);
	check(b.len == c.len && !memcmp(b.data, c.data, b.len));
	spr_buf_free(&b);
	spr_buf_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	if (data[0] & 1)
		plan_fixed_point(data + 1, size - 1);
	else
		message_fixed_point(data + 1, size - 1);
	return 0;
}
