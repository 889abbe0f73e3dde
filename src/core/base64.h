/* Base64 (RFC 4648, with padding): binary data (the seccomp BPF program)
 * inside the JSON plan sent to spr-sandbox. */
#ifndef SPR_BASE64_H
#define SPR_BASE64_H

#include <stddef.h>

#include "buf.h"

SPR_HIDDEN void spr_base64_encode(spr_buf *out, const void *data, size_t len);
/* Returns 0 and appends the bytes to out, or -1 on malformed input. */
SPR_HIDDEN int spr_base64_decode(spr_buf *out, const char *text, size_t len);

#endif
