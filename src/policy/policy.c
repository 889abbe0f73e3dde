/* Policy defaults, validation and (de)serialisation. Every field is
 * described once in `fields[]`; loading from TOML, JSON and CLI overrides
 * all go through spr_policy_apply(), so a field is validated in one place. */
#include "policy.h"

#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include "json.h"
#include "protocol/message.h"
#include "policy/toml.h"

enum field_kind {
	F_MODE,
	F_SECONDS,     /* number > 0, <= max */
	F_OPT_SECONDS, /* number > 0 or JSON null (= no limit) */
	F_INT,	       /* integer in [min, max] */
	F_NUMBER,      /* number > 0, <= max */
	F_BOOL,
	F_STRLIST,
	F_MODULES,     /* a list of module names, each once (preload_imports) */
	F_LAYERS,      /* a list of isolation layers (protocol/message.h) */
	F_TABLE,
	F_ENV,
};

struct field {
	const char *name;
	enum field_kind kind;
	size_t offset;
	double min, max;
	const char *unit; /* for messages */
};

#define OFF(f) offsetof(struct spr_policy, f)
static const struct field fields[] = {
	{"mode", F_MODE, OFF(mode), 0, 0, NULL},
	{"timeout_seconds", F_SECONDS, OFF(timeout_seconds), 0, SPR_MAX_TIMEOUT_SECONDS, "seconds"},
	{"memory_limit_mb", F_INT, OFF(memory_limit_mb), 1, SPR_MAX_MEMORY_MB, "MiB"},
	{"max_output_kb", F_INT, OFF(max_output_kb), 0, SPR_MAX_OUTPUT_KB, "KiB"},
	{"blocked_imports", F_STRLIST, OFF(blocked_imports), 0, 0, NULL},
	{"blocked_builtins", F_STRLIST, OFF(blocked_builtins), 0, 0, NULL},
	{"allowed_imports", F_STRLIST, OFF(allowed_imports), 0, 0, NULL},
	{"allowed_builtins", F_STRLIST, OFF(allowed_builtins), 0, 0, NULL},
	{"allowed_globals", F_STRLIST, OFF(allowed_globals), 0, 0, NULL},
	{"blocked_globals", F_STRLIST, OFF(blocked_globals), 0, 0, NULL},
	{"extra_globals", F_TABLE, OFF(extra_globals), 0, 0, NULL},
	{"network", F_BOOL, OFF(network), 0, 0, NULL},
	{"max_processes", F_INT, OFF(max_processes), 1, SPR_MAX_PROCESSES, "processes"},
	{"cpu_cores", F_NUMBER, OFF(cpu_cores), SPR_MIN_CPU_CORES, SPR_MAX_CPU_CORES, "cores"},
	{"cpu_seconds", F_OPT_SECONDS, OFF(cpu_seconds), 0, SPR_MAX_TIMEOUT_SECONDS, "seconds"},
	{"tmp_size_mb", F_INT, OFF(tmp_size_mb), 1, SPR_MAX_TMP_MB, "MiB"},
	{"env", F_ENV, OFF(env), 0, 0, NULL},
	{"require", F_LAYERS, OFF(require), 0, 0, NULL},
	{"preload_imports", F_MODULES, OFF(preload_imports), 0, SPR_MAX_PRELOADS, "modules"},
};
#undef OFF

/* The kinds held as cJSON trees. */
static bool is_tree(enum field_kind k)
{
	return k == F_STRLIST || k == F_MODULES || k == F_LAYERS || k == F_TABLE || k == F_ENV;
}

/* Through void *: (f)->offset is a field of that very type (offsetof), the
 * char * only counts bytes. */
#define FIELD_PTR(p, f, type) ((type *)(void *)((char *)(p) + (f)->offset))

