#include "policy/seccomp.h"
#include "protocol/plan.h"

#include <linux/sched.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>

/* MFD_NOEXEC_SEAL (Linux 6.3); older headers lack it. */
#define MFD_NOEXEC_SEAL_FLAG 0x0008U


#define DENY(name) {name, EPERM, SPR_CMP_ANY, 0, 0, 0}
#define DENY_FLAG(name, arg, flag) {name, EPERM, SPR_CMP_MASKED_EQ, arg, flag, flag}
#define DENY_IF(name, arg, cmp, value) {name, EPERM, cmp, arg, 0, value}

static const struct spr_seccomp_rule rules[] = {
	/* The filesystem view is fixed before the code starts. */
	DENY("mount"), DENY("umount2"), DENY("fsopen"), DENY("fsconfig"), DENY("fsmount"),
	DENY("fspick"), DENY("move_mount"), DENY("open_tree"), DENY("mount_setattr"),
	DENY("pivot_root"), DENY("chroot"),
	/* No new namespaces: they are the way to regain capabilities. clone3
	 * keeps its flags in memory a filter cannot read: ENOSYS makes libc
	 * fall back to clone, whose flags we can check. */
	DENY("unshare"), DENY("setns"),
	DENY_FLAG("clone", 0, CLONE_NEWNS), DENY_FLAG("clone", 0, CLONE_NEWCGROUP),
	DENY_FLAG("clone", 0, CLONE_NEWUTS), DENY_FLAG("clone", 0, CLONE_NEWIPC),
	DENY_FLAG("clone", 0, CLONE_NEWUSER), DENY_FLAG("clone", 0, CLONE_NEWPID),
	DENY_FLAG("clone", 0, CLONE_NEWNET),
	/* (CLONE_NEWTIME exists only for clone3 and unshare, both refused:
	 * for clone its bit is part of the exit signal.) */
	{"clone3", ENOSYS, SPR_CMP_ANY, 0, 0, 0},
	/* Other processes' memory and the kernel's attack surface. */
	DENY("ptrace"), DENY("process_vm_readv"), DENY("process_vm_writev"), DENY("kcmp"),
	DENY("pidfd_getfd"), /* another process's descriptors (ptrace access rules) */
	DENY("process_madvise"), DENY("move_pages"), DENY("migrate_pages"), /* others' pages */
	/* A seccomp listener lets the code answer the syscalls of its own
	 * children: a second kernel interface to attack, and no run needs it.
	 * Plain filters (no listener flag) stay allowed. */
	DENY_FLAG("seccomp", 1, SECCOMP_FILTER_FLAG_NEW_LISTENER),
	/* Old or rarely used interfaces with a history of kernel bugs that no
	 * Python run needs (Docker's profile refuses most of them too):
	 * LDT entries, filesystem-wide notification, secret memory, port
	 * I/O, and calls kept only for compatibility. */
	DENY("modify_ldt"), DENY("fanotify_init"), DENY("memfd_secret"), DENY("ioperm"),
	DENY("iopl"), DENY("uselib"), DENY("ustat"), DENY("sysfs"), DENY("_sysctl"),
	DENY("lookup_dcookie"), DENY("nfsservctl"), DENY("create_module"),
	DENY("get_kernel_syms"), DENY("query_module"), DENY("vm86"), DENY("vm86old"),
	DENY("kexec_load"), DENY("kexec_file_load"), DENY("init_module"), DENY("finit_module"),
	DENY("delete_module"), DENY("bpf"), DENY("perf_event_open"), DENY("userfaultfd"),
	DENY("io_uring_setup"), DENY("io_uring_enter"), DENY("io_uring_register"),
	DENY("keyctl"), DENY("add_key"), DENY("request_key"),
	/* Host-wide state. */
	DENY("acct"), DENY("swapon"), DENY("swapoff"), DENY("reboot"), DENY("syslog"),
	DENY("quotactl"), DENY("quotactl_fd"), DENY("settimeofday"), DENY("clock_settime"),
	DENY("clock_adjtime"), DENY("adjtimex"), DENY("open_by_handle_at"),
	DENY("name_to_handle_at"),
	/* Querying the persona (0xffffffff) is fine; changing it (e.g.
	 * ADDR_NO_RANDOMIZE) weakens exploit mitigations. */
	DENY_IF("personality", 0, SPR_CMP_NE, 0xffffffffu),
	/* Injecting input into a terminal. The request is an int: compare the
	 * low 32 bits only, as the kernel does. */
	{"ioctl", EPERM, SPR_CMP_MASKED_EQ, 1, 0xffffffffu, TIOCSTI},
	{"ioctl", EPERM, SPR_CMP_MASKED_EQ, 1, 0xffffffffu, TIOCLINUX},
	/* Sockets: AF_UNIX, AF_INET, AF_INET6 only (no netlink, packet, vsock). */
	DENY_IF("socket", 0, SPR_CMP_EQ, AF_UNSPEC), DENY_IF("socket", 0, SPR_CMP_EQ, 3),
	DENY_IF("socket", 0, SPR_CMP_EQ, 4), DENY_IF("socket", 0, SPR_CMP_EQ, 5),
	DENY_IF("socket", 0, SPR_CMP_EQ, 6), DENY_IF("socket", 0, SPR_CMP_EQ, 7),
	DENY_IF("socket", 0, SPR_CMP_EQ, 8), DENY_IF("socket", 0, SPR_CMP_EQ, 9),
	DENY_IF("socket", 0, SPR_CMP_GT, AF_INET6),
	DENY_IF("socketpair", 0, SPR_CMP_EQ, AF_UNSPEC), DENY_IF("socketpair", 0, SPR_CMP_EQ, 3),
	DENY_IF("socketpair", 0, SPR_CMP_EQ, 4), DENY_IF("socketpair", 0, SPR_CMP_EQ, 5),
	DENY_IF("socketpair", 0, SPR_CMP_EQ, 6), DENY_IF("socketpair", 0, SPR_CMP_EQ, 7),
	DENY_IF("socketpair", 0, SPR_CMP_EQ, 8), DENY_IF("socketpair", 0, SPR_CMP_EQ, 9),
	DENY_IF("socketpair", 0, SPR_CMP_GT, AF_INET6),
};
_Static_assert(AF_UNIX == 1 && AF_INET == 2 && AF_INET6 == 10, "socket family layout");

