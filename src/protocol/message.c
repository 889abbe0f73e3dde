/* The messages' one codec (message.h). */
#include "protocol/message.h"

#include <sys/socket.h>

#include "protocol/plan.h"
#include "protocol/wire.h"

static void visit_applied(struct spr_wire *w, struct spr_applied *a, bool whole)
{
	spr_wire_i32(w, &a->landlock_abi);
	spr_wire_enum(w, &a->seccomp, 3);
	spr_wire_bool(w, &a->memfd_noexec);
	spr_wire_u8(w, &a->filter);
	spr_wire_bool(w, &a->landlock_net);
	if (!whole)
		return;
	spr_wire_bool(w, &a->namespaces);
	spr_wire_bool(w, &a->network_shared);
	spr_wire_enum(w, &a->cgroup, 3);
	spr_wire_u32(w, &a->host_uid);
}

static void visit_msg(struct spr_wire *w, struct spr_msg *m)
{
	spr_wire_enum(w, &m->type, SPR_MSG_NTYPES);
	switch (m->type) {
	case SPR_MSG_MONITOR:
		spr_wire_i32(w, &m->pid);
		break;
	case SPR_MSG_SETUP:
		visit_applied(w, &m->applied, false);
		break;
	case SPR_MSG_STARTED:
		spr_wire_i32(w, &m->pid);
		visit_applied(w, &m->applied, true);
		break;
	case SPR_MSG_DONE:
		spr_wire_bool(w, &m->done.timed_out);
		spr_wire_u64(w, &m->done.out_total);
		spr_wire_u64(w, &m->done.err_total);
		spr_wire_u64(w, &m->done.result_total);
		__attribute__((fallthrough)); /* and the exit */
	case SPR_MSG_EXIT:
		spr_wire_i32(w, &m->exit.status);
		spr_wire_i64(w, &m->exit.maxrss_kb);
		spr_wire_bool(w, &m->exit.oom_killed);
		spr_wire_bool(w, &m->exit.pids_limit_hit);
		spr_wire_bool(w, &m->exit.cpu_limit_hit);
		spr_wire_bool(w, &m->exit.alone);
		break;
	case SPR_MSG_ERROR:
	case SPR_MSG_FATAL:
		spr_wire_enum(w, &m->error.layer, SPR_LAYER_WORKER + 1);
		spr_wire_i32(w, &m->error.errnum);
		spr_wire_text(w, m->error.message, sizeof(m->error.message));
		break;
	case SPR_MSG_NONE:
		spr_wire_fail(w, "no message type");
		break;
	case SPR_MSG_REQUEST:
		spr_wire_i64(w, &m->request.timeout_ms);
		spr_wire_u64(w, &m->request.output_cap);
		spr_wire_u32(w, &m->request.require);
		break;
	case SPR_MSG_RUN:
		spr_wire_bool(w, &m->run.orphan_grace);
		break;
	default: /* BYE, KILL, HELLO: the type is all */
		break;
	}
}

int spr_msg_encode(const struct spr_msg *m, spr_buf *out)
{
	size_t at = out->len;
	uint32_t len = 0;
	spr_buf_append(out, &len, sizeof(len));
	struct spr_wire w;
	spr_wire_writer(&w, out);
	visit_msg(&w, (struct spr_msg *)m);
	if (!spr_wire_done(&w)) {
		errno = out->oom ? ENOMEM : EINVAL;
		return -1;
	}
	len = (uint32_t)(out->len - at - sizeof(len));
	memcpy(out->data + at, &len, sizeof(len));
	return 0;
}

int spr_msg_decode(const void *data, size_t len, struct spr_msg *m, const char **why)
{
	/* Messages hold no strings outside their own fixed buffer, so the
	 * arena only ever sees the error text's transient copy. */
	_cleanup_arena_ struct spr_arena arena = SPR_ARENA_INIT;
	struct spr_wire w;
	*m = (struct spr_msg){0};
	spr_wire_reader(&w, data, len, &arena);
	visit_msg(&w, m);
	if (spr_wire_done(&w))
		return 0;
	if (why)
		*why = w.why;
	*m = (struct spr_msg){0};
	errno = EPROTO;
	return -1;
}