static cJSON *string_array(const char *const *items)
{
	cJSON *a = cJSON_CreateArray();
	for (; a && *items; items++) {
		cJSON *s = cJSON_CreateString(*items);
		if (!s || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

static void policy_clear(struct spr_policy *p)
{
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		enum field_kind k = fields[i].kind;
		if (is_tree(k)) {
			cJSON **slot = FIELD_PTR(p, &fields[i], cJSON *);
			cJSON_Delete(*slot);
			*slot = NULL;
		}
	}
}

void spr_policy_free(spr_policy *p)
{
	if (!p)
		return;
	policy_clear(p);
	free(p);
}

int spr_policy_new(spr_policy **out, spr_error **err)
{
	static const char *const blocked_imports[] = {"os",	"subprocess", "socket",
						      "ctypes", "importlib",  NULL};
	static const char *const blocked_builtins[] = {"eval",	  "exec",	"open",
						       "compile", "breakpoint", NULL};
	static const char *const none[] = {NULL};

	if (!out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_policy_new: out is NULL");
	_cleanup_policy_ struct spr_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return spr_fail_oom(err);
	p->mode = SPR_MODE_RESTRICT;
	p->timeout_seconds = 5;
	p->memory_limit_mb = 256;
	p->max_output_kb = 128;
	p->blocked_imports = string_array(blocked_imports);
	p->blocked_builtins = string_array(blocked_builtins);
	p->allowed_imports = string_array(none);
	p->allowed_builtins = string_array(none);
	p->allowed_globals = string_array(none);
	p->blocked_globals = string_array(none);
	p->extra_globals = cJSON_CreateObject();
	p->network = false;
	p->max_processes = 64;
	p->cpu_cores = 1.0;
	p->cpu_seconds = 0;
	p->tmp_size_mb = 64;
	p->env = cJSON_CreateObject();
	p->require = string_array(none);
	p->preload_imports = string_array(none);
	if (!p->blocked_imports || !p->blocked_builtins || !p->allowed_imports ||
	    !p->allowed_builtins || !p->allowed_globals || !p->blocked_globals ||
	    !p->extra_globals || !p->env || !p->require ||
	    !p->preload_imports)
		return spr_fail_oom(err);
	*out = steal_pointer(&p);
	return 0;
}

int spr_policy_copy(const struct spr_policy *src, struct spr_policy **out, spr_error **err)
{
	_cleanup_policy_ struct spr_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return spr_fail_oom(err);
	*p = *src;
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		enum field_kind k = fields[i].kind;
		if (is_tree(k))
			*FIELD_PTR(p, &fields[i], cJSON *) = NULL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		enum field_kind k = fields[i].kind;
		if (is_tree(k)) {
			cJSON *from = *FIELD_PTR(src, &fields[i], cJSON *);
			cJSON *dup = cJSON_Duplicate(from, true);
			if (!dup)
				return spr_fail_oom(err);
			*FIELD_PTR(p, &fields[i], cJSON *) = dup;
		}
	}
	*out = steal_pointer(&p);
	return 0;
}

/* ---- errors that point into the source --------------------------------- */

struct source {
	const char *text;
	size_t len;
	const char *name;
};

__attribute__((format(printf, 4, 5))) static int fail_at(spr_error **err, const struct source *src,
							 const cJSON *node, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return spr_fail_oom(err);
	size_t start, end;
	if (src->text && node && spr_json_span(node, &start, &end)) {
		unsigned line, col;
		spr_json_line_col(src->text, src->len, start, &line, &col);
		spr_fail(err, SPR_LAYER_POLICY, 0, "%s:%u:%u: %s", src->name, line, col, msg);
	} else {
		spr_fail(err, SPR_LAYER_POLICY, 0, "%s: %s", src->name, msg);
	}
	free(msg);
	return -1;
}

/* A short rendering of a value for "found ..." in messages. */
static const char *type_name(const cJSON *v)
{
	if (cJSON_IsString(v))
		return "a string";
	if (spr_json_is_number(v))
		return "a number";
	if (cJSON_IsBool(v))
		return "a boolean";
	if (cJSON_IsArray(v))
		return "an array";
	if (cJSON_IsObject(v))
		return "a table";
	if (cJSON_IsNull(v))
		return "null";
	return "an unknown value";
}

static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 40 || lb > 40)
		return 99;
	size_t row[41];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t best = diag + cost;
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

static const char *suggest_field(const char *name)
{
	const char *best = NULL;
	size_t best_d = 3; /* only close misspellings */
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++) {
		size_t d = edit_distance(name, fields[i].name);
		if (d < best_d) {
			best_d = d;
			best = fields[i].name;
		}
	}
	return best;
}

/* ---- per-kind validation ------------------------------------------------ */

