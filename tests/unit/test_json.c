/* The JSON reader, the string writer and the pretty printer. */
#include <math.h>

#include "json.h"
#include "unit.h"

static cJSON *parse_ok(const char *text, int flags)
{
	spr_error *err = NULL;
	cJSON *tree = NULL;
	int rc = spr_json_parse(text, strlen(text), flags, "input", &tree, &err);
	ck_assert_ok(rc, err);
	ck_assert_ptr_nonnull(tree);
	/* Validation agrees with parsing. */
	ck_assert_int_eq(spr_json_validate(text, strlen(text), flags, "input", &err), 0);
	return tree;
}

/* Parsing text[0..len) fails with exactly msg, and validating says the
 * same. */
static void expect_error_len(const char *text, size_t len, int flags, const char *msg)
{
	spr_error *err = NULL;
	cJSON *tree = NULL;
	ck_assert_int_lt(spr_json_parse(text, len, flags, "input", &tree, &err), 0);
	ck_assert_ptr_null(tree);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err->message, msg);
	ck_assert_int_eq(err->layer, SPR_LAYER_REQUEST);
	ck_assert_int_eq(err->errnum, 0);
	spr_error_free(err);
	err = NULL;
	ck_assert_int_lt(spr_json_validate(text, len, flags, "input", &err), 0);
	ck_assert_str_eq(err->message, msg);
	spr_error_free(err);
}

static void expect_error(const char *text, int flags, const char *msg)
{
	expect_error_len(text, strlen(text), flags, msg);
}

static char *print(const cJSON *tree)
{
	char *s = spr_json_print(tree);
	ck_assert_ptr_nonnull(s);
	return s;
}

/* ---- values -------------------------------------------------------------- */

