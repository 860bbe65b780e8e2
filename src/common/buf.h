/*
 * buf: a growable byte buffer, used by the codec to build frames and by
 * the daemon and the library for their input and output bytes.
 */
#ifndef ISP_BUF_H
#define ISP_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t	*data;
	size_t	 len;	/* bytes in use */
	size_t	 cap;	/* bytes allocated */
	int	 failed;	/* an append ran out of memory */
};

void	 buf_init(struct buf *);
void	 buf_free(struct buf *);
/* Makes room for n more bytes. Returns 0, or -1 when out of memory
 * (the buffer is unchanged then). */
int	 buf_reserve(struct buf *, size_t n);
/* Drops the first n bytes, keeping the rest. */
void	 buf_consume(struct buf *, size_t n);

/*
 * The put functions append big-endian integers and raw bytes. On
 * allocation failure they record it in the buffer (buf_failed() turns
 * true) and append nothing more, so a caller encodes a whole frame and
 * checks once at the end.
 */
void	 buf_put_u8(struct buf *, uint8_t);
void	 buf_put_u16(struct buf *, uint16_t);
void	 buf_put_u32(struct buf *, uint32_t);
void	 buf_put_u64(struct buf *, uint64_t);
void	 buf_put(struct buf *, const void *, size_t);
int	 buf_failed(const struct buf *);
void	 buf_clear_failed(struct buf *);

void	 put_be16(uint8_t *, uint16_t);
void	 put_be32(uint8_t *, uint32_t);
uint16_t get_be16(const uint8_t *);
uint32_t get_be32(const uint8_t *);
uint64_t get_be64(const uint8_t *);

#endif
