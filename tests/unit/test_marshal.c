/* The marshaller's decision table (SPEC §3) and output capture. */
#include <signal.h>
#include <sys/wait.h>

#include "marshal.h"
#include "unit.h"

static struct spr_run_facts exited_with(int status, const char *msg)
{
	struct spr_run_facts f = {
		.have_status = true,
		.exited = true,
		.exit_status = status,
		.worker_msg = msg,
		.worker_msg_len = msg ? strlen(msg) : 0,
		.output_cap = 1024,
		.memory_peak_kb = 1234,
		.duration_ms = 42,
		.timeout_seconds = 5,
	};
	return f;
}

static struct spr_result *marshal(const struct spr_run_facts *f)
{
	struct spr_result *r = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_marshal(f, &r, &err), err);
	return r;
}

static char *to_json(const struct spr_result *r)
{
	char *json = NULL;
	spr_error *err = NULL;
	ck_assert_ok(spr_result_to_json(r, SPR_JSON_COMPACT, &json, &err), err);
	return json;
}

START_TEST(ok_run_keeps_value_verbatim)
{
	/* Digits beyond a double's precision must survive. */
	struct spr_run_facts f = exited_with(
		0, "{\"ok\":true,\"exit_code\":0,\"error\":null,\"kind\":\"ok\"}\n"
		   "{\"big\":123456789012345678901234567890,\"s\":\"a\\u0000b\"}");
	struct spr_result *r = marshal(&f);
	ck_assert(r->ok);
	ck_assert_int_eq(r->exit_code, 0);
	ck_assert_ptr_null(r->error);
	ck_assert_str_eq(r->value_json,
			 "{\"big\":123456789012345678901234567890,\"s\":\"a\\u0000b\"}");
	char *json = to_json(r);
	ck_assert_ptr_nonnull(strstr(json, "\"result\":{\"big\":123456789012345678901234567890"));
	ck_assert_ptr_nonnull(strstr(json, "\"exit_code\":0,\"duration_ms\":42,"
					   "\"memory_peak_kb\":1234,\"isolation\":{}"));
	ck_assert_ptr_nonnull(strstr(json, "{\"ok\":true,\"result\":"));
	free(json);
	spr_result_free(r);
}
END_TEST

START_TEST(exception_exit_1_value_null)
{
	struct spr_run_facts f = exited_with(
		1, "{\"ok\":false,\"exit_code\":1,\"error\":\"ZeroDivisionError: division by "
		   "zero\",\"kind\":\"exception\"}\nnull");
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert_int_eq(r->exit_code, 1);
	ck_assert_str_eq(r->error, "ZeroDivisionError: division by zero");
	ck_assert_str_eq(r->value_json, "null");
	ck_assert(!r->resource_exceeded && !r->timed_out);
	spr_result_free(r);
}
END_TEST

START_TEST(system_exit_n_keeps_result)
{
	struct spr_run_facts f = exited_with(
		3, "{\"ok\":false,\"exit_code\":3,\"error\":\"SystemExit: 3\",\"kind\":"
		   "\"system_exit\"}\n[1,2]");
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert_int_eq(r->exit_code, 3);
	ck_assert_str_eq(r->error, "SystemExit: 3");
	ck_assert_str_eq(r->value_json, "[1,2]");
	spr_result_free(r);
}
END_TEST

START_TEST(system_exit_large_code_kept_in_json)
{
	/* sys.exit(300): the process status is 8 bits, the result is not. */
	struct spr_run_facts f = exited_with(
		44, "{\"ok\":false,\"exit_code\":300,\"error\":\"SystemExit: 300\",\"kind\":"
		    "\"system_exit\"}\nnull");
	struct spr_result *r = marshal(&f);
	ck_assert_int_eq(r->exit_code, 300);
	spr_result_free(r);
}
END_TEST