/* SPR_SECCOMP_NO_UNIX (seccomp.h says why). The type argument carries
 * SOCK_NONBLOCK/SOCK_CLOEXEC above the low nibble. For AF_UNIX the kernel
 * makes SOCK_RAW (3) a datagram socket too: mask 0xe matches 2 and 3.
 * STREAM (1) and SEQPACKET (5) pairs are connected and stay so; the other
 * types AF_UNIX refuses itself. */
static const struct spr_seccomp_rule no_unix_rules[] = {
	DENY_IF("socket", 0, SPR_CMP_EQ, AF_UNIX),
	{"socketpair", EPERM, SPR_CMP_MASKED_EQ, 1, 0xe, SOCK_DGRAM},
};
_Static_assert(SOCK_DGRAM == 2 && SOCK_RAW == 3, "socket type layout");

/* SPR_SECCOMP_NO_MEMFD_EXEC (seccomp.h says why): flags without
 * MFD_NOEXEC_SEAL are refused. */
static const struct spr_seccomp_rule no_memfd_exec_rules[] = {
	{"memfd_create", EPERM, SPR_CMP_MASKED_EQ, 1, MFD_NOEXEC_SEAL_FLAG, 0},
};

/* SPR_SECCOMP_NO_IPC: without an IPC namespace every SysV object and
 * POSIX queue is the host's; a run may not create, attach to or use any
 * (an id or name can be guessed). */
static const struct spr_seccomp_rule no_ipc_rules[] = {
	DENY("shmget"),	    DENY("shmat"),	  DENY("shmctl"),	   DENY("shmdt"),
	DENY("semget"),	    DENY("semop"),	  DENY("semtimedop"),	   DENY("semctl"),
	DENY("msgget"),	    DENY("msgsnd"),	  DENY("msgrcv"),	   DENY("msgctl"),
	DENY("mq_open"),    DENY("mq_unlink"),	  DENY("mq_timedsend"),	   DENY("mq_timedreceive"),
	DENY("mq_notify"),  DENY("mq_getsetattr"),
};

