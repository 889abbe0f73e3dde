/* A strict reader for the TOML 1.0 subset policy files use (see toml.h).
 *
 * The tree follows the JSON reader's conventions (json.h): cJSON objects,
 * Raw numbers, a span on every node. Table definitions follow TOML 1.0 as
 * Python's tomllib applies it, since policy files are also read by Python:
 *  - [a.b] defines a.b and creates a implicitly; an implicit table may be
 *    defined once later by its own header;
 *  - dotted keys (a.b = 1) define the tables before the last part; more
 *    dotted keys may add to those tables, a [header] may not (though it
 *    may define sub-tables of them). Dotted keys can only reach such a
 *    table from the section (the [header] or inline table) that made it:
 *    every other path runs through a table defined by a header or an
 *    inline table, which dotted keys may not enter;
 *  - inline tables are complete as written.
 * Each table member is also kept in a hash index (table, key) -> member that
 * records how a table was defined and where, so redefinitions can name the
 * first line and big files stay linear.
 */
#include "toml.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>

#include "json.h"
#include "utf8.h"

#ifndef _cleanup_
#define _cleanup_(f) SPR_CLEANUP(f)
#endif

#define MAX_DEPTH SPR_JSON_MAX_DEPTH

enum {
	T_EXPLICIT = 1 << 0, /* defined by its own [header] */
	T_DOTTED = 1 << 1,   /* defined by dotted keys */
	T_INLINE = 1 << 2,   /* an inline table */
};

struct member {
	const cJSON *table;
	cJSON *node; /* NULL: free slot; node->string is the key */
	unsigned flags;
	unsigned depth; /* of node, the root being 1 */
	size_t def_off; /* where it was defined, for messages */
};

struct members {
	struct member *slots;
	size_t cap, count;
};

struct key_part {
	char *name;
	size_t off, end;
};

struct key {
	struct key_part *parts;
	size_t n, cap;
};

struct parser {
	const char *text;
	size_t len;
	size_t pos;
	const char *source;
	spr_error **err;
	cJSON *root;
	cJSON *table; /* where key/value pairs go: the last [header] */
	unsigned table_depth;
	struct members members;
	spr_buf str; /* the string being decoded */
};

static void parser_free(struct parser *p)
{
	cJSON_Delete(p->root);
	free(p->members.slots);
	spr_buf_free(&p->str);
}

static void key_free(struct key *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->parts[i].name);
	free(k->parts);
}

/* ---- errors -------------------------------------------------------------- */

static unsigned line_of(const struct parser *p, size_t off)
{
	unsigned line, col;
	spr_json_line_col(p->text, p->len, off, &line, &col);
	return line;
}

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
	return spr_fail(p->err, SPR_LAYER_POLICY, 0, "%s:%u:%u: %s", p->source, line, col, what);
}

struct found {
	char s[64];
};

/* What is at text[off], for "found ..." (the text is valid UTF-8). Newlines
 * end statements in TOML, so they read as "end of line". */
static struct found found_at(const struct parser *p, size_t off)
{
	struct found f = {""};
	if (off < p->len && (p->text[off] == '\n' || p->text[off] == '\r'))
		snprintf(f.s, sizeof(f.s), "end of line");
	else
		spr_utf8_describe(f.s, sizeof(f.s), p->text, p->len, off);
	return f;
}

static struct found found_token(const char *s, size_t n)
{
	struct found f;
	if (n > 24)
		snprintf(f.s, sizeof(f.s), "'%.24s...'", s);
	else
		snprintf(f.s, sizeof(f.s), "'%.*s'", (int)n, s);
	return f;
}

/* "expected X, found Y", or "unexpected end of input (expected X)". */
static int fail_expected(struct parser *p, const char *what)
{
	if (p->pos >= p->len)
		return fail_at(p, p->pos, "unexpected end of input (expected %s)", what);
	return fail_at(p, p->pos, "expected %s, found %s", what, found_at(p, p->pos).s);
}

static int fail_control(struct parser *p, const char *where)
{
	unsigned char c = (unsigned char)p->text[p->pos];
	return fail_at(p, p->pos, "control character '\\x%02x' in %s%s", c, where,
		       strcmp(where, "a comment") ? " (write it as an escape such as \\u00XX)" : "");
}

static int fail_depth(struct parser *p, size_t off)
{
	return fail_at(p, off, "nesting deeper than %d levels", MAX_DEPTH);
}

