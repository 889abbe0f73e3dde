/* libFuzzer target for the JSON reader and writers: every flag
 * combination, parse and validate agree, spans are sound, and what the
 * printers write reads back to the same tree. */
#include <stdint.h>
#include <stdlib.h>

#include "json.h"
#include "utf8.h"

#define ALL_FLAGS (SPR_JSON_ALLOW_NUL | SPR_JSON_LONE_SURROGATE_FFFD | SPR_JSON_ALLOW_NONFINITE)

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Same shape, keys, types and texts, in the same order (cJSON_Compare is
 * exponential in the depth of nested objects). */
static bool same_tree(const cJSON *a, const cJSON *b)
{
	for (; a && b; a = a->next, b = b->next) {
		if ((a->type & 0xFF) != (b->type & 0xFF))
			return false;
		if ((a->string || b->string) &&
		    (!a->string || !b->string || strcmp(a->string, b->string)))
			return false;
		if ((cJSON_IsString(a) || cJSON_IsRaw(a)) && strcmp(a->valuestring, b->valuestring))
			return false;
		if (!same_tree(a->child, b->child))
			return false;
	}
	return !a && !b;
}

/* Spans lie inside the text and hold the literal of their node. */
static void check_spans(const cJSON *node, const char *text, size_t len, int flags)
{
	for (; node; node = node->next) {
		size_t start, end;
		check(spr_json_span(node, &start, &end));
		check(start <= end && end <= len);
		if (cJSON_IsRaw(node)) {
			check(end - start == strlen(node->valuestring));
			check(!memcmp(text + start, node->valuestring, end - start));
			check(spr_json_is_number(node));
		} else if (cJSON_IsString(node)) {
			char *bytes = NULL;
			size_t n = 0;
			spr_error *err = NULL;
			check(spr_json_decode_string(text + start, end - start, flags, &bytes, &n,
						     &err) == 0);
			check(!strcmp(bytes, node->valuestring));
			free(bytes);
		}
		check_spans(node->child, text, len, flags);
	}
}

static cJSON *reparse(const char *text, size_t len, int flags)
{
	cJSON *tree = NULL;
	spr_error *err = NULL;
	if (spr_json_parse(text, len, flags, "again", &tree, &err) < 0)
		spr_error_free(err);
	return tree;
}

static void check_printers(const cJSON *tree, int flags)
{
	char *printed = spr_json_print(tree);
	check(printed != NULL);
	size_t len = strlen(printed);
	/* NUL cuts strings and keys short, which may make keys collide. */
	bool must_parse = !(flags & SPR_JSON_ALLOW_NUL);
	cJSON *again = reparse(printed, len, flags);
	check(again || !must_parse);
	if (again) {
		check(same_tree(tree, again));
		char *twice = spr_json_print(again);
		check(twice && !strcmp(printed, twice));
		free(twice);
		cJSON_Delete(again);
	}

	spr_buf pretty = SPR_BUF_INIT;
	spr_json_pretty(&pretty, printed, len);
	check(!pretty.oom);
	cJSON *from_pretty = reparse(pretty.data ? pretty.data : "", pretty.len, flags);
	check(from_pretty || !must_parse);
	if (from_pretty)
		check(same_tree(tree, from_pretty));
	cJSON_Delete(from_pretty);
	spr_buf_free(&pretty);
	free(printed);
}

/* Any bytes written as a string literal read back as the same bytes, or
 * as U+FFFD-sanitized ones. */
static void check_write_string(const char *data, size_t size)
{
	spr_buf lit = SPR_BUF_INIT;
	spr_json_write_string(&lit, data, size);
	check(!lit.oom);
	char *back = NULL;
	size_t n = 0;
	spr_error *err = NULL;
	check(spr_json_decode_string(lit.data, lit.len, SPR_JSON_ALLOW_NUL, &back, &n, &err) == 0);
	if (spr_utf8_valid(data, size, NULL)) {
		check(n == size && !memcmp(back, data, size));
	} else {
		spr_buf clean = SPR_BUF_INIT;
		spr_utf8_sanitize(&clean, data, size);
		check(n == clean.len && !memcmp(back, clean.data, n));
		spr_buf_free(&clean);
	}
	free(back);
	spr_buf_free(&lit);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	for (int flags = 0; flags <= ALL_FLAGS; flags++) {
		cJSON *tree = NULL;
		spr_error *err = NULL, *verr = NULL;
		int rc = spr_json_parse(text, size, flags, "fuzz", &tree, &err);
		int vrc = spr_json_validate(text, size, flags, "fuzz", &verr);
		check(rc == vrc);
		if (rc < 0) {
			check(err && verr && !strcmp(err->message, verr->message));
			check(!strncmp(err->message, "fuzz:", 5));
			check(tree == NULL);
			spr_error_free(err);
			spr_error_free(verr);
			continue;
		}
		check_spans(tree, text, size, flags);
		check_printers(tree, flags);
		cJSON_Delete(tree);
	}
	check_write_string(text, size);

	/* Garbage in, no crash out. */
	spr_buf pretty = SPR_BUF_INIT;
	spr_json_pretty(&pretty, text, size);
	spr_buf_free(&pretty);
	return 0;
}
