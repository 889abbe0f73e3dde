/* UTF-8 helpers for captured output: the code may write any bytes, but a
 * RunnerResult carries valid UTF-8 cut on character boundaries. */
#ifndef SPR_UTF8_H
#define SPR_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Length of the well-formed sequence starting at s (1..4), or 0 when s
 * does not start one (Unicode 15, table 3-7: no overlongs, surrogates or
 * code points above U+10FFFF). */
SPR_HIDDEN size_t spr_utf8_seq_len(const unsigned char *s, size_t avail);
/* True when all of s is well-formed; else *bad is the first bad offset. */
SPR_HIDDEN bool spr_utf8_valid(const char *s, size_t len, size_t *bad);
/* The largest n <= cap such that s[0..n) does not end inside a character
 * that s continues. */
SPR_HIDDEN size_t spr_utf8_cut(const char *s, size_t len, size_t cap);
/* Appends s to out with every ill-formed subsequence replaced by U+FFFD
 * (one per maximal subpart, as Python's errors="replace" does). */
SPR_HIDDEN void spr_utf8_sanitize(spr_buf *out, const char *s, size_t len);
/* Appends code point cp (<= U+10FFFF) encoded as UTF-8. */
SPR_HIDDEN void spr_utf8_put(spr_buf *out, uint32_t cp);
/* The code point of the well-formed n-byte sequence at s. */
SPR_HIDDEN uint32_t spr_utf8_decode(const unsigned char *s, size_t n);
/* What is at text[off], for parser messages ("found ..."): end of input,
 * 'x', '\x01', or 'é' (U+00E9). */
SPR_HIDDEN void spr_utf8_describe(char *buf, size_t size, const char *text, size_t len,
				  size_t off);

#endif