START_TEST(system_exit_any_integer_saturates)
{
	/* The worker reports SystemExit's int as it is; the RunnerResult's
	 * exit_code is an int: beyond it, the nearest end, never "malformed". */
	const struct {
		const char *code;
		int want;
	} cases[] = {
		{"2147483647", 2147483647},
		{"2147483648", 2147483647},
		{"9223372036854775807", 2147483647},
		{"9223372036854775808", 2147483647},
		{"100000000000000000000000000000000000000000000000000", 2147483647},
		{"-2147483647", -2147483647},
		{"-9223372036854775809", -2147483647},
		{"-100000000000000000000000000000000000000000000000000", -2147483647},
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char msg[256];
		snprintf(msg, sizeof(msg),
			 "{\"ok\":false,\"exit_code\":%s,\"error\":\"SystemExit: x\","
			 "\"kind\":\"system_exit\"}\nnull",
			 cases[i].code);
		struct spr_run_facts f = exited_with(1 << 8, msg);
		struct spr_result *r = marshal(&f);
		ck_assert_msg(r->exit_code == cases[i].want, "%s -> %d", cases[i].code, r->exit_code);
		ck_assert_str_eq(r->error, "SystemExit: x");
		spr_result_free(r);
	}
	/* Not an integer is still malformed. */
	struct spr_run_facts f = exited_with(
		1 << 8, "{\"ok\":false,\"exit_code\":1.5,\"error\":null,\"kind\":\"x\"}\nnull");
	struct spr_result *r = marshal(&f);
	ck_assert_ptr_nonnull(strstr(r->error, "malformed"));
	spr_result_free(r);
}
END_TEST

START_TEST(timeout_is_124_and_drops_value)
{
	struct spr_run_facts f = exited_with(0, NULL);
	f.exited = false;
	f.signaled = true;
	f.term_signal = SIGKILL;
	f.timed_out = true;
	f.timeout_seconds = 0.5;
	f.out = "partial\n";
	f.out_len = f.out_total = 8;
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert(r->timed_out);
	ck_assert_int_eq(r->exit_code, 124);
	ck_assert_str_eq(r->error, "Execution timed out after 0.5s");
	ck_assert_str_eq(r->stdout_text, "partial\n");
	ck_assert_str_eq(r->value_json, "null");
	spr_result_free(r);

	f.timeout_seconds = 5;
	r = marshal(&f);
	ck_assert_str_eq(r->error, "Execution timed out after 5s");
	spr_result_free(r);
}
END_TEST

START_TEST(infra_failure_is_125)
{
	spr_error cause = {.message = (char *)"sandbox setup failed: user namespaces are "
					      "disabled",
			   .layer = SPR_LAYER_NAMESPACE};
	struct spr_run_facts f = exited_with(0, NULL);
	f.infra_error = &cause;
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert_int_eq(r->exit_code, 125);
	ck_assert_str_eq(r->error, cause.message);
	spr_result_free(r);
}
END_TEST

START_TEST(oom_kill_is_137_resource_exceeded)
{
	struct spr_run_facts f = exited_with(0, NULL);
	f.exited = false;
	f.signaled = true;
	f.term_signal = SIGKILL;
	f.oom_killed = true;
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert(r->resource_exceeded);
	ck_assert_int_eq(r->exit_code, 137);
	ck_assert_str_eq(r->error, "Memory limit exceeded");
	spr_result_free(r);
}
END_TEST

START_TEST(memory_error_is_137_resource_exceeded)
{
	struct spr_run_facts f = exited_with(
		137, "{\"ok\":false,\"exit_code\":137,\"error\":\"Memory limit exceeded\","
		     "\"kind\":\"memory_error\"}\nnull");
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok && r->resource_exceeded);
	ck_assert_int_eq(r->exit_code, 137);
	ck_assert_str_eq(r->error, "Memory limit exceeded");
	spr_result_free(r);
}
END_TEST

START_TEST(pids_limit_reported)
{
	struct spr_run_facts f = exited_with(
		1, "{\"ok\":false,\"exit_code\":1,\"error\":\"BlockingIOError: [Errno 11] "
		   "Resource temporarily unavailable\",\"kind\":\"exception\",\"errno\":11}\nnull");
	f.pids_limit_hit = true;
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok && r->resource_exceeded);
	ck_assert_str_eq(r->error, "Process limit exceeded");
	ck_assert_int_eq(r->exit_code, 1);
	spr_result_free(r);
}
END_TEST

