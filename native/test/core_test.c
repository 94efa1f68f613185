/*
 * Exercises every function of core.h under AddressSanitizer + UBSan
 * (`make asan`): shm lifecycle, mapping, atomics under contention from two
 * threads, flock exclusion, peer credentials and SCM_RIGHTS passing.
 * Prints "asan: N passed, N failed" as its last line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/core.h"

static int passed, failed;

#define CHECK(cond)                                                         \
  do {                                                                      \
    if (cond) {                                                             \
      passed++;                                                             \
    } else {                                                                \
      failed++;                                                             \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);       \
    }                                                                       \
  } while (0)

static char name[64];

static void test_shm_lifecycle(void) {
  snprintf(name, sizeof name, "/cxl-mhd-asan-%d", (int)getpid());
  int fd = core_shm_open(name, CORE_SHM_CREATE | CORE_SHM_EXCL, 0600);
  CHECK(fd >= 0);
  CHECK(core_shm_open(name, CORE_SHM_CREATE | CORE_SHM_EXCL, 0600) == -EEXIST);
  CHECK(core_ftruncate(fd, 1 << 20) == 0);
  CHECK(core_fstat_size(fd) == (1 << 20));
  void *p = NULL;
  CHECK(core_mmap(fd, 1 << 20, 1, &p) == 0 && p != NULL);
  CHECK(core_mmap(fd, 0, 1, &p) == -EINVAL);
  memset(p, 0xab, 4096);

  /* A second mapping of the same object sees the first one's writes. */
  int fd2 = core_shm_open(name, 0, 0);
  CHECK(fd2 >= 0);
  void *q = NULL;
  CHECK(core_mmap(fd2, 1 << 20, 0, &q) == 0);
  CHECK(((unsigned char *)q)[100] == 0xab);
  CHECK(core_munmap(q, 1 << 20) == 0);

  /* flock: exclusive on one description excludes another. The lock lives
   * as long as the description, and a mapping holds the description open:
   * it goes only when both the fd is closed and the mapping is gone. */
  CHECK(core_flock(fd, 1, 1) == 0);
  int r = core_flock(fd2, 1, 1);
  CHECK(r == -EWOULDBLOCK || r == -EAGAIN);
  CHECK(core_close(fd) == 0);
  r = core_flock(fd2, 1, 1);
  CHECK(r == -EWOULDBLOCK || r == -EAGAIN);
  CHECK(core_munmap(p, 1 << 20) == 0);
  CHECK(core_flock(fd2, 1, 1) == 0);
  CHECK(core_close(fd2) == 0);
  CHECK(core_close(fd2) == -EBADF);

  CHECK(core_shm_unlink(name) == 0);
  CHECK(core_shm_unlink(name) == -ENOENT);
  CHECK(core_shm_open(name, 0, 0) == -ENOENT);
  CHECK(core_shm_open("/no/slash/allowed", CORE_SHM_CREATE, 0600) < 0);
}

static uint64_t words[2];
#define ITER 200000

static void *hammer(void *arg) {
  uint64_t bit = (uint64_t)(uintptr_t)arg;
  for (int i = 0; i < ITER; i++) {
    /* CAS loops setting then clearing our bit (as the pool's bitmap claims
     * and releases blocks): the other thread's bit must survive. */
    uint64_t seen = core_load64(&words[0]);
    for (;;) {
      uint64_t got = core_cas64(&words[0], seen, seen | bit);
      if (got == seen) break;
      seen = got;
    }
    seen = core_load64(&words[0]);
    for (;;) {
      uint64_t got = core_cas64(&words[0], seen, seen & ~bit);
      if (got == seen) break;
      seen = got;
    }
    core_fetch_add64(&words[1], 1);
  }
  return NULL;
}

static void test_atomics(void) {
  uint32_t w32 = 5;
  CHECK(core_cas32(&w32, 5, 7) == 5 && w32 == 7);
  CHECK(core_cas32(&w32, 5, 9) == 7 && w32 == 7);
  CHECK(core_fetch_add32(&w32, 8) == 7 && core_load32(&w32) == 15);
  CHECK(core_fetch_add32(&w32, 0xfffffff4u) == 15 && w32 == 3); /* wraps mod 2^32 */
  CHECK(core_fetch_add32(&w32, 0xffffffffu) == 3 && w32 == 2);
  core_store32(&w32, 42);
  CHECK(core_load32(&w32) == 42);
  uint64_t w64 = 1ull << 40;
  CHECK(core_cas64(&w64, 1ull << 40, 3) == 1ull << 40 && w64 == 3);
  CHECK(core_fetch_add64(&w64, 1ull << 63) == 3);
  CHECK(core_fetch_add64(&w64, 1ull << 63) == ((1ull << 63) | 3) && w64 == 3); /* wraps mod 2^64 */
  core_store64(&w64, 9);
  CHECK(core_load64(&w64) == 9);

  pthread_t a, b;
  pthread_create(&a, NULL, hammer, (void *)(uintptr_t)1);
  pthread_create(&b, NULL, hammer, (void *)(uintptr_t)2);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  CHECK(words[0] == 0);
  CHECK(words[1] == 2 * ITER);
}

