/* The TOML reader for policy files. */
#include <math.h>

#include "json.h"
#include "policy/toml.h"
#include "unit.h"

static const char reference_policy[] = "[policy]\n"
				       "mode = \"restrict\"\n"
				       "timeout_seconds = 5\n"
				       "memory_limit_mb = 256\n"
				       "max_output_kb = 128\n"
				       "blocked_imports = [\"os\", \"subprocess\"]\n"
				       "blocked_builtins = [\"eval\", \"exec\", \"open\"]\n"
				       "allowed_imports = []\n"
				       "allowed_builtins = []\n"
				       "allowed_globals = []\n"
				       "blocked_globals = []\n"
				       "\n"
				       "[policy.extra_globals]\n"
				       "project_name = \"safe-py-runner\"\n";

static cJSON *parse_len_ok(const char *text, size_t len)
{
	spr_error *err = NULL;
	cJSON *tree = NULL;
	ck_assert_ok(spr_toml_parse(text, len, "policy.toml", &tree, &err), err);
	ck_assert(cJSON_IsObject(tree));
	return tree;
}

static cJSON *parse_ok(const char *text) { return parse_len_ok(text, strlen(text)); }

static void expect_error_len(const char *text, size_t len, const char *msg)
{
	spr_error *err = NULL;
	cJSON *tree = NULL;
	ck_assert_int_lt(spr_toml_parse(text, len, "policy.toml", &tree, &err), 0);
	ck_assert_ptr_null(tree);
	ck_assert_ptr_nonnull(err);
	ck_assert_str_eq(err->message, msg);
	ck_assert_int_eq(err->layer, SPR_LAYER_POLICY);
	spr_error_free(err);
}

static void expect_error(const char *text, const char *msg)
{
	expect_error_len(text, strlen(text), msg);
}

/* The compact JSON of the tree. */
static void expect_json(const char *toml, const char *json)
{
	cJSON *t = parse_ok(toml);
	char *s = spr_json_print(t);
	ck_assert_str_eq(s, json);
	free(s);
	cJSON_Delete(t);
}

static const cJSON *get(const cJSON *t, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", path);
	const cJSON *node = t;
	for (char *save = NULL, *part = strtok_r(buf, "/", &save); part;
	     part = strtok_r(NULL, "/", &save)) {
		node = cJSON_GetObjectItemCaseSensitive(node, part);
		ck_assert_msg(node != NULL, "no %s in the tree", path);
	}
	return node;
}

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

/* ---- valid documents ----------------------------------------------------- */

START_TEST(test_reference_policy)
{
	cJSON *t = parse_ok(reference_policy);
	int64_t v = 0;
	ck_assert_str_eq(get(t, "policy/mode")->valuestring, "restrict");
	const cJSON *timeout = get(t, "policy/timeout_seconds");
	ck_assert(cJSON_IsRaw(timeout));
	ck_assert_str_eq(timeout->valuestring, "5");
	ck_assert(spr_json_integer(timeout, &v) && v == 5);
	ck_assert(spr_json_integer(get(t, "policy/memory_limit_mb"), &v) && v == 256);
	const cJSON *blocked = get(t, "policy/blocked_builtins");
	ck_assert_int_eq(cJSON_GetArraySize(blocked), 3);
	ck_assert_str_eq(cJSON_GetArrayItem(blocked, 2)->valuestring, "open");
	ck_assert(cJSON_IsArray(get(t, "policy/allowed_imports")));
	ck_assert_int_eq(cJSON_GetArraySize(get(t, "policy/allowed_imports")), 0);
	ck_assert_str_eq(get(t, "policy/extra_globals/project_name")->valuestring, "safe-py-runner");

	expect_at(reference_policy, timeout, 3, 19, "5");
	expect_at(reference_policy, blocked, 7, 20, "[\"eval\", \"exec\", \"open\"]");
	expect_at(reference_policy, cJSON_GetArrayItem(blocked, 1), 7, 29, "\"exec\"");
	expect_at(reference_policy, get(t, "policy"), 1, 1, "[policy]");
	expect_at(reference_policy, get(t, "policy/extra_globals"), 13, 1, "[policy.extra_globals]");
	expect_at(reference_policy, get(t, "policy/extra_globals/project_name"), 14, 16,
		  "\"safe-py-runner\"");
	expect_at(reference_policy, t, 1, 1, reference_policy);

	char *s = spr_json_print(t);
	ck_assert_str_eq(s, "{\"policy\":{\"mode\":\"restrict\",\"timeout_seconds\":5,"
			    "\"memory_limit_mb\":256,\"max_output_kb\":128,"
			    "\"blocked_imports\":[\"os\",\"subprocess\"],"
			    "\"blocked_builtins\":[\"eval\",\"exec\",\"open\"],\"allowed_imports\":[],"
			    "\"allowed_builtins\":[],\"allowed_globals\":[],\"blocked_globals\":[],"
			    "\"extra_globals\":{\"project_name\":\"safe-py-runner\"}}}");
	free(s);
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_empty_and_comments)
{
	expect_json("", "{}");
	expect_json("# only a comment", "{}");
	expect_json("\n\n  \t\n# c\n  # d \t\xc3\xa9\n", "{}");
	expect_json("a = 1 # trailing\n#\n", "{\"a\":1}");
	expect_json("a=1\r\nb=2\r\n# c\r\n", "{\"a\":1,\"b\":2}");
}
END_TEST

