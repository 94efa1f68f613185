/*
 * daxatomic — cross-host atomics on a shared device-DAX window (spike for
 * issue 11). Several guests run it on the same bytes; the host starts them
 * together and reads the counter afterwards.
 *
 *   daxatomic PATH OFFSET MODE N
 *
 * At PATH+OFFSET (one 256-byte block, OFFSET 256-aligned):
 *   +0   u64 counter   MODE xadd: N x `lock xadd`; MODE plain: N x load/add/store
 *   +64  u64 go        the host sets it non-zero to start every guest at once
 *   +128 u64 done      each guest `lock xadd`s 1 when it finished
 *   +192 u64 ready     each guest `lock xadd`s 1 when it is mapped and waiting
 * Prints "daxatomic: mode=M n=N secs=S counter_after=C".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define WINDOW (2u << 20) /* device-DAX mmap alignment */

/* An explicit `lock xadd` (the compiler would pick `lock add` when the old value is unused). */
static inline uint64_t lock_xadd(volatile uint64_t *p, uint64_t v) {
  __asm__ __volatile__("lock xaddq %0, %1" : "+r"(v), "+m"(*p) : : "memory");
  return v;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: daxatomic PATH OFFSET xadd|plain N\n");
    return 2;
  }
  uint64_t off = strtoull(argv[2], NULL, 0);
  const char *mode = argv[3];
  long n = strtol(argv[4], NULL, 0);
  int fd = open(argv[1], O_RDWR);
  if (fd < 0) {
    perror("daxatomic: open");
    return 2;
  }
  uint64_t base = off & ~(uint64_t)(WINDOW - 1);
  char *map = mmap(NULL, WINDOW, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
  if (map == MAP_FAILED) {
    perror("daxatomic: mmap");
    return 2;
  }
  volatile uint64_t *blk = (volatile uint64_t *)(map + (off - base));
  lock_xadd(&blk[24], 1); /* ready */
  while (__atomic_load_n(&blk[8], __ATOMIC_ACQUIRE) == 0) usleep(1000);
  double t0 = now();
  if (strcmp(mode, "xadd") == 0) {
    for (long i = 0; i < n; i++) lock_xadd(&blk[0], 1);
  } else {
    for (long i = 0; i < n; i++) blk[0] = blk[0] + 1; /* a plain read-modify-write */
  }
  double secs = now() - t0;
  lock_xadd(&blk[16], 1); /* done */
  printf("daxatomic: mode=%s n=%ld secs=%.3f counter_after=%llu\n", mode, n, secs,
         (unsigned long long)__atomic_load_n(&blk[0], __ATOMIC_SEQ_CST));
  return 0;
}
