/* libFuzzer target for a run's result as the host reads it: the worker's
 * result message (fd 3, which the code can write to as well) and how the
 * run ended, through the marshaller (src/core/marshal.c) into the
 * RunnerResult and its JSON. data[0] % 3 picks how the bytes arrive:
 *
 *   0  LocalEngine: data[1..4] are the host's facts, the rest the fd-3
 *      message and (parts of it) the code's stdout and stderr
 *   1  DockerEngine: the rest is what a container's agent sent, frames
 *      (protocol/frame.h) read from a pipe the way src/docker/pool.c's
 *      run_in() reads them: messages, stdout, stderr, result bytes
 *   2  spr-sandbox's events: messages back to back on a pipe
 *      (spr_msg_next, as the monitor reads init's STARTED and EXIT)
 *
 * Whatever the bytes: the result's JSON is strict JSON (UTF-8), its
 * streams are valid UTF-8 within the cap, and what the host saw (timeout,
 * limits, signals, infrastructure errors) outranks anything the worker
 * claims. */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "json.h"
#include "marshal.h"
#include "protocol/frame.h"
#include "protocol/message.h"
#include "utf8.h"

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void check_result(const struct spr_run_facts *f, const struct spr_result *r)
{
	check(r->stdout_len <= f->output_cap && r->stderr_len <= f->output_cap);
	check(spr_utf8_valid(r->stdout_text, r->stdout_len, NULL));
	check(spr_utf8_valid(r->stderr_text, r->stderr_len, NULL));
	check(!r->error || spr_utf8_valid(r->error, strlen(r->error), NULL) || f->infra_error);

	/* The host's facts outrank the worker's claims (SIGXCPU is the CPU
	 * limit's signal). */
	bool cpu = f->cpu_limit_hit || (f->signaled && f->term_signal == SIGXCPU);
	if (f->infra_error)
		check(r->exit_code == 125 && !r->ok);
	else if (f->oom_killed)
		check(r->exit_code == 137 && r->resource_exceeded && !r->ok);
	else if (f->pids_limit_hit || cpu)
		check(r->resource_exceeded && !r->ok);
	else if (f->timed_out)
		check(r->exit_code == 124 && !r->ok);
	else if (f->signaled)
		check(r->exit_code == 128 + f->term_signal && !r->ok);
	else if (f->worker_msg_too_big || !f->worker_msg)
		check(!r->ok && r->exit_code != 0);
	if (!f->infra_error)
		check(r->timed_out == f->timed_out);
	if (r->ok)
		check(!f->exited || f->exit_status == 0);

	for (int flags = 0; flags <= SPR_JSON_PRETTY; flags += SPR_JSON_PRETTY) {
		char *json = NULL;
		spr_error *err = NULL;
		check(spr_result_to_json(r, flags, &json, &err) == 0);
		check(spr_json_validate(json, strlen(json), SPR_JSON_ALLOW_NUL, "result", &err) == 0);
		free(json);
	}
}

static void marshal(struct spr_run_facts *f)
{
	struct spr_result *r = NULL;
	spr_error *err = NULL;
	check(spr_marshal(f, &r, &err) == 0);
	check_result(f, r);
	spr_result_free(r);
}

/* LocalEngine: facts from data[1..4], the rest the three streams. */
static void local(const uint8_t *data, size_t size)
{
	if (size < 5)
		return;
	uint8_t bits = data[1], status = data[2], misc = data[3];
	struct spr_run_facts f = {
		.have_status = true,
		.exited = !(bits & 1),
		.exit_status = status,
		.signaled = bits & 1,
		.term_signal = 1 + status % 64,
		.timed_out = bits & 2,
		.timeout_seconds = misc / 4.0,
		.oom_killed = (bits & 0x1c) == 0x04,
		.pids_limit_hit = (bits & 0x1c) == 0x08,
		.cpu_limit_hit = (bits & 0x1c) == 0x0c,
		.worker_msg_too_big = (bits & 0x1c) == 0x10,
		.output_cap = data[4],
		.duration_ms = misc,
		.memory_peak_kb = (bits & 0x20) ? -1 : misc,
	};
	const char *rest = (const char *)data + 5;
	size_t n = size - 5;
	spr_error *infra = NULL;
	if ((bits & 0x1c) == 0x14) {
		spr_fail(&infra, SPR_LAYER_SANDBOX, EIO, "%.*s", (int)n, rest);
		f.infra_error = infra;
	}
	f.worker_msg = (bits & 0x40) ? NULL : rest;
	f.worker_msg_len = n;
	f.out = rest;
	f.out_len = n;
	f.out_total = n + (bits & 0x80 ? 1 : 0);
	f.err = rest + n / 2;
	f.err_len = n - n / 2;
	f.err_total = f.err_len;
	marshal(&f);
	spr_error_free(infra);
}

