/* RunnerResult accessors and its JSON form (SPEC §3 field order). */
#include <inttypes.h>

#include "json.h"
#include "marshal.h"

bool spr_result_ok(const spr_result *r) { return r && r->ok; }
int spr_result_exit_code(const spr_result *r) { return r ? r->exit_code : 125; }
bool spr_result_timed_out(const spr_result *r) { return r && r->timed_out; }
bool spr_result_resource_exceeded(const spr_result *r) { return r && r->resource_exceeded; }
const char *spr_result_error(const spr_result *r) { return r ? r->error : NULL; }
const char *spr_result_value_json(const spr_result *r) { return r ? r->value_json : "null"; }

const char *spr_result_stdout(const spr_result *r, size_t *len)
{
	if (len)
		*len = r ? r->stdout_len : 0;
	return r ? r->stdout_text : "";
}

const char *spr_result_stderr(const spr_result *r, size_t *len)
{
	if (len)
		*len = r ? r->stderr_len : 0;
	return r ? r->stderr_text : "";
}

void spr_result_free(spr_result *r)
{
	if (!r)
		return;
	free(r->error);
	free(r->stdout_text);
	free(r->stderr_text);
	free(r->value_json);
	free(r->isolation_json);
	free(r);
}

static void put_key(spr_buf *b, const char *key)
{
	spr_buf_printf(b, ",\"%s\":", key);
}

static void put_bool(spr_buf *b, const char *key, bool v)
{
	put_key(b, key);
	spr_buf_puts(b, v ? "true" : "false");
}

int spr_result_to_json(const spr_result *r, int flags, char **out, spr_error **err)
{
	if (!r || !out)
		return spr_fail(err, SPR_LAYER_API, EINVAL, "spr_result_to_json: NULL argument");
	_cleanup_buf_ spr_buf b = SPR_BUF_INIT;
	spr_buf_printf(&b, "{\"ok\":%s", r->ok ? "true" : "false");
	put_key(&b, "result");
	spr_buf_puts(&b, r->value_json);
	put_key(&b, "stdout");
	spr_json_write_string(&b, r->stdout_text, r->stdout_len);
	put_key(&b, "stderr");
	spr_json_write_string(&b, r->stderr_text, r->stderr_len);
	put_bool(&b, "stdout_truncated", r->stdout_truncated);
	put_bool(&b, "stderr_truncated", r->stderr_truncated);
	put_bool(&b, "timed_out", r->timed_out);
	put_bool(&b, "resource_exceeded", r->resource_exceeded);
	put_key(&b, "error");
	if (r->error)
		spr_json_write_string(&b, r->error, strlen(r->error));
	else
		spr_buf_puts(&b, "null");
	spr_buf_printf(&b, ",\"exit_code\":%d,\"duration_ms\":%" PRId64, r->exit_code,
		       r->duration_ms);
	put_key(&b, "memory_peak_kb");
	if (r->memory_peak_kb >= 0)
		spr_buf_printf(&b, "%" PRId64, r->memory_peak_kb);
	else
		spr_buf_puts(&b, "null");
	put_key(&b, "isolation");
	spr_buf_puts(&b, r->isolation_json);
	spr_buf_putc(&b, '}');
	if (b.oom)
		return spr_fail_oom(err);
	if (flags & SPR_JSON_PRETTY) {
		_cleanup_buf_ spr_buf pretty = SPR_BUF_INIT;
		spr_json_pretty(&pretty, b.data, b.len);
		spr_buf_putc(&pretty, '\n');
		*out = spr_buf_steal(&pretty, NULL);
	} else {
		*out = spr_buf_steal(&b, NULL);
	}
	return *out ? 0 : spr_fail_oom(err);
}