static const struct {
	const char *literal, *text;
	int64_t value;
} integer_cases[] = {
	{"0", "0", 0},
	{"+0", "0", 0},
	{"-0", "0", 0},
	{"+17", "17", 17},
	{"-17", "-17", -17},
	{"1_000", "1000", 1000},
	{"5_349_221", "5349221", 5349221},
	{"9223372036854775807", "9223372036854775807", INT64_MAX},
	{"-9223372036854775808", "-9223372036854775808", INT64_MIN},
	{"0xDEADBEEF", "3735928559", 0xDEADBEEF},
	{"0xdead_beef", "3735928559", 0xDEADBEEF},
	{"0x7FFF_FFFF_FFFF_FFFF", "9223372036854775807", INT64_MAX},
	{"0x00", "0", 0},
	{"0o01234567", "342391", 01234567},
	{"0o755", "493", 0755},
	{"0b11010110", "214", 214},
	{"0b1_0", "2", 2},
};

START_TEST(test_integers)
{
	char doc[128];
	snprintf(doc, sizeof(doc), "n = %s\n", integer_cases[_i].literal);
	cJSON *t = parse_ok(doc);
	const cJSON *n = get(t, "n");
	ck_assert(cJSON_IsRaw(n));
	ck_assert_str_eq(n->valuestring, integer_cases[_i].text);
	int64_t v = 1;
	ck_assert(spr_json_integer(n, &v));
	ck_assert(v == integer_cases[_i].value);
	ck_assert(n->valuedouble == (double)integer_cases[_i].value);
	/* The span is the literal as written, even though the text differs. */
	expect_at(doc, n, 1, 5, integer_cases[_i].literal);
	cJSON_Delete(t);
}
END_TEST

static const struct {
	const char *literal, *text;
	double value;
} float_cases[] = {
	{"+1.0", "1.0", 1.0},
	{"3.1415", "3.1415", 3.1415},
	{"-0.01", "-0.01", -0.01},
	{"5e+22", "5e+22", 5e22},
	{"1e06", "1000000.0", 1e6},
	{"-2E-2", "-0.02", -2e-2},
	{"6.626e-34", "6.626e-34", 6.626e-34},
	{"224_617.445_991_228", "224617.445991228", 224617.445991228},
	{"1e1_0", "10000000000.0", 1e10},
	{"0.1", "0.1", 0.1},
	{"0.30000000000000004", "0.30000000000000004", 0.30000000000000004},
	{"0e0", "0.0", 0.0},
	{"-0.0", "-0.0", -0.0},
	{"+0.0", "0.0", 0.0},
	{"1e400", "Infinity", INFINITY},
	{"inf", "Infinity", INFINITY},
	{"+inf", "Infinity", INFINITY},
	{"-inf", "-Infinity", -INFINITY},
};