static bool is_bare_char(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

/* A key path as TOML would write it: a."b c".d */
static void append_path(spr_buf *b, const struct key *k, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *name = k->parts[i].name;
		size_t len = strlen(name), bare = 0;
		while (bare < len && is_bare_char((unsigned char)name[bare]))
			bare++;
		if (i)
			spr_buf_putc(b, '.');
		if (len && bare == len && len <= 40) {
			spr_buf_append(b, name, len);
		} else {
			size_t cut = spr_utf8_cut(name, len, 40);
			spr_json_write_string(b, name, cut);
			if (cut < len)
				spr_buf_puts(b, "...");
		}
	}
}

static char *key_path(const struct key *k, size_t n)
{
	spr_buf path = SPR_BUF_INIT;
	append_path(&path, k, n);
	return spr_buf_steal(&path, NULL);
}

/* fail_at() with the first n parts of key k (as a path) for the first %s of
 * fmt; a macro so that fmt stays a checked literal. */
#define fail_path(p, off, k, n, fmt, ...)                                              \
	({                                                                             \
		_cleanup_free_ char *path_ = key_path(k, n);                           \
		path_ ? fail_at(p, off, fmt, path_, __VA_ARGS__) : spr_fail_oom((p)->err); \
	})

/* ---- the member index ---------------------------------------------------- */

static uint64_t member_hash(const cJSON *table, const char *name)
{
	uint64_t h = (uint64_t)(uintptr_t)table * 0x9E3779B97F4A7C15ULL;
	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ULL; /* FNV-1a */
	return h;
}

static struct member *member_slot(struct member *slots, size_t cap, const cJSON *table,
				  const char *name)
{
	size_t i = member_hash(table, name) & (cap - 1);
	while (slots[i].node && (slots[i].table != table || strcmp(slots[i].node->string, name)))
		i = (i + 1) & (cap - 1);
	return &slots[i];
}

static struct member *find_member(struct parser *p, const cJSON *table, const char *name)
{
	if (!p->members.cap)
		return NULL;
	struct member *m = member_slot(p->members.slots, p->members.cap, table, name);
	return m->node ? m : NULL;
}

static bool members_grow(struct members *ms)
{
	size_t cap = ms->cap ? ms->cap * 2 : 64;
	struct member *slots = calloc(cap, sizeof(*slots));
	if (!slots)
		return false;
	for (size_t i = 0; i < ms->cap; i++) {
		const struct member *m = &ms->slots[i];
		if (m->node)
			*member_slot(slots, cap, m->table, m->node->string) = *m;
	}
	free(ms->slots);
	ms->slots = slots;
	ms->cap = cap;
	return true;
}

/* Adds node (owned from here on) to table under name and indexes it. */
static int add_member(struct parser *p, cJSON *table, const char *name, cJSON *node,
		      struct member info)
{
	if (!node)
		return spr_fail_oom(p->err);
	if ((p->members.count + 1) * 2 > p->members.cap && !members_grow(&p->members)) {
		cJSON_Delete(node);
		return spr_fail_oom(p->err);
	}
	if (!cJSON_AddItemToObject(table, name, node)) {
		cJSON_Delete(node);
		return spr_fail_oom(p->err);
	}
	info.table = table;
	info.node = node;
	*member_slot(p->members.slots, p->members.cap, table, node->string) = info;
	p->members.count++;
	return 0;
}

/* ---- low-level scanning -------------------------------------------------- */

static int peek(const struct parser *p)
{
	return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static bool starts_with(const struct parser *p, const char *s)
{
	size_t n = strlen(s);
	return p->len - p->pos >= n && !memcmp(p->text + p->pos, s, n);
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && (p->text[p->pos] == ' ' || p->text[p->pos] == '\t'))
		p->pos++;
}

static bool is_control(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }

/* At a '\r': fine only as half of a CRLF. */
static int check_cr(struct parser *p)
{
	if (p->pos + 1 < p->len && p->text[p->pos + 1] == '\n')
		return 0;
	return fail_at(p, p->pos, "carriage return must be followed by a newline");
}

/* At '#': skips to the end of the line (not past the newline). */
static int skip_comment(struct parser *p)
{
	for (p->pos++; p->pos < p->len; p->pos++) {
		unsigned char c = (unsigned char)p->text[p->pos];
		if (c == '\n')
			break;
		if (c == '\r') {
			if (check_cr(p) < 0)
				return -1;
			break;
		}
		if (is_control(c))
			return fail_control(p, "a comment");
	}
	return 0;
}

/* Whitespace, newlines and comments (inside arrays). */
static int skip_blank(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		int c = peek(p);
		if (c == '\n') {
			p->pos++;
		} else if (c == '\r') {
			if (check_cr(p) < 0)
				return -1;
			p->pos += 2;
		} else if (c == '#') {
			if (skip_comment(p) < 0)
				return -1;
		} else {
			return 0;
		}
	}
}

