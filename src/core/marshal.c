/* The decision table of SPEC §3. Host facts outrank the worker's claims:
 * the worker runs the untrusted code, so it can say anything about the
 * code, but nothing about timeouts, limits or how its process ended. */
#include "marshal.h"

#include <signal.h>
#include <stdarg.h>
#include <string.h>

#include "json.h"
#include "utf8.h"

/* Exit codes for outcomes SPEC §3 does not list (128 + the signal the
 * kernel uses for them, as a shell would report). */
#define EXIT_CPU_LIMIT (128 + SIGXCPU)

struct worker_header {
	bool present;
	bool ok;
	int exit_code;
	char *error;
	char *kind;
	int errnum; /* OSError errno reported by the worker, 0 if none */
	const char *value;
	size_t value_len;
	char *malformed; /* why the message could not be used */
};

static void header_clear(struct worker_header *h)
{
	free(h->error);
	free(h->kind);
	free(h->malformed);
}

static void set_malformed(struct worker_header *h, const char *why)
{
	free(h->malformed);
	h->malformed = strdup(why);
	h->present = false;
}

/* The code's exit status as the worker reports it: any integer (a
 * `SystemExit(2**100)` is one), saturated to the int64 range; the caller
 * narrows it further. */
static bool exit_code_of(const cJSON *node, int64_t *out)
{
	if (spr_json_integer(node, out))
		return true;
	if (!spr_json_is_number(node) || strpbrk(node->valuestring, ".eEIN"))
		return false;
	*out = node->valuestring[0] == '-' ? INT64_MIN : INT64_MAX;
	return true;
}

/* "<header JSON>\n<value JSON>": the value is forwarded verbatim (after
 * validation) so integers and NUL characters survive. */
static void parse_worker_msg(const char *msg, size_t len, struct worker_header *h)
{
	const char *nl = memchr(msg, '\n', len);
	if (!nl) {
		set_malformed(h, "no header line");
		return;
	}
	_cleanup_error_ spr_error *perr = NULL;
	_cleanup_cjson_ cJSON *hdr = NULL;
	if (spr_json_parse(msg, (size_t)(nl - msg),
			   SPR_JSON_ALLOW_NUL | SPR_JSON_LONE_SURROGATE_FFFD, "header", &hdr,
			   &perr) < 0) {
		set_malformed(h, perr->message);
		return;
	}
	const cJSON *ok = cJSON_GetObjectItemCaseSensitive(hdr, "ok");
	const cJSON *code = cJSON_GetObjectItemCaseSensitive(hdr, "exit_code");
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(hdr, "error");
	const cJSON *kind = cJSON_GetObjectItemCaseSensitive(hdr, "kind");
	const cJSON *errnum = cJSON_GetObjectItemCaseSensitive(hdr, "errno");
	int64_t code_v = 0, errnum_v = 0;
	if (!cJSON_IsBool(ok) || !exit_code_of(code, &code_v) || !cJSON_IsString(kind) ||
	    !(cJSON_IsNull(error) || cJSON_IsString(error)) ||
	    (errnum && !spr_json_integer(errnum, &errnum_v))) {
		set_malformed(h, "header lacks ok/exit_code/error/kind");
		return;
	}
	const char *value = nl + 1;
	size_t value_len = len - (size_t)(value - msg);
	_cleanup_error_ spr_error *verr = NULL;
	if (spr_json_validate(value, value_len, SPR_JSON_ALLOW_NUL, "result", &verr) < 0) {
		set_malformed(h, verr->message);
		return;
	}
	h->present = true;
	h->ok = cJSON_IsTrue(ok);
	h->exit_code = code_v < -2147483647 ? -2147483647
		       : code_v > 2147483647 ? 2147483647
					     : (int)code_v;
	h->error = cJSON_IsString(error) ? strdup(error->valuestring) : NULL;
	h->kind = strdup(kind->valuestring);
	h->errnum = (int)errnum_v;
	h->value = value;
	h->value_len = value_len;
}

void spr_format_seconds(char *buf, size_t size, double seconds)
{
	spr_format_double(buf, size, seconds);
}

int spr_capture_text(const char *raw, size_t len, uint64_t total, size_t cap, char **text,
		     size_t *text_len, bool *truncated)
{
	*truncated = total > cap || len > cap;
	size_t n = spr_utf8_cut(raw, len, cap);
	spr_buf b = SPR_BUF_INIT;
	spr_utf8_sanitize(&b, raw, n);
	spr_buf_reserve(&b, 0);
	if (b.len > cap) {
		/* Replacement characters made it longer than the cap. */
		b.len = spr_utf8_cut(b.data, b.len, cap);
		b.data[b.len] = '\0';
		*truncated = true;
	}
	*text = spr_buf_steal(&b, text_len);
	return *text ? 0 : -1;
}

