/*
 * Implementation of core.h. Kept free of Node so it can be compiled into a
 * standalone test under AddressSanitizer/UBSan (native/test/core_test.c).
 */
#define _GNU_SOURCE
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define NEG_ERRNO() (-(errno ? errno : EIO))

int core_shm_open(const char *name, int flags, unsigned mode) {
  int oflags = (flags & CORE_SHM_RDONLY) ? O_RDONLY : O_RDWR;
  if (flags & CORE_SHM_CREATE) oflags |= O_CREAT;
  if (flags & CORE_SHM_EXCL) oflags |= O_EXCL;
  oflags |= O_CLOEXEC;
  int fd = shm_open(name, oflags, (mode_t)mode);
  if (fd < 0) return NEG_ERRNO();
  /* shm_open's mode is filtered by the umask; the pool's objects must have
   * exactly the mode the operator chose (0600 by default). */
  if ((flags & CORE_SHM_CREATE) && fchmod(fd, (mode_t)mode) != 0) {
    int err = NEG_ERRNO();
    close(fd);
    return err;
  }
  return fd;
}

int core_shm_unlink(const char *name) { return shm_unlink(name) == 0 ? 0 : NEG_ERRNO(); }

int core_ftruncate(int fd, uint64_t size) {
  if (size > (uint64_t)INT64_MAX) return -EINVAL;
  return ftruncate(fd, (off_t)size) == 0 ? 0 : NEG_ERRNO();
}

int64_t core_fstat_size(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return NEG_ERRNO();
  return (int64_t)st.st_size;
}

int core_flock(int fd, int exclusive, int nonblock) {
  int op = exclusive ? LOCK_EX : LOCK_SH;
  if (nonblock) op |= LOCK_NB;
  for (;;) {
    if (flock(fd, op) == 0) return 0;
    if (errno != EINTR) return NEG_ERRNO();
  }
}

int core_close(int fd) { return close(fd) == 0 ? 0 : NEG_ERRNO(); }

int core_mmap(int fd, size_t len, int writable, void **out) {
  if (len == 0) return -EINVAL;
  int prot = PROT_READ | (writable ? PROT_WRITE : 0);
  void *p = mmap(NULL, len, prot, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) return NEG_ERRNO();
  *out = p;
  return 0;
}

int core_munmap(void *addr, size_t len) { return munmap(addr, len) == 0 ? 0 : NEG_ERRNO(); }

uint32_t core_load32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_SEQ_CST); }
void core_store32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_SEQ_CST); }
uint32_t core_cas32(void *p, uint32_t expected, uint32_t desired) {
  /* Returns the value seen, so callers detect success as seen == expected. */
  __atomic_compare_exchange_n((uint32_t *)p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return expected;
}
uint32_t core_fetch_add32(void *p, uint32_t v) { return __atomic_fetch_add((uint32_t *)p, v, __ATOMIC_SEQ_CST); }
uint64_t core_load64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_SEQ_CST); }
void core_store64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_SEQ_CST); }
uint64_t core_cas64(void *p, uint64_t expected, uint64_t desired) {
  __atomic_compare_exchange_n((uint64_t *)p, &expected, desired, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
  return expected;
}
uint64_t core_fetch_add64(void *p, uint64_t v) { return __atomic_fetch_add((uint64_t *)p, v, __ATOMIC_SEQ_CST); }

void core_block_usage(const void *words, uint64_t count, uint32_t heads, uint64_t *per_head, uint64_t *shared_per_head,
                      uint64_t counts[2]) {
  const uint64_t *w = (const uint64_t *)words;
  for (uint64_t b = 0; b < count; b++) {
    uint64_t v = __atomic_load_n(&w[b], __ATOMIC_RELAXED);
    uint32_t mask = (uint32_t)v;
    if ((v >> 33) & 1) {
      counts[1]++;
    } else if (mask == 0) {
      counts[0]++;
      continue;
    }
    int shared = (int)((v >> 32) & 1);
    while (mask != 0) {
      unsigned h = (unsigned)__builtin_ctz(mask);
      mask &= mask - 1;
      if (h < heads) {
        per_head[h]++;
        if (shared) shared_per_head[h]++;
      }
    }
  }
}

int core_peer_cred(int sockfd, struct core_peer_cred *out) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(sockfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return NEG_ERRNO();
  out->pid = (int32_t)cred.pid;
  out->uid = (uint32_t)cred.uid;
  out->gid = (uint32_t)cred.gid;
  return 0;
}

int core_socketpair(int fds[2]) {
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : NEG_ERRNO();
}

ssize_t core_send_fds(int sockfd, const void *buf, size_t len, const int *fds, int nfds) {
  if (nfds < 0 || nfds > CORE_MAX_FDS) return -EINVAL;
  /* SCM_RIGHTS needs at least one data byte to ride on. */
  if (len == 0) return -EINVAL;
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  union {
    char buf[CMSG_SPACE(sizeof(int) * CORE_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
  if (nfds > 0) {
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
    struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
    memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
  }
  for (;;) {
    ssize_t n = sendmsg(sockfd, &msg, MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno != EINTR) return NEG_ERRNO();
  }
}

ssize_t core_recv_fds(int sockfd, void *buf, size_t cap, int *fds, int *nfds) {
  struct iovec iov = {.iov_base = buf, .iov_len = cap};
  union {
    char buf[CMSG_SPACE(sizeof(int) * CORE_MAX_FDS)];
    struct cmsghdr align;
  } ctl;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t n;
  for (;;) {
    n = recvmsg(sockfd, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) break;
    if (errno != EINTR) return NEG_ERRNO();
  }
  *nfds = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
    for (int i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + sizeof(int) * (size_t)i, sizeof fd);
      if (*nfds < CORE_MAX_FDS)
        fds[(*nfds)++] = fd;
      else
        close(fd); /* never leak descriptors we cannot hand back */
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    for (int i = 0; i < *nfds; i++) close(fds[i]);
    *nfds = 0;
    return -EMSGSIZE;
  }
  return n;
}
