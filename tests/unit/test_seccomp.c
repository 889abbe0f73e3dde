/* The seccomp rule table and its BPF compilation. */
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "policy/seccomp.h"
#include "unit.h"

static const struct spr_seccomp_rule *find(const char *name)
{
	size_t n;
	const struct spr_seccomp_rule *r = spr_seccomp_rules(&n);
	for (size_t i = 0; i < n; i++)
		if (!strcmp(r[i].syscall, name))
			return &r[i];
	return NULL;
}

START_TEST(required_denials_present)
{
	/* Every family the isolation issue lists. */
	static const char *const denied[] = {
		"mount", "umount2", "fsopen", "fsmount", "move_mount", "open_tree", "mount_setattr",
		"pivot_root", "chroot", "unshare", "setns", "ptrace", "process_vm_readv",
		"process_vm_writev", "kexec_load", "kexec_file_load", "init_module", "finit_module",
		"delete_module", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup",
		"io_uring_enter", "io_uring_register", "keyctl", "add_key", "request_key", "acct",
		"swapon", "swapoff", "reboot", "syslog", "quotactl", "settimeofday", "clock_settime",
		"clock_adjtime", "open_by_handle_at", "name_to_handle_at", "kcmp", "pidfd_getfd", "personality",
		"ioctl", "socket", "socketpair", "clone"};
	for (size_t i = 0; i < sizeof(denied) / sizeof(*denied); i++) {
		const struct spr_seccomp_rule *r = find(denied[i]);
		ck_assert_msg(r != NULL, "no rule for %s", denied[i]);
		ck_assert_int_eq(r->errnum, EPERM);
		ck_assert_msg(seccomp_syscall_resolve_name(denied[i]) != __NR_SCMP_ERROR,
			      "%s unknown to libseccomp", denied[i]);
	}
	const struct spr_seccomp_rule *c3 = find("clone3");
	ck_assert_ptr_nonnull(c3);
	ck_assert_int_eq(c3->errnum, ENOSYS); /* so libc falls back to clone */
}
END_TEST

START_TEST(argument_conditions)
{
	size_t n;
	const struct spr_seccomp_rule *r = spr_seccomp_rules(&n);
	bool tiocsti = false, netns = false, netlink = false;
	for (size_t i = 0; i < n; i++) {
		if (!strcmp(r[i].syscall, "ioctl") && r[i].value == TIOCSTI) {
			/* Only the low 32 bits: the kernel truncates the request. */
			ck_assert_int_eq(r[i].cmp, SPR_CMP_MASKED_EQ);
			ck_assert_uint_eq(r[i].mask, 0xffffffffu);
			tiocsti = true;
		}
		if (!strcmp(r[i].syscall, "clone") && r[i].value == 0x40000000 /* CLONE_NEWNET */)
			netns = r[i].cmp == SPR_CMP_MASKED_EQ && r[i].arg == 0;
		if (!strcmp(r[i].syscall, "socket") && r[i].cmp == SPR_CMP_GT)
			netlink = r[i].value == 10; /* everything above AF_INET6: netlink, packet... */
		/* AF_UNIX, AF_INET, AF_INET6 are never denied. */
		if (!strcmp(r[i].syscall, "socket") && r[i].cmp == SPR_CMP_EQ)
			ck_assert(r[i].value != 1 && r[i].value != 2 && r[i].value != 10);
	}
	ck_assert(tiocsti && netns && netlink);
}
END_TEST

START_TEST(compiles_once_to_bpf)
{
	struct spr_bpf a, b;
	spr_error *err = NULL;
	ck_assert_ok(spr_seccomp_bpf(SPR_SECCOMP_DEFAULT, &a, &err), err);
	ck_assert_uint_gt(a.len, 0);
	ck_assert_uint_eq(a.len % sizeof(struct sock_filter), 0);
	ck_assert_ok(spr_seccomp_bpf(SPR_SECCOMP_DEFAULT, &b, &err), err);
	ck_assert_ptr_eq(a.insns, b.insns); /* cached: no per-run cost */
	/* The program starts by checking the architecture. */
	const struct sock_filter *f = a.insns;
	ck_assert_uint_eq(f[0].code, BPF_LD | BPF_W | BPF_ABS);
	ck_assert_uint_eq(f[0].k, 4 /* offsetof(struct seccomp_data, arch) */);
	/* A foreign architecture kills the process. */
	bool kill = false;
	for (size_t i = 0; i < a.len / sizeof(*f); i++)
		if (f[i].code == (BPF_RET | BPF_K) && f[i].k == SECCOMP_RET_KILL_PROCESS)
			kill = true;
	ck_assert(kill);
}
END_TEST

START_TEST(no_unix_variant)
{
	/* The host-network variant refuses socket(AF_UNIX) and datagram
	 * socketpairs (their ends can sendto() an abstract name), nothing
	 * more, and is a distinct, longer program. */
	size_t n;
	const struct spr_seccomp_rule *r = spr_seccomp_no_unix_rules(&n);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(r[0].syscall, "socket");
	ck_assert_int_eq(r[0].cmp, SPR_CMP_EQ);
	ck_assert_uint_eq(r[0].value, AF_UNIX);
	ck_assert_str_eq(r[1].syscall, "socketpair");
	ck_assert_int_eq(r[1].cmp, SPR_CMP_MASKED_EQ);
	ck_assert_uint_eq(r[1].arg, 1);
	/* SOCK_RAW is a datagram socket for AF_UNIX: both must match */
	ck_assert_uint_eq(r[1].mask & SOCK_DGRAM, SOCK_DGRAM & r[1].mask);
	ck_assert_uint_eq(SOCK_DGRAM & r[1].mask, r[1].value);
	ck_assert_uint_eq(SOCK_RAW & r[1].mask, r[1].value);
	ck_assert_uint_ne(SOCK_STREAM & r[1].mask, r[1].value);
	ck_assert_uint_ne(SOCK_SEQPACKET & r[1].mask, r[1].value);
	ck_assert_uint_eq((SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK) & r[1].mask, r[1].value);
	struct spr_bpf def, nu, again;
	spr_error *err = NULL;
	ck_assert_ok(spr_seccomp_bpf(SPR_SECCOMP_DEFAULT, &def, &err), err);
	ck_assert_ok(spr_seccomp_bpf(SPR_SECCOMP_NO_UNIX, &nu, &err), err);
	ck_assert_ok(spr_seccomp_bpf(SPR_SECCOMP_NO_UNIX, &again, &err), err);
	ck_assert_ptr_ne(def.insns, nu.insns);
	ck_assert_ptr_eq(nu.insns, again.insns);
	ck_assert_uint_gt(nu.len, def.len);
	ck_assert_int_lt(spr_seccomp_bpf(SPR_SECCOMP_NVARIANTS, &again, &err), 0);
	spr_error_free(err);
}
END_TEST

Suite *make_suite(void)
{
	Suite *s = suite_create("seccomp");
	TCase *t = tcase_create("rules");
	tcase_add_test(t, required_denials_present);
	tcase_add_test(t, no_unix_variant);
	tcase_add_test(t, argument_conditions);
	tcase_add_test(t, compiles_once_to_bpf);
	suite_add_tcase(s, t);
	return s;
}