/* A pipe holding bytes, its write end closed: reads end in EOF. */
static int pipe_of(const uint8_t *data, size_t size)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		abort();
	/* Inputs are at most -max_len bytes, well under a pipe's 64 KiB. */
	check(size <= 65536);
	if (size && write(p[1], data, size) != (ssize_t)size)
		abort();
	close(p[1]);
	return p[0];
}

static void keep_first(spr_buf *b, const spr_buf *chunk, size_t keep)
{
	if (b->len < keep) {
		size_t room = keep - b->len;
		spr_buf_append(b, chunk->data, chunk->len < room ? chunk->len : room);
	}
}

/* DockerEngine: the agent's frames, as src/docker/pool.c run_in() and
 * src/docker/engine.c docker_run() take them. */
static void frames(const uint8_t *data, size_t size)
{
	if (size < 2)
		return;
	size_t cap = data[1];
	int fd = pipe_of(data + 2, size - 2);
	spr_buf frame = SPR_BUF_INIT, out = SPR_BUF_INIT, err = SPR_BUF_INIT,
		result = SPR_BUF_INIT;
	spr_error *infra = NULL;
	struct spr_run_facts f = {.memory_peak_kb = -1, .output_cap = cap, .timeout_seconds = 1};
	bool started = false, done = false;
	int rc = 0;
	while (rc == 0 && !done) {
		char type = 0;
		struct spr_msg m;
		size_t used;
		rc = spr_frame_recv(fd, &type, &frame, -1);
		if (rc)
			break;
		check(frame.len <= SPR_FRAME_MAX);
		if (type != SPR_FRAME_MSG && !started) {
			rc = -EPROTO;
			break;
		}
		switch (type) {
		case SPR_FRAME_OUT: keep_first(&out, &frame, cap + 4); continue;
		case SPR_FRAME_ERR: keep_first(&err, &frame, cap + 4); continue;
		case SPR_FRAME_RESULT: keep_first(&result, &frame, SPR_MAX_RESULT_BYTES); continue;
		case SPR_FRAME_MSG:
			if (spr_frame_msg(&frame, &m, &used) == 0)
				break;
			__attribute__((fallthrough));
		default: rc = -EPROTO; continue;
		}
		check(used <= frame.len && m.type > SPR_MSG_NONE && m.type < SPR_MSG_NTYPES);
		switch (m.type) {
		case SPR_MSG_STARTED: started = true; break;
		case SPR_MSG_DONE:
			spr_facts_from_exit(&f, &m);
			f.timed_out = m.done.timed_out;
			f.out_total = m.done.out_total;
			f.err_total = m.done.err_total;
			f.worker_msg_too_big = m.done.result_total > SPR_MAX_RESULT_BYTES;
			done = true;
			break;
		case SPR_MSG_ERROR:
		case SPR_MSG_FATAL:
			spr_msg_to_error(&m, started ? "sandbox setup failed: " : "", &infra);
			check(infra && infra->message);
			done = true;
			break;
		default: rc = -EPROTO; break;
		}
	}
	close(fd);
	if (rc && !infra)
		spr_fail(&infra, SPR_LAYER_DOCKER, -rc, "the container stopped answering");
	f.infra_error = infra;
	f.out = out.data;
	f.out_len = out.len;
	f.err = err.data;
	f.err_len = err.len;
	f.worker_msg = result.len ? result.data : NULL;
	f.worker_msg_len = result.len;
	marshal(&f);
	spr_error_free(infra);
	spr_buf_free(&frame);
	spr_buf_free(&out);
	spr_buf_free(&err);
	spr_buf_free(&result);
}

/* spr-sandbox's events: STARTED, then EXIT (or ERROR), back to back. */
static void events(const uint8_t *data, size_t size)
{
	int fd = pipe_of(data + 1, size - 1);
	struct spr_msg_stream s = {.fd = fd};
	struct spr_run_facts f = {.memory_peak_kb = -1, .output_cap = 16, .timeout_seconds = 1};
	spr_error *infra = NULL;
	struct spr_msg m;
	int rc;
	while (!infra && (rc = spr_msg_next(&s, &m)) == 1) {
		check(m.type > SPR_MSG_NONE && m.type < SPR_MSG_NTYPES);
		check(memchr(m.error.message, '\0', sizeof(m.error.message)) != NULL);
		if (m.type == SPR_MSG_EXIT)
			spr_facts_from_exit(&f, &m);
		else if (m.type == SPR_MSG_ERROR)
			spr_msg_to_error(&m, "sandbox setup failed: ", &infra);
	}
	close(fd);
	spr_msg_stream_free(&s);
	f.infra_error = infra;
	marshal(&f);
	spr_error_free(infra);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0: local(data, size); break;
	case 1: frames(data, size); break;
	case 2: events(data, size); break;
	}
	return 0;
}