static int apply_number(struct spr_policy *p, const struct field *f, const cJSON *v,
			const struct source *src, spr_error **err)
{
	if (f->kind == F_OPT_SECONDS && cJSON_IsNull(v)) {
		*FIELD_PTR(p, f, double) = 0;
		return 0;
	}
	if (!spr_json_is_number(v))
		return fail_at(err, src, v, "'%s' must be a number of %s, found %s", f->name,
			       f->unit, type_name(v));
	double d = spr_json_number(v);
	/* min 0: any positive number; else the smallest that can work. */
	if (f->min > 0 && isfinite(d) && d < f->min)
		return fail_at(err, src, v, "'%s' must be a number from %g to %g %s (got %s)",
			       f->name, f->min, f->max, f->unit,
			       v->valuestring ? v->valuestring : "?");
	if (!isfinite(d) || d <= 0)
		return fail_at(err, src, v, "'%s' must be greater than 0 (got %s)", f->name,
			       v->valuestring ? v->valuestring : "?");
	if (d > f->max)
		return fail_at(err, src, v, "'%s' must be at most %g %s (got %s)", f->name, f->max,
			       f->unit, v->valuestring ? v->valuestring : "?");
	*FIELD_PTR(p, f, double) = d;
	return 0;
}

static int apply_int(struct spr_policy *p, const struct field *f, const cJSON *v,
		     const struct source *src, spr_error **err)
{
	int64_t n;
	if (!spr_json_is_number(v))
		return fail_at(err, src, v, "'%s' must be an integer (%s), found %s", f->name,
			       f->unit, type_name(v));
	if (!spr_json_integer(v, &n) || n < (int64_t)f->min || n > (int64_t)f->max)
		return fail_at(err, src, v, "'%s' must be an integer from %.0f to %.0f %s (got %s)",
			       f->name, f->min, f->max, f->unit,
			       v->valuestring ? v->valuestring : "?");
	*FIELD_PTR(p, f, int64_t) = n;
	return 0;
}

/* Lists and tables are kept as a copy of the source tree (exact values). */
static int replace_tree(struct spr_policy *p, const struct field *f, const cJSON *v,
			spr_error **err)
{
	cJSON *dup = cJSON_Duplicate(v, true);
	if (!dup)
		return spr_fail_oom(err);
	cJSON **slot = FIELD_PTR(p, f, cJSON *);
	cJSON_Delete(*slot);
	*slot = dup;
	return 0;
}

static int apply_strlist(struct spr_policy *p, const struct field *f, const cJSON *v,
			 const struct source *src, spr_error **err)
{
	if (!cJSON_IsArray(v))
		return fail_at(err, src, v, "'%s' must be an array of strings, found %s", f->name,
			       type_name(v));
	const cJSON *item;
	cJSON_ArrayForEach(item, v)
	{
		if (!cJSON_IsString(item))
			return fail_at(err, src, item, "'%s' must contain only strings, found %s",
				       f->name, type_name(item));
		if (!item->valuestring[0])
			return fail_at(err, src, item, "'%s' must not contain empty strings",
				       f->name);
	}
	return replace_tree(p, f, v, err);
}

/* A dotted module name as `import` spells it: identifiers of ASCII
 * letters, digits and '_' (not starting with a digit) joined by single
 * dots. Python also accepts non-ASCII identifiers; spr does not, so that
 * the name reaches the worker exactly as the import system will look for
 * it (no NFKC folding of a lookalike). */
static bool module_name_ok(const char *s)
{
	bool start = true;
	for (; *s; s++) {
		char c = *s;
		bool alpha = c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
		bool digit = c >= '0' && c <= '9';
		if (c == '.') {
			if (start)
				return false;
			start = true;
		} else if (alpha || (digit && !start)) {
			start = false;
		} else {
			return false;
		}
	}
	return !start;
}

/* preload_imports (SPEC §2): module names, each once, at most
 * SPR_MAX_PRELOADS of at most SPR_MAX_MODULE_NAME bytes. */
