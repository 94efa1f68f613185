/*
 * The C surface of cxl-mhd: the few OS calls Node cannot make itself
 * (POSIX shm + mmap + flock, word atomics on shared mappings, SO_PEERCRED,
 * socketpair and SCM_RIGHTS fd passing), and the one scan of the block
 * bitmap that is too slow in a short-lived process's unoptimised JS. Every function returns 0 or a
 * positive value on success and -errno on failure, so the N-API layer and
 * the sanitizer test share one error convention.
 */
#ifndef CXL_MHD_CORE_H
#define CXL_MHD_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
  CORE_SHM_CREATE = 1, /* O_CREAT */
  CORE_SHM_EXCL = 2,   /* O_EXCL: fail if the object exists */
  CORE_SHM_RDONLY = 4, /* open read-only */
};

/* name must start with '/', as shm_open wants. Returns fd or -errno. */
int core_shm_open(const char *name, int flags, unsigned mode);
int core_shm_unlink(const char *name);
int core_ftruncate(int fd, uint64_t size);
/* Size of the object behind fd, or -errno. */
int64_t core_fstat_size(int fd);
/* Non-blocking exclusive (or shared) advisory lock; -EWOULDBLOCK if held. */
int core_flock(int fd, int exclusive, int nonblock);
int core_close(int fd);

/* Maps len bytes of fd at offset 0, shared. *out receives the address. */
int core_mmap(int fd, size_t len, int writable, void **out);
int core_munmap(void *addr, size_t len);

/* Sequentially consistent atomics. Callers check alignment and bounds. */
uint32_t core_load32(const void *p);
void core_store32(void *p, uint32_t v);
uint32_t core_cas32(void *p, uint32_t expected, uint32_t desired);
uint32_t core_fetch_add32(void *p, uint32_t v);
uint64_t core_load64(const void *p);
void core_store64(void *p, uint64_t v);
uint64_t core_cas64(void *p, uint64_t expected, uint64_t desired);
uint64_t core_fetch_add64(void *p, uint64_t v);

/* One pass over count block words (docs/state-layout.md: holder mask in
 * bits 0-31, shared bit 32, reference bit 33), each read atomically but
 * relaxed: a snapshot. per_head[h] and shared_per_head[h] count the blocks
 * head h (< heads) holds, counts[0] the free blocks (no holder, no
 * reference), counts[1] the referenced ones. Adds to what the arrays hold. */
void core_block_usage(const void *words, uint64_t count, uint32_t heads, uint64_t *per_head, uint64_t *shared_per_head,
                      uint64_t counts[2]);

struct core_peer_cred {
  int32_t pid;
  uint32_t uid;
  uint32_t gid;
};
int core_peer_cred(int sockfd, struct core_peer_cred *out);

/* AF_UNIX SOCK_STREAM pair, both ends close-on-exec. */
int core_socketpair(int fds[2]);

/* Sends len bytes with nfds descriptors attached (SCM_RIGHTS). Returns bytes
 * sent or -errno. nfds may be 0; at most CORE_MAX_FDS. */
#define CORE_MAX_FDS 16
ssize_t core_send_fds(int sockfd, const void *buf, size_t len, const int *fds, int nfds);
/* Receives up to cap bytes and up to CORE_MAX_FDS descriptors (marked
 * close-on-exec). *nfds receives the descriptor count. Returns bytes or -errno. */
ssize_t core_recv_fds(int sockfd, void *buf, size_t cap, int *fds, int *nfds);

#ifdef __cplusplus
}
#endif

#endif