/* SPR_SECCOMP_NO_INET: without a network namespace the only way to keep
 * the network off is to refuse inet sockets (TCP, UDP and raw alike). */
static const struct spr_seccomp_rule no_inet_rules[] = {
	DENY_IF("socket", 0, SPR_CMP_EQ, AF_INET),
	DENY_IF("socket", 0, SPR_CMP_EQ, AF_INET6),
};

const struct spr_seccomp_rule *spr_seccomp_no_ipc_rules(size_t *count)
{
	*count = ARRAY_SIZE(no_ipc_rules);
	return no_ipc_rules;
}

const struct spr_seccomp_rule *spr_seccomp_no_inet_rules(size_t *count)
{
	*count = ARRAY_SIZE(no_inet_rules);
	return no_inet_rules;
}

const struct spr_seccomp_rule *spr_seccomp_no_memfd_exec_rules(size_t *count)
{
	*count = ARRAY_SIZE(no_memfd_exec_rules);
	return no_memfd_exec_rules;
}

bool spr_seccomp_rule_is_sandbox_setup(const struct spr_seccomp_rule *r)
{
	static const char *const setup[] = {
		"mount", "umount2", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount",
		"open_tree", "mount_setattr", "pivot_root", "unshare", "setns", "clone",
	};
	for (size_t i = 0; i < ARRAY_SIZE(setup); i++)
		if (!strcmp(r->syscall, setup[i]))
			return true;
	return !strcmp(r->syscall, "socket") && r->cmp == SPR_CMP_GT && r->value == AF_INET6;
}

/* AF_NETLINK is 16; 11-15 and 17 on stay refused. */
static const struct spr_seccomp_rule container_socket_rules[] = {
	DENY_IF("socket", 0, SPR_CMP_EQ, 11), DENY_IF("socket", 0, SPR_CMP_EQ, 12),
	DENY_IF("socket", 0, SPR_CMP_EQ, 13), DENY_IF("socket", 0, SPR_CMP_EQ, 14),
	DENY_IF("socket", 0, SPR_CMP_EQ, 15), DENY_IF("socket", 0, SPR_CMP_GT, AF_NETLINK),
};
_Static_assert(AF_NETLINK == 16, "socket family layout");

const struct spr_seccomp_rule *spr_seccomp_container_socket_rules(size_t *count)
{
	*count = ARRAY_SIZE(container_socket_rules);
	return container_socket_rules;
}

const struct spr_seccomp_rule *spr_seccomp_rules(size_t *count)
{
	*count = ARRAY_SIZE(rules);
	return rules;
}

const struct spr_seccomp_rule *spr_seccomp_no_unix_rules(size_t *count)
{
	*count = ARRAY_SIZE(no_unix_rules);
	return no_unix_rules;
}

static struct scmp_arg_cmp to_scmp(const struct spr_seccomp_rule *r)
{
	switch (r->cmp) {
	case SPR_CMP_NE:
		return (struct scmp_arg_cmp){r->arg, SCMP_CMP_NE, r->value, 0};
	case SPR_CMP_GT:
		return (struct scmp_arg_cmp){r->arg, SCMP_CMP_GT, r->value, 0};
	case SPR_CMP_EQ:
		return (struct scmp_arg_cmp){r->arg, SCMP_CMP_EQ, r->value, 0};
	case SPR_CMP_MASKED_EQ:
	default:
		return (struct scmp_arg_cmp){r->arg, SCMP_CMP_MASKED_EQ, r->mask, r->value};
	}
}

static void release_ctx(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

static int add_rules(scmp_filter_ctx ctx, const struct spr_seccomp_rule *table, size_t n,
		     spr_error **err)
{
	for (size_t i = 0; i < n; i++) {
		const struct spr_seccomp_rule *r = &table[i];
		int nr = seccomp_syscall_resolve_name(r->syscall);
		if (nr == __NR_SCMP_ERROR)
			continue; /* not a syscall on this architecture */
		struct scmp_arg_cmp cmp = to_scmp(r);
		int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ERRNO((unsigned)r->errnum), nr,
						r->cmp == SPR_CMP_ANY ? 0 : 1, &cmp);
		if (rc < 0)
			return spr_fail(err, SPR_LAYER_SECCOMP, -rc, "seccomp rule for %s: %s",
					r->syscall, strerror(-rc));
	}
	return 0;
}