START_TEST(test_floats)
{
	char doc[128];
	snprintf(doc, sizeof(doc), "f = %s", float_cases[_i].literal);
	cJSON *t = parse_ok(doc);
	const cJSON *f = get(t, "f");
	ck_assert(cJSON_IsRaw(f));
	ck_assert_str_eq(f->valuestring, float_cases[_i].text);
	ck_assert(spr_json_number(f) == float_cases[_i].value);
	ck_assert(signbit(spr_json_number(f)) == signbit(float_cases[_i].value));
	int64_t v;
	ck_assert(!spr_json_integer(f, &v));
	expect_at(doc, f, 1, 5, float_cases[_i].literal);
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_nan_and_bools)
{
	cJSON *t = parse_ok("a = nan\nb = -nan\nc = +nan\nd = true\ne = false\n");
	ck_assert_str_eq(get(t, "a")->valuestring, "NaN");
	ck_assert(isnan(spr_json_number(get(t, "b"))));
	ck_assert(isnan(spr_json_number(get(t, "c"))));
	ck_assert(cJSON_IsTrue(get(t, "d")));
	ck_assert(cJSON_IsFalse(get(t, "e")));
	/* Non-finite numbers print the way Python's json reads them, and the
	 * JSON reader takes them back with SPR_JSON_ALLOW_NONFINITE. */
	char *s = spr_json_print(t);
	ck_assert_str_eq(s, "{\"a\":NaN,\"b\":NaN,\"c\":NaN,\"d\":true,\"e\":false}");
	cJSON *back = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_json_parse(s, strlen(s), SPR_JSON_ALLOW_NONFINITE, "x", &back, &err), err);
	cJSON_Delete(back);
	free(s);
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_strings)
{
	const char *doc =
		"basic = \"tab\\there \\\"q\\\" \\\\ \\b\\f\\n\\r \\u00e9 \\U0001F600 \\u20AC\"\n"
		"raw = \"\tx\xc3\xa9\"\n"
		"literal = 'C:\\Users\\nodejs\\templates'\n"
		"quoted = 'Tom \"Dubs\" Preston-Werner'\n"
		"ml = \"\"\"\nRoses are red\nViolets are blue\"\"\"\n"
		"crlf = \"\"\"\r\nA\r\nB\"\"\"\n"
		"folded = \"\"\"\\\n    The quick \\\n\n\n    brown \\   \n  fox.\\\n\"\"\"\n"
		"ml_lit = '''\nThe first newline is\ntrimmed in raw strings.\n   \\n stays'''\n"
		"quotes = \"\"\"Here are two quotation marks: \"\". Simple enough.\"\"\"\n"
		"end_quotes = \"\"\"\"This,\" she said, \"is just a pointless statement.\"\"\"\"\n"
		"lit_quotes = ''''That,' she said, 'is still pointless.''''\n"
		"empty = \"\"\n"
		"empty_ml = \"\"\"\"\"\"\n"
		"only_newline = '''\n'''\n";
	cJSON *t = parse_ok(doc);
	ck_assert_str_eq(get(t, "basic")->valuestring,
			 "tab\there \"q\" \\ \b\f\n\r \xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac");
	ck_assert_str_eq(get(t, "raw")->valuestring, "\tx\xc3\xa9");
	ck_assert_str_eq(get(t, "literal")->valuestring, "C:\\Users\\nodejs\\templates");
	ck_assert_str_eq(get(t, "quoted")->valuestring, "Tom \"Dubs\" Preston-Werner");
	ck_assert_str_eq(get(t, "ml")->valuestring, "Roses are red\nViolets are blue");
	ck_assert_str_eq(get(t, "crlf")->valuestring, "A\nB");
	ck_assert_str_eq(get(t, "folded")->valuestring, "The quick brown fox.");
	ck_assert_str_eq(get(t, "ml_lit")->valuestring,
			 "The first newline is\ntrimmed in raw strings.\n   \\n stays");
	ck_assert_str_eq(get(t, "quotes")->valuestring,
			 "Here are two quotation marks: \"\". Simple enough.");
	ck_assert_str_eq(get(t, "end_quotes")->valuestring,
			 "\"This,\" she said, \"is just a pointless statement.\"");
	ck_assert_str_eq(get(t, "lit_quotes")->valuestring, "'That,' she said, 'is still pointless.'");
	ck_assert_str_eq(get(t, "empty")->valuestring, "");
	ck_assert_str_eq(get(t, "empty_ml")->valuestring, "");
	ck_assert_str_eq(get(t, "only_newline")->valuestring, "");
	expect_at(doc, get(t, "ml"), 5, 6, "\"\"\"\nRoses are red\nViolets are blue\"\"\"");
	expect_at(doc, get(t, "literal"), 3, 11, "'C:\\Users\\nodejs\\templates'");
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_keys_and_tables)
{
	expect_json("bare_key-1 = 1\n\"quoted key\" = 2\n'lit.key' = 3\n\"\" = 4\n1234 = 5\n",
		    "{\"bare_key-1\":1,\"quoted key\":2,\"lit.key\":3,\"\":4,\"1234\":5}");
	expect_json("a.b.c = 1\na . b . d = 2\n\"x\".'y'.z = 3\n3.14 = 4\n",
		    "{\"a\":{\"b\":{\"c\":1,\"d\":2}},\"x\":{\"y\":{\"z\":3}},\"3\":{\"14\":4}}");
	expect_json("[a.b]\nx = 1\n[a]\ny = 2\n[ a . \"c d\" ]\nz = 3\n",
		    "{\"a\":{\"b\":{\"x\":1},\"y\":2,\"c d\":{\"z\":3}}}");
	/* Dotted keys in a section, then a sub-table of theirs by header. */
	expect_json("[fruit]\napple.color = \"red\"\napple.taste.sweet = true\n"
		    "[fruit.apple.texture]\nsmooth = true\n",
		    "{\"fruit\":{\"apple\":{\"color\":\"red\",\"taste\":{\"sweet\":true},"
		    "\"texture\":{\"smooth\":true}}}}");
	/* An implicit table (made by a header) may take dotted keys once. */
	expect_json("[a.b.c]\nz = 9\n[a]\nb.x = 1\n", "{\"a\":{\"b\":{\"c\":{\"z\":9},\"x\":1}}}");
	/* Dotted keys interleaved with others in the same section. */
	expect_json("a.b = 1\nc = 2\na.d = 3\n", "{\"a\":{\"b\":1,\"d\":3},\"c\":2}");
	expect_json("[\"\"]\nx = 1\n", "{\"\":{\"x\":1}}");
}
END_TEST

