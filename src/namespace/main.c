/* spr-sandbox: see src/protocol/sandbox.h. */
#include <string.h>

#include "protocol/sandbox.h"

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds (make asan): this process's stderr is the code's
 * captured stderr, so a report would vanish into a RunnerResult. Reports
 * go to files that `make asan` checks instead, in the build directory's
 * own SPR_SANITIZER_DIR (the Makefile's -D). */
#ifndef SPR_SANITIZER_DIR
#define SPR_SANITIZER_DIR "/tmp/spr-sanitizer"
#endif
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
__attribute__((visibility("default"), used)) const char *__asan_default_options(void) { return "log_path=" SPR_SANITIZER_DIR "/spr-sandbox"; }
__attribute__((visibility("default"), used)) const char *__ubsan_default_options(void) { return "log_path=" SPR_SANITIZER_DIR "/spr-sandbox"; }
#endif

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--container"))
		return spr_sandbox_agent(argc, argv);
	return spr_sandbox_serve(argc, argv);
}