START_TEST(cpu_limit_from_sigxcpu)
{
	struct spr_run_facts f = exited_with(0, NULL);
	f.exited = false;
	f.signaled = true;
	f.term_signal = SIGXCPU;
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok && r->resource_exceeded);
	ck_assert_str_eq(r->error, "CPU time limit exceeded");
	ck_assert_int_eq(r->exit_code, 128 + SIGXCPU);
	spr_result_free(r);
}
END_TEST

START_TEST(file_size_errno_is_resource_exceeded)
{
	struct spr_run_facts f = exited_with(
		1, "{\"ok\":false,\"exit_code\":1,\"error\":\"OSError: [Errno 27] File too "
		   "large\",\"kind\":\"exception\",\"errno\":27}\nnull");
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok && r->resource_exceeded);
	ck_assert_str_eq(r->error, "OSError: [Errno 27] File too large");
	spr_result_free(r);
}
END_TEST

START_TEST(signal_death_is_128_plus_n)
{
	struct spr_run_facts f = exited_with(0, NULL);
	f.exited = false;
	f.signaled = true;
	f.term_signal = SIGSEGV;
	struct spr_result *r = marshal(&f);
	ck_assert_int_eq(r->exit_code, 128 + SIGSEGV);
	ck_assert_str_eq(r->error, "Killed by signal 11 (SIGSEGV)");
	spr_result_free(r);
}
END_TEST

START_TEST(no_result_message)
{
	struct spr_run_facts f = exited_with(7, NULL);
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert_int_eq(r->exit_code, 7);
	ck_assert_ptr_nonnull(strstr(r->error, "WorkerError: the worker exited with status 7"));
	spr_result_free(r);

	f = exited_with(0, NULL);
	r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert_int_eq(r->exit_code, 1);
	spr_result_free(r);
}
END_TEST

START_TEST(malformed_messages)
{
	const char *bad[] = {
		"no newline",
		"{\"ok\":true}\nnull",
		"{\"ok\":true,\"exit_code\":0,\"error\":null,\"kind\":\"ok\"}\n{bad",
		"{\"ok\":true,\"exit_code\":0,\"error\":null,\"kind\":\"ok\"}\n1 2",
		"not json\nnull",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct spr_run_facts f = exited_with(0, bad[i]);
		struct spr_result *r = marshal(&f);
		ck_assert_msg(!r->ok, "case %zu", i);
		ck_assert_int_eq(r->exit_code, 1);
		ck_assert_ptr_nonnull(strstr(r->error, "WorkerError: malformed result message"));
		ck_assert_str_eq(r->value_json, "null");
		spr_result_free(r);
	}
}
END_TEST

START_TEST(claimed_success_with_bad_status)
{
	struct spr_run_facts f =
		exited_with(5, "{\"ok\":true,\"exit_code\":0,\"error\":null,\"kind\":\"ok\"}\n1");
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert_int_eq(r->exit_code, 5);
	spr_result_free(r);
}
END_TEST

START_TEST(result_too_big)
{
	struct spr_run_facts f = exited_with(0, "x");
	f.worker_msg_too_big = true;
	struct spr_result *r = marshal(&f);
	ck_assert(!r->ok);
	ck_assert_ptr_nonnull(strstr(r->error, "ResultError: the result is larger than 64 MiB"));
	spr_result_free(r);
}
END_TEST

/* ---- output capture ---------------------------------------------------------- */

static void capture(const char *raw, size_t len, uint64_t total, size_t cap, const char *want,
		    bool want_truncated)
{
	char *text;
	size_t text_len;
	bool truncated;
	ck_assert_int_eq(spr_capture_text(raw, len, total, cap, &text, &text_len, &truncated), 0);
	ck_assert_uint_eq(text_len, strlen(want));
	ck_assert_mem_eq(text, want, text_len);
	ck_assert_msg(truncated == want_truncated, "truncated=%d", truncated);
	ck_assert_uint_le(text_len, cap);
	free(text);
}

START_TEST(capture_fits)
{
	capture("hello", 5, 5, 10, "hello", false);
	capture("", 0, 0, 0, "", false);
}
END_TEST

START_TEST(capture_cut_on_ascii)
{
	capture("abcdefgh", 8, 8, 4, "abcd", true);
	/* Only the first bytes are kept by the reader; total says more came. */
	capture("abcd", 4, 1000000, 4, "abcd", true);
}
END_TEST