START_TEST(test_arrays_and_inline_tables)
{
	expect_json("a = [ 1, \"two\", [3, [4]], {x = 1}, 'five', 6.0, true, ]\n",
		    "{\"a\":[1,\"two\",[3,[4]],{\"x\":1},\"five\",6.0,true]}");
	expect_json("a = [\n  1, # one\n  # nothing\n  2\n  ,\n]\nb = [\n]\nc=[]\n",
		    "{\"a\":[1,2],\"b\":[],\"c\":[]}");
	expect_json("p = { name = \"x\", pos.x = 1, pos.y = 2, \"k\" = { } }\n",
		    "{\"p\":{\"name\":\"x\",\"pos\":{\"x\":1,\"y\":2},\"k\":{}}}");
	/* Newlines are fine inside values within an inline table. */
	expect_json("t = { a = [\n1,\n2], s = \"\"\"x\ny\"\"\" }\n",
		    "{\"t\":{\"a\":[1,2],\"s\":\"x\\ny\"}}");
	expect_json("e = {}\n", "{\"e\":{}}");
}
END_TEST

START_TEST(test_spans)
{
	const char *doc = "# policy\n"
			  "[policy]\n"
			  "limits.cpu = 0x1_0 # hex\n"
			  "list = [\n"
			  "  1_000,\n"
			  "  { k = -2.5e3 },\n"
			  "]\n"
			  "[policy.sub.deep]\n";
	cJSON *t = parse_ok(doc);
	expect_at(doc, get(t, "policy"), 2, 1, "[policy]");
	expect_at(doc, get(t, "policy/limits"), 3, 1, "limits");
	expect_at(doc, get(t, "policy/limits/cpu"), 3, 14, "0x1_0");
	ck_assert_str_eq(get(t, "policy/limits/cpu")->valuestring, "16");
	const cJSON *list = get(t, "policy/list");
	expect_at(doc, list, 4, 8, "[\n  1_000,\n  { k = -2.5e3 },\n]");
	expect_at(doc, cJSON_GetArrayItem(list, 0), 5, 3, "1_000");
	const cJSON *inl = cJSON_GetArrayItem(list, 1);
	expect_at(doc, inl, 6, 3, "{ k = -2.5e3 }");
	expect_at(doc, cJSON_GetObjectItem(inl, "k"), 6, 9, "-2.5e3");
	ck_assert_str_eq(cJSON_GetObjectItem(inl, "k")->valuestring, "-2500.0");
	/* An implicit table points at its name in the header. */
	expect_at(doc, get(t, "policy/sub"), 8, 9, "sub");
	expect_at(doc, get(t, "policy/sub/deep"), 8, 1, "[policy.sub.deep]");
	cJSON_Delete(t);

	/* A table defined after being implied moves to its own header. */
	const char *doc2 = "[a.b]\n[a]\n";
	t = parse_ok(doc2);
	expect_at(doc2, get(t, "a"), 2, 1, "[a]");
	cJSON_Delete(t);
}
END_TEST

START_TEST(test_not_nul_terminated)
{
	char buf[] = {'a', ' ', '=', ' ', '1', '2', '3'};
	cJSON *t = parse_len_ok(buf, 5);
	ck_assert_str_eq(get(t, "a")->valuestring, "1");
	cJSON_Delete(t);
	char str[] = {'s', '=', '"', 'x', '"'};
	expect_error_len(str, 4,
			 "policy.toml:1:3: unterminated string (end of input before the closing '\"')");
}
END_TEST

/* ---- errors -------------------------------------------------------------- */