void spr_msg_from_error(struct spr_msg *m, int type, const spr_error *err)
{
	*m = (struct spr_msg){.type = type};
	m->error.layer = err ? (int)err->layer : SPR_LAYER_SANDBOX;
	m->error.errnum = err ? err->errnum : 0;
	snprintf(m->error.message, sizeof(m->error.message), "%s",
		 err && err->message ? err->message : "setup failed");
	/* One line: the host quotes it inside a one-line error. */
	for (char *p = m->error.message; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

int spr_msg_to_error(const struct spr_msg *m, const char *prefix, spr_error **err)
{
	return spr_fail(err, (spr_layer)m->error.layer, m->error.errnum, "%s%s",
			prefix ? prefix : "", m->error.message);
}

int spr_msg_send(int sock, const struct spr_msg *m, const int *fds, size_t nfds)
{
	_cleanup_buf_ spr_buf b = SPR_BUF_INIT;
	if (spr_msg_encode(m, &b) < 0)
		return -1;
	struct iovec iov = {.iov_base = b.data, .iov_len = b.len};
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	memset(&u, 0, sizeof(u));
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
	if (nfds > 8) {
		errno = EINVAL;
		return -1;
	}
	if (nfds) {
		msg.msg_control = u.buf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)b.len ? 0 : -1;
}

int spr_msg_write(int fd, const struct spr_msg *m)
{
	_cleanup_buf_ spr_buf b = SPR_BUF_INIT;
	if (spr_msg_encode(m, &b) < 0)
		return -1;
	for (size_t off = 0; off < b.len;) {
		ssize_t n = write(fd, b.data + off, b.len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int spr_msg_decode_framed(const void *data, size_t len, struct spr_msg *m)
{
	uint32_t body;
	if (len < sizeof(body)) {
		errno = EPROTO;
		return -1;
	}
	memcpy(&body, data, sizeof(body));
	if (body != len - sizeof(body)) {
		errno = EPROTO;
		return -1;
	}
	return spr_msg_decode((const char *)data + sizeof(body), body, m, NULL);
}

int spr_msg_recv(int sock, struct spr_msg *m, int flags, int *fds, size_t *nfds)
{
	char data[SPR_MSG_MAX + 1];
	struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
	union {
		char buf[CMSG_SPACE(sizeof(int) * 8)];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	size_t want = nfds ? *nfds : 0, got = 0;
	if (nfds)
		*nfds = 0;
	ssize_t n;
	do
		n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < count; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < want)
				fds[got++] = fd;
			else
				close(fd);
		}
	}
	if (nfds)
		*nfds = got;
	if (n == 0 && !got)
		return 0;
	int problem = (msg.msg_flags & MSG_TRUNC) || spr_msg_decode_framed(data, (size_t)n, m) < 0 ? EPROTO
		      : (msg.msg_flags & MSG_CTRUNC)					 ? EMSGSIZE
											 : 0;
	if (!problem)
		return 1;
	/* A message we cannot use: nor its descriptors. */
	for (size_t i = 0; i < got; i++)
		close(fds[i]);
	if (nfds)
		*nfds = 0;
	errno = problem;
	return -1;
}

int spr_msg_next(struct spr_msg_stream *s, struct spr_msg *m)
{
	for (;;) {
		uint32_t body;
		if (s->pending.len >= sizeof(body)) {
			memcpy(&body, s->pending.data, sizeof(body));
			if (body > SPR_MSG_MAX) {
				errno = EPROTO;
				return -1;
			}
			size_t whole = sizeof(body) + body;
			if (s->pending.len >= whole) {
				int rc = spr_msg_decode_framed(s->pending.data, whole, m);
				memmove(s->pending.data, s->pending.data + whole, s->pending.len - whole);
				s->pending.len -= whole;
				s->pending.data[s->pending.len] = '\0';
				return rc < 0 ? -1 : 1;
			}
		}
		char chunk[4096];
		ssize_t n = read(s->fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			if (!s->pending.len)
				return 0;
			errno = EPROTO;
			return -1;
		}
		spr_buf_append(&s->pending, chunk, (size_t)n);
		if (s->pending.oom) {
			errno = ENOMEM;
			return -1;
		}
	}
}

const char *const spr_layer_req_names[SPR_NREQ] = {
	[SPR_REQ_NAMESPACES] = "namespaces",
	[SPR_REQ_CGROUP] = "cgroup",
	[SPR_REQ_SECCOMP] = "seccomp",
	[SPR_REQ_LANDLOCK_FS] = "landlock-fs",
	[SPR_REQ_LANDLOCK_TCP] = "landlock-tcp",
	[SPR_REQ_LANDLOCK_SCOPED] = "landlock-scoped",
	[SPR_REQ_NETWORK_OFF] = "network-off",
	[SPR_REQ_IPC_PRIVATE] = "ipc-private",
	[SPR_REQ_OWN_UID] = "own-uid",
	[SPR_REQ_MEMFD_EXEC_REFUSED] = "memfd-exec-refused",
};

int spr_layer_req_find(const char *name)
{
	for (int i = 0; i < SPR_NREQ; i++)
		if (!strcmp(spr_layer_req_names[i], name))
			return i;
	return -1;
}

int spr_applied_lacks(const struct spr_applied *a, uint32_t require, uid_t caller)
{
	/* 65534: the kernel's overflow id, nobody's and everybody's. */
	const bool has[SPR_NREQ] = {
		[SPR_REQ_NAMESPACES] = a->namespaces,
		[SPR_REQ_CGROUP] = a->cgroup != 0,
		[SPR_REQ_SECCOMP] = a->seccomp != SPR_SECCOMP_NONE,
		[SPR_REQ_LANDLOCK_FS] = a->landlock_abi > 0,
		[SPR_REQ_LANDLOCK_TCP] = a->landlock_net,
		[SPR_REQ_LANDLOCK_SCOPED] = a->landlock_abi >= 6,
		[SPR_REQ_NETWORK_OFF] = !a->network_shared || (a->filter & SPR_FILTER_NO_INET),
		[SPR_REQ_IPC_PRIVATE] = a->namespaces || (a->filter & SPR_FILTER_NO_IPC),
		[SPR_REQ_OWN_UID] = a->host_uid != caller && a->host_uid != 65534,
		[SPR_REQ_MEMFD_EXEC_REFUSED] = a->memfd_noexec,
	};
	for (int i = 0; i < SPR_NREQ; i++)
		if ((require & (1u << i)) && !has[i])
			return i;
	return -1;
}
