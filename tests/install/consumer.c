/* A program built against an installed libspr (make check-install): only
 * the public header and pkg-config, as a user of the library would. */
#include <spr.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
	spr_engine *engine = NULL;
	spr_error *err = NULL;
	char *result = NULL;
	const char *request = "{\"code\": \"result = sum(input_data)\", \"input_data\": [1, 2, 3]}";
	if (spr_local_engine_new(NULL, &engine, &err) < 0 ||
	    spr_run_json(engine, request, strlen(request), &result, &err) < 0) {
		fprintf(stderr, "consumer: %s\n", err ? err->message : "?");
		return 1;
	}
	puts(result);
	spr_free(result);
	spr_engine_free(engine);
	return 0;
}
