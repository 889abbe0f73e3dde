#include "engine/packages.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int spr_check_packages(const char *const *packages, spr_error **err)
{
	for (const char *const *p = packages; p && *p; p++) {
		/* name[extras]==version, the version as PEP 440 spells one
		 * release (epoch!, +local): no wildcard, no second clause. */
		const char *s = *p, *eq = strstr(s, "==");
		bool ok = eq && eq > s && eq[2] && isalnum((unsigned char)s[0]);
		for (const char *c = s; ok && c < eq; c++)
			ok = isalnum((unsigned char)*c) || strchr("-_.[]", *c);
		for (const char *c = eq ? eq + 2 : s; ok && *c; c++)
			ok = isalnum((unsigned char)*c) || strchr("-_.!+", *c);
		if (!ok)
			return spr_fail(err, SPR_LAYER_API, EINVAL,
					"Package specs must be pinned as 'name==version'. Invalid "
					"package: %s",
					s);
	}
	return 0;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

const char **spr_sorted_packages(const char *const *packages, size_t *n)
{
	size_t count = 0;
	while (packages && packages[count])
		count++;
	const char **sorted = calloc(count + 1, sizeof(*sorted));
	if (!sorted)
		return NULL;
	if (count)
		memcpy(sorted, packages, count * sizeof(*sorted));
	qsort(sorted, count, sizeof(*sorted), compare_strings);
	size_t kept = 0;
	for (size_t i = 0; i < count; i++)
		if (!kept || strcmp(sorted[kept - 1], sorted[i]))
			sorted[kept++] = sorted[i];
	sorted[kept] = NULL;
	*n = kept;
	return sorted;
}

void spr_normalize_name(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;
	bool dash = false;
	for (size_t i = 0; i < len && o + 1 < cap; i++) {
		char c = in[i];
		if (c == '-' || c == '_' || c == '.') {
			dash = true;
			continue;
		}
		if (dash && o && o + 2 < cap)
			out[o++] = '-';
		dash = false;
		out[o++] = (char)tolower((unsigned char)c);
	}
	out[o] = '\0';
}

/* The length of a version without trailing ".0" release segments. */
static size_t release_len(const char *v)
{
	size_t n = strlen(v);
	while (n > 2 && !strncmp(v + n - 2, ".0", 2))
		n -= 2;
	return n;
}

bool spr_same_release(const char *a, const char *b)
{
	size_t la = release_len(a), lb = release_len(b);
	if (la != lb)
		return false;
	for (size_t i = 0; i < la; i++)
		if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i]))
			return false;
	return true;
}

char *spr_package_key(const char *spec)
{
	const char *eq = strstr(spec, "==");
	if (!eq)
		return strdup(spec);
	size_t name_len = strcspn(spec, "[");
	if (name_len > (size_t)(eq - spec))
		name_len = (size_t)(eq - spec);
	char name[256];
	spr_normalize_name(spec, name_len, name, sizeof(name));
	const char *version = eq + 2;
	char *key = NULL;
	if (asprintf(&key, "%s%.*s==%.*s", name, (int)(eq - spec - (ptrdiff_t)name_len),
		     spec + name_len, (int)release_len(version), version) < 0)
		return NULL;
	for (char *c = key; *c; c++)
		*c = (char)tolower((unsigned char)*c);
	return key;
}

static bool plain_text(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || *s == 0x7f || *s == '\'' || *s == '"' || *s == '\\')
			return false;
	return true;
}

int spr_check_pip(const spr_pip_options *pip, spr_error **err)
{
	const char *url = pip->index_url;
	if (url && (!plain_text(url) || !*url ||
		    (strncmp(url, "http://", 7) && strncmp(url, "https://", 8) &&
		     strncmp(url, "file://", 7))))
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"pip index URL '%s' is not an http://, https:// or file:// URL "
				"without spaces or quotes (--pip-index-url)",
				url);
	const char *links = pip->find_links;
	if (links) {
		struct stat st;
		if (links[0] != '/' || !plain_text(links))
			return spr_fail(err, SPR_LAYER_API, EINVAL,
					"pip find-links '%s' must be an absolute directory path "
					"without spaces or quotes (--pip-find-links)",
					links);
		if (stat(links, &st) < 0)
			return spr_fail_errno(err, SPR_LAYER_API,
					      "pip find-links directory %s (--pip-find-links)", links);
		if (!S_ISDIR(st.st_mode))
			return spr_fail(err, SPR_LAYER_API, ENOTDIR,
					"pip find-links %s is not a directory (--pip-find-links)",
					links);
	}
	if (pip->no_index && !links)
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"pip no_index needs find_links: with no index and no directory of "
				"wheels there is nothing to install from (--pip-no-index with "
				"--pip-find-links DIR)");
	if (pip->no_index && url)
		return spr_fail(err, SPR_LAYER_API, EINVAL,
				"pip no_index and index_url contradict each other (--pip-no-index, "
				"--pip-index-url): give one");
	return 0;
}

size_t spr_pip_args(const spr_pip_options *pip, const char *links_at,
		    const char *argv[SPR_PIP_MAX_ARGS])
{
	size_t n = 0;
	if (pip->no_index)
		argv[n++] = "--no-index";
	if (pip->index_url) {
		argv[n++] = "--index-url";
		argv[n++] = pip->index_url;
	}
	if (pip->find_links) {
		argv[n++] = "--find-links";
		argv[n++] = links_at;
	}
	return n;
}
