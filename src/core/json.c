/* A strict JSON reader that keeps everything (exact number text, every
 * byte of strings, source positions), a string writer and a re-indenter.
 * See json.h for why cJSON's own parser is not good enough.
 *
 * Where spans live. cJSON has no field for a source position, but most node
 * types leave some fields unused, and both the printer and cJSON_Duplicate()
 * treat those as plain data:
 *  - valueint holds start + 1; 0 means "no span", which is what every
 *    hand-built node has;
 *  - strings, objects, arrays, true/false/null keep end in valuedouble;
 *  - Raw numbers need valuedouble for their value, so their end is implied
 *    by the text: start + strlen(valuestring). When the text is not the
 *    literal as written (TOML writes 0x10 as "16"), valueint is negative and
 *    packs start + 1 (low 24 bits) with the literal's length (next 7 bits);
 *    a literal too long or too far into the file for that falls back to the
 *    implied end;
 *  - cJSON_Number nodes use valueint for their value: never a span.
 * Offsets of 2 GiB and beyond are not recorded.
 */
#include "json.h"

#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>

#include "utf8.h"

#ifndef _cleanup_
#define _cleanup_(f) SPR_CLEANUP(f)
#endif

/* ---- numbers in the C locale ------------------------------------------ */

/* strtod() and printf("%g") follow LC_NUMERIC; a host program that called
 * setlocale() must not turn 0.5 into "0,5". */
static locale_t c_locale(void)
{
	static locale_t cached;
	locale_t loc = __atomic_load_n(&cached, __ATOMIC_ACQUIRE);
	if (loc)
		return loc;
	loc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!loc)
		return (locale_t)0;
	locale_t expected = (locale_t)0;
	if (!__atomic_compare_exchange_n(&cached, &expected, loc, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		freelocale(loc);
		return expected;
	}
	return loc;
}

static double strtod_c(const char *s, char **end)
{
	locale_t loc = c_locale();
	return loc ? strtod_l(s, end, loc) : strtod(s, end);
}

void spr_format_double(char *buf, size_t size, double v)
{
	if (!isfinite(v)) {
		snprintf(buf, size, "%s", isnan(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
		return;
	}
	locale_t loc = c_locale(), old = loc ? uselocale(loc) : (locale_t)0;
	/* The fewest significant digits that read back as v... */
	int digits = 17;
	char sci[40];
	for (int p = 1; p <= 17; p++) {
		snprintf(sci, sizeof(sci), "%.*e", p - 1, v);
		if (strtod_c(sci, NULL) == v) {
			digits = p;
			break;
		}
	}
	snprintf(sci, sizeof(sci), "%.*e", digits - 1, v);
	int exponent = atoi(strchr(sci, 'e') + 1);
	/* ...written as Python's repr() writes them: positional for
	 * exponents -4..15, scientific beyond ("1e+16", "1e-05"). */
	if (exponent >= -4 && exponent < 16) {
		int decimals = digits - 1 - exponent;
		snprintf(buf, size, "%.*f", decimals > 0 ? decimals : 0, v);
	} else {
		snprintf(buf, size, "%.*e", digits - 1, v);
		/* "1.5e+16" and "1e-05", not "1.5e+016": the C library already
		 * writes at least two exponent digits, as Python does. */
	}
	if (loc)
		uselocale(old);
}

/* For JSON: always with a '.' or exponent, so that Python reads it back
 * as a float, not an int. */
static void format_double(char *buf, size_t size, double v)
{
	spr_format_double(buf, size, v);
	if (!strpbrk(buf, ".eE"))
		strncat(buf, ".0", size - strlen(buf) - 1);
}

/* JSON number grammar, plus the non-finite words Python's json writes. */
static bool is_number_text(const char *s)
{
	if (!strcmp(s, "NaN") || !strcmp(s, "Infinity") || !strcmp(s, "-Infinity"))
		return true;
	if (*s == '-')
		s++;
	if (*s == '0')
		s++;
	else if (*s >= '1' && *s <= '9')
		s += strspn(s, "0123456789");
	else
		return false;
	if (*s == '.') {
		s++;
		size_t n = strspn(s, "0123456789");
		if (!n)
			return false;
		s += n;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		size_t n = strspn(s, "0123456789");
		if (!n)
			return false;
		s += n;
	}
	return *s == '\0';
}

bool spr_json_is_number(const cJSON *node)
{
	if (cJSON_IsNumber(node))
		return true;
	return cJSON_IsRaw(node) && node->valuestring && is_number_text(node->valuestring);
}

/* Reads the text rather than trusting valuedouble: a Raw node made with
 * cJSON_CreateRaw("5") has no value there. */
double spr_json_number(const cJSON *node)
{
	if (cJSON_IsNumber(node))
		return node->valuedouble;
	if (!spr_json_is_number(node))
		return NAN;
	const char *s = node->valuestring;
	if (!strcmp(s, "NaN"))
		return NAN;
	if (!strcmp(s, "Infinity"))
		return INFINITY;
	if (!strcmp(s, "-Infinity"))
		return -INFINITY;
	return strtod_c(s, NULL);
}

bool spr_json_integer(const cJSON *node, int64_t *out)
{
	if (cJSON_IsNumber(node)) {
		double v = node->valuedouble;
		/* 2^63 is exact as a double; int64 covers [-2^63, 2^63). */
		if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0) || v != trunc(v))
			return false;
		*out = (int64_t)v;
		return true;
	}
	if (!spr_json_is_number(node) || strpbrk(node->valuestring, ".eEIN"))
		return false;
	errno = 0;
	long long v = strtoll(node->valuestring, NULL, 10);
	if (errno == ERANGE)
		return false;
	*out = v;
	return true;
}