static const struct {
	const char *text, *msg;
} error_cases[] = {
	/* redefinitions */
	{"a = 1\nb = 2\na = 3\n", "policy.toml:3:1: key a is already defined at line 1"},
	{"[t]\n\"x y\" = 1\n'x y' = 2\n", "policy.toml:3:1: key \"x y\" is already defined at line 2"},
	{"[x]\na = 1\n\n[x]\n", "policy.toml:4:1: table [x] is already defined at line 1"},
	{"[a.b]\n[a]\n[a]\n", "policy.toml:3:1: table [a] is already defined at line 2"},
	{"[a]\nb = 1\n[a.b]\n",
	 "policy.toml:3:4: cannot define table [a.b]: a.b is already defined as a value at line 2"},
	{"x = [1]\n[x.y]\n",
	 "policy.toml:2:2: cannot define table [x.y]: x is already defined as a value at line 1"},
	{"a = {x = 1}\n[a]\n",
	 "policy.toml:2:2: cannot define table [a]: a is already defined as an inline table at "
	 "line 1"},
	{"a = {x = 1}\n[a.b]\n",
	 "policy.toml:2:2: cannot define table [a.b]: a is already defined as an inline table at "
	 "line 1"},
	{"a = {x = 1}\na.y = 2\n",
	 "policy.toml:2:1: cannot add keys to a: it is an inline table (line 1), which is complete "
	 "as written"},
	{"t = {a = {b = 1}, a.c = 2}\n",
	 "policy.toml:1:19: cannot add keys to a: it is an inline table (line 1), which is complete "
	 "as written"},
	{"t = {b = 1, b.c = 2}\n", "policy.toml:1:13: b is already defined as a value at line 1"},
	{"a = 1\na.b = 2\n", "policy.toml:2:1: a is already defined as a value at line 1"},
	{"a.b = 1\na = 2\n", "policy.toml:2:1: key a is already defined at line 1"},
	{"a.b = 1\n[a]\n", "policy.toml:2:1: table [a] is already defined by dotted keys at line 1"},
	{"[fruit]\napple.color = \"red\"\n[fruit.apple]\n",
	 "policy.toml:3:1: table [fruit.apple] is already defined by dotted keys at line 2"},
	{"[a.b.c]\nz = 9\n[a]\nb.c.t = 1\n",
	 "policy.toml:4:3: cannot add keys to table b.c with dotted keys: it is defined by its own "
	 "[header] at line 1"},
	{"[t]\nd.x = 1\n[u]\n[t]\n", "policy.toml:4:1: table [t] is already defined at line 1"},
	{"[a]\nb.x = 1\n[c]\n[a.b]\n",
	 "policy.toml:4:1: table [a.b] is already defined by dotted keys at line 2"},
	{"[a.b.c]\n[a]\nb.x = 1\n[a.b]\n",
	 "policy.toml:4:1: table [a.b] is already defined by dotted keys at line 3"},
	/* refused TOML features */
	{"[[products]]\nname = \"x\"\n",
	 "policy.toml:1:1: arrays of tables ([[...]]) are not supported in policy files"},
	{"[p]\n  [[p.q]]\n",
	 "policy.toml:2:3: arrays of tables ([[...]]) are not supported in policy files"},
	{"d = 1979-05-27\n",
	 "policy.toml:1:5: dates and times are not supported in policy files (quote the value to "
	 "make it a string)"},
	{"d = 1979-05-27T07:32:00Z\n",
	 "policy.toml:1:5: dates and times are not supported in policy files (quote the value to "
	 "make it a string)"},
	{"a = [07:32:00]\n",
	 "policy.toml:1:6: dates and times are not supported in policy files (quote the value to "
	 "make it a string)"},
	/* integers */
	{"i = 9223372036854775808\n",
	 "policy.toml:1:5: integer '9223372036854775808' is outside the 64-bit range "
	 "(-9223372036854775808 to 9223372036854775807)"},
	{"i = -9_223_372_036_854_775_809\n",
	 "policy.toml:1:5: integer '-9_223_372_036_854_775_8...' is outside the 64-bit range "
	 "(-9223372036854775808 to 9223372036854775807)"},
	{"i = 0x8000000000000000\n",
	 "policy.toml:1:5: integer '0x8000000000000000' is outside the 64-bit range "
	 "(-9223372036854775808 to 9223372036854775807)"},
	{"i = 012\n", "policy.toml:1:5: leading zeros are not allowed in numbers"},
	{"i = -0_1\n", "policy.toml:1:6: leading zeros are not allowed in numbers"},
	{"f = 03.14\n", "policy.toml:1:5: leading zeros are not allowed in numbers"},
	{"i = +0x10\n", "policy.toml:1:5: a sign is not allowed on hexadecimal integers"},
	{"i = -0o7\n", "policy.toml:1:5: a sign is not allowed on octal integers"},
	{"i = +0b1\n", "policy.toml:1:5: a sign is not allowed on binary integers"},
	{"i = 0x_10\n", "policy.toml:1:7: expected a hexadecimal digit after '0x', found '_'"},
	{"i = 0x\n", "policy.toml:1:7: expected a hexadecimal digit after '0x', found end of line"},
	{"i = 0o8\n", "policy.toml:1:7: expected an octal digit after '0o', found '8'"},
	{"i = 0b102\n", "policy.toml:1:9: invalid character '2' in a binary integer"},
	{"i = 0X10\n", "policy.toml:1:6: invalid character 'X' in a number"},
	{"i = 1__000\n", "policy.toml:1:6: underscores in numbers must be between two digits"},
	{"i = 1_\n", "policy.toml:1:6: underscores in numbers must be between two digits"},
	{"i = 0x1_\n", "policy.toml:1:8: underscores in numbers must be between two digits"},
	{"f = 1_.5\n", "policy.toml:1:6: underscores in numbers must be between two digits"},
	{"f = 1._5\n", "policy.toml:1:7: expected a digit after the decimal point, found '_'"},
	{"f = 1e_5\n", "policy.toml:1:7: expected a digit in the exponent, found '_'"},
	{"i = _1\n", "policy.toml:1:5: expected a value, found '_1' (strings must be quoted)"},
	{"i = 1x\n", "policy.toml:1:6: invalid character 'x' in a number"},
	/* floats */
	{"f = 1.\n", "policy.toml:1:7: expected a digit after the decimal point, found end of line"},
	{"f = .5\n", "policy.toml:1:5: expected a value, found '.5'"},
	{"f = 1.e5\n", "policy.toml:1:7: expected a digit after the decimal point, found 'e'"},
	{"f = 1e\n", "policy.toml:1:7: expected a digit in the exponent, found end of line"},
	{"f = 1.5.3\n", "policy.toml:1:8: invalid character '.' in a number"},
	{"f = infinity\n", "policy.toml:1:5: expected a value, found 'infinity' (strings must be quoted)"},
	{"f = -\n", "policy.toml:1:6: expected a digit after '-', found end of line"},
	/* strings */
	{"s = \"a\\u0000b\"\n", "policy.toml:1:7: NUL characters are not supported in strings"},
	{"s = \"\"\"\\U00000000\"\"\"\n", "policy.toml:1:8: NUL characters are not supported in strings"},
	{"s = \"\\ud800\"\n", "policy.toml:1:6: \\uD800 is not a Unicode scalar value"},
	{"s = \"\\U00110000\"\n", "policy.toml:1:6: \\U00110000 is not a Unicode scalar value"},
	{"s = \"\\u12\"\n", "policy.toml:1:10: expected 4 hex digits after \\u, found '\"'"},
	{"s = \"\\x41\"\n",
	 "policy.toml:1:6: invalid escape '\\x' (valid escapes: \\b \\t \\n \\f \\r \\\" \\\\ "
	 "\\uXXXX \\UXXXXXXXX)"},
	{"s = \"\\e\"\n",
	 "policy.toml:1:6: invalid escape '\\e' (valid escapes: \\b \\t \\n \\f \\r \\\" \\\\ "
	 "\\uXXXX \\UXXXXXXXX)"},
	{"s = \"a \\ \n\"\n",
	 "policy.toml:1:8: invalid escape '\\' followed by ' ' (valid escapes: \\b \\t \\n \\f \\r "
	 "\\\" \\\\ \\uXXXX \\UXXXXXXXX)"},
	{"s = \"\"\"a \\  b\"\"\"\n", "policy.toml:1:10: a '\\' followed by whitespace must end the line"},
	{"s = \"abc\n", "policy.toml:1:5: unterminated string (the line ends before the closing '\"')"},
	{"s = 'abc\nd'\n",
	 "policy.toml:1:5: unterminated string (the line ends before the closing \"'\")"},
	{"s = \"abc", "policy.toml:1:5: unterminated string (end of input before the closing '\"')"},
	{"s = 'abc", "policy.toml:1:5: unterminated string (end of input before the closing \"'\")"},
	{"s = \"\"\"abc\n\"\"\n",
	 "policy.toml:1:5: unterminated string (end of input before the closing \"\"\")"},
	{"s = '''abc\n''", "policy.toml:1:5: unterminated string (end of input before the closing ''')"},
	{"s = \"\"\"a\\", "policy.toml:1:5: unterminated string (end of input before the closing \"\"\")"},
	{"s = '''x''''''\n", "policy.toml:1:14: expected a newline after the value, found \"'\""},
	/* control characters, CR */
	{"s = \"a\x01\"\n",
	 "policy.toml:1:7: control character '\\x01' in a string (write it as an escape such as "
	 "\\u00XX)"},
	{"s = 'a\x7f'\n",
	 "policy.toml:1:7: control character '\\x7f' in a string (write it as an escape such as "
	 "\\u00XX)"},
	{"s = '''\x1b'''\n",
	 "policy.toml:1:8: control character '\\x1b' in a string (write it as an escape such as "
	 "\\u00XX)"},
	{"a = 1 # x\x02y\n", "policy.toml:1:10: control character '\\x02' in a comment"},
	{"# \x7f\n", "policy.toml:1:3: control character '\\x7f' in a comment"},
	{"a = 1\rb = 2\n", "policy.toml:1:6: carriage return must be followed by a newline"},
	{"s = \"\"\"a\rb\"\"\"\n", "policy.toml:1:9: carriage return must be followed by a newline"},
	{"# c\r", "policy.toml:1:4: carriage return must be followed by a newline"},
	{"a = [1,\r2]\n", "policy.toml:1:8: carriage return must be followed by a newline"},
	/* statements */
	{"a = 1 b = 2\n", "policy.toml:1:7: expected a newline after the value, found 'b'"},
	{"a = \"x\" \"y\"\n", "policy.toml:1:9: expected a newline after the value, found '\"'"},
	{"[t] x = 1\n", "policy.toml:1:5: expected a newline after the table header, found 'x'"},
	{"a = true false\n", "policy.toml:1:10: expected a newline after the value, found 'f'"},
	{"a\n", "policy.toml:1:2: expected '=' after the key, found end of line"},
	{"a b = 1\n", "policy.toml:1:3: expected '=' after the key, found 'b'"},
	{"a: 1\n", "policy.toml:1:2: expected '=' after the key, found ':'"},
	{"a =\n", "policy.toml:1:4: expected a value, found end of line"},
	{"a = ", "policy.toml:1:5: unexpected end of input (expected a value)"},
	{"a = # c\n", "policy.toml:1:5: expected a value, found '#'"},
	{"= 1\n", "policy.toml:1:1: expected a key, found '='"},
	{"a. = 1\n", "policy.toml:1:4: expected a key, found '='"},
	{"\xc3\xa9 = 1\n", "policy.toml:1:1: expected a key, found '\xc3\xa9' (U+00E9)"},
	{"\"\"\"k\"\"\" = 1\n", "policy.toml:1:1: multi-line strings cannot be used as keys"},
	{"[]\n", "policy.toml:1:2: expected a key, found ']'"},
	{"[a\n", "policy.toml:1:3: expected ']' after the table name, found end of line"},
	{"[a.b", "policy.toml:1:5: unexpected end of input (expected ']' after the table name)"},
	{"mode = restrict\n",
	 "policy.toml:1:8: expected a value, found 'restrict' (strings must be quoted)"},
	{"a = True\n",
	 "policy.toml:1:5: expected a value, found 'True' (TOML booleans are lowercase: true, false)"},
	{"a = @\n", "policy.toml:1:5: expected a value, found '@'"},
	{"\xef\xbb\xbf"
	 "a = 1\n",
	 "policy.toml:1:1: byte order mark (U+FEFF): save the file as UTF-8 without a BOM"},
	/* arrays and inline tables */
	{"a = [1, 2\n",
	 "policy.toml:2:1: unexpected end of input (expected ']' to close the array opened at "
	 "line 1)"},
	{"a = [1 2]\n", "policy.toml:1:8: expected ',' or ']' after an array element, found '2'"},
	{"a = [,]\n", "policy.toml:1:6: expected a value, found ','"},
	{"a = [1,,]\n", "policy.toml:1:8: expected a value, found ','"},
	{"a = {x = 1,}\n", "policy.toml:1:11: trailing comma before '}' is not allowed in inline tables"},
	{"a = {x = 1\n}\n",
	 "policy.toml:1:11: inline tables must be on a single line (expected ',' or '}')"},
	{"a = {\nx = 1}\n",
	 "policy.toml:1:6: inline tables must be on a single line (expected ',' or '}')"},
	{"a = {x = 1 y = 2}\n",
	 "policy.toml:1:12: expected ',' or '}' after an inline table member, found 'y'"},
	{"a = {x = 1", "policy.toml:1:11: unexpected end of input (expected ',' or '}' after an inline "
		       "table member)"},
	{"a = {x = 1, x = 2}\n", "policy.toml:1:13: key x is already defined at line 1"},
	/* UTF-8 */
	{"a = \"\xff\"\n", "policy.toml:1:6: invalid UTF-8 (byte '\\xff')"},
	{"# \xed\xa0\x80\n", "policy.toml:1:3: invalid UTF-8 (byte '\\xed')"},
	{"a = 1\nb = '\xc3'\n", "policy.toml:2:6: invalid UTF-8 (byte '\\xc3')"},
};

