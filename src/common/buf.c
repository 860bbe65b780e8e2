/*
 * buf: a growable byte buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "buf.h"

void
buf_init(struct buf *b)
{
	memset(b, 0, sizeof(*b));
}

void
buf_free(struct buf *b)
{
	free(b->data);
	buf_init(b);
}

int
buf_reserve(struct buf *b, size_t n)
{
	size_t	 cap;
	uint8_t	*p;

	if (b->len + n <= b->cap)
		return 0;
	if (n > SIZE_MAX / 2 - b->len)
		return -1;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + n)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
}

void
buf_put(struct buf *b, const void *p, size_t n)
{
	if (b->failed)
		return;
	if (buf_reserve(b, n) == -1) {
		b->failed = 1;
		return;
	}
	if (n > 0)
		memcpy(b->data + b->len, p, n);
	b->len += n;
}

void
buf_put_u8(struct buf *b, uint8_t v)
{
	buf_put(b, &v, 1);
}

void
buf_put_u16(struct buf *b, uint16_t v)
{
	uint8_t	 p[2];

	put_be16(p, v);
	buf_put(b, p, sizeof(p));
}

void
buf_put_u32(struct buf *b, uint32_t v)
{
	uint8_t	 p[4];

	put_be32(p, v);
	buf_put(b, p, sizeof(p));
}

void
buf_put_u64(struct buf *b, uint64_t v)
{
	uint8_t	 p[8];

	put_be32(p, (uint32_t)(v >> 32));
	put_be32(p + 4, (uint32_t)v);
	buf_put(b, p, sizeof(p));
}

int
buf_failed(const struct buf *b)
{
	return b->failed;
}

void
buf_clear_failed(struct buf *b)
{
	b->failed = 0;
}

void
put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v;
}

void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = v >> 16;
	p[2] = v >> 8;
	p[3] = v;
}

uint16_t
get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

uint64_t
get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}