START_TEST(test_scalars)
{
	cJSON *t = parse_ok(" \t\r\n[true, false, null, \"s\", 0, -1.5e+3, {}, []] \n", 0);
	ck_assert(cJSON_IsArray(t));
	ck_assert_int_eq(cJSON_GetArraySize(t), 8);
	ck_assert(cJSON_IsTrue(cJSON_GetArrayItem(t, 0)));
	ck_assert(cJSON_IsFalse(cJSON_GetArrayItem(t, 1)));
	ck_assert(cJSON_IsNull(cJSON_GetArrayItem(t, 2)));
	ck_assert_str_eq(cJSON_GetArrayItem(t, 3)->valuestring, "s");
	cJSON *n = cJSON_GetArrayItem(t, 5);
	ck_assert(cJSON_IsRaw(n));
	ck_assert_str_eq(n->valuestring, "-1.5e+3");
	ck_assert(spr_json_is_number(n));
	ck_assert(spr_json_number(n) == -1500.0);
	ck_assert(n->valuedouble == -1500.0);
	ck_assert(cJSON_IsObject(cJSON_GetArrayItem(t, 6)));
	ck_assert(cJSON_IsArray(cJSON_GetArrayItem(t, 7)));
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_big_integers_keep_their_digits)
{
	cJSON *t = parse_ok("{\"big\": 12345678901234567890123, \"p60\": 1152921504606846976,"
			    " \"max\": 9223372036854775807, \"min\": -9223372036854775808,"
			    " \"over\": 9223372036854775808, \"f\": 1.0, \"e\": 1e2, \"z\": -0}",
			    0);
	int64_t v = 0;
	cJSON *big = cJSON_GetObjectItem(t, "big");
	ck_assert(cJSON_IsRaw(big));
	ck_assert_str_eq(big->valuestring, "12345678901234567890123");
	ck_assert(!spr_json_integer(big, &v));
	ck_assert(fabs(spr_json_number(big) - 1.2345678901234568e22) < 1e7);
	ck_assert(spr_json_integer(cJSON_GetObjectItem(t, "p60"), &v));
	ck_assert(v == (int64_t)1 << 60);
	ck_assert(spr_json_integer(cJSON_GetObjectItem(t, "max"), &v));
	ck_assert(v == INT64_MAX);
	ck_assert(spr_json_integer(cJSON_GetObjectItem(t, "min"), &v));
	ck_assert(v == INT64_MIN);
	ck_assert(!spr_json_integer(cJSON_GetObjectItem(t, "over"), &v));
	ck_assert(!spr_json_integer(cJSON_GetObjectItem(t, "f"), &v));
	ck_assert(!spr_json_integer(cJSON_GetObjectItem(t, "e"), &v));
	ck_assert(spr_json_integer(cJSON_GetObjectItem(t, "z"), &v));
	ck_assert(v == 0);

	/* Printing reproduces every number as written. */
	char *s = print(t);
	ck_assert_str_eq(s, "{\"big\":12345678901234567890123,\"p60\":1152921504606846976,"
			    "\"max\":9223372036854775807,\"min\":-9223372036854775808,"
			    "\"over\":9223372036854775808,\"f\":1.0,\"e\":1e2,\"z\":-0}");
	free(s);
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_print_round_trip)
{
	const char *doc = "{\"a\":[1,-0.0,1E+400,0.1,\"x\\u0001y\",true,null],"
			  "\"\":{\"k\":\"\xc3\xa9\xf0\x9f\x98\x80\"},\"n\":123456789012345678901}";
	cJSON *t = parse_ok(doc, 0);
	char *s = print(t);
	ck_assert_str_eq(s, doc);
	cJSON *again = parse_ok(s, 0);
	ck_assert(cJSON_Compare(t, again, true));
	free(s);
	cJSON_Delete(again);
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_escapes)
{
	cJSON *t = parse_ok("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t "
			    "\\u0041\\u00e9\\u20AC\\ud83d\\ude00\"",
			    0);
	ck_assert_str_eq(t->valuestring, "\" \\ / \b \f \n \r \t A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	cJSON_Delete(t);
	/* Raw UTF-8 and DEL pass through. */
	t = parse_ok("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f\"", 0);
	ck_assert_str_eq(t->valuestring, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\x7f");
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_lone_surrogates)
{
	expect_error("[\"ab\\ud800\"]", 0,
		     "input:1:5: lone surrogate \\ud800 in a string (\\ud800-\\udbff must be followed "
		     "by \\udc00-\\udfff)");
	expect_error("\"\\udc00\"", 0,
		     "input:1:2: lone surrogate \\udc00 in a string (\\ud800-\\udbff must be followed "
		     "by \\udc00-\\udfff)");
	expect_error("\"\\ud800\\u0041\"", 0,
		     "input:1:2: lone surrogate \\ud800 in a string (\\ud800-\\udbff must be followed "
		     "by \\udc00-\\udfff)");

	cJSON *t = parse_ok("[\"a\\ud800\", \"\\udc00b\", \"\\ud800\\u0041\", \"\\ud800\\ud800\\udc00\"]",
			    SPR_JSON_LONE_SURROGATE_FFFD);
	ck_assert_str_eq(cJSON_GetArrayItem(t, 0)->valuestring, "a\xef\xbf\xbd");
	ck_assert_str_eq(cJSON_GetArrayItem(t, 1)->valuestring, "\xef\xbf\xbd"
								"b");
	ck_assert_str_eq(cJSON_GetArrayItem(t, 2)->valuestring, "\xef\xbf\xbd"
								"A");
	ck_assert_str_eq(cJSON_GetArrayItem(t, 3)->valuestring, "\xef\xbf\xbd\xf0\x90\x80\x80");
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_nul_in_strings)
{
	const char *doc = "{\"s\": \"a\\u0000b\"}";
	expect_error(doc, 0, "input:1:9: \\u0000 (NUL) is not allowed in strings");

	cJSON *t = parse_ok(doc, SPR_JSON_ALLOW_NUL);
	cJSON *s = cJSON_GetObjectItem(t, "s");
	ck_assert_str_eq(s->valuestring, "a");
	size_t start, end;
	ck_assert(spr_json_span(s, &start, &end));
	char *bytes = NULL;
	size_t n = 0;
	spr_error *err = NULL;
	ck_assert_ok(spr_json_decode_string(doc + start, end - start, SPR_JSON_ALLOW_NUL, &bytes, &n,
					    &err),
		     err);
	ck_assert_uint_eq(n, 3);
	ck_assert_mem_eq(bytes, "a\0b", 4);
	free(bytes);
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_nonfinite)
{
	expect_error("NaN", 0, "input:1:1: expected a JSON value, found 'NaN' (NaN is not valid JSON)");
	expect_error("[-Infinity]", 0, "input:1:3: expected a digit after '-', found 'I'");
	cJSON *t = parse_ok("[NaN, Infinity, -Infinity]", SPR_JSON_ALLOW_NONFINITE);
	ck_assert_str_eq(cJSON_GetArrayItem(t, 0)->valuestring, "NaN");
	ck_assert_str_eq(cJSON_GetArrayItem(t, 1)->valuestring, "Infinity");
	ck_assert_str_eq(cJSON_GetArrayItem(t, 2)->valuestring, "-Infinity");
	ck_assert(isnan(spr_json_number(cJSON_GetArrayItem(t, 0))));
	ck_assert(spr_json_number(cJSON_GetArrayItem(t, 1)) == INFINITY);
	ck_assert(spr_json_number(cJSON_GetArrayItem(t, 2)) == -INFINITY);
	int64_t v;
	ck_assert(!spr_json_integer(cJSON_GetArrayItem(t, 1), &v));
	size_t start, end;
	ck_assert(spr_json_span(cJSON_GetArrayItem(t, 2), &start, &end));
	ck_assert_uint_eq(start, 16);
	ck_assert_uint_eq(end, 25);
	cJSON_Delete(t);
	expect_error("[Infinit]", SPR_JSON_ALLOW_NONFINITE,
		     "input:1:2: expected a JSON value, found 'Infinit'");
	expect_error("-Inf", SPR_JSON_ALLOW_NONFINITE,
		     "input:1:5: unexpected end of input (expected 'Infinity')");
}
END_TEST

START_TEST(test_not_nul_terminated)
{
	/* Only text[0..len) is read. */
	char buf[] = {'[', '1', '2', ']', '9', '9'};
	spr_error *err = NULL;
	cJSON *t = NULL;
	ck_assert_ok(spr_json_parse(buf, 4, 0, "input", &t, &err), err);
	ck_assert_str_eq(cJSON_GetArrayItem(t, 0)->valuestring, "12");
	cJSON_Delete(t);
	char num[] = {'1', '2', '3'};
	ck_assert_ok(spr_json_parse(num, 2, 0, "input", &t, &err), err);
	ck_assert_str_eq(t->valuestring, "12");
	cJSON_Delete(t);
	char str[] = {'"', 'a', 'b', '"'};
	expect_error_len(str, 3, 0,
			 "input:1:1: unterminated string (end of input before the closing '\"')");
	char tru[] = {'t', 'r', 'u', 'e'};
	expect_error_len(tru, 3, 0, "input:1:4: unexpected end of input (expected 'true')");
	char esc[] = {'"', '\\', 'u', '0', '0', '4', '1', '"'};
	expect_error_len(esc, 5, 0,
			 "input:1:1: unterminated string (end of input before the closing '\"')");
}
END_TEST

/* ---- spans --------------------------------------------------------------- */

static void expect_at(const char *text, const cJSON *node, unsigned line, unsigned col,
		      const char *literal)
{
	size_t start, end;
	ck_assert(spr_json_span(node, &start, &end));
	unsigned l, c;
	spr_json_line_col(text, strlen(text), start, &l, &c);
	ck_assert_uint_eq(l, line);
	ck_assert_uint_eq(c, col);
	ck_assert_uint_eq(end - start, strlen(literal));
	ck_assert_mem_eq(text + start, literal, end - start);
}

START_TEST(test_spans)
{
	const char *doc = "{\n"
			  "  \"a\": [1, \"x\\\"y\",\n"
			  "\t{\"b\": -2.5e3}],\n"
			  "  \"\xc3\xa9\": {\"c\": null, \"d\": true}, \"e\": []\n"
			  "}";
	cJSON *t = parse_ok(doc, 0);
	expect_at(doc, t, 1, 1, doc);
	cJSON *a = cJSON_GetObjectItem(t, "a");
	expect_at(doc, a, 2, 8, "[1, \"x\\\"y\",\n\t{\"b\": -2.5e3}]");
	expect_at(doc, cJSON_GetArrayItem(a, 0), 2, 9, "1");
	expect_at(doc, cJSON_GetArrayItem(a, 1), 2, 12, "\"x\\\"y\"");
	cJSON *inner = cJSON_GetArrayItem(a, 2);
	expect_at(doc, inner, 3, 2, "{\"b\": -2.5e3}");
	expect_at(doc, cJSON_GetObjectItem(inner, "b"), 3, 8, "-2.5e3");
	cJSON *e_acute = cJSON_GetObjectItem(t, "\xc3\xa9");
	/* Columns count characters: the key is 3 characters, 4 bytes. */
	expect_at(doc, e_acute, 4, 8, "{\"c\": null, \"d\": true}");
	expect_at(doc, cJSON_GetObjectItem(e_acute, "c"), 4, 14, "null");
	expect_at(doc, cJSON_GetObjectItem(e_acute, "d"), 4, 25, "true");
	expect_at(doc, cJSON_GetObjectItem(t, "e"), 4, 37, "[]");

	/* Copies keep spans. */
	cJSON *copy = cJSON_Duplicate(t, true);
	expect_at(doc, cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(copy, "a"), 2), "b"),
		  3, 8, "-2.5e3");
	cJSON_Delete(copy);
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_hand_built_nodes_have_no_span)
{
	cJSON *nodes[] = {cJSON_CreateString("x"), cJSON_CreateNumber(42), cJSON_CreateObject(),
			  cJSON_CreateTrue(),	   cJSON_CreateRaw("1"),   spr_json_new_integer(7),
			  spr_json_new_double(0.5)};
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++) {
		size_t start = 99, end = 99;
		ck_assert(!spr_json_span(nodes[i], &start, &end));
		cJSON_Delete(nodes[i]);
	}
	/* set_span works on hand-built nodes, but never on cJSON_Number (its
	 * valueint is its value). */
	cJSON *s = cJSON_CreateString("x");
	spr_json_set_span(s, 10, 13);
	size_t start, end;
	ck_assert(spr_json_span(s, &start, &end));
	ck_assert_uint_eq(start, 10);
	ck_assert_uint_eq(end, 13);
	cJSON_Delete(s);
	cJSON *n = cJSON_CreateNumber(42);
	spr_json_set_span(n, 10, 12);
	ck_assert(!spr_json_span(n, &start, &end));
	ck_assert_int_eq(n->valueint, 42);
	cJSON_Delete(n);
	/* A Raw whose text differs from the source literal (TOML's 0x10). */
	cJSON *r = spr_json_new_integer(16);
	spr_json_set_span(r, 100, 104);
	ck_assert(spr_json_span(r, &start, &end));
	ck_assert_uint_eq(start, 100);
	ck_assert_uint_eq(end, 104);
	ck_assert(r->valuedouble == 16);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_line_col)
{
	const char *text = "ab\n\t\xc3\xa9x\n\ny";
	unsigned line, col;
	spr_json_line_col(text, strlen(text), 0, &line, &col);
	ck_assert_uint_eq(line, 1);
	ck_assert_uint_eq(col, 1);
	spr_json_line_col(text, strlen(text), 2, &line, &col);
	ck_assert_uint_eq(line, 1);
	ck_assert_uint_eq(col, 3);
	spr_json_line_col(text, strlen(text), 6, &line, &col); /* the x after tab and é */
	ck_assert_uint_eq(line, 2);
	ck_assert_uint_eq(col, 3);
	spr_json_line_col(text, strlen(text), 9, &line, &col);
	ck_assert_uint_eq(line, 4);
	ck_assert_uint_eq(col, 1);
	spr_json_line_col(text, strlen(text), 1000, &line, &col); /* clamped to the end */
	ck_assert_uint_eq(line, 4);
	ck_assert_uint_eq(col, 2);
}
END_TEST

