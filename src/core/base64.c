#include "base64.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void spr_base64_encode(spr_buf *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		char quad[4] = {alphabet[(v >> 18) & 63], alphabet[(v >> 12) & 63],
				i + 1 < len ? alphabet[(v >> 6) & 63] : '=',
				i + 2 < len ? alphabet[v & 63] : '='};
		spr_buf_append(out, quad, 4);
	}
}

static int value_of(char c)
{
	const char *hit = c ? strchr(alphabet, c) : NULL;
	return hit ? (int)(hit - alphabet) : -1;
}

int spr_base64_decode(spr_buf *out, const char *text, size_t len)
{
	if (len % 4)
		return -1;
	for (size_t i = 0; i < len; i += 4) {
		int pad = (text[i + 3] == '=') + (text[i + 2] == '=');
		if (pad && i + 4 != len)
			return -1;
		int a = value_of(text[i]), b = value_of(text[i + 1]);
		int c = pad >= 2 ? 0 : value_of(text[i + 2]);
		int d = pad >= 1 ? 0 : value_of(text[i + 3]);
		if (a < 0 || b < 0 || c < 0 || d < 0)
			return -1;
		unsigned v = (unsigned)a << 18 | (unsigned)b << 12 | (unsigned)c << 6 | (unsigned)d;
		unsigned char bytes[3] = {(unsigned char)(v >> 16), (unsigned char)(v >> 8),
					  (unsigned char)v};
		spr_buf_append(out, bytes, (size_t)(3 - pad));
	}
	return 0;
}