static cJSON *new_raw_number(const char *text, double value)
{
	cJSON *node = cJSON_CreateRaw(text);
	if (node)
		node->valuedouble = value;
	return node;
}

cJSON *spr_json_new_integer(int64_t v)
{
	char buf[32];
	snprintf(buf, sizeof(buf), "%" PRId64, v);
	return new_raw_number(buf, (double)v);
}

cJSON *spr_json_new_double(double v)
{
	char buf[40];
	if (isnan(v))
		snprintf(buf, sizeof(buf), "NaN");
	else if (isinf(v))
		snprintf(buf, sizeof(buf), "%s", v < 0 ? "-Infinity" : "Infinity");
	else
		format_double(buf, sizeof(buf), v);
	return new_raw_number(buf, v);
}

/* ---- spans ------------------------------------------------------------- */

#define PACK_START_BITS 24
#define PACK_LEN_LIMIT 128u

void spr_json_set_span(cJSON *node, size_t start, size_t end)
{
	if (!node || cJSON_IsNumber(node))
		return;
	node->valueint = 0;
	if (start >= (size_t)INT_MAX || end < start)
		return;
	if (!cJSON_IsRaw(node)) {
		node->valueint = (int)start + 1;
		node->valuedouble = (double)end;
		return;
	}
	size_t text_len = node->valuestring ? strlen(node->valuestring) : 0;
	size_t n = end - start;
	if (n != text_len && start + 1 < (1u << PACK_START_BITS) && n < PACK_LEN_LIMIT)
		node->valueint = -(int)((start + 1) | (n << PACK_START_BITS));
	else
		node->valueint = (int)start + 1;
}

bool spr_json_span(const cJSON *node, size_t *start, size_t *end)
{
	if (!node || cJSON_IsNumber(node) || node->valueint == 0)
		return false;
	size_t s, e;
	if (cJSON_IsRaw(node) && node->valueint < 0) {
		unsigned packed = -(unsigned)node->valueint;
		s = (packed & ((1u << PACK_START_BITS) - 1)) - 1;
		e = s + (packed >> PACK_START_BITS);
	} else if (cJSON_IsRaw(node)) {
		s = (size_t)node->valueint - 1;
		e = s + (node->valuestring ? strlen(node->valuestring) : 0);
	} else {
		if (node->valueint < 0)
			return false;
		s = (size_t)node->valueint - 1;
		double d = node->valuedouble;
		e = d >= (double)s && d < 9007199254740992.0 ? (size_t)d : s;
	}
	if (start)
		*start = s;
	if (end)
		*end = e;
	return true;
}

