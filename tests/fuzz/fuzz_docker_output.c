/* libFuzzer target for what spr reads from the docker and podman CLIs
 * (src/docker): bytes of the daemon's, not spr's. The first byte picks
 * the reader:
 *
 *   0  `docker inspect` of containers -> the listing's entries, `spr
 *      inspect`'s details, the id-matching lines and the match itself
 *   1  `docker inspect --type image` -> the image listing (and the users
 *      count from the same objects read as containers)
 *   2  `docker ps|images -q --no-trunc` -> the id list
 *   3  `podman info --format json` -> the target's description
 *   4  `docker version --format ...` -> the version
 *   5  a failed command's stderr -> spr_docker_last_line
 *   6  `docker ps --format SPR_DOCKER_MATCH_FORMAT` lines and the wanted
 *      id (after the first NUL) -> spr_docker_match_container
 *   7  an io.spr.creator label (this machine's boot id put in front)
 *
 * Every JSON document spr makes of them must be strict JSON (UTF-8, no
 * duplicate keys): spr's admin API promises JSON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docker/admin.h"
#include "docker/client.h"
#include "json.h"
#include "cache.h"
#include "utf8.h"

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* What spr prints of a tree it made is strict JSON. */
static void check_printed(const cJSON *doc)
{
	char *json = cJSON_PrintUnformatted(doc);
	check(json != NULL);
	spr_error *err = NULL;
	check(spr_json_validate(json, strlen(json), 0, "printed", &err) == 0);
	free(json);
}

static bool is_hex64(const char *s)
{
	if (!strncmp(s, "sha256:", 7))
		s += 7;
	size_t n = strspn(s, "0123456789abcdef");
	return n == 64 && !s[n];
}

static void containers(const spr_buf *out)
{
	cJSON *raw = spr_docker_parse_json(out);
	if (!raw)
		return;
	cJSON *list = spr_docker_container_entries(NULL, raw, false, NULL, NULL);
	check(cJSON_IsArray(list));
	const cJSON *e;
	cJSON_ArrayForEach(e, list)
	{
		const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
		check(cJSON_IsString(id) && is_hex64(id->valuestring));
	}
	check_printed(list);
	cJSON_Delete(list);

	const cJSON *obj;
	cJSON_ArrayForEach(obj, raw)
	{
		cJSON *c = spr_docker_container_entry(NULL, obj, false);
		if (!c)
			continue;
		spr_docker_inspect_details(c, obj);
		check_printed(c);
		cJSON_Delete(c);
	}

	spr_buf lines = SPR_BUF_INIT;
	spr_docker_match_lines(raw, &lines);
	check(!lines.oom);
	if (lines.data) {
		/* Each line is id, name, flag: a label cannot forge another. */
		size_t nlines = 0;
		for (size_t i = 0; i < lines.len; i++)
			nlines += lines.data[i] == '\n';
		check(nlines <= (size_t)cJSON_GetArraySize(raw));
		const char *want = lines.data;
		char first[65];
		memcpy(first, want, 64);
		first[64] = '\0';
		spr_error *err = NULL;
		char *id = spr_docker_match_container(lines.data, first, &err);
		check(!id || is_hex64(id));
		check(id || err);
		free(id);
		spr_error_free(err);
	}
	spr_buf_free(&lines);
	cJSON_Delete(raw);
}

static void images(const spr_buf *out, bool podman)
{
	cJSON *raw = spr_docker_parse_json(out);
	if (!raw)
		return;
	cJSON *users = spr_docker_image_users(raw);
	check(users != NULL);
	check_printed(users);
	cJSON *list = spr_docker_image_entries(raw, users, podman);
	check(cJSON_IsArray(list));
	const cJSON *img;
	cJSON_ArrayForEach(img, list)
	{
		const cJSON *tags = cJSON_GetObjectItemCaseSensitive(img, "tags");
		check(cJSON_GetArraySize(tags) > 0);
		const cJSON *tag;
		cJSON_ArrayForEach(tag, tags)
		{
			check(cJSON_IsString(tag));
			check(!strncmp(tag->valuestring, "spr-env:", 8) ||
			      !strncmp(tag->valuestring, "spr-runtime:", 12));
		}
	}
	check_printed(list);
	cJSON_Delete(list);
	cJSON_Delete(users);
	cJSON_Delete(raw);
}

