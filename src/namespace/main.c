/* spr-sandbox: see src/protocol/sandbox.h. */
#include "protocol/sandbox.h"

#ifdef __SANITIZE_ADDRESS__
/* Sanitizer builds (make asan): this process's stderr is the code's
 * captured stderr, so a report would vanish into a RunnerResult. Reports
 * go to files that `make asan` checks instead. */
const char *__asan_default_options(void);
const char *__ubsan_default_options(void);
__attribute__((visibility("default"), used)) const char *__asan_default_options(void) { return "log_path=/tmp/spr-sanitizer/spr-sandbox"; }
__attribute__((visibility("default"), used)) const char *__ubsan_default_options(void) { return "log_path=/tmp/spr-sanitizer/spr-sandbox"; }
#endif

int main(int argc, char **argv) { return spr_sandbox_serve(argc, argv); }