START_TEST(test_errors)
{
	expect_error(error_cases[_i].text, error_cases[_i].msg);
}
END_TEST

START_TEST(test_nul_bytes)
{
	expect_error_len("a = 1\0", 6,
			 "policy.toml:1:6: expected a newline after the value, found '\\x00'");
	expect_error_len("a = \"\0\"", 7,
			 "policy.toml:1:6: control character '\\x00' in a string (write it as an escape "
			 "such as \\u00XX)");
	expect_error_len("\0", 1, "policy.toml:1:1: expected a key, found '\\x00'");
}
END_TEST

/* Cut anywhere inside a statement, the document must fail (not crash);
 * cut at a line end, it is a valid shorter document. Every value here is a
 * string, an array or an inline table, so that no cut is a valid value. */
START_TEST(test_every_prefix)
{
	const char *doc = "[policy]\n"
			  "mode = \"restrict\"\n"
			  "blocked = ['os', \"sub\\u0070rocess\"]\n"
			  "g = { a = \"b\", c.d = [] }\n"
			  "s = \"\"\"x\ny\"\"\"\n"
			  "[policy.\"extra\"]\n"
			  "l = '''\xc3\xa9'''\n";
	size_t len = strlen(doc);
	size_t inner = (size_t)(strstr(doc, "x\ny") - doc) + 1;
	for (size_t n = 0; n <= len; n++) {
		bool at_line_end = n == 0 || doc[n - 1] == '\n' || doc[n] == '\n';
		/* Inside the multi-line string, a line end is not a statement end. */
		if (n == inner || n == inner + 1)
			at_line_end = false;
		/* Two of the three opening quotes make an empty string. */
		if (n >= 4 && doc[n - 4] == '=' && doc[n - 3] == ' ' && doc[n - 2] == doc[n - 1] &&
		    (doc[n - 1] == '"' || doc[n - 1] == '\''))
			at_line_end = true;
		spr_error *err = NULL;
		cJSON *t = NULL;
		int rc = spr_toml_parse(doc, n, "p", &t, &err);
		ck_assert_msg((rc == 0) == at_line_end, "prefix %zu: %s", n,
			      err ? err->message : "parsed");
		if (rc == 0) {
			ck_assert_ptr_nonnull(t);
			cJSON_Delete(t);
		} else {
			ck_assert_ptr_null(t);
			ck_assert(!strncmp(err->message, "p:", 2));
			spr_error_free(err);
		}
	}
}
END_TEST

