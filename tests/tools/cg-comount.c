/* cg-comount: what a run cgroup does on a v1 host where cpu and cpuacct
 * share one hierarchy (/sys/fs/cgroup/cpu,cpuacct, the usual systemd
 * layout). This host mounts them apart, and a controller lives in one
 * hierarchy only, so the tool gives both the cpu base, as detection would
 * there: create the run cgroup, move a child in, remove it.
 * Prints one JSON line; exit 0 when all of it worked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup/cgroup.h"

int main(void)
{
	struct spr_cg_host host;
	spr_error *err = NULL;
	if (spr_cgroup_detect(NULL, &host, &err) < 0 || host.version != SPR_CG_V1 ||
	    !spr_cgroup_usable(&host)) {
		printf("{\"skip\": \"not a usable cgroup v1 host\"}\n");
		return 0;
	}
	struct spr_cgroup_plan plan;
	spr_cgroup_plan(&host, 64 << 20, 32, 1.0, 0, &plan);
	plan.base[SPR_CG_CPUACCT] = plan.base[SPR_CG_CPU];
	struct spr_cg_run run;
	if (spr_cg_run_create(&run, &plan, &err) < 0) {
		printf("{\"create\": \"%s\"}\n", err->message);
		return 1;
	}
	int pipefd[2];
	if (pipe(pipefd) < 0)
		return 1;
	pid_t pid = fork();
	if (pid == 0) {
		int rc = spr_cg_run_enter(&run);
		char buf[4096] = "";
		FILE *f = fopen("/proc/self/cgroup", "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		buf[n] = '\0';
		if (write(pipefd[1], buf, n) < 0 || rc != 1)
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	char buf[4096] = "";
	ssize_t n = read(pipefd[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	int status;
	waitpid(pid, &status, 0);
	const char *name = strrchr(run.dir[SPR_CG_CPU], '/');
	bool in_cpu = name && strstr(buf, name);
	int removed = spr_cg_run_remove(&run, &err);
	bool gone = access(run.dir[SPR_CG_CPU], F_OK) < 0 && access(run.dir[SPR_CG_MEMORY], F_OK) < 0;
	printf("{\"entered\": %s, \"in_run_cgroup\": %s, \"removed\": %s}\n",
	       WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "true" : "false",
	       in_cpu ? "true" : "false", removed == 0 && gone ? "true" : "false");
	spr_cg_run_free(&run);
	spr_cgroup_release(&host);
	spr_cgroup_host_free(&host);
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 && in_cpu && removed == 0 && gone ? 0 : 1;
}
