"""A CXL label storage area (LSA) image carrying one region label.

The LSA layout of CXL r3.1 §9.13.2 (the same one Linux's libnvdimm knows as
struct nd_namespace_index + struct cxl_region_label): two 256-byte-aligned
label index blocks, then 256-byte label slots. Slot 0 holds a region label
whose UUID is the allocation's tag. Not product code: the spike uses it to
pre-write a hot-added LD's `lsa=` memory backend.
"""

import struct
import uuid

LABEL_SIZE = 256
INDEX_ALIGN = 256
INDEX_SIG = b"NAMESPACE_INDEX\0"
# Label type UUID of a CXL region label (CXL r3.1 Table 9-xx "Region Label").
REGION_LABEL_TYPE = uuid.UUID("529d7c61-da07-47c4-a93f-ecdf2c06f444")


def fletcher64(data):
    lo = hi = 0
    for (w,) in struct.iter_unpack("<I", data):
        lo = (lo + w) & 0xFFFFFFFF
        hi = (hi + lo) & 0xFFFFFFFF
    return (hi << 32) | lo


def index_block(lsa_size, which, nslot, used_slots, seq):
    bitmap_bytes = (nslot + 7) // 8
    size = -(-(72 + bitmap_bytes) // INDEX_ALIGN) * INDEX_ALIGN
    # free bitmap: 1 = free
    free = bytearray(b"\xff" * bitmap_bytes)
    for s in used_slots:
        free[s // 8] &= ~(1 << (s % 8)) & 0xFF
    if nslot % 8:
        free[-1] &= (1 << (nslot % 8)) - 1
    myoff = which * size
    otheroff = (1 - which) * size
    hdr = INDEX_SIG + bytes(3) + bytes([1])  # labelsize 1: 256-byte labels (128 << 1)
    hdr += struct.pack("<IQQQQIHH", seq, myoff, size, otheroff, 2 * size, nslot, 2, 1)
    blk = bytearray(hdr + struct.pack("<Q", 0) + free)
    blk += bytes(size - len(blk))
    struct.pack_into("<Q", blk, 64, fletcher64(bytes(blk)))
    return bytes(blk), size


def region_label(tag, slot, dpa, rawsize, hpa=0, nlabel=1, position=0):
    lab = bytearray(LABEL_SIZE)
    lab[0:16] = REGION_LABEL_TYPE.bytes
    lab[16:32] = uuid.UUID(str(tag)).bytes
    # flags, nlabel, position, dpa, rawsize, hpa, slot, ig (0: 256 B), align (in 256 MiB)
    struct.pack_into("<IHHQQQIII", lab, 32, 0, nlabel, position, dpa, rawsize, hpa, slot, 0, 1)
    struct.pack_into("<Q", lab, 248, fletcher64(bytes(lab)))
    return bytes(lab)


def lsa_image(lsa_size, tag, rawsize, dpa=0):
    """The whole LSA: index 0 (seq 1), index 1 (seq 2, the current one), slot 0 = region label."""
    # index size depends on nslot and nslot on index size: settle with one iteration
    nslot = (lsa_size - 2 * INDEX_ALIGN) // LABEL_SIZE
    _, isize = index_block(lsa_size, 0, nslot, [0], 1)
    nslot = (lsa_size - 2 * isize) // LABEL_SIZE
    i0, _ = index_block(lsa_size, 0, nslot, [0], 1)
    i1, _ = index_block(lsa_size, 1, nslot, [0], 2)
    img = bytearray(lsa_size)
    img[0:isize] = i0
    img[isize : 2 * isize] = i1
    img[2 * isize : 2 * isize + LABEL_SIZE] = region_label(tag, 0, dpa, rawsize)
    return bytes(img), 2 * isize


if __name__ == "__main__":
    import sys

    img, off = lsa_image(128 * 1024, sys.argv[1], 256 << 20)
    sys.stdout.buffer.write(img)