START_TEST(test_depth_limit)
{
	/* The root is level 1, so a value may hold 511 nested arrays. */
	size_t n = SPR_JSON_MAX_DEPTH - 1;
	spr_buf b = SPR_BUF_INIT;
	spr_buf_puts(&b, "a = ");
	for (size_t i = 0; i < n; i++)
		spr_buf_putc(&b, '[');
	for (size_t i = 0; i < n; i++)
		spr_buf_putc(&b, ']');
	cJSON *t = parse_len_ok(b.data, b.len);
	/* What TOML produces, the JSON reader takes back. */
	char *s = spr_json_print(t);
	cJSON *back = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_json_parse(s, strlen(s), 0, "x", &back, &err), err);
	cJSON_Delete(back);
	free(s);
	cJSON_Delete(t);

	spr_buf_reset(&b);
	spr_buf_puts(&b, "a = ");
	for (size_t i = 0; i <= n; i++)
		spr_buf_puts(&b, "{b=");
	expect_error_len(b.data, b.len, "policy.toml:1:1538: nesting deeper than 512 levels");

	/* Dotted keys and headers count as levels too. */
	spr_buf_reset(&b);
	spr_buf_putc(&b, '[');
	for (size_t i = 0; i < 600; i++)
		spr_buf_puts(&b, i ? ".k" : "k");
	spr_buf_putc(&b, ']');
	expect_error_len(b.data, b.len, "policy.toml:1:1024: nesting deeper than 512 levels");
	spr_buf_reset(&b);
	for (size_t i = 0; i < 600; i++)
		spr_buf_puts(&b, "k.");
	spr_buf_puts(&b, "k = 1");
	expect_error_len(b.data, b.len, "policy.toml:1:1023: nesting deeper than 512 levels");
	spr_buf_free(&b);
}
END_TEST

