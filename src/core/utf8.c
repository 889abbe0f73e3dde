#include "utf8.h"

#include <stdio.h>

/* Bounds of the second byte for each lead byte (table 3-7); later bytes
 * are always 0x80..0xBF. */
static bool second_byte_ok(unsigned char lead, unsigned char b)
{
	switch (lead) {
	case 0xE0: return b >= 0xA0 && b <= 0xBF;
	case 0xED: return b >= 0x80 && b <= 0x9F;
	case 0xF0: return b >= 0x90 && b <= 0xBF;
	case 0xF4: return b >= 0x80 && b <= 0x8F;
	default: return b >= 0x80 && b <= 0xBF;
	}
}

static size_t expected_len(unsigned char lead)
{
	if (lead < 0x80)
		return 1;
	if (lead >= 0xC2 && lead <= 0xDF)
		return 2;
	if (lead >= 0xE0 && lead <= 0xEF)
		return 3;
	if (lead >= 0xF0 && lead <= 0xF4)
		return 4;
	return 0;
}

/* How many bytes of a (possibly incomplete) sequence are well-formed so
 * far: the "maximal subpart" used for replacement. */
static size_t valid_prefix(const unsigned char *s, size_t avail, size_t *want)
{
	size_t n = expected_len(s[0]);
	*want = n;
	if (n <= 1)
		return n;
	size_t i = 1;
	for (; i < n && i < avail; i++) {
		bool ok = i == 1 ? second_byte_ok(s[0], s[1]) : (s[i] & 0xC0) == 0x80;
		if (!ok)
			break;
	}
	return i;
}

size_t spr_utf8_seq_len(const unsigned char *s, size_t avail)
{
	if (!avail)
		return 0;
	size_t want, got = valid_prefix(s, avail, &want);
	return got == want ? got : 0;
}

bool spr_utf8_valid(const char *s, size_t len, size_t *bad)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < len;) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t n = spr_utf8_seq_len(u + i, len - i);
		if (!n) {
			if (bad)
				*bad = i;
			return false;
		}
		i += n;
	}
	return true;
}

size_t spr_utf8_cut(const char *s, size_t len, size_t cap)
{
	if (cap >= len)
		return len;
	const unsigned char *u = (const unsigned char *)s;
	/* Step back over at most 3 continuation bytes to the lead byte; if the
	 * character starting there extends past cap, cut before it. */
	size_t start = cap;
	for (int back = 0; back < 3 && start > 0 && (u[start] & 0xC0) == 0x80; back++)
		start--;
	if (start == cap)
		return cap;
	size_t want, got = valid_prefix(u + start, len - start, &want);
	if (want > 1 && got == want && start + want > cap)
		return start;
	return cap;
}

void spr_utf8_sanitize(spr_buf *out, const char *s, size_t len)
{
	static const char replacement[] = "\xEF\xBF\xBD";
	const unsigned char *u = (const unsigned char *)s;
	size_t run = 0; /* start of the pending run of valid bytes */
	size_t i = 0;
	while (i < len) {
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		size_t want, got = valid_prefix(u + i, len - i, &want);
		if (want > 1 && got == want) {
			i += got;
			continue;
		}
		spr_buf_append(out, s + run, i - run);
		spr_buf_append(out, replacement, 3);
		i += got ? got : 1;
		run = i;
	}
	spr_buf_append(out, s + run, len - run);
}

void spr_utf8_put(spr_buf *out, uint32_t cp)
{
	unsigned char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (unsigned char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (unsigned char)(0xC0 | (cp >> 6));
		u[1] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (unsigned char)(0xE0 | (cp >> 12));
		u[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (unsigned char)(0xF0 | (cp >> 18));
		u[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (unsigned char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	spr_buf_append(out, u, n);
}

uint32_t spr_utf8_decode(const unsigned char *s, size_t n)
{
	static const unsigned char lead_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
	uint32_t cp = s[0] & lead_mask[n];
	for (size_t i = 1; i < n; i++)
		cp = (cp << 6) | (s[i] & 0x3F);
	return cp;
}

void spr_utf8_describe(char *buf, size_t size, const char *text, size_t len, size_t off)
{
	const unsigned char *u = (const unsigned char *)text;
	if (off >= len) {
		snprintf(buf, size, "end of input");
	} else if (u[off] == '\'') {
		snprintf(buf, size, "\"'\"");
	} else if (u[off] >= 0x20 && u[off] < 0x7F) {
		snprintf(buf, size, "'%c'", u[off]);
	} else if (u[off] < 0x80) {
		snprintf(buf, size, "'\\x%02x'", u[off]);
	} else {
		size_t n = spr_utf8_seq_len(u + off, len - off);
		if (n)
			snprintf(buf, size, "'%.*s' (U+%04X)", (int)n, text + off,
				 (unsigned)spr_utf8_decode(u + off, n));
		else
			snprintf(buf, size, "'\\x%02x' (not UTF-8)", u[off]);
	}
}