/* ---- errors -------------------------------------------------------------- */

static const struct {
	const char *text, *msg;
} error_cases[] = {
	/* truncation */
	{"", "input:1:1: unexpected end of input (expected a JSON value)"},
	{"  \n ", "input:2:2: unexpected end of input (expected a JSON value)"},
	{"[", "input:1:2: unexpected end of input (expected a JSON value)"},
	{"[1", "input:1:3: unexpected end of input (expected ',' or ']' after an array element)"},
	{"{", "input:1:2: unexpected end of input (expected a string key)"},
	{"{\"a\"", "input:1:5: unexpected end of input (expected ':' after the object key)"},
	{"{\"a\":", "input:1:6: unexpected end of input (expected a JSON value)"},
	{"{\"a\":1", "input:1:7: unexpected end of input (expected ',' or '}' after an object member)"},
	{"\"abc", "input:1:1: unterminated string (end of input before the closing '\"')"},
	{"[\"a\\", "input:1:2: unterminated string (end of input before the closing '\"')"},
	{"fals", "input:1:5: unexpected end of input (expected 'false')"},
	/* structure */
	{"{\"code\": \"print\" x}",
	 "input:1:18: expected ',' or '}' after an object member, found 'x'"},
	{"[1 2]", "input:1:4: expected ',' or ']' after an array element, found '2'"},
	{"{\"a\" 1}", "input:1:6: expected ':' after the object key, found '1'"},
	{"{\"a\":1,}", "input:1:7: trailing comma before '}' is not allowed"},
	{"[1,\n ]", "input:1:3: trailing comma before ']' is not allowed"},
	{"[,1]", "input:1:2: expected a JSON value, found ','"},
	{"{,}", "input:1:2: expected a string key, found ','"},
	{"{a:1}", "input:1:2: expected a string key, found 'a' (keys must be in double quotes)"},
	{"{'a':1}", "input:1:2: expected a string key, found \"'\" (keys must be in double quotes)"},
	{"['a']", "input:1:2: expected a JSON value, found \"'\" (JSON strings use double quotes)"},
	{"[1]]", "input:1:4: expected end of input after the JSON value, found ']'"},
	{"1 2", "input:1:3: expected end of input after the JSON value, found '2'"},
	{"{} // c", "input:1:4: expected end of input after the JSON value, found '/'"},
	{"{\n  \"a\": 1,\n  \"b\": 2,\n  \"a\": 3\n}",
	 "input:4:3: duplicate key \"a\" (first defined at line 2, column 3)"},
	{"{\"\\u0061\": 1, \"a\": 2}",
	 "input:1:15: duplicate key \"a\" (first defined at line 1, column 2)"},
	/* words */
	{"True", "input:1:1: expected a JSON value, found 'True' (JSON spells it true)"},
	{"[None]", "input:1:2: expected a JSON value, found 'None' (JSON spells it null)"},
	{"trueish", "input:1:1: expected a JSON value, found 'trueish'"},
	{"undefined", "input:1:1: expected a JSON value, found 'undefined'"},
	{"nulll", "input:1:1: expected a JSON value, found 'nulll'"},
	{"@", "input:1:1: expected a JSON value, found '@'"},
	/* numbers */
	{"01", "input:1:1: numbers cannot have leading zeros"},
	{"[-012]", "input:1:2: numbers cannot have leading zeros"},
	{"+1", "input:1:1: expected a JSON value, found '+'"},
	{".5", "input:1:1: expected a JSON value, found '.'"},
	{"1.", "input:1:3: unexpected end of input (expected a digit after the decimal point)"},
	{"[1.e5]", "input:1:4: expected a digit after the decimal point, found 'e'"},
	{"1e", "input:1:3: unexpected end of input (expected a digit in the exponent)"},
	{"[1e+]", "input:1:5: expected a digit in the exponent, found ']'"},
	{"-", "input:1:2: unexpected end of input (expected a digit after '-')"},
	{"[- 1]", "input:1:3: expected a digit after '-', found ' '"},
	{"0x10", "input:1:2: expected end of input after the JSON value, found 'x'"},
	/* strings */
	{"\"\\x41\"",
	 "input:1:2: invalid escape '\\x' in a string (valid escapes: \\\" \\\\ \\/ \\b \\f \\n "
	 "\\r \\t \\uXXXX)"},
	{"\"\\\x01\"",
	 "input:1:2: invalid escape '\\' followed by '\\x01' in a string (valid escapes: \\\" \\\\ "
	 "\\/ \\b \\f \\n \\r \\t \\uXXXX)"},
	{"\"\\u12G4\"", "input:1:6: expected 4 hex digits after \\u, found 'G'"},
	{"[\"a\nb\"]", "input:1:4: control character '\\x0a' in a string (write it as \\n)"},
	{"\"\t\"", "input:1:2: control character '\\x09' in a string (write it as \\t)"},
	{"\"\x01\"", "input:1:2: control character '\\x01' in a string (write it as \\u0001)"},
	{"\"\x1f\"", "input:1:2: control character '\\x1f' in a string (write it as \\u001f)"},
	/* UTF-8 */
	{"\"\xff\"", "input:1:2: invalid UTF-8 byte '\\xff' in a string"},
	{"\"a\xc0\x80\"", "input:1:3: invalid UTF-8 byte '\\xc0' in a string"},
	{"\"\xed\xa0\x80\"", "input:1:2: invalid UTF-8 byte '\\xed' in a string"},
	{"\"\xe2\x82\"", "input:1:2: invalid UTF-8 byte '\\xe2' in a string"},
	{"\"\x80\"", "input:1:2: invalid UTF-8 byte '\\x80' in a string"},
	{"\"\xf4\x90\x80\x80\"", "input:1:2: invalid UTF-8 byte '\\xf4' in a string"},
	{"[\xc3\xa9]", "input:1:2: expected a JSON value, found '\xc3\xa9' (U+00E9)"},
	{"\xe2\x80\x9chi\xe2\x80\x9d",
	 "input:1:1: expected a JSON value, found '\xe2\x80\x9c' (U+201C)"},
	{"[\xff]", "input:1:2: expected a JSON value, found '\\xff' (not UTF-8)"},
	{"\xef\xbb\xbf{}", "input:1:1: byte order mark (U+FEFF) before the JSON value"},
	{"[\x01]", "input:1:2: expected a JSON value, found '\\x01'"},
	{"{\"a\":1,\n\"b\":\x7f}", "input:2:5: expected a JSON value, found '\\x7f'"},
};

