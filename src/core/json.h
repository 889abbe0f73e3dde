/* JSON for spr: a strict reader that builds cJSON trees without losing
 * anything, a string writer that escapes explicit-length byte strings, and
 * a pretty printer.
 *
 * Why not cJSON_Parse: cJSON stores numbers as doubles (2**60 comes back as
 * 1.152921504606847e+18, an int turned float), stops strings at NUL and
 * reports no line/column. Trees from spr_json_parse() (and spr_toml_parse())
 * follow these rules instead:
 *  - every number is a cJSON_Raw node whose valuestring is the exact
 *    literal (integers keep all digits) and whose valuedouble is its value;
 *    use spr_json_number()/spr_json_integer() to read them;
 *  - every node records where it came from (byte offsets into the source)
 *    in fields cJSON leaves unused for it; read them with spr_json_span().
 *    Trees built by hand have no spans (spr_json_span() returns false).
 */
#ifndef SPR_JSON_H
#define SPR_JSON_H

#include <cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "error.h"

enum spr_json_flags {
	/* \u0000 in strings is accepted (the tree's C string stops there; use
	 * the span + spr_json_decode_string() to get every byte). Without it,
	 * \u0000 is an error. */
	SPR_JSON_ALLOW_NUL = 1 << 0,
	/* A lone surrogate escape (\ud800 without its pair) decodes to U+FFFD
	 * instead of being an error. */
	SPR_JSON_LONE_SURROGATE_FFFD = 1 << 1,
	/* NaN, Infinity, -Infinity literals (as Python's json writes them). */
	SPR_JSON_ALLOW_NONFINITE = 1 << 2,
};

#define SPR_JSON_MAX_DEPTH 512

/* Parses exactly one JSON value (surrounding whitespace allowed) from
 * text[0..len). Strict RFC 8259: no comments, no trailing commas, no
 * single quotes, no leading zeros, no raw control characters in strings,
 * input must be valid UTF-8, duplicate object keys are an error, nesting
 * deeper than SPR_JSON_MAX_DEPTH is an error. On failure the message is
 * "<source>:<line>:<col>: <what was expected/found>" (SPR_LAYER_REQUEST
 * unless the caller re-labels it). */
SPR_HIDDEN int spr_json_parse(const char *text, size_t len, int flags, const char *source,
			      cJSON **out, spr_error **err);
/* Same checks, no tree (cheap validation of text forwarded verbatim). */
SPR_HIDDEN int spr_json_validate(const char *text, size_t len, int flags, const char *source,
				 spr_error **err);

/* Source span [*start, *end) of a node from spr_json_parse/spr_toml_parse:
 * for object members the span of the value. False for hand-built nodes. */
SPR_HIDDEN bool spr_json_span(const cJSON *node, size_t *start, size_t *end);
/* Records a span on a node (used by the readers). */
SPR_HIDDEN void spr_json_set_span(cJSON *node, size_t start, size_t end);
/* 1-based line and column (in characters, counting a tab as one) of a byte
 * offset. */
SPR_HIDDEN void spr_json_line_col(const char *text, size_t len, size_t offset, unsigned *line,
				  unsigned *col);

/* Decodes a JSON string literal text[0..len) (with its quotes) into a
 * malloc'd buffer, NUL-terminated, every byte kept (*out_len excludes the
 * terminator). */
SPR_HIDDEN int spr_json_decode_string(const char *text, size_t len, int flags, char **out,
				      size_t *out_len, spr_error **err);

/* Numbers: true for cJSON_Raw numbers from the readers and for plain
 * cJSON_Number nodes. */
SPR_HIDDEN bool spr_json_is_number(const cJSON *node);
SPR_HIDDEN double spr_json_number(const cJSON *node);
/* The shortest text that reads back as v, in C's locale, the way
 * Python's repr() writes a float but without a forced ".0": 100, 0.1,
 * 1e+16, 1.5e-07; NaN and Infinity as the words JSON readers take. The
 * one number formatter of spr (results, messages, command lines). */
SPR_HIDDEN void spr_format_double(char *buf, size_t size, double v);
/* True when the node is an integer literal (no fraction/exponent) that fits
 * int64_t; stores it in *out. */
SPR_HIDDEN bool spr_json_integer(const cJSON *node, int64_t *out);
/* A number node in the readers' form (Raw with exact text). */
SPR_HIDDEN cJSON *spr_json_new_integer(int64_t v);
SPR_HIDDEN cJSON *spr_json_new_double(double v);

/* Appends s[0..len) as a JSON string literal (with quotes). Control
 * characters, quote and backslash are escaped; ill-formed UTF-8 is written
 * as U+FFFD; everything else is copied as UTF-8. */
SPR_HIDDEN void spr_json_write_string(spr_buf *out, const char *s, size_t len);
/* Re-indents valid compact or formatted JSON text with 2 spaces per level,
 * "key": value, one member per line; empty {} and [] stay on one line. */
SPR_HIDDEN void spr_json_pretty(spr_buf *out, const char *json, size_t len);
/* cJSON_PrintUnformatted into a buffer (Raw nodes printed verbatim). */
SPR_HIDDEN char *spr_json_print(const cJSON *node);

static inline void spr_cjson_freep(cJSON **j)
{
	cJSON_Delete(*j);
	*j = NULL;
}
#define _cleanup_cjson_ SPR_CLEANUP(spr_cjson_freep)

#endif
