/* libFuzzer target for the TOML reader: no crash, sound spans, and the tree
 * prints as JSON that the JSON reader takes back unchanged. */
#include <stdint.h>
#include <stdlib.h>

#include "json.h"
#include "policy/toml.h"

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

static void check_spans(const cJSON *node, size_t len)
{
	for (; node; node = node->next) {
		size_t start, end;
		check(spr_json_span(node, &start, &end));
		check(start <= end && end <= len);
		if (cJSON_IsRaw(node))
			check(spr_json_is_number(node));
		check_spans(node->child, len);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	cJSON *tree = NULL;
	spr_error *err = NULL;
	if (spr_toml_parse(text, size, "fuzz.toml", &tree, &err) < 0) {
		check(err && !strncmp(err->message, "fuzz.toml:", 10) && !tree);
		spr_error_free(err);
		return 0;
	}
	check(cJSON_IsObject(tree));
	check_spans(tree, size);

	char *printed = spr_json_print(tree);
	check(printed != NULL);
	size_t len = strlen(printed);
	cJSON *again = NULL;
	check(spr_json_parse(printed, len, SPR_JSON_ALLOW_NONFINITE, "printed", &again, &err) == 0);
	check(same_tree(tree, again));
	cJSON_Delete(again);

	spr_buf pretty = SPR_BUF_INIT;
	spr_json_pretty(&pretty, printed, len);
	check(!pretty.oom);
	check(spr_json_validate(pretty.data, pretty.len, SPR_JSON_ALLOW_NONFINITE, "pretty", &err) == 0);
	spr_buf_free(&pretty);

	free(printed);
	cJSON_Delete(tree);
	return 0;
}