START_TEST(test_errors)
{
	expect_error(error_cases[_i].text, 0, error_cases[_i].msg);
}
END_TEST

START_TEST(test_nul_byte_in_input)
{
	expect_error_len("[1,\0]", 5, 0, "input:1:4: expected a JSON value, found '\\x00'");
	expect_error_len("\"a\0\"", 4, SPR_JSON_ALLOW_NUL,
			 "input:1:3: control character '\\x00' in a string (write it as \\u0000)");
	expect_error_len("1\0", 2, 0,
			 "input:1:2: expected end of input after the JSON value, found '\\x00'");
}
END_TEST

START_TEST(test_every_prefix_fails)
{
	const char *doc = "{\"code\": \"print(\\\"hi\\\")\\n\", \"input_data\": {\"n\": [1, -2.5e-3, "
			  "true, false, null, \"\\ud83d\\ude00\xc3\xa9\"], \"o\": {}},\n \"x\": 10}";
	size_t len = strlen(doc);
	for (size_t n = 0; n < len; n++) {
		spr_error *err = NULL;
		cJSON *t = NULL;
		ck_assert_int_lt(spr_json_parse(doc, n, 0, "input", &t, &err), 0);
		ck_assert_ptr_null(t);
		ck_assert_ptr_nonnull(err);
		ck_assert(!strncmp(err->message, "input:", 6));
		spr_error *err2 = NULL;
		ck_assert_int_lt(spr_json_validate(doc, n, 0, "input", &err2), 0);
		ck_assert_str_eq(err->message, err2->message);
		spr_error_free(err);
		spr_error_free(err2);
	}
	cJSON_Delete(parse_ok(doc, 0));
}
END_TEST

