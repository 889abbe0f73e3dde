/* Core helpers: UTF-8, buffers, arenas, errors. */
#include "arena.h"
#include "buf.h"
#include "unit.h"
#include "utf8.h"

START_TEST(utf8_validation)
{
	size_t bad = 99;
	ck_assert(spr_utf8_valid("h\xC3\xA9llo \xF0\x9F\x98\x80", 11, &bad));
	ck_assert(!spr_utf8_valid("ab\xC0\xAF", 4, &bad)); /* overlong */
	ck_assert_uint_eq(bad, 2);
	ck_assert(!spr_utf8_valid("\xED\xA0\x80", 3, &bad)); /* surrogate */
	ck_assert(!spr_utf8_valid("\xF4\x90\x80\x80", 4, &bad)); /* > U+10FFFF */
	ck_assert(!spr_utf8_valid("\xE2\x82", 2, &bad)); /* truncated */
	ck_assert(spr_utf8_valid("", 0, &bad));
}
END_TEST

START_TEST(utf8_sanitize_maximal_subparts)
{
	spr_buf b = SPR_BUF_INIT;
	/* Python: b"\xe2\x82a\xff".decode("utf-8", "replace") == "\ufffda\ufffd" */
	spr_utf8_sanitize(&b, "\xE2\x82" "a\xFF", 4);
	ck_assert_str_eq(b.data, "\xEF\xBF\xBD" "a\xEF\xBF\xBD");
	spr_buf_free(&b);
	spr_utf8_sanitize(&b, "ok", 2);
	ck_assert_str_eq(b.data, "ok");
	spr_buf_free(&b);
}
END_TEST

START_TEST(utf8_cut)
{
	ck_assert_uint_eq(spr_utf8_cut("abc", 3, 10), 3);
	ck_assert_uint_eq(spr_utf8_cut("a\xC3\xA9", 3, 2), 1);
	ck_assert_uint_eq(spr_utf8_cut("a\xC3\xA9", 3, 3), 3);
	/* Invalid bytes are not a character to protect: cut where asked. */
	ck_assert_uint_eq(spr_utf8_cut("a\x80\x80\x80", 4, 2), 2);
}
END_TEST

START_TEST(arenas)
{
	struct spr_arena a = SPR_ARENA_INIT;
	/* Small allocations share blocks; a large one gets its own; every
	 * one is zeroed and aligned for any type. */
	char *small[100];
	for (int i = 0; i < 100; i++) {
		small[i] = spr_arena_printf(&a, "entry %d", i);
		ck_assert_ptr_nonnull(small[i]);
		ck_assert_uint_eq((uintptr_t)small[i] % _Alignof(max_align_t), 0);
	}
	unsigned char *big = spr_arena_alloc(&a, 100000);
	ck_assert_ptr_nonnull(big);
	for (size_t i = 0; i < 100000; i++)
		ck_assert_uint_eq(big[i], 0);
	memset(big, 0xff, 100000);
	/* Earlier strings survive later allocations (nothing moved). */
	for (int i = 0; i < 100; i++) {
		char want[32];
		snprintf(want, sizeof(want), "entry %d", i);
		ck_assert_str_eq(small[i], want);
	}
	ck_assert_str_eq(spr_arena_strndup(&a, "abcdef", 3), "abc");
	ck_assert_ptr_null(spr_arena_strdup(&a, NULL));
	ck_assert(!a.oom);
	spr_arena_free(&a);
	ck_assert_ptr_null(a.head);
}
END_TEST

START_TEST(buffers)
{
	spr_buf b = SPR_BUF_INIT;
	for (int i = 0; i < 1000; i++)
		spr_buf_printf(&b, "%d,", i);
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, strlen(b.data));
	size_t len;
	char *s = spr_buf_steal(&b, &len);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(len, strlen(s));
	free(s);
	/* An empty buffer still steals as "". */
	s = spr_buf_steal(&b, &len);
	ck_assert_str_eq(s, "");
	free(s);
}
END_TEST

START_TEST(errors_compose)
{
	spr_error *err = NULL;
	errno = ENOENT;
	ck_assert_int_eq(spr_fail_errno(&err, SPR_LAYER_CGROUP, "open %s", "/x"), -1);
	ck_assert_str_eq(err->message, "open /x: No such file or directory");
	ck_assert_int_eq(err->errnum, ENOENT);
	ck_assert_str_eq(spr_layer_name(err->layer), "cgroup");
	/* The first error wins; later ones do not overwrite it. */
	spr_fail(&err, SPR_LAYER_API, 0, "second");
	ck_assert_str_eq(err->message, "open /x: No such file or directory");
	spr_error_prefix(&err, "run %d: ", 7);
	ck_assert_str_eq(err->message, "run 7: open /x: No such file or directory");
	spr_error_free(err);
	ck_assert_int_eq(spr_fail(NULL, SPR_LAYER_API, 0, "ignored"), -1);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("core");
	TCase *t = tcase_create("core");
	tcase_add_test(t, utf8_validation);
	tcase_add_test(t, utf8_sanitize_maximal_subparts);
	tcase_add_test(t, utf8_cut);
	tcase_add_test(t, arenas);
	tcase_add_test(t, buffers);
	tcase_add_test(t, errors_compose);
	suite_add_tcase(s, t);
	return s;
}
