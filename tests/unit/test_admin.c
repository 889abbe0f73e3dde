/* The pure parts of the managed-container admin: which container an ID
 * names (and the refusals), and whether a creator label's process lives. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "docker/admin.h"
#include "docker/client.h"
#include "proc.h"
#include "unit.h"

#define ID_A "aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888"
#define ID_B "aaaa9999bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888"
#define ID_C "cccc1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888"

/* Two managed containers sharing an id prefix, one unmanaged, and a
 * managed one whose name is a prefix of another name. */
static const char ps[] = ID_A "\tspr-one\t1\n" ID_B "\tspr-two\t1\n" ID_C
			       "\tmy-db\t\n"
			       "dddd1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888\tspr\t1\n";

static char *match(const char *want, int *errnum)
{
	char *copy = strdup(ps);
	spr_error *err = NULL;
	char *id = spr_docker_match_container(copy, want, &err);
	*errnum = err ? err->errnum : 0;
	if (err && *errnum == EPERM)
		ck_assert_msg(strstr(err->message, "is not managed by spr and cannot be modified"),
			      "%s", err->message);
	if (err && *errnum == ENOTUNIQ)
		ck_assert_msg(strstr(err->message, "aaaa1111bbbb (spr-one)") &&
				      strstr(err->message, "aaaa9999bbbb (spr-two)"),
			      "%s", err->message);
	spr_error_free(err);
	free(copy);
	return id;
}

START_TEST(resolves_ids_names_and_prefixes)
{
	int e;
	char *id = match(ID_A, &e);
	ck_assert_str_eq(id, ID_A);
	free(id);
	ck_assert_str_eq((id = match("spr-two", &e)), ID_B);
	free(id);
	ck_assert_str_eq((id = match("aaaa11", &e)), ID_A);
	free(id);
	ck_assert_str_eq((id = match("spr-o", &e)), ID_A); /* a name prefix */
	free(id);
	/* "spr" is a whole name: it wins over the names it prefixes */
	ck_assert_str_eq((id = match("spr", &e)), "dddd1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888");
	free(id);
}
END_TEST

START_TEST(refusals)
{
	int e;
	ck_assert_ptr_null(match("aaaa", &e));
	ck_assert_int_eq(e, ENOTUNIQ);
	ck_assert_ptr_null(match("spr-", &e));
	ck_assert_int_eq(e, ENOTUNIQ);
	ck_assert_ptr_null(match("my-db", &e));
	ck_assert_int_eq(e, EPERM);
	ck_assert_ptr_null(match("cccc", &e)); /* unmanaged by id prefix too */
	ck_assert_int_eq(e, EPERM);
	ck_assert_ptr_null(match("zzz", &e));
	ck_assert_int_eq(e, ESRCH);
	ck_assert_ptr_null(match("", &e));
	ck_assert_int_eq(e, EINVAL);
	/* a prefix shared by a managed and an unmanaged container is ambiguous,
	 * never resolved to the managed one */
	char lines[] = ID_A "\tspr-one\t1\n" ID_C "\tspr-other\t\n";
	spr_error *err = NULL;
	ck_assert_ptr_null(spr_docker_match_container(lines, "spr-o", &err));
	ck_assert_int_eq(err->errnum, ENOTUNIQ);
	spr_error_free(err);
}
END_TEST

START_TEST(creator_liveness)
{
	char host[256] = "", boot[64] = "", label[512];
	gethostname(host, sizeof(host) - 1);
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_ptr_nonnull(fgets(boot, sizeof(boot), f));
	fclose(f);
	boot[strcspn(boot, "\n")] = '\0';
	char state;
	unsigned long long start;
	ck_assert_int_eq(spr_proc_identity(getpid(), &state, &start), 0);
	/* what the engine puts on its containers */
	char *mine = spr_docker_creator_label();
	snprintf(label, sizeof(label), "%s:%s:%d:%llu", host, boot, (int)getpid(), start);
	ck_assert_str_eq(mine, label);
	free(mine);
	ck_assert_int_eq(spr_docker_creator_alive(label), 1);
	/* the same pid with another start time: a reused pid, the creator is gone */
	snprintf(label, sizeof(label), "%s:%s:%d:%llu", host, boot, (int)getpid(), start + 1);
	ck_assert_int_eq(spr_docker_creator_alive(label), 0);
	snprintf(label, sizeof(label), "%s:%s:%d:1", host, boot, 0x3ffffff0); /* no such pid */
	ck_assert_int_eq(spr_docker_creator_alive(label), 0);
	/* another boot (a clone of this machine, same host name): unknown */
	snprintf(label, sizeof(label), "%s:00000000-0000-0000-0000-000000000000:%d:%llu", host,
		 (int)getpid(), start);
	ck_assert_int_eq(spr_docker_creator_alive(label), -1);
	/* a host name with colons cannot fool the parser from the end */
	snprintf(label, sizeof(label), "a:b:%s:%d:%llu", boot, (int)getpid(), start);
	ck_assert_int_eq(spr_docker_creator_alive(label), 1);
	/* the old three-field form, and garbage: unknown */
	snprintf(label, sizeof(label), "%s:%d:%llu", host, (int)getpid(), start);
	ck_assert_int_eq(spr_docker_creator_alive(label), -1);
	ck_assert_int_eq(spr_docker_creator_alive("garbage"), -1);
	ck_assert_int_eq(spr_docker_creator_alive(""), -1);
	ck_assert_int_eq(spr_docker_creator_alive(NULL), -1);
}
END_TEST

