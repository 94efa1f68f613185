/*
 * daxpoke — read and write a device-DAX node (or any file) through mmap.
 *
 * busybox cannot touch /dev/daxX.Y: a device-DAX node has no read()/write(),
 * only mmap, and mmap offsets and lengths must be multiples of the device's
 * alignment (2 MiB by default). This tool maps the aligned window that covers
 * the requested range and works inside it. Built static by
 * scripts/build-guest.sh and installed in the guest as /bin/daxpoke.
 *
 *   daxpoke fill  PATH OFFSET LEN SEED   write a pattern derived from SEED
 *   daxpoke check PATH OFFSET LEN SEED   verify it; exit 1 on the first mismatch
 *   daxpoke write PATH OFFSET STRING     write STRING's bytes
 *   daxpoke read  PATH OFFSET LEN        copy LEN bytes to stdout
 *   daxpoke zero  PATH OFFSET LEN        write zeroes
 *
 * OFFSET and LEN accept k/K, m/M, g/G suffixes (powers of 1024) and 0x.
 * DAXPOKE_ALIGN overrides the mapping alignment (default 2M).
 * Output lines start with "daxpoke:"; exit 0 ok, 1 mismatch, 2 error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void die(const char *what) {
  fprintf(stderr, "daxpoke: %s: %s\n", what, strerror(errno));
  exit(2);
}

static uint64_t num(const char *s) {
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || end == s) {
    fprintf(stderr, "daxpoke: bad number '%s'\n", s);
    exit(2);
  }
  switch (*end) {
  case 'k': case 'K': v <<= 10; end++; break;
  case 'm': case 'M': v <<= 20; end++; break;
  case 'g': case 'G': v <<= 30; end++; break;
  default: break;
  }
  if (*end) {
    fprintf(stderr, "daxpoke: bad number '%s'\n", s);
    exit(2);
  }
  return v;
}

/* The byte at position i of the pattern for seed: cheap, position-dependent,
 * so a shifted or partial copy is caught. */
static uint64_t patword(uint64_t seed, uint64_t k) {
  uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ k * 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 31);
}
static uint8_t pat(uint64_t seed, uint64_t i) {
  return (uint8_t)(patword(seed, i >> 3) >> (8 * (i & 7))); /* little-endian word k = bytes 8k..8k+7 */
}

static int usage(void) {
  fprintf(stderr,
          "usage: daxpoke fill|check PATH OFFSET LEN SEED\n"
          "       daxpoke write PATH OFFSET STRING\n"
          "       daxpoke read|zero PATH OFFSET LEN\n");
  return 2;
}

int main(int argc, char **argv) {
  if (argc < 4) return usage();
  const char *op = argv[1], *path = argv[2];
  uint64_t off = num(argv[3]), len = 0, seed = 0;
  const char *str = NULL;
  int writes;
  if (!strcmp(op, "fill") || !strcmp(op, "check")) {
    if (argc != 6) return usage();
    len = num(argv[4]);
    seed = num(argv[5]);
  } else if (!strcmp(op, "write")) {
    if (argc != 5) return usage();
    str = argv[4];
    len = strlen(str);
  } else if (!strcmp(op, "read") || !strcmp(op, "zero")) {
    if (argc != 5) return usage();
    len = num(argv[4]);
  } else {
    return usage();
  }
  writes = strcmp(op, "check") && strcmp(op, "read");
  if (len == 0) return 0;

  uint64_t align = getenv("DAXPOKE_ALIGN") ? num(getenv("DAXPOKE_ALIGN")) : 2u << 20;
  if (align == 0 || (align & (align - 1))) {
    fprintf(stderr, "daxpoke: DAXPOKE_ALIGN must be a power of two\n");
    return 2;
  }
  uint64_t start = off & ~(align - 1);
  uint64_t end = (off + len + align - 1) & ~(align - 1);

  int fd = open(path, writes ? O_RDWR : O_RDONLY);
  if (fd < 0) die(path);
  volatile uint8_t *base = mmap(NULL, end - start, writes ? PROT_READ | PROT_WRITE : PROT_READ,
                                MAP_SHARED, fd, (off_t)start);
  if (base == MAP_FAILED) die("mmap");
  volatile uint8_t *p = base + (off - start);

  int rc = 0;
  /* CXL memory in QEMU is emulated I/O: every guest access traps, so the
   * aligned bulk goes in 8-byte words (8x fewer traps than bytes). */
  uint64_t words = (off & 7) ? 0 : len / 8;
  volatile uint64_t *w = (volatile uint64_t *)p;
  if (!strcmp(op, "fill")) {
    for (uint64_t k = 0; k < words; k++) w[k] = patword(seed, k);
    for (uint64_t i = words * 8; i < len; i++) p[i] = pat(seed, i);
  } else if (!strcmp(op, "zero")) {
    for (uint64_t k = 0; k < words; k++) w[k] = 0;
    for (uint64_t i = words * 8; i < len; i++) p[i] = 0;
  } else if (!strcmp(op, "write")) {
    for (uint64_t i = 0; i < len; i++) p[i] = (uint8_t)str[i];
  } else if (!strcmp(op, "check")) {
    uint64_t i = 0; /* words first; the byte loop pins down a mismatch and checks the tail */
    for (uint64_t k = 0; k < words && w[k] == patword(seed, k); k++) i = (k + 1) * 8;
    for (; i < len; i++) {
      uint8_t want = pat(seed, i), got = p[i];
      if (got != want) {
        printf("daxpoke: MISMATCH at offset 0x%" PRIx64 ": got 0x%02x want 0x%02x\n", off + i, got, want);
        rc = 1;
        break;
      }
    }
  } else { /* read */
    uint8_t buf[4096];
    for (uint64_t i = 0; i < len;) {
      size_t n = len - i < sizeof buf ? (size_t)(len - i) : sizeof buf;
      for (size_t j = 0; j < n; j++) buf[j] = p[i + j];
      if (fwrite(buf, 1, n, stdout) != n) die("stdout");
      i += n;
    }
    fflush(stdout);
  }
  if (writes && msync((void *)base, end - start, MS_SYNC) && errno != EINVAL) die("msync");
  if (munmap((void *)base, end - start)) die("munmap");
  close(fd);
  if (!strcmp(op, "fill") || !strcmp(op, "zero") || !strcmp(op, "write"))
    printf("daxpoke: %s %" PRIu64 " bytes at 0x%" PRIx64 "\n", op, len, off);
  else if (!strcmp(op, "check") && rc == 0)
    printf("daxpoke: OK %" PRIu64 " bytes at 0x%" PRIx64 " seed %" PRIu64 "\n", len, off, seed);
  return rc;
}