START_TEST(test_many_keys_and_tables)
{
	spr_buf b = SPR_BUF_INIT;
	for (int i = 0; i < 20000; i++)
		spr_buf_printf(&b, "k%d = %d\n[t%d]\nx.y = 1\n", i, i, i);
	cJSON *t = parse_len_ok(b.data, b.len);
	ck_assert_int_eq(cJSON_GetArraySize(t), 20001); /* k0 + 20000 tables */
	cJSON_Delete(t);
	spr_buf_puts(&b, "[t777]\n");
	expect_error_len(b.data, b.len,
			 "policy.toml:60001:1: table [t777] is already defined at line 2333");
	spr_buf_free(&b);
}
END_TEST

START_TEST(test_error_details)
{
	spr_error *err = NULL;
	cJSON *t = NULL;
	ck_assert_int_lt(spr_toml_parse("a = ", 4, NULL, &t, &err), 0);
	ck_assert_str_eq(err->message, "policy:1:5: unexpected end of input (expected a value)");
	ck_assert_int_eq(err->errnum, 0);
	spr_error_free(err);
	ck_assert_int_lt(spr_toml_parse("a = ", 4, "x", &t, NULL), 0);
	ck_assert_ptr_null(t);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("toml");
	TCase *valid = tcase_create("valid");
	tcase_add_test(valid, test_reference_policy);
	tcase_add_test(valid, test_empty_and_comments);
	tcase_add_loop_test(valid, test_integers, 0, ARRAY_SIZE(integer_cases));
	tcase_add_loop_test(valid, test_floats, 0, ARRAY_SIZE(float_cases));
	tcase_add_test(valid, test_nan_and_bools);
	tcase_add_test(valid, test_strings);
	tcase_add_test(valid, test_keys_and_tables);
	tcase_add_test(valid, test_arrays_and_inline_tables);
	tcase_add_test(valid, test_spans);
	tcase_add_test(valid, test_not_nul_terminated);
	suite_add_tcase(s, valid);

	TCase *invalid = tcase_create("invalid");
	tcase_set_timeout(invalid, 60);
	tcase_add_loop_test(invalid, test_errors, 0, ARRAY_SIZE(error_cases));
	tcase_add_test(invalid, test_nul_bytes);
	tcase_add_test(invalid, test_every_prefix);
	tcase_add_test(invalid, test_depth_limit);
	tcase_add_test(invalid, test_many_keys_and_tables);
	tcase_add_test(invalid, test_error_details);
	suite_add_tcase(s, invalid);
	return s;
}
