/* The frames of protocol/frame.h. */
#include "protocol/frame.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proc.h"

/* Waits until fd is ready for events; -ETIMEDOUT past the deadline. */
static int wait_ready(int fd, short events, int64_t deadline)
{
	for (;;) {
		int timeout = -1;
		if (deadline >= 0) {
			int64_t left = deadline - spr_now_ms();
			if (left <= 0)
				return -ETIMEDOUT;
			timeout = left > 60000 ? 60000 : (int)left;
		}
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, timeout);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* send() where fd is a socket (MSG_NOSIGNAL: a dead reader must not raise
 * SIGPIPE in a library caller), write() where it is a pipe. */
static ssize_t put(int fd, const void *p, size_t n)
{
	ssize_t sent = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (sent < 0 && errno == ENOTSOCK)
		sent = write(fd, p, n);
	return sent;
}

static int write_full(int fd, const void *buf, size_t n, int64_t deadline)
{
	const char *p = buf;
	while (n) {
		ssize_t sent = put(fd, p, n);
		if (sent < 0 && errno == EINTR)
			continue;
		if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			int rc = wait_ready(fd, POLLOUT, deadline);
			if (rc)
				return rc;
			continue;
		}
		if (sent <= 0)
			return -EPIPE;
		p += sent;
		n -= (size_t)sent;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t n, int64_t deadline)
{
	char *p = buf;
	while (n) {
		int rc = wait_ready(fd, POLLIN, deadline);
		if (rc)
			return rc;
		ssize_t got = read(fd, p, n);
		if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (got <= 0)
			return -EPIPE;
		p += got;
		n -= (size_t)got;
	}
	return 0;
}

int spr_frame_send(int fd, char type, const void *head, size_t head_len, const void *body,
		   size_t body_len, int64_t deadline)
{
	size_t len = head_len + body_len;
	if (len > SPR_FRAME_MAX)
		return -EMSGSIZE;
	unsigned char h[5] = {(unsigned char)type, (unsigned char)(len >> 24),
			      (unsigned char)(len >> 16), (unsigned char)(len >> 8),
			      (unsigned char)len};
	int rc = write_full(fd, h, sizeof(h), deadline);
	if (rc == 0 && head_len)
		rc = write_full(fd, head, head_len, deadline);
	if (rc == 0 && body_len)
		rc = write_full(fd, body, body_len, deadline);
	return rc;
}

int spr_frame_send_msg(int fd, const struct spr_msg *m, int64_t deadline)
{
	_cleanup_buf_ spr_buf b = SPR_BUF_INIT;
	if (spr_msg_encode(m, &b) < 0)
		return b.oom ? -ENOMEM : -EINVAL;
	return spr_frame_send(fd, SPR_FRAME_MSG, b.data, b.len, NULL, 0, deadline);
}

int spr_frame_recv(int fd, char *type, spr_buf *payload, int64_t deadline)
{
	unsigned char h[5];
	int rc = read_full(fd, h, sizeof(h), deadline);
	if (rc)
		return rc;
	size_t len = (size_t)h[1] << 24 | (size_t)h[2] << 16 | (size_t)h[3] << 8 | h[4];
	if (len > SPR_FRAME_MAX)
		return -EPROTO;
	*type = (char)h[0];
	spr_buf_reset(payload);
	if (!spr_buf_reserve(payload, len))
		return -ENOMEM;
	rc = read_full(fd, payload->data, len, deadline);
	if (rc)
		return rc;
	payload->len = len;
	payload->data[len] = '\0';
	return 0;
}

int spr_frame_msg(const spr_buf *payload, struct spr_msg *m, size_t *used)
{
	uint32_t body;
	if (payload->len < sizeof(body))
		return -EPROTO;
	memcpy(&body, payload->data, sizeof(body));
	if (body > SPR_MSG_MAX || body > payload->len - sizeof(body) ||
	    spr_msg_decode_framed(payload->data, sizeof(body) + body, m) < 0)
		return -EPROTO;
	*used = sizeof(body) + body;
	return 0;
}