/* What goes into "... failed: <said>": podman's multi-line error (a
 * mount program's output, then ": exit status 1" alone) whole, on one
 * line; docker's one-line error; else the last line. */
static char *said(const char *text)
{
	spr_buf b = SPR_BUF_INIT;
	if (text)
		spr_buf_puts(&b, text);
	char *copy = strdup(spr_docker_last_line(&b));
	spr_buf_free(&b);
	return copy;
}

START_TEST(what_the_cli_said)
{
	static const struct {
		const char *errout, *want;
	} cases[] = {
	    {"STEP 1/6: FROM base\ntime=x level=error msg=\"Unmounting m\"\n"
	     "Error: mounting new container: fuse-overlayfs: unknown argument\n"
	     "fuse: failed to open /dev/fuse: Permission denied\n: exit status 1\n",
	     "Error: mounting new container: fuse-overlayfs: unknown argument fuse: failed to "
	     "open /dev/fuse: Permission denied : exit status 1"},
	    {"Error response from daemon: No such image: x:1\n",
	     "Error response from daemon: No such image: x:1"},
	    {"error: two\nError: three\r\n", "Error: three"},
	    {"warning: a\nsomething broke\n\n", "something broke"},
	    {"one line", "one line"},
	    {"", ""},
	    {NULL, "(no output)"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char *got = said(cases[i].errout);
		ck_assert_msg(!strcmp(got, cases[i].want), "case %zu: '%s'", i, got);
		free(got);
	}
	/* a message longer than 4 KiB from its Error line: only the last line */
	spr_buf b = SPR_BUF_INIT;
	spr_buf_puts(&b, "Error: start\n");
	for (int i = 0; i < 600; i++)
		spr_buf_puts(&b, "filler\n");
	spr_buf_puts(&b, "the end\n");
	ck_assert_str_eq(spr_docker_last_line(&b), "the end");
	spr_buf_free(&b);
}
END_TEST

static cJSON *parsed(const char *text)
{
	spr_buf b = SPR_BUF_INIT;
	spr_buf_puts(&b, text);
	cJSON *doc = spr_docker_parse_json(&b);
	spr_buf_free(&b);
	return doc;
}

static bool printed_is_json(const cJSON *doc)
{
	char *json = cJSON_PrintUnformatted(doc);
	bool ok = json && spr_json_validate(json, strlen(json), 0, "printed", NULL) == 0;
	free(json);
	return ok;
}

/* Found by tests/fuzz/fuzz_docker_output.c: the daemon's text cut or
 * capitalized in the middle of a character made spr's JSON invalid. */
START_TEST(daemon_text_stays_utf8)
{
	struct spr_docker_target t = {0};
	spr_buf out = SPR_BUF_INIT;
	spr_buf_puts(&out, "1.2.3-\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
			   "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\n");
	spr_docker_set_version(&t, &out);
	ck_assert_str_eq(t.version, "1.2.3-\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
				    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	spr_buf_free(&out);

	/* "état" was "\xa3tat" (the first byte minus 32), and a long state cut
	 * anywhere */
	cJSON *raw = parsed("[{\"Id\":\"" ID_A "\",\"State\":{\"Status\":\"\xc3\xa9tat\"},"
			    "\"Config\":{\"Labels\":{\"io.spr.managed\":\"1\"}}},"
			    "{\"Id\":\"" ID_B "\",\"State\":{\"Status\":\"created\"},"
			    "\"Config\":{\"Labels\":{\"io.spr.managed\":\"1\"}}},"
			    "{\"Id\":\"" ID_C "\",\"State\":{\"Status\":\"x\xe2\x82\xac\xe2\x82\xac"
			    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
			    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
			    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
			    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
			    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"
			    "\xe2\x82\xac\xe2\x82\xac\"},"
			    "\"Config\":{\"Labels\":{\"io.spr.managed\":\"1\"}}}]");
	ck_assert_ptr_nonnull(raw);
	cJSON *list = spr_docker_container_entries(NULL, raw, false, NULL, NULL);
	ck_assert_int_eq(cJSON_GetArraySize(list), 3);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "status")->valuestring,
			 "\xc3\xa9tat");
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 1), "status")->valuestring,
			 "Created");
	ck_assert(printed_is_json(list));
	cJSON_Delete(list);
	cJSON_Delete(raw);
}
END_TEST

