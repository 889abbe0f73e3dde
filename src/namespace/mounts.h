/* Executes the layout's mount list (src/namespace/layout.c) inside fresh
 * user + mount namespaces; on return "/" is the sandbox root (read-only
 * tmpfs) and the host tree is gone. Runs in spr-sandbox's init. */
#ifndef SPR_MOUNTS_H
#define SPR_MOUNTS_H

#include <cJSON.h>

#include "error.h"

SPR_HIDDEN int spr_mounts_setup(const cJSON *mounts, spr_error **err);

#endif
