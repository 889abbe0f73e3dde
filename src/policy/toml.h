/* A strict reader for the TOML subset a policy file needs, producing the
 * same kind of tree as spr_json_parse() (see src/core/json.h): tables are
 * cJSON objects, numbers are cJSON_Raw with exact text, every node has a
 * source span, so errors found later (policy validation) can still name
 * file:line:col.
 *
 * Supported (TOML 1.0): comments; bare, quoted and dotted keys; basic and
 * literal strings, single- and multi-line, with all escapes; integers
 * (decimal, 0x, 0o, 0b, underscores, sign); floats (fraction, exponent,
 * underscores, inf, nan); booleans; arrays (multi-line, trailing comma,
 * mixed types); inline tables; [table] headers incl. dotted names.
 * Refused with a clear error: offset date-times, local dates/times
 * ("dates and times are not supported in policy files"), arrays of tables
 * [[x]], duplicate keys, redefined tables, keys redefined by dotted keys,
 * NUL characters in strings, ill-formed UTF-8, integers outside int64.
 *
 * Numbers in the tree: integers as their decimal text ("0x10" -> "16");
 * floats as the shortest text that reads back to the same double, "inf"
 * as Infinity and "nan" as NaN (valuedouble holds the value).
 */
#ifndef SPR_TOML_H
#define SPR_TOML_H

#include <cJSON.h>

#include "error.h"

/* Errors: "<source>:<line>:<col>: <what>" with SPR_LAYER_POLICY. */
SPR_HIDDEN int spr_toml_parse(const char *text, size_t len, const char *source, cJSON **out,
			      spr_error **err);

#endif