/* Found by the same target: a uidmap entry of 2^32 ids was cast to a
 * uint32 count (undefined; 0 in practice). */
START_TEST(podman_info_bounds)
{
	cJSON *info = parsed("{\"host\":{\"cgroupVersion\":\"v2\",\"idMappings\":{\"uidmap\":["
			     "{\"container_id\":0,\"host_id\":0,\"size\":4294967296},"
			     "{\"container_id\":0,\"host_id\":1000,\"size\":1},"
			     "{\"container_id\":1,\"host_id\":100000,\"size\":4294967295},"
			     "{\"container_id\":1,\"host_id\":100000,\"size\":65536}]}},"
			     "\"store\":{\"graphDriverName\":\"overlay-\xc3\xa9\xc3\xa9\xc3\xa9"
			     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}}");
	struct spr_docker_target t = {.podman = true};
	ck_assert_int_eq(spr_docker_podman_info(&t, info), 0);
	ck_assert_uint_eq(t.nuidmap, 2);
	ck_assert_uint_eq(t.uidmap[0].outside, 1000);
	ck_assert_uint_eq(t.uidmap[1].count, 65536);
	ck_assert_uint_eq(t.cgroup_version, 2);
	ck_assert_str_eq(t.storage, "overlay-\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
				    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	cJSON_Delete(info);
	ck_assert_int_eq(spr_docker_podman_info(&t, NULL), -1);
}
END_TEST

/* What is not strict JSON is not the CLI's document: invalid UTF-8,
 * duplicate keys, a NUL, trailing bytes. */
START_TEST(cli_json_is_strict)
{
	ck_assert_ptr_null(parsed("[{\"Name\":\"\xff\"}]"));
	ck_assert_ptr_null(parsed("{\"host\":{},\"host\":{}}"));
	ck_assert_ptr_null(parsed("[] x"));
	spr_buf b = SPR_BUF_INIT;
	spr_buf_append(&b, "[]\0", 3);
	ck_assert_ptr_null(spr_docker_parse_json(&b));
	spr_buf_free(&b);
	cJSON *ok = parsed(" [ {\"Id\": \"x\"} ]\n");
	ck_assert(cJSON_IsArray(ok));
	cJSON_Delete(ok);
}
END_TEST

/* A hash too long for spr's tag names none of its images. */
START_TEST(image_tags_are_whole)
{
	char hash[300];
	memset(hash, 'a', sizeof(hash) - 1);
	hash[sizeof(hash) - 1] = '\0';
	spr_buf b = SPR_BUF_INIT;
	spr_buf_printf(&b,
		       "[{\"Id\":\"sha256:" ID_A "\",\"RepoTags\":[\"spr-env:%.247s\"],"
		       "\"Config\":{\"Labels\":{\"io.spr.image\":\"env\",\"io.spr.env-hash\":\"%s\"}}},"
		       "{\"Id\":\"sha256:" ID_B "\",\"RepoTags\":[\"spr-env:abc\"],\"Created\":\"x\","
		       "\"Config\":{\"Labels\":{\"io.spr.image\":\"env\",\"io.spr.env-hash\":\"abc\"}}}]",
		       hash, hash);
	cJSON *raw = spr_docker_parse_json(&b);
	ck_assert_ptr_nonnull(raw);
	cJSON *users = spr_docker_image_users(raw);
	cJSON *list = spr_docker_image_entries(raw, users, false);
	ck_assert_int_eq(cJSON_GetArraySize(list), 1);
	ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(list, 0), "id")->valuestring,
			 "sha256:" ID_B);
	cJSON_Delete(list);
	cJSON_Delete(users);
	cJSON_Delete(raw);
	spr_buf_free(&b);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *t = tcase_create("admin");
	tcase_add_test(t, resolves_ids_names_and_prefixes);
	tcase_add_test(t, refusals);
	tcase_add_test(t, creator_liveness);
	tcase_add_test(t, what_the_cli_said);
	tcase_add_test(t, daemon_text_stays_utf8);
	tcase_add_test(t, podman_info_bounds);
	tcase_add_test(t, cli_json_is_strict);
	tcase_add_test(t, image_tags_are_whole);
	suite_add_tcase(s, t);
	return s;
}