static int set_error(struct spr_result *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int set_error(struct spr_result *r, const char *fmt, ...)
{
	free(r->error);
	r->error = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&r->error, fmt, ap);
	va_end(ap);
	if (n < 0)
		r->error = NULL;
	return n < 0 ? -1 : 0;
}

static const char *signal_name(int sig)
{
	const char *abbrev = sigabbrev_np(sig);
	return abbrev ? abbrev : "?";
}

/* SystemExit keeps `result` even though the run is not ok (SPEC §3). */
static bool keeps_value(const struct worker_header *h)
{
	return h->ok || !strcmp(h->kind, "system_exit");
}

static int decide(const struct spr_run_facts *f, struct worker_header *h, struct spr_result *r)
{
	bool memory = f->oom_killed || (h->present && !strcmp(h->kind, "memory_error"));
	bool cpu = f->cpu_limit_hit || (f->signaled && f->term_signal == SIGXCPU);
	/* EFBIG (RLIMIT_FSIZE) and ENOSPC (the sandbox's size-capped /tmp) are
	 * limits of the policy, not bugs in the code. */
	bool files = h->present && !h->ok && (h->errnum == EFBIG || h->errnum == ENOSPC);

	r->timed_out = f->timed_out;
	r->resource_exceeded = memory || f->pids_limit_hit || cpu || files;

	if (memory) {
		r->exit_code = 137;
		return set_error(r, "Memory limit exceeded");
	}
	if (f->pids_limit_hit) {
		r->exit_code = f->timed_out				  ? 124
			       : h->present && h->exit_code != 0 ? h->exit_code
								  : 1;
		return set_error(r, "Process limit exceeded");
	}
	if (cpu) {
		r->exit_code = EXIT_CPU_LIMIT;
		return set_error(r, "CPU time limit exceeded");
	}
	if (f->timed_out) {
		r->exit_code = 124;
		char secs[32];
		spr_format_seconds(secs, sizeof(secs), f->timeout_seconds);
		return set_error(r, "Execution timed out after %ss", secs);
	}
	if (f->signaled) {
		r->exit_code = 128 + f->term_signal;
		return set_error(r, "Killed by signal %d (SIG%s)", f->term_signal,
				 signal_name(f->term_signal));
	}
	if (f->worker_msg_too_big) {
		r->exit_code = 1;
		return set_error(r, "ResultError: the result is larger than %zu MiB",
				 SPR_MAX_RESULT_BYTES >> 20);
	}
	int status = f->exited ? f->exit_status : 0;
	if (!h->present) {
		r->exit_code = status ? status : 1;
		if (h->malformed)
			return set_error(r, "WorkerError: malformed result message (%s)",
					 h->malformed);
		return set_error(r,
				 "WorkerError: the worker exited with status %d before reporting "
				 "a result (os._exit() or a crash in native code)",
				 status);
	}
	r->exit_code = h->exit_code;
	if (h->ok && f->exited && f->exit_status != 0) {
		r->exit_code = f->exit_status;
		return set_error(r, "WorkerError: the worker reported success but exited with "
				    "status %d",
				 f->exit_status);
	}
	if (keeps_value(h)) {
		free(r->value_json);
		r->value_json = strndup(h->value, h->value_len);
		if (!r->value_json)
			return -1;
	}
	r->ok = h->ok && !files;
	if (h->error)
		return set_error(r, "%s", h->error);
	return 0;
}

int spr_marshal(const struct spr_run_facts *f, struct spr_result **out, spr_error **err)
{
	struct spr_result *r = calloc(1, sizeof(*r));
	if (!r)
		return spr_fail_oom(err);
	struct worker_header h = {0};
	int rc = 0;
	r->duration_ms = f->duration_ms;
	r->memory_peak_kb = f->memory_peak_kb;
	r->value_json = strdup("null");
	r->isolation_json = strdup(f->isolation_json ? f->isolation_json : "{}");
	if (!r->value_json || !r->isolation_json ||
	    spr_capture_text(f->out ? f->out : "", f->out_len, f->out_total, f->output_cap,
			     &r->stdout_text, &r->stdout_len, &r->stdout_truncated) < 0 ||
	    spr_capture_text(f->err ? f->err : "", f->err_len, f->err_total, f->output_cap,
			     &r->stderr_text, &r->stderr_len, &r->stderr_truncated) < 0) {
		rc = -1;
		goto out;
	}
	if (f->infra_error) {
		r->exit_code = 125;
		rc = set_error(r, "%s", f->infra_error->message);
		goto out;
	}
	if (f->worker_msg && !f->worker_msg_too_big && !(f->signaled || f->timed_out))
		parse_worker_msg(f->worker_msg, f->worker_msg_len, &h);
	rc = decide(f, &h, r);
out:
	header_clear(&h);
	if (rc < 0) {
		spr_result_free(r);
		return spr_fail_oom(err);
	}
	*out = r;
	return 0;
}
