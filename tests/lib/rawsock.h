/*
 * rawsock: a test speaking the wire protocol itself, over a plain TCP
 * connection to a real ispd on loopback, to send what libisp never
 * would (garbage, half frames, requests before HELLO) and to read
 * exactly what ispd answers. Failures are cmocka assertions.
 */
#ifndef ISP_RAWSOCK_H
#define ISP_RAWSOCK_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "proto.h"

/* A connection to 127.0.0.1:port; rcvbuf > 0 sets SO_RCVBUF first. */
int	raw_connect(int port);
int	raw_connect_rcvbuf(int port, int rcvbuf);

/* Sends all of b (which must not have failed) and empties it. */
void	raw_send(int fd, struct buf *b);
/* Sends n bytes at p, in one send(). */
void	raw_send_bytes(int fd, const void *p, size_t n);

/*
 * Reads until rb starts with a whole frame and decodes it into m (which
 * points into rb until raw_next()). Returns 1; 0 when the peer closed;
 * -1 after timeout_ms of silence. A frame that does not decode fails.
 */
int	raw_recv(int fd, struct buf *rb, struct proto_msg *m, int timeout_ms);
/* Drops the frame raw_recv() returned. */
void	raw_next(struct buf *rb);

/* HELLO with caps and name; raw_welcome() then expects the WELCOME
 * (within 5 s) and returns the session id it gives. */
void	 raw_hello(int fd, struct buf *b, uint32_t caps, const char *name);
uint64_t raw_welcome(int fd, struct buf *b, struct buf *rb, uint32_t caps,
	    const char *name);

/* A counter of one QUERY STATS over fd, a welcomed session with nothing
 * else on its way to it; -1 when ispd has no such counter. */
long long raw_stat(int fd, struct buf *b, struct buf *rb, const char *name);

#endif