static int compile(enum spr_seccomp_variant variant, void **insns, size_t *len, spr_error **err)
{
	SPR_CLEANUP(release_ctx) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return spr_fail(err, SPR_LAYER_SECCOMP, ENOMEM, "seccomp_init failed");
	int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	/* libseccomp asks the running kernel whether it knows KILL_PROCESS:
	 * one before 4.14 does not (a thread kill still stops the call), nor
	 * does one without seccomp filters at all, where the program must
	 * still be built so that loading it fails with the cause and the fix
	 * (or --allow-degraded runs without it). */
	if (rc == -EINVAL)
		rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL);
	if (rc < 0)
		return spr_fail(err, SPR_LAYER_SECCOMP, -rc, "seccomp: bad-arch action: %s",
				strerror(-rc));
	if (add_rules(ctx, rules, ARRAY_SIZE(rules), err) < 0 ||
	    ((variant & SPR_SECCOMP_NO_UNIX) &&
	     add_rules(ctx, no_unix_rules, ARRAY_SIZE(no_unix_rules), err) < 0) ||
	    ((variant & SPR_SECCOMP_NO_MEMFD_EXEC) &&
	     add_rules(ctx, no_memfd_exec_rules, ARRAY_SIZE(no_memfd_exec_rules), err) < 0) ||
	    ((variant & SPR_SECCOMP_NO_IPC) &&
	     add_rules(ctx, no_ipc_rules, ARRAY_SIZE(no_ipc_rules), err) < 0) ||
	    ((variant & SPR_SECCOMP_NO_INET) &&
	     add_rules(ctx, no_inet_rules, ARRAY_SIZE(no_inet_rules), err) < 0))
		return -1;
	/* libseccomp 2.5 exports to a descriptor only. */
	_cleanup_close_ int fd = memfd_create("spr-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return spr_fail_errno(err, SPR_LAYER_SECCOMP, "memfd_create");
	rc = seccomp_export_bpf(ctx, fd);
	if (rc < 0)
		return spr_fail(err, SPR_LAYER_SECCOMP, -rc, "seccomp_export_bpf: %s",
				strerror(-rc));
	off_t size = lseek(fd, 0, SEEK_END);
	if (size <= 0 || size % 8)
		return spr_fail(err, SPR_LAYER_SECCOMP, EINVAL, "seccomp: bad BPF size %lld",
				(long long)size);
	void *buf = malloc((size_t)size);
	if (!buf)
		return spr_fail_oom(err);
	if (pread(fd, buf, (size_t)size, 0) != size) {
		free(buf);
		return spr_fail_errno(err, SPR_LAYER_SECCOMP, "reading the BPF program");
	}
	*insns = buf;
	*len = (size_t)size;
	return 0;
}

static pthread_mutex_t bpf_lock = PTHREAD_MUTEX_INITIALIZER;
static void *bpf_insns[SPR_SECCOMP_NVARIANTS];
static size_t bpf_len[SPR_SECCOMP_NVARIANTS];

int spr_seccomp_bpf(enum spr_seccomp_variant variant, struct spr_bpf *out, spr_error **err)
{
	if ((unsigned)variant >= SPR_SECCOMP_NVARIANTS)
		return spr_fail(err, SPR_LAYER_SECCOMP, EINVAL, "no seccomp variant %d",
				(int)variant);
	pthread_mutex_lock(&bpf_lock);
	int rc = bpf_insns[variant] ? 0
				    : compile(variant, &bpf_insns[variant], &bpf_len[variant], err);
	out->insns = bpf_insns[variant];
	out->len = bpf_len[variant];
	pthread_mutex_unlock(&bpf_lock);
	return rc;
}

int spr_seccomp_plan_filters(struct spr_sandbox_plan *sp, uint32_t needed, spr_error **err)
{
	for (int v = 0; v < SPR_NFILTERS; v++) {
		struct spr_bpf bpf;
		if (!(needed & (1u << v)))
			continue;
		if (spr_seccomp_bpf((enum spr_seccomp_variant)v, &bpf, err) < 0)
			return -1;
		sp->filters[v] = (struct spr_filter_plan){bpf.insns, bpf.len};
	}
	return 0;
}