/* After a statement: an optional comment, then a newline or the end. */
static int end_line(struct parser *p, const char *after)
{
	skip_ws(p);
	if (peek(p) == '#' && skip_comment(p) < 0)
		return -1;
	int c = peek(p);
	if (c < 0)
		return 0;
	if (c == '\n') {
		p->pos++;
		return 0;
	}
	if (c == '\r') {
		if (check_cr(p) < 0)
			return -1;
		p->pos += 2;
		return 0;
	}
	return fail_at(p, p->pos, "expected a newline after %s, found %s", after,
		       found_at(p, p->pos).s);
}

/* ---- strings ------------------------------------------------------------- */

static unsigned digit_value(int c)
{
	if (c >= '0' && c <= '9')
		return (unsigned)(c - '0');
	if (c >= 'a' && c <= 'z')
		return (unsigned)(c - 'a' + 10);
	if (c >= 'A' && c <= 'Z')
		return (unsigned)(c - 'A' + 10);
	return 99;
}

static int fail_unterminated(struct parser *p, size_t open, const char *delim)
{
	return fail_at(p, open, "unterminated string (end of input before the closing %s)", delim);
}

/* \uXXXX or \UXXXXXXXX at `at`. */
static int parse_unicode_escape(struct parser *p, size_t open, size_t at, const char *delim)
{
	char kind = p->text[at + 1];
	int digits = kind == 'u' ? 4 : 8;
	uint32_t cp = 0;
	p->pos = at + 2;
	for (int i = 0; i < digits; i++, p->pos++) {
		if (p->pos >= p->len)
			return fail_unterminated(p, open, delim);
		unsigned d = digit_value((unsigned char)p->text[p->pos]);
		if (d >= 16)
			return fail_at(p, p->pos, "expected %d hex digits after \\%c, found %s", digits,
				       kind, found_at(p, p->pos).s);
		cp = cp << 4 | d;
	}
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return fail_at(p, at, "\\%c%0*" PRIX32 " is not a Unicode scalar value", kind, digits, cp);
	if (cp == 0)
		return fail_at(p, at, "NUL characters are not supported in strings");
	spr_utf8_put(&p->str, cp);
	return 0;
}

static bool at_newline(const struct parser *p, size_t i)
{
	return i < p->len &&
	       (p->text[i] == '\n' || (p->text[i] == '\r' && i + 1 < p->len && p->text[i + 1] == '\n'));
}

/* A '\' ending a line of a multi-line basic string drops the line break and
 * the whitespace that follows (incl. more blank lines). */
static int trim_line_ending(struct parser *p, size_t open, size_t at)
{
	size_t i = at + 1;
	while (i < p->len && (p->text[i] == ' ' || p->text[i] == '\t'))
		i++;
	if (i >= p->len)
		return fail_unterminated(p, open, "\"\"\"");
	if (!at_newline(p, i))
		return fail_at(p, at, "a '\\' followed by whitespace must end the line");
	for (;;) {
		if (i < p->len && (p->text[i] == ' ' || p->text[i] == '\t' || p->text[i] == '\n'))
			i++;
		else if (at_newline(p, i))
			i += 2;
		else
			break;
	}
	p->pos = i;
	return 0;
}

static int parse_escape(struct parser *p, size_t open, bool multi)
{
	const char *delim = multi ? "\"\"\"" : "'\"'";
	size_t at = p->pos;
	if (at + 1 >= p->len)
		return fail_unterminated(p, open, delim);
	char e = p->text[at + 1];
	static const char plain[] = "btnfr\"\\", decoded[] = "\b\t\n\f\r\"\\";
	const char *hit = e ? strchr(plain, e) : NULL;
	if (hit) {
		spr_buf_putc(&p->str, decoded[hit - plain]);
		p->pos += 2;
		return 0;
	}
	if (e == 'u' || e == 'U')
		return parse_unicode_escape(p, open, at, delim);
	if (multi && (e == ' ' || e == '\t' || e == '\n' || e == '\r'))
		return trim_line_ending(p, open, at);
	if (e > 0x20 && e < 0x7F)
		return fail_at(p, at,
			       "invalid escape '\\%c' (valid escapes: \\b \\t \\n \\f \\r \\\" "
			       "\\\\ \\uXXXX \\UXXXXXXXX)",
			       e);
	return fail_at(p, at,
		       "invalid escape '\\' followed by %s (valid escapes: \\b \\t \\n \\f \\r \\\" "
		       "\\\\ \\uXXXX \\UXXXXXXXX)",
		       found_at(p, at + 1).s);
}

