/*
 * daxstream — a stream of sequence-numbered records through a shared
 * device-DAX window: one head writes, another reads them all in order.
 * Built static by scripts/build-guest.sh, installed in the guest as
 * /bin/daxstream (docs/guest.md).
 *
 *   daxstream write PATH N [SEED]   append records 0..N-1
 *   daxstream read  PATH N [SEED] [TIMEOUT_S]
 *                                   read records 0..N-1 in order as they are
 *                                   published; exit 1 on a gap, a reorder or
 *                                   a torn record, 2 on error or timeout
 *
 * Layout at the start of PATH (first 2 MiB mapping, so N <= 32767):
 *   +0    u64 magic "CXLMHDS1"   written by the writer before anything else
 *   +8    u64 published          records 0..published-1 are complete
 *   +64   record i at 64 + 64*i: u64 seq, u64 check, 48 payload bytes
 * One writer: it fills record i, then stores published = i+1 with release
 * order; the reader loads published with acquire order and then reads. No
 * read-modify-write crosses heads (cross-head `lock` instructions are not
 * atomic under TCG: docs/guest.md), only plain aligned 8-byte stores.
 * Prints "daxstream: wrote N" / "daxstream: read N in order".
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
#define MAGIC 0x315344484d4c5843ull /* "CXLMHDS1" little-endian */
#define REC 64

static uint64_t word(uint64_t seed, uint64_t i, uint64_t k) {
  uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ (i * 8 + k) * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  return x * 0x94D049BB133111EBull;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 4 || (strcmp(argv[1], "write") && strcmp(argv[1], "read"))) {
    fprintf(stderr, "usage: daxstream write|read PATH N [SEED] [TIMEOUT_S]\n");
    return 2;
  }
  int writer = strcmp(argv[1], "write") == 0;
  uint64_t n = strtoull(argv[3], NULL, 0);
  uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 0) : 0;
  double timeout = argc > 5 ? strtod(argv[5], NULL) : 60;
  if (n == 0 || n > (WINDOW - REC) / REC) {
    fprintf(stderr, "daxstream: N must be 1..%u\n", (WINDOW - REC) / REC);
    return 2;
  }
  int fd = open(argv[2], O_RDWR);
  if (fd < 0) {
    perror("daxstream: open");
    return 2;
  }
  char *map = mmap(NULL, WINDOW, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    perror("daxstream: mmap");
    return 2;
  }
  volatile uint64_t *hdr = (volatile uint64_t *)map;
  if (writer) {
    __atomic_store_n(&hdr[1], 0, __ATOMIC_RELEASE);
    __atomic_store_n(&hdr[0], MAGIC, __ATOMIC_RELEASE);
    for (uint64_t i = 0; i < n; i++) {
      volatile uint64_t *r = (volatile uint64_t *)(map + REC + REC * i);
      uint64_t check = 0;
      for (int k = 2; k < 8; k++) {
        r[k] = word(seed, i, k);
        check ^= r[k];
      }
      r[0] = i;
      r[1] = check ^ i;
      __atomic_store_n(&hdr[1], i + 1, __ATOMIC_RELEASE);
    }
    printf("daxstream: wrote %llu\n", (unsigned long long)n);
    return 0;
  }
  double t0 = now();
  uint64_t got = 0;
  while (got < n) {
    uint64_t pub = __atomic_load_n(&hdr[0], __ATOMIC_ACQUIRE) == MAGIC ? __atomic_load_n(&hdr[1], __ATOMIC_ACQUIRE) : 0;
    if (pub > n) pub = n;
    if (pub <= got) {
      if (now() - t0 > timeout) {
        fprintf(stderr, "daxstream: timeout after %llu of %llu records\n", (unsigned long long)got, (unsigned long long)n);
        return 2;
      }
      usleep(1000);
      continue;
    }
    for (; got < pub; got++) {
      volatile uint64_t *r = (volatile uint64_t *)(map + REC + REC * got);
      uint64_t check = 0;
      for (int k = 2; k < 8; k++) {
        if (r[k] != word(seed, got, k)) {
          fprintf(stderr, "daxstream: record %llu: payload word %d wrong\n", (unsigned long long)got, k);
          return 1;
        }
        check ^= r[k];
      }
      if (r[0] != got || r[1] != (check ^ got)) {
        fprintf(stderr, "daxstream: record %llu: has seq %llu (out of order or torn)\n", (unsigned long long)got,
                (unsigned long long)r[0]);
        return 1;
      }
    }
  }
  printf("daxstream: read %llu in order\n", (unsigned long long)n);
  return 0;
}
