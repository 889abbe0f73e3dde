#include <net/if.h>
#include <netlink/route/link.h>

#include "namespace/steps.h"

/* A fresh network namespace has only "lo", and it is down: without it
 * even 127.0.0.1 is unreachable, which breaks ordinary code. In a new
 * namespace lo is always interface 1 (LOOPBACK_IFINDEX), so one request
 * does it, without asking the kernel for the link first. */
#define LOOPBACK_IFINDEX 1

int spr_net_loopback_up(spr_error **err)
{
	struct nl_sock *sk = nl_socket_alloc();
	struct rtnl_link *lo = NULL, *change = NULL;
	int rc = sk ? nl_connect(sk, NETLINK_ROUTE) : -NLE_NOMEM;
	if (rc == 0 && (!(lo = rtnl_link_alloc()) || !(change = rtnl_link_alloc())))
		rc = -NLE_NOMEM;
	if (rc == 0) {
		rtnl_link_set_ifindex(lo, LOOPBACK_IFINDEX);
		rtnl_link_set_name(lo, "lo");
		rtnl_link_set_flags(change, IFF_UP);
		rc = rtnl_link_change(sk, lo, change, 0);
	}
	rtnl_link_put(change);
	rtnl_link_put(lo);
	nl_socket_free(sk);
	if (rc < 0)
		return spr_fail(err, SPR_LAYER_NAMESPACE, EIO,
				"bringing up the loopback interface: %s", nl_geterror(rc));
	return 0;
}