void spr_json_line_col(const char *text, size_t len, size_t offset, unsigned *line,
		       unsigned *col)
{
	unsigned l = 1, c = 1;
	if (offset > len)
		offset = len;
	for (size_t i = 0; i < offset; i++) {
		unsigned char ch = (unsigned char)text[i];
		if (ch == '\n') {
			l++;
			c = 1;
		} else if ((ch & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

/* ---- describing what was found, for messages ---------------------------- */

struct found {
	char s[64];
};

static struct found found_at(const char *text, size_t len, size_t off)
{
	struct found f = {""};
	spr_utf8_describe(f.s, sizeof(f.s), text, len, off);
	return f;
}

static bool is_word_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* Where a value was expected, a word (True, undefined) says more than its
 * first letter. */
static struct found word_at(const char *text, size_t len, size_t off)
{
	size_t n = 0;
	while (off + n < len && n < 24 && is_word_char(text[off + n]))
		n++;
	if (n < 2)
		return found_at(text, len, off);
	struct found f;
	bool more = off + n < len && is_word_char(text[off + n]);
	snprintf(f.s, sizeof(f.s), "'%.*s%s'", (int)n, text + off, more ? "..." : "");
	return f;
}

/* A key or string quoted for a message, cut short when long. */
static void quote_for_message(spr_buf *b, const char *s, size_t len)
{
	size_t cut = spr_utf8_cut(s, len, 40);
	spr_json_write_string(b, s, cut);
	if (cut < len)
		spr_buf_puts(b, "...");
}

/* ---- the reader -------------------------------------------------------- */

struct parser {
	const char *text;
	size_t len;
	size_t pos;
	int flags;
	bool build; /* false for spr_json_validate: check only */
	unsigned depth;
	const char *source;
	spr_error **err;
	spr_buf str; /* the string being decoded */
};

static void parser_free(struct parser *p) { spr_buf_free(&p->str); }

static int fail_at(struct parser *p, size_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail_at(struct parser *p, size_t off, const char *fmt, ...)
{
	_cleanup_free_ char *what = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&what, fmt, ap);
	va_end(ap);
	if (n < 0) {
		what = NULL;
		return spr_fail_oom(p->err);
	}
	unsigned line, col;
	spr_json_line_col(p->text, p->len, off, &line, &col);
	return spr_fail(p->err, SPR_LAYER_REQUEST, 0, "%s:%u:%u: %s", p->source, line, col,
			what);
}

/* "expected X, found Y", or "unexpected end of input (expected X)". */
static int fail_expected(struct parser *p, const char *what)
{
	if (p->pos >= p->len)
		return fail_at(p, p->pos, "unexpected end of input (expected %s)", what);
	return fail_at(p, p->pos, "expected %s, found %s", what,
		       found_at(p->text, p->len, p->pos).s);
}

static int peek(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && is_ws(p->text[p->pos]))
		p->pos++;
}

static int enter(struct parser *p, size_t open)
{
	if (++p->depth > SPR_JSON_MAX_DEPTH)
		return fail_at(p, open, "nesting deeper than %d levels", SPR_JSON_MAX_DEPTH);
	return 0;
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int fail_unterminated(struct parser *p, size_t open)
{
	return fail_at(p, open, "unterminated string (end of input before the closing '\"')");
}

/* The 4 hex digits of a \u escape at p->pos. */
static int read_hex4(struct parser *p, size_t open, unsigned *out)
{
	unsigned v = 0;
	for (size_t i = 0; i < 4; i++) {
		if (p->pos >= p->len)
			return fail_unterminated(p, open);
		int h = hex_value(p->text[p->pos]);
		if (h < 0)
			return fail_at(p, p->pos, "expected 4 hex digits after \\u, found %s",
				       found_at(p->text, p->len, p->pos).s);
		v = v << 4 | (unsigned)h;
		p->pos++;
	}
	*out = v;
	return 0;
}

static int lone_surrogate(struct parser *p, size_t at, unsigned cp)
{
	if (p->flags & SPR_JSON_LONE_SURROGATE_FFFD) {
		spr_utf8_put(&p->str, 0xFFFD);
		return 0;
	}
	return fail_at(p, at,
		       "lone surrogate \\u%04x in a string (\\ud800-\\udbff must be followed by "
		       "\\udc00-\\udfff)",
		       cp);
}

/* \uXXXX, with p->pos after the 'u'; a surrogate pair is two escapes. */
static int parse_unicode_escape(struct parser *p, size_t open, size_t at)
{
	unsigned cp = 0;
	if (read_hex4(p, open, &cp) < 0)
		return -1;
	if (cp >= 0xDC00 && cp <= 0xDFFF)
		return lone_surrogate(p, at, cp);
	if (cp >= 0xD800 && cp <= 0xDBFF) {
		size_t next = p->pos;
		if (p->len - next < 2 || p->text[next] != '\\' || p->text[next + 1] != 'u')
			return lone_surrogate(p, at, cp);
		p->pos += 2;
		unsigned lo = 0;
		if (read_hex4(p, open, &lo) < 0)
			return -1;
		if (lo < 0xDC00 || lo > 0xDFFF) {
			/* Not a pair: the second escape stands on its own. */
			p->pos = next;
			return lone_surrogate(p, at, cp);
		}
		cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
	}
	if (cp == 0 && !(p->flags & SPR_JSON_ALLOW_NUL))
		return fail_at(p, at, "\\u0000 (NUL) is not allowed in strings");
	spr_utf8_put(&p->str, cp);
	return 0;
}

static int parse_escape(struct parser *p, size_t open)
{
	size_t at = p->pos;
	if (at + 1 >= p->len)
		return fail_unterminated(p, open);
	char e = p->text[at + 1];
	p->pos += 2;
	static const char plain[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
	const char *hit = e ? strchr(plain, e) : NULL;
	if (hit) {
		spr_buf_putc(&p->str, decoded[hit - plain]);
		return 0;
	}
	if (e == 'u')
		return parse_unicode_escape(p, open, at);
	if (e > 0x20 && e < 0x7F)
		return fail_at(p, at,
			       "invalid escape '\\%c' in a string (valid escapes: \\\" \\\\ \\/ "
			       "\\b \\f \\n \\r \\t \\uXXXX)",
			       e);
	return fail_at(p, at,
		       "invalid escape '\\' followed by %s in a string (valid escapes: \\\" \\\\ \\/ "
		       "\\b \\f \\n \\r \\t \\uXXXX)",
		       found_at(p->text, p->len, at + 1).s);
}

static const char *escape_hint(unsigned char c, char *buf, size_t size)
{
	static const char names[] = "\b\f\n\r\t", short_forms[] = "bfnrt";
	const char *hit = c ? strchr(names, c) : NULL;
	if (hit)
		snprintf(buf, size, "\\%c", short_forms[hit - names]);
	else
		snprintf(buf, size, "\\u%04x", c);
	return buf;
}

/* The string literal at p->pos, decoded into p->str. */
static int parse_string(struct parser *p)
{
	size_t open = p->pos++;
	spr_buf_reset(&p->str);
	spr_buf_reserve(&p->str, 0);
	for (;;) {
		size_t run = p->pos;
		while (p->pos < p->len) {
			unsigned char c = (unsigned char)p->text[p->pos];
			if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
				break;
			p->pos++;
		}
		spr_buf_append(&p->str, p->text + run, p->pos - run);
		if (p->pos >= p->len)
			return fail_unterminated(p, open);
		unsigned char c = (unsigned char)p->text[p->pos];
		if (c == '"') {
			p->pos++;
			break;
		}
		if (c == '\\') {
			if (parse_escape(p, open) < 0)
				return -1;
		} else if (c < 0x20) {
			char hint[8];
			return fail_at(p, p->pos, "control character '\\x%02x' in a string (write it as %s)",
				       c, escape_hint(c, hint, sizeof(hint)));
		} else {
			size_t n = spr_utf8_seq_len((const unsigned char *)p->text + p->pos,
						    p->len - p->pos);
			if (!n)
				return fail_at(p, p->pos, "invalid UTF-8 byte '\\x%02x' in a string", c);
			spr_buf_append(&p->str, p->text + p->pos, n);
			p->pos += n;
		}
	}
	if (p->str.oom)
		return spr_fail_oom(p->err);
	return 0;
}

static int fail_value(struct parser *p)
{
	if (p->pos >= p->len)
		return fail_expected(p, "a JSON value");
	static const struct {
		const char *word, *hint;
	} hints[] = {
		{"'True'", " (JSON spells it true)"},
		{"'False'", " (JSON spells it false)"},
		{"'None'", " (JSON spells it null)"},
		{"'NaN'", " (NaN is not valid JSON)"},
		{"'Infinity'", " (Infinity is not valid JSON)"},
	};
	struct found f = word_at(p->text, p->len, p->pos);
	const char *hint = p->text[p->pos] == '\'' ? " (JSON strings use double quotes)" : "";
	for (size_t i = 0; i < ARRAY_SIZE(hints); i++)
		if (!strcmp(f.s, hints[i].word))
			hint = hints[i].hint;
	return fail_at(p, p->pos, "expected a JSON value, found %s%s", f.s, hint);
}

static int finish_node(struct parser *p, cJSON *node, size_t start, cJSON **out)
{
	if (!node)
		return spr_fail_oom(p->err);
	spr_json_set_span(node, start, p->pos);
	*out = node;
	return 0;
}

/* true, false, null, and with SPR_JSON_ALLOW_NONFINITE NaN, Infinity,
 * -Infinity (at start, which may be the '-'). */
static int parse_word(struct parser *p, size_t start, const char *word, cJSON **out)
{
	size_t n = strlen(word), avail = p->len - p->pos;
	if (avail < n && !memcmp(p->text + p->pos, word, avail))
		return fail_at(p, p->len, "unexpected end of input (expected '%s')", word);
	if (avail < n || memcmp(p->text + p->pos, word, n) ||
	    (avail > n && is_word_char(p->text[p->pos + n]))) {
		p->pos = start;
		return fail_value(p);
	}
	p->pos += n;
	if (!p->build)
		return 0;
	cJSON *node;
	if (!strcmp(word, "true"))
		node = cJSON_CreateTrue();
	else if (!strcmp(word, "false"))
		node = cJSON_CreateFalse();
	else if (!strcmp(word, "null"))
		node = cJSON_CreateNull();
	else if (!strcmp(word, "NaN"))
		node = new_raw_number("NaN", NAN);
	else
		node = start < p->pos - n ? new_raw_number("-Infinity", -INFINITY)
					  : new_raw_number("Infinity", INFINITY);
	return finish_node(p, node, start, out);
}

static void skip_digits(struct parser *p)
{
	while (p->pos < p->len && p->text[p->pos] >= '0' && p->text[p->pos] <= '9')
		p->pos++;
}

static bool at_digit(const struct parser *p)
{
	int c = peek(p);
	return c >= '0' && c <= '9';
}

static int parse_number(struct parser *p, cJSON **out)
{
	size_t start = p->pos;
	if (peek(p) == '-') {
		p->pos++;
		if ((p->flags & SPR_JSON_ALLOW_NONFINITE) && peek(p) == 'I')
			return parse_word(p, start, "Infinity", out);
		if (!at_digit(p))
			return fail_expected(p, "a digit after '-'");
	}
	if (peek(p) == '0') {
		p->pos++;
		if (at_digit(p))
			return fail_at(p, start, "numbers cannot have leading zeros");
	} else {
		skip_digits(p);
	}
	if (peek(p) == '.') {
		p->pos++;
		if (!at_digit(p))
			return fail_expected(p, "a digit after the decimal point");
		skip_digits(p);
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (!at_digit(p))
			return fail_expected(p, "a digit in the exponent");
		skip_digits(p);
	}
	if (!p->build)
		return 0;
	spr_buf_reset(&p->str);
	spr_buf_append(&p->str, p->text + start, p->pos - start);
	if (p->str.oom)
		return spr_fail_oom(p->err);
	return finish_node(p, new_raw_number(p->str.data, strtod_c(p->str.data, NULL)), start, out);
}

static int parse_value(struct parser *p, cJSON **out);

/* Keys seen in one object, to refuse duplicates in linear time. */
struct key_entry {
	char *key; /* decoded, may contain NUL */
	size_t len;
	size_t off; /* of the key's opening quote */
};

struct key_set {
	struct key_entry *slots;
	size_t cap, count;
};

static void key_set_free(struct key_set *s)
{
	for (size_t i = 0; i < s->cap; i++)
		free(s->slots[i].key);
	free(s->slots);
}

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

static struct key_entry *key_slot(struct key_entry *slots, size_t cap, const char *key,
				  size_t len)
{
	size_t i = hash_bytes(key, len) & (cap - 1);
	while (slots[i].key &&
	       (slots[i].len != len || memcmp(slots[i].key, key, len) != 0))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static bool key_set_grow(struct key_set *s)
{
	size_t cap = s->cap ? s->cap * 2 : 8;
	struct key_entry *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < s->cap; i++)
		if (s->slots[i].key)
			*key_slot(slots, cap, s->slots[i].key, s->slots[i].len) = s->slots[i];
	free(s->slots);
	s->slots = slots;
	s->cap = cap;
	return true;
}

/* Adds the key in p->str; *slot is its entry, or the earlier one when the
 * key is a duplicate (returns 1). */
static int key_set_add(struct parser *p, struct key_set *s, size_t off, struct key_entry **slot)
{
	if ((s->count + 1) * 2 > s->cap && !key_set_grow(s))
		return spr_fail_oom(p->err);
	struct key_entry *e = key_slot(s->slots, s->cap, p->str.data, p->str.len);
	*slot = e;
	if (e->key)
		return 1;
	e->key = malloc(p->str.len + 1);
	if (!e->key)
		return spr_fail_oom(p->err);
	memcpy(e->key, p->str.data, p->str.len + 1);
	e->len = p->str.len;
	e->off = off;
	s->count++;
	return 0;
}

static int fail_duplicate(struct parser *p, size_t off, const struct key_entry *first)
{
	_cleanup_buf_ spr_buf name = SPR_BUF_INIT;
	quote_for_message(&name, first->key, first->len);
	if (name.oom)
		return spr_fail_oom(p->err);
	unsigned line, col;
	spr_json_line_col(p->text, p->len, first->off, &line, &col);
	return fail_at(p, off, "duplicate key %s (first defined at line %u, column %u)", name.data,
		       line, col);
}

static int fail_member_start(struct parser *p, size_t comma)
{
	if (comma != SIZE_MAX && peek(p) == '}')
		return fail_at(p, comma, "trailing comma before '}' is not allowed");
	if (peek(p) == '\'' || (peek(p) >= 0 && is_word_char((char)peek(p))))
		return fail_at(p, p->pos, "expected a string key, found %s (keys must be in double quotes)",
			       word_at(p->text, p->len, p->pos).s);
	return fail_expected(p, "a string key");
}

static int parse_member(struct parser *p, cJSON *obj, struct key_set *keys)
{
	size_t key_off = p->pos;
	if (parse_string(p) < 0)
		return -1;
	struct key_entry *slot = NULL;
	int r = key_set_add(p, keys, key_off, &slot);
	if (r < 0)
		return -1;
	if (r > 0)
		return fail_duplicate(p, key_off, slot);
	/* The set owns the key's bytes; they stay put while the value is parsed. */
	const char *key = slot->key;
	skip_ws(p);
	if (peek(p) != ':')
		return fail_expected(p, "':' after the object key");
	p->pos++;
	cJSON *child = NULL;
	if (parse_value(p, &child) < 0)
		return -1;
	if (obj && !cJSON_AddItemToObject(obj, key, child)) {
		cJSON_Delete(child);
		return spr_fail_oom(p->err);
	}
	return 0;
}

static int parse_object(struct parser *p, cJSON **out)
{
	size_t start = p->pos++;
	if (enter(p, start) < 0)
		return -1;
	_cleanup_cjson_ cJSON *obj = NULL;
	if (p->build && !(obj = cJSON_CreateObject()))
		return spr_fail_oom(p->err);
	_cleanup_(key_set_free) struct key_set keys = {0};
	skip_ws(p);
	if (peek(p) == '}') {
		p->pos++;
	} else {
		size_t comma = SIZE_MAX;
		for (;;) {
			skip_ws(p);
			if (peek(p) != '"')
				return fail_member_start(p, comma);
			if (parse_member(p, obj, &keys) < 0)
				return -1;
			skip_ws(p);
			if (peek(p) == ',') {
				comma = p->pos++;
				continue;
			}
			if (peek(p) == '}') {
				p->pos++;
				break;
			}
			return fail_expected(p, "',' or '}' after an object member");
		}
	}
	p->depth--;
	if (!p->build)
		return 0;
	return finish_node(p, steal_pointer(&obj), start, out);
}

static int parse_array(struct parser *p, cJSON **out)
{
	size_t start = p->pos++;
	if (enter(p, start) < 0)
		return -1;
	_cleanup_cjson_ cJSON *arr = NULL;
	if (p->build && !(arr = cJSON_CreateArray()))
		return spr_fail_oom(p->err);
	skip_ws(p);
	if (peek(p) == ']') {
		p->pos++;
	} else {
		for (;;) {
			cJSON *child = NULL;
			if (parse_value(p, &child) < 0)
				return -1;
			if (arr && !cJSON_AddItemToArray(arr, child)) {
				cJSON_Delete(child);
				return spr_fail_oom(p->err);
			}
			skip_ws(p);
			if (peek(p) == ',') {
				size_t comma = p->pos++;
				skip_ws(p);
				if (peek(p) == ']')
					return fail_at(p, comma, "trailing comma before ']' is not allowed");
				continue;
			}
			if (peek(p) == ']') {
				p->pos++;
				break;
			}
			return fail_expected(p, "',' or ']' after an array element");
		}
	}
	p->depth--;
	if (!p->build)
		return 0;
	return finish_node(p, steal_pointer(&arr), start, out);
}

static int parse_string_value(struct parser *p, cJSON **out)
{
	size_t start = p->pos;
	if (parse_string(p) < 0)
		return -1;
	if (!p->build)
		return 0;
	return finish_node(p, cJSON_CreateString(p->str.data), start, out);
}

static int parse_value(struct parser *p, cJSON **out)
{
	skip_ws(p);
	bool nonfinite = p->flags & SPR_JSON_ALLOW_NONFINITE;
	switch (peek(p)) {
	case '{':
		return parse_object(p, out);
	case '[':
		return parse_array(p, out);
	case '"':
		return parse_string_value(p, out);
	case 't':
		return parse_word(p, p->pos, "true", out);
	case 'f':
		return parse_word(p, p->pos, "false", out);
	case 'n':
		return parse_word(p, p->pos, "null", out);
	case 'N':
		return nonfinite ? parse_word(p, p->pos, "NaN", out) : fail_value(p);
	case 'I':
		return nonfinite ? parse_word(p, p->pos, "Infinity", out) : fail_value(p);
	case '-':
	case '0' ... '9':
		return parse_number(p, out);
	default:
		return fail_value(p);
	}
}

static int parse_document(const char *text, size_t len, int flags, const char *source,
			  cJSON **out, spr_error **err)
{
	_cleanup_(parser_free) struct parser p = {
		.text = text ? text : "",
		.len = text ? len : 0,
		.flags = flags,
		.build = out != NULL,
		.source = source ? source : "json",
		.err = err,
	};
	_cleanup_cjson_ cJSON *root = NULL;
	if (p.len >= 3 && !memcmp(p.text, "\xEF\xBB\xBF", 3))
		return fail_at(&p, 0, "byte order mark (U+FEFF) before the JSON value");
	if (parse_value(&p, &root) < 0)
		return -1;
	skip_ws(&p);
	if (p.pos < p.len)
		return fail_at(&p, p.pos, "expected end of input after the JSON value, found %s",
			       found_at(p.text, p.len, p.pos).s);
	if (out)
		*out = steal_pointer(&root);
	return 0;
}

int spr_json_parse(const char *text, size_t len, int flags, const char *source, cJSON **out,
		   spr_error **err)
{
	cJSON *tree = NULL;
	if (parse_document(text, len, flags, source, &tree, err) < 0)
		return -1;
	*out = tree;
	return 0;
}

int spr_json_validate(const char *text, size_t len, int flags, const char *source,
		      spr_error **err)
{
	return parse_document(text, len, flags, source, NULL, err);
}

int spr_json_decode_string(const char *text, size_t len, int flags, char **out, size_t *out_len,
			   spr_error **err)
{
	_cleanup_(parser_free) struct parser p = {
		.text = text ? text : "",
		.len = text ? len : 0,
		.flags = flags,
		.source = "string",
		.err = err,
	};
	if (peek(&p) != '"')
		return fail_expected(&p, "'\"' opening a string");
	if (parse_string(&p) < 0)
		return -1;
	if (p.pos < p.len)
		return fail_at(&p, p.pos, "expected end of input after the string, found %s",
			       found_at(p.text, p.len, p.pos).s);
	size_t n = 0;
	char *data = spr_buf_steal(&p.str, &n);
	if (!data)
		return spr_fail_oom(err);
	*out = data;
	if (out_len)
		*out_len = n;
	return 0;
}

/* ---- writers ----------------------------------------------------------- */

void spr_json_write_string(spr_buf *out, const char *s, size_t len)
{
	spr_buf_putc(out, '"');
	size_t run = 0, i = 0;
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x80) {
			/* Ill-formed sequences never span an ASCII byte, so each run of
			 * non-ASCII bytes can be sanitized on its own. */
			size_t j = i;
			while (j < len && (unsigned char)s[j] >= 0x80)
				j++;
			spr_buf_append(out, s + run, i - run);
			spr_utf8_sanitize(out, s + i, j - i);
			run = i = j;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7F) {
			i++;
			continue;
		}
		spr_buf_append(out, s + run, i - run);
		char esc[8];
		if (c == '"' || c == '\\')
			snprintf(esc, sizeof(esc), "\\%c", c);
		else
			escape_hint(c, esc, sizeof(esc));
		spr_buf_puts(out, esc);
		run = ++i;
	}
	spr_buf_append(out, s + run, len - run);
	spr_buf_putc(out, '"');
}

static void newline_indent(spr_buf *out, size_t depth)
{
	spr_buf_putc(out, '\n');
	for (size_t i = 0; i < depth; i++)
		spr_buf_append(out, "  ", 2);
}

/* Index just past the string literal starting at json[i] (or len). */
static size_t string_end(const char *json, size_t len, size_t i)
{
	for (i++; i < len; i++) {
		if (json[i] == '\\')
			i++;
		else if (json[i] == '"')
			return i + 1;
	}
	return len;
}

/* Token boundaries for the pretty printer; everything else is copied. */
static bool is_pretty_special(char c)
{
	return is_ws(c) || c == '"' || c == '{' || c == '}' || c == '[' || c == ']' || c == ',' ||
	       c == ':';
}

void spr_json_pretty(spr_buf *out, const char *json, size_t len)
{
	size_t depth = 0;
	for (size_t i = 0; i < len;) {
		char c = json[i];
		switch (c) {
		case ' ':
		case '\t':
		case '\r':
		case '\n':
			i++;
			break;
		case '"': {
			size_t end = string_end(json, len, i);
			spr_buf_append(out, json + i, end - i);
			i = end;
			break;
		}
		case '{':
		case '[': {
			size_t next = i + 1;
			while (next < len && is_ws(json[next]))
				next++;
			spr_buf_putc(out, c);
			if (next < len && json[next] == (c == '{' ? '}' : ']')) {
				spr_buf_putc(out, json[next]);
				i = next + 1;
			} else {
				newline_indent(out, ++depth);
				i++;
			}
			break;
		}
		case '}':
		case ']':
			if (depth)
				depth--;
			newline_indent(out, depth);
			spr_buf_putc(out, c);
			i++;
			break;
		case ',':
			spr_buf_putc(out, ',');
			newline_indent(out, depth);
			i++;
			break;
		case ':':
			spr_buf_append(out, ": ", 2);
			i++;
			break;
		default: {
			size_t end = i + 1;
			while (end < len && !is_pretty_special(json[end]))
				end++;
			spr_buf_append(out, json + i, end - i);
			i = end;
		}
		}
	}
}

char *spr_json_print(const cJSON *node)
{
	/* cJSON's printer takes a non-const pointer but does not modify. */
	return node ? cJSON_PrintUnformatted((cJSON *)node) : NULL;
}