/* At the closing quote of a multi-line string: up to two more quotes
 * belong to the content ("""a""""" is a""). False when fewer than three
 * quotes (they are content too). */
static bool close_multi(struct parser *p, char quote)
{
	size_t n = 0;
	while (p->pos + n < p->len && p->text[p->pos + n] == quote && n < 5)
		n++;
	for (size_t i = n < 3 ? 0 : 3; i < n; i++)
		spr_buf_putc(&p->str, quote);
	p->pos += n;
	return n >= 3;
}

/* Newlines inside multi-line strings read as "\n". */
static int string_newline(struct parser *p, size_t open, bool multi, const char *delim)
{
	if (p->text[p->pos] == '\r' && check_cr(p) < 0)
		return -1;
	if (!multi)
		return fail_at(p, open, "unterminated string (the line ends before the closing %s)",
			       delim);
	p->pos += p->text[p->pos] == '\r' ? 2 : 1;
	spr_buf_putc(&p->str, '\n');
	return 0;
}

/* A basic ("...") or literal ('...') string, single- or multi-line, at
 * p->pos, decoded into p->str. */
static int parse_string(struct parser *p, char quote, bool multi)
{
	bool basic = quote == '"';
	const char *delim = multi ? (basic ? "\"\"\"" : "'''") : (basic ? "'\"'" : "\"'\"");
	size_t open = p->pos;
	p->pos += multi ? 3 : 1;
	spr_buf_reset(&p->str);
	spr_buf_reserve(&p->str, 0);
	if (multi && at_newline(p, p->pos))
		p->pos += p->text[p->pos] == '\r' ? 2 : 1;
	for (;;) {
		size_t run = p->pos;
		while (p->pos < p->len) {
			unsigned char c = (unsigned char)p->text[p->pos];
			if (c == (unsigned char)quote || (basic && c == '\\') || is_control(c))
				break;
			p->pos++;
		}
		spr_buf_append(&p->str, p->text + run, p->pos - run);
		if (p->pos >= p->len)
			return fail_unterminated(p, open, delim);
		char c = p->text[p->pos];
		int r = 0;
		if (c == quote) {
			if (!multi) {
				p->pos++;
				break;
			}
			if (close_multi(p, quote))
				break;
		} else if (c == '\\') {
			r = parse_escape(p, open, multi);
		} else if (c == '\n' || c == '\r') {
			r = string_newline(p, open, multi, delim);
		} else {
			r = fail_control(p, "a string");
		}
		if (r < 0)
			return -1;
	}
	if (p->str.oom)
		return spr_fail_oom(p->err);
	return 0;
}

/* ---- keys ---------------------------------------------------------------- */

static int push_part(struct parser *p, struct key *k, const char *name, size_t len, size_t off)
{
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 4;
		struct key_part *parts = realloc(k->parts, cap * sizeof(*parts));
		if (!parts)
			return spr_fail_oom(p->err);
		k->parts = parts;
		k->cap = cap;
	}
	char *copy = strndup(name, len);
	if (!copy)
		return spr_fail_oom(p->err);
	k->parts[k->n++] = (struct key_part){.name = copy, .off = off, .end = p->pos};
	return 0;
}

/* A dotted key: bare or quoted parts, whitespace allowed around the dots. */
static int parse_key(struct parser *p, struct key *k)
{
	for (;;) {
		skip_ws(p);
		size_t off = p->pos;
		int c = peek(p);
		/* Deep keys fail on the table that is too deep; this only bounds
		 * the memory a hostile key takes before that. */
		if (k->n >= 2 * MAX_DEPTH)
			return fail_depth(p, off);
		if (c == '"' || c == '\'') {
			bool multi = starts_with(p, c == '"' ? "\"\"\"" : "'''");
			if (multi)
				return fail_at(p, off, "multi-line strings cannot be used as keys");
			if (parse_string(p, (char)c, false) < 0)
				return -1;
			if (push_part(p, k, p->str.data, p->str.len, off) < 0)
				return -1;
		} else if (is_bare_char(c)) {
			while (is_bare_char(peek(p)))
				p->pos++;
			if (push_part(p, k, p->text + off, p->pos - off, off) < 0)
				return -1;
		} else if (starts_with(p, "\xEF\xBB\xBF")) {
			return fail_at(p, off, "byte order mark (U+FEFF): save the file as UTF-8 "
					       "without a BOM");
		} else {
			return fail_expected(p, "a key");
		}
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		p->pos++;
	}
}