static void id_list(spr_buf *out)
{
	size_t n = 0;
	char **ids = spr_docker_id_list(out->data, &n);
	check(ids != NULL);
	for (size_t i = 0; i < n; i++) {
		check(is_hex64(ids[i]));
		for (size_t j = 0; j < i; j++)
			check(strcmp(ids[i], ids[j]) != 0);
	}
	free(ids);
}

static void podman_info(const spr_buf *out)
{
	cJSON *info = spr_docker_parse_json(out);
	struct spr_docker_target t = {.podman = true};
	if (spr_docker_podman_info(&t, info) == 0) {
		check(t.cgroup_version == 1 || t.cgroup_version == 2);
		check(t.nuidmap <= sizeof(t.uidmap) / sizeof(*t.uidmap));
		for (size_t i = 0; i < t.nuidmap; i++) {
			check(t.uidmap[i].count >= 1);
			check((uint64_t)t.uidmap[i].inside + t.uidmap[i].count <= 1ull << 32);
			check((uint64_t)t.uidmap[i].outside + t.uidmap[i].count <= 1ull << 32);
		}
		check(t.limits == (t.enforces.memory && t.enforces.pids && t.enforces.cpu));
		check(strlen(t.storage) < sizeof(t.storage));
		check(spr_utf8_valid(t.storage, strlen(t.storage), NULL));
	}
	cJSON_Delete(info);
}

static void version(const spr_buf *out)
{
	struct spr_docker_target t = {0};
	spr_docker_set_version(&t, out);
	size_t n = strlen(t.version);
	check(n < sizeof(t.version) && !memchr(t.version, '\n', n));
	/* The version goes into `spr doctor` and the describe JSON. */
	check(!spr_utf8_valid(out->data, out->len, NULL) || spr_utf8_valid(t.version, n, NULL));
}

static void last_line(spr_buf *errout)
{
	const char *end = errout->data + errout->len;
	const char *line = spr_docker_last_line(errout);
	check(line >= errout->data && line <= end);
	size_t n = strlen(line);
	check(line + n <= end);
	check(n == 0 || (line[n - 1] != '\n' && line[n - 1] != '\r') ||
	      memchr(errout->data, '\0', errout->len));
}

static void match(spr_buf *in)
{
	size_t lines_len = strlen(in->data);
	const char *want = lines_len < in->len ? in->data + lines_len + 1 : "";
	spr_error *err = NULL;
	char *id = spr_docker_match_container(in->data, want, &err);
	check(!id != !err);
	free(id);
	spr_error_free(err);
}

static void creator(const spr_buf *in)
{
	spr_buf boot = SPR_BUF_INIT;
	if (!spr_read_file("/proc/sys/kernel/random/boot_id", &boot) || !boot.len) {
		spr_buf_free(&boot);
		return;
	}
	spr_buf label = SPR_BUF_INIT;
	spr_buf_printf(&label, "host:%.*s:%s", (int)strcspn(boot.data, "\n"), boot.data, in->data);
	int alive = spr_docker_creator_alive(label.data);
	check(alive >= -1 && alive <= 1);
	check(spr_docker_creator_alive(in->data) >= -1);
	spr_buf_free(&label);
	spr_buf_free(&boot);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	spr_buf in = SPR_BUF_INIT;
	spr_buf_append(&in, data + 1, size - 1);
	spr_buf_reserve(&in, 0); /* NUL-terminated even when empty */
	check(!in.oom);
	switch (data[0] & 7) {
	case 0: containers(&in); break;
	case 1: images(&in, data[0] & 8); break;
	case 2: id_list(&in); break;
	case 3: podman_info(&in); break;
	case 4: version(&in); break;
	case 5: last_line(&in); break;
	case 6: match(&in); break;
	case 7: creator(&in); break;
	}
	spr_buf_free(&in);
	return 0;
}