START_TEST(capture_cut_before_multibyte)
{
	/* "aé" = 61 C3 A9; a cap of 2 falls inside é: cut before it. */
	capture("a\xC3\xA9", 3, 3, 2, "a", true);
	/* € = E2 82 AC: caps 1..3 inside it. */
	capture("\xE2\x82\xAC!", 4, 4, 1, "", true);
	capture("\xE2\x82\xAC!", 4, 4, 2, "", true);
	capture("\xE2\x82\xAC!", 4, 4, 3, "\xE2\x82\xAC", true);
	/* 😀 = F0 9F 98 80 */
	capture("x\xF0\x9F\x98\x80", 5, 5, 4, "x", true);
	capture("x\xF0\x9F\x98\x80", 5, 5, 5, "x\xF0\x9F\x98\x80", false);
}
END_TEST

START_TEST(capture_invalid_bytes_replaced)
{
	capture("a\xFF" "b", 3, 3, 100, "a\xEF\xBF\xBD" "b", false);
	/* A truncated sequence at the very end of a complete stream. */
	capture("ab\xE2\x82", 4, 4, 100, "ab\xEF\xBF\xBD", false);
	/* Replacement growth past the cap is cut, and flagged. */
	capture("\xFF\xFF\xFF", 3, 3, 4, "\xEF\xBF\xBD", true);
}
END_TEST

START_TEST(json_escapes_output)
{
	struct spr_run_facts f =
		exited_with(0, "{\"ok\":true,\"exit_code\":0,\"error\":null,\"kind\":\"ok\"}\n1");
	f.out = "a\"b\\c\n\x01\0z";
	f.out_len = f.out_total = 9;
	struct spr_result *r = marshal(&f);
	char *json = to_json(r);
	ck_assert_ptr_nonnull(strstr(json, "\"stdout\":\"a\\\"b\\\\c\\n\\u0001\\u0000z\""));
	free(json);
	spr_result_free(r);
}
END_TEST

START_TEST(format_seconds)
{
	char buf[32];
	spr_format_seconds(buf, sizeof(buf), 5);
	ck_assert_str_eq(buf, "5");
	spr_format_seconds(buf, sizeof(buf), 0.1);
	ck_assert_str_eq(buf, "0.1");
	spr_format_seconds(buf, sizeof(buf), 1.25);
	ck_assert_str_eq(buf, "1.25");
	spr_format_seconds(buf, sizeof(buf), 86400);
	ck_assert_str_eq(buf, "86400");
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("marshal");
	TCase *t = tcase_create("decisions");
	tcase_add_test(t, ok_run_keeps_value_verbatim);
	tcase_add_test(t, exception_exit_1_value_null);
	tcase_add_test(t, system_exit_n_keeps_result);
	tcase_add_test(t, system_exit_large_code_kept_in_json);
	tcase_add_test(t, system_exit_any_integer_saturates);
	tcase_add_test(t, timeout_is_124_and_drops_value);
	tcase_add_test(t, infra_failure_is_125);
	tcase_add_test(t, oom_kill_is_137_resource_exceeded);
	tcase_add_test(t, memory_error_is_137_resource_exceeded);
	tcase_add_test(t, pids_limit_reported);
	tcase_add_test(t, cpu_limit_from_sigxcpu);
	tcase_add_test(t, file_size_errno_is_resource_exceeded);
	tcase_add_test(t, signal_death_is_128_plus_n);
	tcase_add_test(t, no_result_message);
	tcase_add_test(t, malformed_messages);
	tcase_add_test(t, claimed_success_with_bad_status);
	tcase_add_test(t, result_too_big);
	tcase_add_test(t, json_escapes_output);
	tcase_add_test(t, format_seconds);
	suite_add_tcase(s, t);
	TCase *c = tcase_create("capture");
	tcase_add_test(c, capture_fits);
	tcase_add_test(c, capture_cut_on_ascii);
	tcase_add_test(c, capture_cut_before_multibyte);
	tcase_add_test(c, capture_invalid_bytes_replaced);
	suite_add_tcase(s, c);
	return s;
}