/* ---- values -------------------------------------------------------------- */

static int finish(struct parser *p, cJSON *node, size_t start, cJSON **out)
{
	if (!node)
		return spr_fail_oom(p->err);
	spr_json_set_span(node, start, p->pos);
	*out = node;
	return 0;
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/* Digits of `base` from *i, with '_' allowed only between two digits. */
static int scan_digits(struct parser *p, size_t *i, size_t end, unsigned base)
{
	size_t first = *i;
	for (; *i < end; (*i)++) {
		char c = p->text[*i];
		if (digit_value((unsigned char)c) < base)
			continue;
		if (c != '_')
			break;
		if (*i == first || *i + 1 >= end || digit_value((unsigned char)p->text[*i + 1]) >= base)
			return fail_at(p, *i, "underscores in numbers must be between two digits");
	}
	return 0;
}

static int fail_range(struct parser *p, size_t start, size_t end)
{
	return fail_at(p, start,
		       "integer %s is outside the 64-bit range (-9223372036854775808 to "
		       "9223372036854775807)",
		       found_token(p->text + start, end - start).s);
}

/* The value of the digits in [from, end) (underscores skipped), at most
 * limit. */
static int accumulate(struct parser *p, size_t start, size_t from, size_t end, unsigned base,
		      uint64_t limit, uint64_t *out)
{
	uint64_t v = 0;
	for (size_t i = from; i < end; i++) {
		if (p->text[i] == '_')
			continue;
		unsigned d = digit_value((unsigned char)p->text[i]);
		if (v > (limit - d) / base)
			return fail_range(p, start, end);
		v = v * base + d;
	}
	*out = v;
	return 0;
}

/* 0x.., 0o.., 0b.. at start. */
static int parse_prefixed(struct parser *p, size_t start, size_t end, bool sign, cJSON **out)
{
	size_t at = start + (sign ? 1 : 0);
	char kind = p->text[at + 1];
	unsigned base = kind == 'x' ? 16 : kind == 'o' ? 8 : 2;
	const char *name = kind == 'x' ? "hexadecimal" : kind == 'o' ? "octal" : "binary";
	if (sign)
		return fail_at(p, start, "a sign is not allowed on %s integers", name);
	size_t i = at + 2;
	if (i >= end || digit_value((unsigned char)p->text[i]) >= base)
		return fail_at(p, i, "expected %s %s digit after '0%c', found %s",
			       kind == 'o' ? "an" : "a", name, kind, found_at(p, i).s);
	if (scan_digits(p, &i, end, base) < 0)
		return -1;
	if (i < end)
		return fail_at(p, i, "invalid character %s in a %s integer", found_at(p, i).s, name);
	uint64_t v = 0;
	if (accumulate(p, start, at + 2, end, base, INT64_MAX, &v) < 0)
		return -1;
	p->pos = end;
	return finish(p, spr_json_new_integer((int64_t)v), start, out);
}

static int make_float(struct parser *p, size_t start, size_t end, cJSON **out)
{
	spr_buf_reset(&p->str);
	for (size_t i = start; i < end; i++)
		if (p->text[i] != '_' && !(i == start && p->text[i] == '+'))
			spr_buf_putc(&p->str, p->text[i]);
	if (p->str.oom)
		return spr_fail_oom(p->err);
	/* Without '+' and '_' a TOML float is a JSON number; let the JSON side
	 * convert it (locale-independent). */
	cJSON literal = {.type = cJSON_Raw, .valuestring = p->str.data};
	p->pos = end;
	return finish(p, spr_json_new_double(spr_json_number(&literal)), start, out);
}

/* A decimal integer or float in [start, end), which starts with an optional
 * sign and a digit. */
static int parse_number(struct parser *p, size_t start, size_t end, cJSON **out)
{
	const char *t = p->text;
	bool sign = t[start] == '+' || t[start] == '-';
	size_t i = start + (sign ? 1 : 0), int_start = i;
	if (t[i] == '0' && i + 1 < end && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b'))
		return parse_prefixed(p, start, end, sign, out);
	if (scan_digits(p, &i, end, 10) < 0)
		return -1;
	if (t[int_start] == '0' && i - int_start > 1)
		return fail_at(p, int_start, "leading zeros are not allowed in numbers");
	bool is_float = false;
	if (i < end && t[i] == '.') {
		is_float = true;
		if (++i >= end || !is_digit(t[i]))
			return fail_at(p, i, "expected a digit after the decimal point, found %s",
				       found_at(p, i).s);
		if (scan_digits(p, &i, end, 10) < 0)
			return -1;
	}
	if (i < end && (t[i] == 'e' || t[i] == 'E')) {
		is_float = true;
		if (++i < end && (t[i] == '+' || t[i] == '-'))
			i++;
		if (i >= end || !is_digit(t[i]))
			return fail_at(p, i, "expected a digit in the exponent, found %s",
				       found_at(p, i).s);
		if (scan_digits(p, &i, end, 10) < 0)
			return -1;
	}
	if (i < end)
		return fail_at(p, i, "invalid character %s in a number", found_at(p, i).s);
	if (is_float)
		return make_float(p, start, end, out);
	bool neg = t[start] == '-';
	uint64_t v = 0;
	if (accumulate(p, start, int_start, end, 10, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, &v) <
	    0)
		return -1;
	p->pos = end;
	/* -(v - 1) - 1 reaches INT64_MIN without overflowing. */
	int64_t n = neg && v ? -(int64_t)(v - 1) - 1 : (int64_t)v;
	return finish(p, spr_json_new_integer(n), start, out);
}

static bool looks_like_date(const struct parser *p)
{
	const char *s = p->text + p->pos;
	size_t avail = p->len - p->pos, d = 0;
	while (d < avail && d < 5 && is_digit(s[d]))
		d++;
	return (d == 4 && avail > 4 && s[4] == '-') || (d == 2 && avail > 2 && s[2] == ':');
}

static bool is_scalar_char(int c) { return is_bare_char(c) || c == '+' || c == '.'; }

static bool token_is(const char *s, size_t n, const char *word)
{
	return n == strlen(word) && !memcmp(s, word, n);
}

/* Booleans, numbers, and the words TOML does not have. */
static int parse_scalar(struct parser *p, cJSON **out)
{
	size_t start = p->pos, end = start;
	if (looks_like_date(p))
		return fail_at(p, start, "dates and times are not supported in policy files "
					 "(quote the value to make it a string)");
	while (end < p->len && is_scalar_char((unsigned char)p->text[end]))
		end++;
	if (end == start)
		return fail_expected(p, "a value");
	const char *s = p->text + start;
	size_t n = end - start;
	if (token_is(s, n, "true") || token_is(s, n, "false")) {
		p->pos = end;
		return finish(p, cJSON_CreateBool(*s == 't'), start, out);
	}
	bool sign = *s == '+' || *s == '-';
	if (token_is(s + sign, n - sign, "inf") || token_is(s + sign, n - sign, "nan")) {
		p->pos = end;
		double v = s[sign] == 'i' ? (*s == '-' ? -INFINITY : INFINITY) : NAN;
		return finish(p, spr_json_new_double(v), start, out);
	}
	if (sign && n == 1)
		return fail_at(p, end, "expected a digit after '%c', found %s", *s, found_at(p, end).s);
	if (is_digit(s[sign]))
		return parse_number(p, start, end, out);
	const char *hint = " (strings must be quoted)";
	if (token_is(s, n, "True") || token_is(s, n, "False"))
		hint = " (TOML booleans are lowercase: true, false)";
	else if (!is_bare_char((unsigned char)*s))
		hint = "";
	return fail_at(p, start, "expected a value, found %s%s", found_token(s, n).s, hint);
}

static int parse_value(struct parser *p, unsigned depth, cJSON **out);
static int parse_keyval(struct parser *p, cJSON *table, unsigned depth);

static int fail_unclosed(struct parser *p, size_t open)
{
	return fail_at(p, p->pos,
		       "unexpected end of input (expected ']' to close the array opened at line %u)",
		       line_of(p, open));
}

static int parse_array(struct parser *p, unsigned depth, cJSON **out)
{
	size_t open = p->pos++;
	if (depth > MAX_DEPTH)
		return fail_depth(p, open);
	_cleanup_cjson_ cJSON *arr = cJSON_CreateArray();
	if (!arr)
		return spr_fail_oom(p->err);
	for (;;) {
		if (skip_blank(p) < 0)
			return -1;
		if (peek(p) < 0)
			return fail_unclosed(p, open);
		if (peek(p) == ']')
			break;
		cJSON *child = NULL;
		if (parse_value(p, depth + 1, &child) < 0)
			return -1;
		if (!cJSON_AddItemToArray(arr, child)) {
			cJSON_Delete(child);
			return spr_fail_oom(p->err);
		}
		if (skip_blank(p) < 0)
			return -1;
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) == ']')
			break;
		if (peek(p) < 0)
			return fail_unclosed(p, open);
		return fail_expected(p, "',' or ']' after an array element");
	}
	p->pos++;
	return finish(p, steal_pointer(&arr), open, out);
}

