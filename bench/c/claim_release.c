/*
 * Baseline for `make bench`: the same single-block claim+release CAS loop
 * that PoolState does, in C, on the same shm state object, and a bitmap
 * scan equal to status's usage pass.
 *   claim_release cas  <shm-name> <block-count> <iterations> <head>
 *   claim_release scan <shm-name> <block-count> <repeats>
 * Prints one number: operations (or scans) per second.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BITMAP_OFFSET 4096

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc < 5) return 2;
  int fd = shm_open(argv[2], O_RDWR, 0);
  if (fd < 0) { perror("shm_open"); return 1; }
  struct stat st;
  fstat(fd, &st);
  uint8_t *base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) { perror("mmap"); return 1; }
  uint64_t *words = (uint64_t *)(base + BITMAP_OFFSET);
  long blocks = atol(argv[3]);
  long n = atol(argv[4]);
  if (strcmp(argv[1], "cas") == 0) {
    uint64_t bit = 1ull << atoi(argv[5]);
    double t0 = now();
    for (long i = 0; i < n; i++) {
      uint64_t *w = &words[i % blocks];
      uint64_t expected = 0;
      if (!__atomic_compare_exchange_n(w, &expected, bit, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 3;
      expected = bit;
      if (!__atomic_compare_exchange_n(w, &expected, 0, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 3;
    }
    printf("%.0f\n", (double)n / (now() - t0));
  } else {
    volatile uint64_t sink = 0;
    double t0 = now();
    for (long r = 0; r < n; r++) {
      uint64_t per[32] = {0}, free_blocks = 0;
      for (long b = 0; b < blocks; b++) {
        uint64_t w = words[b];
        uint32_t m = (uint32_t)w;
        if (!m) { free_blocks++; continue; }
        while (m) { per[__builtin_ctz(m)]++; m &= m - 1; }
      }
      sink += free_blocks + per[0];
    }
    printf("%.0f\n", (double)n / (now() - t0));
  }
  return 0;
}