static void test_sockets(void) {
  int sv[2];
  CHECK(core_socketpair(sv) == 0);
  struct core_peer_cred cred;
  CHECK(core_peer_cred(sv[0], &cred) == 0);
  CHECK(cred.pid == getpid() && cred.uid == getuid());
  CHECK(core_peer_cred(-1, &cred) == -EBADF);

  /* Pass one end of a pipe and prove it works on the far side. */
  int pfd[2];
  CHECK(pipe(pfd) == 0);
  CHECK(core_send_fds(sv[0], "x", 1, &pfd[1], 1) == 1);
  char buf[16];
  int fds[CORE_MAX_FDS];
  int nfds = -1;
  CHECK(core_recv_fds(sv[1], buf, sizeof buf, fds, &nfds) == 1);
  CHECK(nfds == 1 && buf[0] == 'x');
  if (nfds == 1) {
    CHECK(write(fds[0], "hello", 5) == 5);
    char got[8] = {0};
    CHECK(read(pfd[0], got, 5) == 5 && memcmp(got, "hello", 5) == 0);
    close(fds[0]);
  }
  /* Plain bytes, no descriptors. */
  CHECK(core_send_fds(sv[0], "abc", 3, NULL, 0) == 3);
  CHECK(core_recv_fds(sv[1], buf, sizeof buf, fds, &nfds) == 3 && nfds == 0);
  CHECK(core_send_fds(sv[0], "", 0, NULL, 0) == -EINVAL);
  CHECK(core_send_fds(sv[0], "a", 1, fds, CORE_MAX_FDS + 1) == -EINVAL);

  /* Peer gone: EPIPE, not SIGPIPE. */
  close(sv[1]);
  CHECK(core_send_fds(sv[0], "a", 1, NULL, 0) == -EPIPE);
  close(sv[0]);
  close(pfd[0]);
  close(pfd[1]);

  /* Across processes through a listening socket (how QEMU reaches us), the
   * peer's pid is the connecting child's. */
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  snprintf(addr.sun_path, sizeof addr.sun_path, "/tmp/cxl-mhd-asan-%d.sock", (int)getpid());
  unlink(addr.sun_path);
  int ls = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(ls >= 0 && bind(ls, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(ls, 1) == 0);
  pid_t child = fork();
  if (child == 0) {
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&addr, sizeof addr) != 0) _exit(2);
    char k;
    ssize_t n = read(c, &k, 1);
    _exit(n == 1 ? 0 : 1);
  }
  int conn = accept(ls, NULL, NULL);
  CHECK(conn >= 0);
  CHECK(core_peer_cred(conn, &cred) == 0 && cred.pid == child && cred.uid == getuid());
  CHECK(write(conn, "k", 1) == 1);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  close(conn);
  close(ls);
  unlink(addr.sun_path);
}

static void test_block_usage(void) {
  /* Words as docs/state-layout.md lays them out: mask | shared << 32 | reference << 33. */
  uint64_t w[7] = {
      0,                                /* free */
      1u << 2,                          /* head 2 */
      (1ull << 32) | 0x3,               /* heads 0 and 1, shared */
      1ull << 33,                       /* referenced, no holder */
      (1ull << 33) | (1u << 1),         /* referenced, held by head 1 */
      1ull << 32,                       /* shared flag alone: free */
      (1u << 31) | 1u,                  /* head 31 (beyond the 4 counted) and head 0 */
  };
  uint64_t per[4] = {0}, shared[4] = {0}, counts[2] = {0, 0};
  core_block_usage(w, 7, 4, per, shared, counts);
  CHECK(per[0] == 2 && per[1] == 2 && per[2] == 1 && per[3] == 0);
  CHECK(shared[0] == 1 && shared[1] == 1 && shared[2] == 0);
  CHECK(counts[0] == 2 && counts[1] == 2);
  /* count 0 touches nothing; the heap copy lets ASan see a read past the end. */
  uint64_t *heap = malloc(sizeof w);
  memcpy(heap, w, sizeof w);
  core_block_usage(heap, 7, 4, per, shared, counts);
  core_block_usage(heap, 0, 4, per, shared, counts);
  CHECK(per[0] == 4 && counts[0] == 4 && counts[1] == 4);
  free(heap);
}

int main(void) {
  test_shm_lifecycle();
  test_atomics();
  test_block_usage();
  test_sockets();
  printf("asan: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