static int fail_inline_newline(struct parser *p)
{
	return fail_at(p, p->pos, "inline tables must be on a single line (expected ',' or '}')");
}

static int parse_inline_members(struct parser *p, cJSON *table, unsigned depth)
{
	skip_ws(p);
	if (peek(p) == '}')
		return 0;
	for (;;) {
		skip_ws(p);
		if (peek(p) == '\n' || peek(p) == '\r' || peek(p) == '#')
			return fail_inline_newline(p);
		if (parse_keyval(p, table, depth) < 0)
			return -1;
		skip_ws(p);
		int c = peek(p);
		if (c == '}')
			return 0;
		if (c == ',') {
			size_t comma = p->pos++;
			skip_ws(p);
			if (peek(p) == '}')
				return fail_at(p, comma,
					       "trailing comma before '}' is not allowed in inline tables");
			continue;
		}
		if (c == '\n' || c == '\r' || c == '#')
			return fail_inline_newline(p);
		return fail_expected(p, "',' or '}' after an inline table member");
	}
}

static int parse_inline_table(struct parser *p, unsigned depth, cJSON **out)
{
	size_t open = p->pos++;
	if (depth > MAX_DEPTH)
		return fail_depth(p, open);
	_cleanup_cjson_ cJSON *table = cJSON_CreateObject();
	if (!table)
		return spr_fail_oom(p->err);
	if (parse_inline_members(p, table, depth) < 0)
		return -1;
	p->pos++;
	return finish(p, steal_pointer(&table), open, out);
}

