/* Process supervision blocks against the real kernel (pipes, children). */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "proc.h"
#include "unit.h"

START_TEST(capture_keeps_first_bytes_counts_all)
{
	int p[2];
	ck_assert_int_eq(pipe(p), 0);
	struct spr_capture c = {.fd = p[0], .keep = 5};
	spr_set_nonblock(p[0]);
	ck_assert_int_eq(write(p[1], "hello world", 11), 11);
	close(p[1]);
	int rc;
	while ((rc = spr_capture_read(&c)) == 0)
		;
	ck_assert_int_eq(rc, 1);
	ck_assert_int_eq(c.fd, -1);
	ck_assert_uint_eq(c.total, 11);
	ck_assert_uint_eq(c.buf.len, 5);
	ck_assert_str_eq(c.buf.data, "hello");
	spr_buf_free(&c.buf);
}
END_TEST

START_TEST(feeder_survives_a_closed_reader)
{
	/* The library runs inside other programs: a reader that went away
	 * must not raise SIGPIPE in the caller. */
	int sp[2];
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	close(sp[1]);
	static char big[1 << 16];
	struct spr_feeder f = {.fd = sp[0], .data = big, .len = sizeof(big)};
	ck_assert_int_eq(spr_feeder_pump(&f), 1);
	ck_assert_int_eq(f.fd, -1);
}
END_TEST

START_TEST(command_output_and_timeout)
{
	char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)"echo out; echo err >&2; exit 3", NULL};
	char *envp[] = {NULL};
	spr_buf out = SPR_BUF_INIT, errout = SPR_BUF_INIT;
	int status = 0;
	spr_error *err = NULL;
	ck_assert_ok(spr_command_output(argv, envp, 5000, &out, &errout, &status, &err), err);
	ck_assert_str_eq(out.data, "out\n");
	ck_assert_str_eq(errout.data, "err\n");
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 3);
	spr_buf_free(&out);
	spr_buf_free(&errout);

	char *slow[] = {(char *)"/bin/sleep", (char *)"10", NULL};
	int64_t t0 = spr_now_ms();
	ck_assert_int_lt(spr_command_output(slow, envp, 200, NULL, NULL, &status, &err), 0);
	ck_assert_int_lt(spr_now_ms() - t0, 5000);
	ck_assert_int_eq(err->errnum, ETIMEDOUT);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	spr_error_free(err);
}
END_TEST

START_TEST(spawn_reports_missing_program)
{
	char *argv[] = {(char *)"/nonexistent/prog", NULL};
	char *envp[] = {NULL};
	pid_t pid;
	spr_error *err = NULL;
	ck_assert_int_lt(spr_spawn(argv[0], argv, envp, NULL, NULL, 0, &pid, &err), 0);
	ck_assert_ptr_nonnull(strstr(err->message, "/nonexistent/prog"));
	spr_error_free(err);
}
END_TEST

/* The container CLI runs in spr's cache directory (podman's conmon drops
 * files into its working directory), never in the caller's. */
START_TEST(spawn_runs_in_the_given_directory)
{
	char dir[] = "/tmp/spr-spawn-XXXXXX";
	ck_assert_ptr_nonnull(mkdtemp(dir));
	int out[2];
	ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int fds[3] = {spr_fd_above(devnull, 3), spr_fd_above(out[1], 3), -1};
	fds[2] = fcntl(fds[1], F_DUPFD_CLOEXEC, 3);
	char *argv[] = {(char *)"/bin/pwd", NULL};
	char *envp[] = {NULL};
	pid_t pid;
	spr_error *err = NULL;
	ck_assert_int_eq(spr_spawn(argv[0], argv, envp, dir, fds, 3, &pid, &err), 0);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	char got[PATH_MAX] = {0};
	ssize_t n = read(out[0], got, sizeof(got) - 1);
	ck_assert_int_gt(n, 0);
	got[strcspn(got, "\n")] = '\0';
	ck_assert_str_eq(got, dir);
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	close(out[0]);
	rmdir(dir);
	/* A directory that is not there: the spawn fails, saying so. */
	ck_assert_int_lt(spr_spawn(argv[0], argv, envp, "/nonexistent/dir", NULL, 0, &pid, &err),
			 0);
	spr_error_free(err);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("proc");
	TCase *t = tcase_create("proc");
	tcase_add_test(t, capture_keeps_first_bytes_counts_all);
	tcase_add_test(t, feeder_survives_a_closed_reader);
	tcase_add_test(t, command_output_and_timeout);
	tcase_add_test(t, spawn_reports_missing_program);
	tcase_add_test(t, spawn_runs_in_the_given_directory);
	suite_add_tcase(s, t);
	return s;
}