static char *nested(size_t depth, char open, char close)
{
	char *s = malloc(2 * depth + 1);
	memset(s, open, depth);
	memset(s + depth, close, depth);
	s[2 * depth] = '\0';
	return s;
}

START_TEST(test_depth_limit)
{
	char *ok = nested(SPR_JSON_MAX_DEPTH, '[', ']');
	cJSON_Delete(parse_ok(ok, 0));
	free(ok);
	char *deep = nested(SPR_JSON_MAX_DEPTH + 1, '[', ']');
	expect_error(deep, 0, "input:1:513: nesting deeper than 512 levels");
	free(deep);

	/* Objects count too, and a hostile depth fails fast, not by stack. */
	size_t n = 100000;
	char *objs = malloc(6 * n + 1);
	for (size_t i = 0; i < n; i++)
		memcpy(objs + 5 * i, "{\"a\":", 5);
	memset(objs + 5 * n, '}', n);
	objs[6 * n] = '\0';
	expect_error(objs, 0, "input:1:2561: nesting deeper than 512 levels");
	free(objs);
}
END_TEST

START_TEST(test_many_keys)
{
	/* Duplicate detection stays linear: 50k keys, the last a duplicate. */
	spr_buf b = SPR_BUF_INIT;
	spr_buf_putc(&b, '{');
	for (int i = 0; i < 50000; i++)
		spr_buf_printf(&b, "\"k%d\":%d,", i, i);
	spr_buf_puts(&b, "\"k777\":0}");
	spr_error *err = NULL;
	cJSON *t = NULL;
	ck_assert_int_lt(spr_json_parse(b.data, b.len, 0, "big", &t, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "duplicate key \"k777\""));
	spr_error_free(err);
	b.data[b.len - 10] = '}'; /* drop the duplicate */
	b.len -= 9;
	err = NULL;
	ck_assert_ok(spr_json_parse(b.data, b.len, 0, "big", &t, &err), err);
	ck_assert_int_eq(cJSON_GetArraySize(t), 50000);
	ck_assert_str_eq(cJSON_GetObjectItem(t, "k49999")->valuestring, "49999");
	cJSON_Delete(t);
	spr_buf_free(&b);
}
END_TEST