/* depth: the value's own, should it be an array or inline table. */
static int parse_value(struct parser *p, unsigned depth, cJSON **out)
{
	size_t start = p->pos;
	int c = peek(p);
	if (c == '[')
		return parse_array(p, depth, out);
	if (c == '{')
		return parse_inline_table(p, depth, out);
	if (c != '"' && c != '\'')
		return parse_scalar(p, out);
	if (parse_string(p, (char)c, starts_with(p, c == '"' ? "\"\"\"" : "'''")) < 0)
		return -1;
	return finish(p, cJSON_CreateString(p->str.data), start, out);
}

/* ---- tables -------------------------------------------------------------- */

/* Part i of a dotted key, from *table: the table it names, created if need
 * be, when dotted keys may add to it here. */
static int enter_dotted(struct parser *p, const struct key *k, size_t i, cJSON **table,
			unsigned *depth)
{
	const struct key_part *part = &k->parts[i];
	struct member *m = find_member(p, *table, part->name);
	if (!m) {
		if (*depth + 1 > MAX_DEPTH)
			return fail_depth(p, part->off);
		cJSON *t = cJSON_CreateObject();
		spr_json_set_span(t, part->off, part->end);
		struct member info = {.flags = T_DOTTED, .depth = *depth + 1, .def_off = part->off};
		if (add_member(p, *table, part->name, t, info) < 0)
			return -1;
		*table = t;
		(*depth)++;
		return 0;
	}
	if (!cJSON_IsObject(m->node))
		return fail_path(p, part->off, k, i + 1, "%s is already defined as a value at line %u",
				 line_of(p, m->def_off));
	if (m->flags & T_INLINE)
		return fail_path(p, part->off, k, i + 1,
				 "cannot add keys to %s: it is an inline table (line %u), which is "
				 "complete as written",
				 line_of(p, m->def_off));
	if (m->flags & T_EXPLICIT)
		return fail_path(p, part->off, k, i + 1,
				 "cannot add keys to table %s with dotted keys: it is defined by its "
				 "own [header] at line %u",
				 line_of(p, m->def_off));
	/* An implicit table (an ancestor of some [header]) is now defined. */
	if (!(m->flags & T_DOTTED))
		m->def_off = part->off;
	m->flags |= T_DOTTED;
	*table = m->node;
	*depth = m->depth;
	return 0;
}

/* key = value, into table (at depth). */
static int parse_keyval(struct parser *p, cJSON *table, unsigned depth)
{
	_cleanup_(key_free) struct key k = {0};
	if (parse_key(p, &k) < 0)
		return -1;
	if (peek(p) != '=')
		return fail_expected(p, "'=' after the key");
	p->pos++;
	skip_ws(p);
	for (size_t i = 0; i + 1 < k.n; i++)
		if (enter_dotted(p, &k, i, &table, &depth) < 0)
			return -1;
	const struct key_part *last = &k.parts[k.n - 1];
	/* parse_key succeeds only with a part; clang's analyzer does not follow
	 * its failures through fail_at (variadic) and took 0 parts for possible.
	 * NOLINTNEXTLINE(clang-analyzer-core.NullDereference) */
	const struct member *m = find_member(p, table, last->name);
	if (m)
		return fail_path(p, last->off, &k, k.n, "key %s is already defined at line %u",
				 line_of(p, m->def_off));
	cJSON *value = NULL;
	if (parse_value(p, depth + 1, &value) < 0)
		return -1;
	struct member info = {.flags = cJSON_IsObject(value) ? T_INLINE : 0,
			      .depth = depth + 1,
			      .def_off = last->off};
	return add_member(p, table, last->name, value, info);
}