static int apply_modules(struct spr_policy *p, const struct field *f, const cJSON *v,
			 const struct source *src, spr_error **err)
{
	if (!cJSON_IsArray(v))
		return fail_at(err, src, v, "'%s' must be an array of module names, found %s",
			       f->name, type_name(v));
	int count = cJSON_GetArraySize(v);
	if (count > (int)f->max)
		return fail_at(err, src, v,
			       "'%s' lists %d modules, at most %.0f are allowed (preload the "
			       "packages the code imports first; their own imports follow)",
			       f->name, count, f->max);
	const cJSON *item;
	cJSON_ArrayForEach(item, v)
	{
		if (!cJSON_IsString(item))
			return fail_at(err, src, item, "'%s' must contain only strings, found %s",
				       f->name, type_name(item));
		const char *name = item->valuestring;
		size_t len = strlen(name);
		if (len > SPR_MAX_MODULE_NAME)
			return fail_at(err, src, item,
				       "'%s': a module name of %zu bytes is too long (at most %d)",
				       f->name, len, SPR_MAX_MODULE_NAME);
		if (!module_name_ok(name))
			return fail_at(err, src, item,
				       "'%s': '%s' is not a module name (dotted identifiers of ASCII "
				       "letters, digits and '_' not starting with a digit, e.g. "
				       "'numpy' or 'xml.etree.ElementTree')",
				       f->name, name);
		for (const cJSON *before = v->child; before != item; before = before->next)
			if (!strcmp(before->valuestring, name))
				return fail_at(err, src, item, "'%s' names '%s' twice: drop one",
					       f->name, name);
	}
	return replace_tree(p, f, v, err);
}

/* A list of the isolation layers spr knows (SPEC §7 "Requiring
 * isolation"), each named once. */
static int apply_layers(struct spr_policy *p, const struct field *f, const cJSON *v,
			const struct source *src, spr_error **err)
{
	if (!cJSON_IsArray(v))
		return fail_at(err, src, v, "'%s' must be an array of strings, found %s", f->name,
			       type_name(v));
	uint32_t seen = 0;
	const cJSON *item;
	cJSON_ArrayForEach(item, v)
	{
		int i = cJSON_IsString(item) ? spr_layer_req_find(item->valuestring) : -1;
		if (i < 0) {
			char known[256] = "";
			for (int k = 0; k < SPR_NREQ; k++)
				snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
					 k ? ", " : "", spr_layer_req_names[k]);
			if (!cJSON_IsString(item))
				return fail_at(err, src, item, "'%s' must contain only strings, found %s",
					       f->name, type_name(item));
			return fail_at(err, src, item, "'%s': unknown isolation layer '%s' (known: %s)",
				       f->name, item->valuestring, known);
		}
		if (seen & (1u << i))
			return fail_at(err, src, item, "'%s' names '%s' twice", f->name,
				       item->valuestring);
		seen |= 1u << i;
	}
	return replace_tree(p, f, v, err);
}

