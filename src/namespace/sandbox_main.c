/* spr-sandbox: see src/namespace/sandbox.h. */
#include "namespace/sandbox.h"

int main(int argc, char **argv) { return spr_sandbox_main(argc, argv); }