/* A [header] naming a value, or an inline table, as a table. */
static int fail_header_conflict(struct parser *p, const struct key *k, size_t i,
				const struct member *m)
{
	_cleanup_free_ char *table = key_path(k, k->n);
	_cleanup_free_ char *key = key_path(k, i + 1);
	if (!table || !key)
		return spr_fail_oom(p->err);
	return fail_at(p, k->parts[i].off,
		       "cannot define table [%s]: %s is already defined as %s at line %u", table, key,
		       (m->flags & T_INLINE) ? "an inline table" : "a value", line_of(p, m->def_off));
}

/* [a.b.c]: the table key/value pairs go into from here on. */
static int parse_header(struct parser *p)
{
	size_t open = p->pos++;
	if (peek(p) == '[')
		return fail_at(p, open, "arrays of tables ([[...]]) are not supported in policy files");
	_cleanup_(key_free) struct key k = {0};
	if (parse_key(p, &k) < 0)
		return -1;
	if (peek(p) != ']')
		return fail_expected(p, "']' after the table name");
	size_t close = ++p->pos;
	cJSON *t = p->root;
	unsigned depth = 1;
	for (size_t i = 0; i < k.n; i++) {
		const struct key_part *part = &k.parts[i];
		bool last = i + 1 == k.n;
		size_t def = last ? open : part->off;
		struct member *m = find_member(p, t, part->name);
		if (!m) {
			if (depth + 1 > MAX_DEPTH)
				return fail_depth(p, part->off);
			cJSON *child = cJSON_CreateObject();
			spr_json_set_span(child, def, last ? close : part->end);
			struct member info = {.flags = last ? T_EXPLICIT : 0, .depth = depth + 1,
					      .def_off = def};
			if (add_member(p, t, part->name, child, info) < 0)
				return -1;
			t = child;
			depth++;
			continue;
		}
		if (!cJSON_IsObject(m->node) || (m->flags & T_INLINE))
			return fail_header_conflict(p, &k, i, m);
		if (last && (m->flags & T_EXPLICIT))
			return fail_path(p, open, &k, k.n, "table [%s] is already defined at line %u",
					 line_of(p, m->def_off));
		if (last && (m->flags & T_DOTTED))
			return fail_path(p, open, &k, k.n,
					 "table [%s] is already defined by dotted keys at line %u",
					 line_of(p, m->def_off));
		if (last) {
			m->flags |= T_EXPLICIT;
			m->def_off = open;
			spr_json_set_span(m->node, open, close);
		}
		t = m->node;
		depth = m->depth;
	}
	p->table = t;
	p->table_depth = depth;
	return 0;
}

static int parse_document(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		int c = peek(p);
		if (c < 0)
			return 0;
		int r;
		if (c == '\n' || c == '\r' || c == '#')
			r = end_line(p, "a comment");
		else if (c == '[')
			r = parse_header(p) < 0 ? -1 : end_line(p, "the table header");
		else
			r = parse_keyval(p, p->table, p->table_depth) < 0 ? -1
									    : end_line(p, "the value");
		if (r < 0)
			return -1;
	}
}

int spr_toml_parse(const char *text, size_t len, const char *source, cJSON **out,
		   spr_error **err)
{
	_cleanup_(parser_free) struct parser p = {
		.text = text ? text : "",
		.len = text ? len : 0,
		.source = source ? source : "policy",
		.err = err,
	};
	size_t bad;
	if (!spr_utf8_valid(p.text, p.len, &bad))
		return fail_at(&p, bad, "invalid UTF-8 (byte '\\x%02x')",
			       (unsigned char)p.text[bad]);
	p.root = cJSON_CreateObject();
	if (!p.root)
		return spr_fail_oom(err);
	p.table = p.root;
	p.table_depth = 1;
	if (parse_document(&p) < 0)
		return -1;
	spr_json_set_span(p.root, 0, p.len);
	if (out)
		*out = steal_pointer(&p.root);
	return 0;
}