static bool env_name_ok(const char *s)
{
	if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')))
		return false;
	for (s++; *s; s++)
		if (!(*s == '_' || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static int apply_table(struct spr_policy *p, const struct field *f, const cJSON *v,
		       const struct source *src, spr_error **err)
{
	if (!cJSON_IsObject(v))
		return fail_at(err, src, v, "'%s' must be a table, found %s", f->name,
			       type_name(v));
	if (f->kind == F_ENV) {
		const cJSON *item;
		cJSON_ArrayForEach(item, v)
		{
			if (!env_name_ok(item->string))
				return fail_at(err, src, item,
					       "'env' key '%s' is not a valid environment variable "
					       "name (letters, digits, '_', not starting with a digit)",
					       item->string);
			if (!cJSON_IsString(item))
				return fail_at(err, src, item,
					       "'env.%s' must be a string, found %s", item->string,
					       type_name(item));
			if (!strcmp(item->string, SPR_PRELOAD_ENV))
				return fail_at(err, src, item,
					       "'env' key '%s' is spr's own (it carries preload_imports to "
					       "the worker): use another name",
					       item->string);
		}
	}
	return replace_tree(p, f, v, err);
}

static int apply_field(struct spr_policy *p, const struct field *f, const cJSON *v,
		       const struct source *src, spr_error **err)
{
	switch (f->kind) {
	case F_MODE:
		if (!cJSON_IsString(v))
			return fail_at(err, src, v, "'mode' must be a string, found %s",
				       type_name(v));
		if (!strcmp(v->valuestring, "restrict"))
			p->mode = SPR_MODE_RESTRICT;
		else if (!strcmp(v->valuestring, "allow"))
			p->mode = SPR_MODE_ALLOW;
		else
			return fail_at(err, src, v, "mode must be 'allow' or 'restrict' (got '%s')",
				       v->valuestring);
		return 0;
	case F_SECONDS:
	case F_OPT_SECONDS:
	case F_NUMBER:
		return apply_number(p, f, v, src, err);
	case F_INT:
		return apply_int(p, f, v, src, err);
	case F_BOOL:
		if (!cJSON_IsBool(v))
			return fail_at(err, src, v, "'%s' must be true or false, found %s", f->name,
				       type_name(v));
		*FIELD_PTR(p, f, bool) = cJSON_IsTrue(v);
		return 0;
	case F_STRLIST:
		return apply_strlist(p, f, v, src, err);
	case F_MODULES:
		return apply_modules(p, f, v, src, err);
	case F_LAYERS:
		return apply_layers(p, f, v, src, err);
	case F_TABLE:
	case F_ENV:
		return apply_table(p, f, v, src, err);
	}
	return spr_fail(err, SPR_LAYER_POLICY, 0, "internal: unknown field kind");
}

static const struct field *find_field(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(fields); i++)
		if (!strcmp(fields[i].name, name))
			return &fields[i];
	return NULL;
}

int spr_policy_apply(struct spr_policy *p, const cJSON *obj, const char *text, size_t text_len,
		     const char *source, spr_error **err)
{
	struct source src = {text, text_len, source ? source : "policy"};
	if (!cJSON_IsObject(obj))
		return fail_at(err, &src, obj, "a policy must be a table/object, found %s",
			       type_name(obj));

	/* Fields live under [policy] or at top level, not both (a stray
	 * top-level key next to [policy] is almost certainly a mistake). */
	const cJSON *table = obj;
	const cJSON *wrapped = cJSON_GetObjectItemCaseSensitive(obj, "policy");
	if (wrapped) {
		if (!cJSON_IsObject(wrapped))
			return fail_at(err, &src, wrapped, "'policy' must be a table, found %s",
				       type_name(wrapped));
		const cJSON *item;
		cJSON_ArrayForEach(item, obj)
		{
			if (item != wrapped)
				return fail_at(err, &src, item,
					       "unknown top-level key '%s' (policy fields go under "
					       "[policy])",
					       item->string);
		}
		table = wrapped;
	}

	const cJSON *item;
	cJSON_ArrayForEach(item, table)
	{
		const struct field *f = find_field(item->string);
		if (!f) {
			const char *hint = suggest_field(item->string);
			if (hint)
				return fail_at(err, &src, item,
					       "unknown policy key '%s' (did you mean '%s'?)",
					       item->string, hint);
			return fail_at(err, &src, item, "unknown policy key '%s'", item->string);
		}
		if (apply_field(p, f, item, &src, err) < 0)
			return -1;
	}
	return 0;
}

/* ---- public entry points ------------------------------------------------- */

static int load_text(const char *text, size_t len, const cJSON *tree, const char *source,
		     struct spr_policy *base, spr_error **err)
{
	/* Apply to a scratch copy so a failed update leaves `base` intact. */
	_cleanup_policy_ struct spr_policy *scratch = NULL;
	if (spr_policy_copy(base, &scratch, err) < 0)
		return -1;
	if (spr_policy_apply(scratch, tree, text, len, source, err) < 0)
		return -1;
	policy_clear(base);
	*base = *scratch;
	free(steal_pointer(&scratch));
	return 0;
}

#define SPR_MAX_POLICY_FILE (4 * 1024 * 1024)

static int read_policy_file(const char *path, char **text, size_t *len, spr_error **err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return spr_fail(err, SPR_LAYER_POLICY, ENOENT,
					"%s: policy file not found (check the path given to "
					"--policy / policy_file)",
					path);
		return spr_fail_errno(err, SPR_LAYER_POLICY, "%s: cannot open policy file", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0)
		return spr_fail_errno(err, SPR_LAYER_POLICY, "%s: cannot stat policy file", path);
	if (!S_ISREG(st.st_mode))
		return spr_fail(err, SPR_LAYER_POLICY, EINVAL, "%s: not a regular file", path);
	if (st.st_size > SPR_MAX_POLICY_FILE)
		return spr_fail(err, SPR_LAYER_POLICY, EFBIG,
				"%s: policy file is larger than %d MiB", path,
				SPR_MAX_POLICY_FILE >> 20);
	spr_buf b = SPR_BUF_INIT;
	char chunk[8192];
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			spr_buf_free(&b);
			return spr_fail_errno(err, SPR_LAYER_POLICY, "%s: read failed", path);
		}
		if (n == 0)
			break;
		spr_buf_append(&b, chunk, (size_t)n);
		if (b.len > SPR_MAX_POLICY_FILE) {
			spr_buf_free(&b);
			return spr_fail(err, SPR_LAYER_POLICY, EFBIG,
					"%s: policy file is larger than %d MiB", path,
					SPR_MAX_POLICY_FILE >> 20);
		}
	}
	*text = spr_buf_steal(&b, len);
	if (!*text)
		return spr_fail_oom(err);
	return 0;
}

