#include "error.h"

#include <stdarg.h>

/* Returned when even the error object cannot be allocated; never freed. */
static spr_error oom_error = {
	.message = (char *)"out of memory",
	.errnum = ENOMEM,
	.layer = SPR_LAYER_CORE,
};

void spr_free(void *ptr) { free(ptr); }

void spr_error_free(spr_error *err)
{
	if (!err || err == &oom_error)
		return;
	free(err->message);
	free(err);
}

const char *spr_layer_name(spr_layer layer)
{
	static const char *const names[] = {
		[SPR_LAYER_API] = "api",	   [SPR_LAYER_POLICY] = "policy",
		[SPR_LAYER_REQUEST] = "request",   [SPR_LAYER_CORE] = "core",
		[SPR_LAYER_SANDBOX] = "sandbox",   [SPR_LAYER_NAMESPACE] = "namespace",
		[SPR_LAYER_CGROUP] = "cgroup",	   [SPR_LAYER_SECCOMP] = "seccomp",
		[SPR_LAYER_DOCKER] = "docker",	   [SPR_LAYER_WORKER] = "worker",
	};
	if ((unsigned)layer < ARRAY_SIZE(names) && names[layer])
		return names[layer];
	return "unknown";
}

spr_error *spr_error_new(spr_layer layer, int errnum, const char *message)
{
	spr_error *e = calloc(1, sizeof(*e));
	if (!e)
		return &oom_error;
	e->message = strdup(message);
	if (!e->message) {
		free(e);
		return &oom_error;
	}
	e->errnum = errnum;
	e->layer = layer;
	return e;
}

static int fail_va(spr_error **err, spr_layer layer, int errnum, bool with_strerror,
		   const char *fmt, va_list ap)
{
	if (!err || *err)
		return -1;
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0) {
		*err = &oom_error;
		return -1;
	}
	if (with_strerror && errnum) {
		char *full = NULL;
		if (asprintf(&full, "%s: %s", msg, strerror(errnum)) < 0) {
			free(msg);
			*err = &oom_error;
			return -1;
		}
		free(msg);
		msg = full;
	}
	*err = spr_error_new(layer, errnum, msg);
	free(msg);
	return -1;
}

int (spr_fail)(spr_error **err, spr_layer layer, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fail_va(err, layer, errnum, false, fmt, ap);
	va_end(ap);
	return -1;
}

int (spr_fail_errno)(spr_error **err, spr_layer layer, const char *fmt, ...)
{
	int errnum = errno;
	va_list ap;
	va_start(ap, fmt);
	fail_va(err, layer, errnum, true, fmt, ap);
	va_end(ap);
	errno = errnum;
	return -1;
}

int (spr_fail_oom)(spr_error **err)
{
	if (err && !*err)
		*err = &oom_error;
	return -1;
}

void spr_error_prefix(spr_error **err, const char *fmt, ...)
{
	if (!err || !*err || *err == &oom_error)
		return;
	char *prefix = NULL, *joined = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&prefix, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (asprintf(&joined, "%s%s", prefix, (*err)->message) >= 0) {
		free((*err)->message);
		(*err)->message = joined;
	}
	free(prefix);
}