START_TEST(test_null_source_and_error_ptr)
{
	cJSON *t = NULL;
	spr_error *err = NULL;
	ck_assert_int_lt(spr_json_parse("[", 1, 0, NULL, &t, &err), 0);
	ck_assert_str_eq(err->message, "json:1:2: unexpected end of input (expected a JSON value)");
	spr_error_free(err);
	/* err may be NULL: failure is still reported by the return value. */
	ck_assert_int_lt(spr_json_parse("[", 1, 0, "x", &t, NULL), 0);
	ck_assert_int_eq(spr_json_validate("[]", 2, 0, "x", NULL), 0);
}
END_TEST

/* ---- decode_string ------------------------------------------------------- */

START_TEST(test_decode_string)
{
	char *out = NULL;
	size_t n = 0;
	spr_error *err = NULL;
	const char *lit = "\"x\\ty\\u00e9\"";
	ck_assert_ok(spr_json_decode_string(lit, strlen(lit), 0, &out, &n, &err), err);
	ck_assert_uint_eq(n, 5);
	ck_assert_str_eq(out, "x\ty\xc3\xa9");
	free(out);
	ck_assert_ok(spr_json_decode_string("\"\"", 2, 0, &out, &n, &err), err);
	ck_assert_uint_eq(n, 0);
	ck_assert_str_eq(out, "");
	free(out);

	ck_assert_int_lt(spr_json_decode_string("\"a\\u0000\"", 9, 0, &out, &n, &err), 0);
	ck_assert_str_eq(err->message, "string:1:3: \\u0000 (NUL) is not allowed in strings");
	spr_error_free(err);
	err = NULL;
	ck_assert_int_lt(spr_json_decode_string("abc", 3, 0, &out, &n, &err), 0);
	ck_assert_str_eq(err->message, "string:1:1: expected '\"' opening a string, found 'a'");
	spr_error_free(err);
	err = NULL;
	ck_assert_int_lt(spr_json_decode_string("\"a\"b", 4, 0, &out, &n, &err), 0);
	ck_assert_str_eq(err->message, "string:1:4: expected end of input after the string, found 'b'");
	spr_error_free(err);
}
END_TEST

/* ---- numbers built by hand ------------------------------------------------ */