int spr_policy_load_file(const char *path, spr_policy **out, spr_error **err)
{
	if (!path || !out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_policy_load_file: NULL argument");
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	if (read_policy_file(path, &text, &len, err) < 0)
		return -1;
	_cleanup_cjson_ cJSON *tree = NULL;
	if (spr_toml_parse(text, len, path, &tree, err) < 0)
		return -1;
	_cleanup_policy_ struct spr_policy *p = NULL;
	if (spr_policy_new(&p, err) < 0 || load_text(text, len, tree, path, p, err) < 0)
		return -1;
	*out = steal_pointer(&p);
	return 0;
}

static int parse_policy_json(const char *json, size_t len, cJSON **tree, spr_error **err)
{
	if (spr_json_parse(json, len, SPR_JSON_ALLOW_NONFINITE, "policy", tree, err) < 0) {
		if (err && *err)
			(*err)->layer = SPR_LAYER_POLICY;
		return -1;
	}
	return 0;
}

int spr_policy_from_json(const char *json, size_t len, spr_policy **out, spr_error **err)
{
	if (!json || !out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_policy_from_json: NULL argument");
	_cleanup_cjson_ cJSON *tree = NULL;
	if (parse_policy_json(json, len, &tree, err) < 0)
		return -1;
	_cleanup_policy_ struct spr_policy *p = NULL;
	if (spr_policy_new(&p, err) < 0 || load_text(json, len, tree, "policy", p, err) < 0)
		return -1;
	*out = steal_pointer(&p);
	return 0;
}

int spr_policy_update_json(spr_policy *policy, const char *json, size_t len, spr_error **err)
{
	if (!policy || !json)
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"spr_policy_update_json: NULL argument");
	_cleanup_cjson_ cJSON *tree = NULL;
	if (parse_policy_json(json, len, &tree, err) < 0)
		return -1;
	return load_text(json, len, tree, "policy", policy, err);
}

cJSON *spr_policy_to_cjson(const struct spr_policy *p)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	bool ok = true;
	for (size_t i = 0; ok && i < ARRAY_SIZE(fields); i++) {
		const struct field *f = &fields[i];
		cJSON *v = NULL;
		switch (f->kind) {
		case F_MODE:
			v = cJSON_CreateString(p->mode == SPR_MODE_ALLOW ? "allow" : "restrict");
			break;
		case F_SECONDS:
		case F_NUMBER:
			v = spr_json_new_double(*FIELD_PTR(p, f, const double));
			break;
		case F_OPT_SECONDS: {
			double d = *FIELD_PTR(p, f, const double);
			v = d > 0 ? spr_json_new_double(d) : cJSON_CreateNull();
			break;
		}
		case F_INT:
			v = spr_json_new_integer(*FIELD_PTR(p, f, const int64_t));
			break;
		case F_BOOL:
			v = cJSON_CreateBool(*FIELD_PTR(p, f, const bool));
			break;
		case F_STRLIST:
		case F_MODULES:
		case F_LAYERS:
		case F_TABLE:
		case F_ENV:
			v = cJSON_Duplicate(*FIELD_PTR(p, f, cJSON *const), true);
			break;
		}
		ok = v && cJSON_AddItemToObject(o, f->name, v);
		if (!ok)
			cJSON_Delete(v);
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

int spr_policy_to_json(const spr_policy *policy, char **out, spr_error **err)
{
	if (!policy || !out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_policy_to_json: NULL argument");
	_cleanup_cjson_ cJSON *o = spr_policy_to_cjson(policy);
	char *text = o ? spr_json_print(o) : NULL;
	if (!text)
		return spr_fail_oom(err);
	*out = text;
	return 0;
}