START_TEST(test_new_numbers)
{
	static const struct {
		double v;
		const char *text;
	} doubles[] = {
		{0.1, "0.1"},
		{1.0, "1.0"},
		{-0.0, "-0.0"},
		{0.0, "0.0"},
		{1e300, "1e+300"},
		{0.1 + 0.2, "0.30000000000000004"},
		{1.0 / 3.0, "0.3333333333333333"},
		{5e-324, "5e-324"}, /* the shortest that reads back, as Python's repr */
		{123456789.0, "123456789.0"},
		{1e16, "1e+16"},
		{1e15, "1000000000000000.0"},
		{100.0, "100.0"},
		{0.0001, "0.0001"},
		{0.00001, "1e-05"},
		{1.5e-7, "1.5e-07"},
		{2.5e22, "2.5e+22"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{-2.5, "-2.5"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(doubles); i++) {
		cJSON *d = spr_json_new_double(doubles[i].v);
		ck_assert(cJSON_IsRaw(d));
		ck_assert_str_eq(d->valuestring, doubles[i].text);
		ck_assert(spr_json_is_number(d));
		ck_assert(spr_json_number(d) == doubles[i].v);
		ck_assert(signbit(spr_json_number(d)) == signbit(doubles[i].v));
		ck_assert(d->valuedouble == doubles[i].v);
		int64_t v;
		ck_assert(!spr_json_integer(d, &v));
		cJSON_Delete(d);
	}
	cJSON *nan = spr_json_new_double(NAN), *inf = spr_json_new_double(-INFINITY);
	ck_assert_str_eq(nan->valuestring, "NaN");
	ck_assert_str_eq(inf->valuestring, "-Infinity");
	ck_assert(isnan(spr_json_number(nan)));
	cJSON_Delete(nan);
	cJSON_Delete(inf);

	int64_t ints[] = {0, -1, 42, INT64_MAX, INT64_MIN};
	for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
		cJSON *n = spr_json_new_integer(ints[i]);
		char want[32];
		snprintf(want, sizeof(want), "%lld", (long long)ints[i]);
		ck_assert_str_eq(n->valuestring, want);
		int64_t v = 0;
		ck_assert(spr_json_integer(n, &v));
		ck_assert(v == ints[i]);
		cJSON_Delete(n);
	}
}
END_TEST

START_TEST(test_number_predicates)
{
	cJSON *raw_array = cJSON_CreateRaw("[1]"), *raw_num = cJSON_CreateRaw("5");
	cJSON *num = cJSON_CreateNumber(3.0), *frac = cJSON_CreateNumber(2.5);
	cJSON *huge = cJSON_CreateNumber(1e19), *str = cJSON_CreateString("5");
	int64_t v = 0;
	ck_assert(!spr_json_is_number(raw_array));
	ck_assert(isnan(spr_json_number(raw_array)));
	ck_assert(!spr_json_integer(raw_array, &v));
	ck_assert(spr_json_is_number(raw_num));
	ck_assert(spr_json_number(raw_num) == 5.0); /* from the text, not valuedouble */
	ck_assert(spr_json_integer(raw_num, &v) && v == 5);
	ck_assert(spr_json_is_number(num));
	ck_assert(spr_json_integer(num, &v) && v == 3);
	ck_assert(!spr_json_integer(frac, &v));
	ck_assert(!spr_json_integer(huge, &v));
	ck_assert(!spr_json_is_number(str));
	ck_assert(!spr_json_is_number(NULL));
	cJSON *nodes[] = {raw_array, raw_num, num, frac, huge, str};
	for (size_t i = 0; i < ARRAY_SIZE(nodes); i++)
		cJSON_Delete(nodes[i]);
}
END_TEST

/* ---- writers ------------------------------------------------------------- */

static void expect_written(const char *s, size_t len, const char *want)
{
	spr_buf b = SPR_BUF_INIT;
	spr_json_write_string(&b, s, len);
	ck_assert(!b.oom);
	ck_assert_str_eq(b.data, want);
	spr_buf_free(&b);
}

START_TEST(test_write_string)
{
	expect_written("", 0, "\"\"");
	expect_written("plain text", 10, "\"plain text\"");
	expect_written("q\"b\\s/", 6, "\"q\\\"b\\\\s/\"");
	expect_written("\n\t\r\b\f", 5, "\"\\n\\t\\r\\b\\f\"");
	expect_written("\x01\x1f\x7f\x1b", 4, "\"\\u0001\\u001f\\u007f\\u001b\"");
	expect_written("a\0b", 3, "\"a\\u0000b\"");
	expect_written("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
		       "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
	/* Ill-formed UTF-8: one U+FFFD per maximal subpart. */
	expect_written("a\xff"
		       "b",
		       3, "\"a\xef\xbf\xbd"
			  "b\"");
	expect_written("\xe2\x82"
		       "a",
		       3, "\"\xef\xbf\xbd"
			  "a\"");
	expect_written("\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"");
	expect_written("\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\"");
	expect_written("\xf0\x9f\x98", 3, "\"\xef\xbf\xbd\"");
	expect_written("\xf0\x9f\x98\x80\xf0", 5, "\"\xf0\x9f\x98\x80\xef\xbf\xbd\"");

	/* What the writer produces reads back to the same bytes. */
	const char raw[] = "x\0\x01\"\\\x7f\xc3\xa9";
	spr_buf b = SPR_BUF_INIT;
	spr_json_write_string(&b, raw, sizeof(raw) - 1);
	char *back = NULL;
	size_t n = 0;
	spr_error *err = NULL;
	ck_assert_ok(spr_json_decode_string(b.data, b.len, SPR_JSON_ALLOW_NUL, &back, &n, &err), err);
	ck_assert_uint_eq(n, sizeof(raw) - 1);
	ck_assert_mem_eq(back, raw, n);
	free(back);
	spr_buf_free(&b);
}
END_TEST

static void expect_pretty(const char *json, const char *want)
{
	spr_buf b = SPR_BUF_INIT;
	spr_json_pretty(&b, json, strlen(json));
	ck_assert(!b.oom);
	ck_assert_str_eq(b.data ? b.data : "", want);
	/* Pretty output is a fixed point. */
	spr_buf again = SPR_BUF_INIT;
	spr_json_pretty(&again, b.data ? b.data : "", b.len);
	ck_assert_str_eq(again.data ? again.data : "", want);
	spr_buf_free(&again);
	spr_buf_free(&b);
}

START_TEST(test_pretty)
{
	expect_pretty("{\"a\":\"{[\\\"\\\\\",\"b\":[1,{\"c\":\"]}:, \"},[],{}],\"d\":{},\"e\":null}",
		      "{\n"
		      "  \"a\": \"{[\\\"\\\\\",\n"
		      "  \"b\": [\n"
		      "    1,\n"
		      "    {\n"
		      "      \"c\": \"]}:, \"\n"
		      "    },\n"
		      "    [],\n"
		      "    {}\n"
		      "  ],\n"
		      "  \"d\": {},\n"
		      "  \"e\": null\n"
		      "}");
	/* Already formatted input, odd spacing inside empty containers. */
	expect_pretty("{ \"k\" :\n [ ] , \"l\":[ 1 ,2 ],\"m\":{ \n } }",
		      "{\n"
		      "  \"k\": [],\n"
		      "  \"l\": [\n"
		      "    1,\n"
		      "    2\n"
		      "  ],\n"
		      "  \"m\": {}\n"
		      "}");
	expect_pretty("-12.5e3", "-12.5e3");
	expect_pretty("\"a\\\\\"", "\"a\\\\\"");
	expect_pretty("[]", "[]");
	expect_pretty("", "");

	/* Garbage does not crash it. */
	const char *junk[] = {"]]]}}}", "\"unterminated \\", "{{{{", "[\"\\", ",,::"};
	for (size_t i = 0; i < ARRAY_SIZE(junk); i++) {
		spr_buf b = SPR_BUF_INIT;
		spr_json_pretty(&b, junk[i], strlen(junk[i]));
		spr_buf_free(&b);
	}
}
END_TEST

START_TEST(test_print_hand_built)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddItemToObject(o, "i", spr_json_new_integer(INT64_MAX));
	cJSON_AddItemToObject(o, "d", spr_json_new_double(0.1));
	cJSON_AddItemToObject(o, "s", cJSON_CreateString("\x01"));
	char *s = print(o);
	ck_assert_str_eq(s, "{\"i\":9223372036854775807,\"d\":0.1,\"s\":\"\\u0001\"}");
	free(s);
	ck_assert_ptr_null(spr_json_print(NULL));
	cJSON_Delete(o);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("json");
	TCase *tc = tcase_create("reader");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_scalars);
	tcase_add_test(tc, test_big_integers_keep_their_digits);
	tcase_add_test(tc, test_print_round_trip);
	tcase_add_test(tc, test_escapes);
	tcase_add_test(tc, test_lone_surrogates);
	tcase_add_test(tc, test_nul_in_strings);
	tcase_add_test(tc, test_nonfinite);
	tcase_add_test(tc, test_not_nul_terminated);
	tcase_add_test(tc, test_spans);
	tcase_add_test(tc, test_hand_built_nodes_have_no_span);
	tcase_add_test(tc, test_line_col);
	tcase_add_loop_test(tc, test_errors, 0, ARRAY_SIZE(error_cases));
	tcase_add_test(tc, test_nul_byte_in_input);
	tcase_add_test(tc, test_every_prefix_fails);
	tcase_add_test(tc, test_depth_limit);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_null_source_and_error_ptr);
	tcase_add_test(tc, test_decode_string);
	suite_add_tcase(s, tc);

	TCase *nums = tcase_create("numbers");
	tcase_add_test(nums, test_new_numbers);
	tcase_add_test(nums, test_number_predicates);
	suite_add_tcase(s, nums);

	TCase *out = tcase_create("writers");
	tcase_add_test(out, test_write_string);
	tcase_add_test(out, test_pretty);
	tcase_add_test(out, test_print_hand_built);
	suite_add_tcase(s, out);
	return s;
}
