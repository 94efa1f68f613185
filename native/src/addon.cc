// N-API face of core.c: argument checking, errno → JS Error, and the
// lifetime of mappings (an external ArrayBuffer unmapped on GC or on an
// explicit munmap, never twice). No policy lives here.
#include <napi.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

extern "C" {
#include "core.h"
}

namespace {

Napi::Error ErrnoError(Napi::Env env, int neg_errno, const std::string &syscall, const std::string &what = "") {
  int e = -neg_errno;
  const char *name = strerrorname_np(e);
  std::string code = name ? name : "EUNKNOWN";
  std::string msg = syscall + (what.empty() ? "" : " " + what) + ": " + strerror(e) + " (" + code + ")";
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  err.Set("errno", Napi::Number::New(env, -e));
  err.Set("syscall", Napi::String::New(env, syscall));
  return err;
}

[[noreturn]] void ThrowType(Napi::Env env, const char *msg) { throw Napi::TypeError::New(env, msg); }

int32_t ArgInt(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsNumber()) ThrowType(info.Env(), (std::string(name) + " must be a number").c_str());
  return info[i].As<Napi::Number>().Int32Value();
}

uint64_t ArgSize(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsNumber()) ThrowType(info.Env(), (std::string(name) + " must be a number").c_str());
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d)))
    throw Napi::RangeError::New(info.Env(), std::string(name) + " must be a non-negative integer");
  return static_cast<uint64_t>(d);
}

std::string ArgString(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsString()) ThrowType(info.Env(), (std::string(name) + " must be a string").c_str());
  return info[i].As<Napi::String>().Utf8Value();
}

uint64_t ArgBig(const Napi::CallbackInfo &info, size_t i, const char *name) {
  if (info.Length() <= i || !info[i].IsBigInt()) ThrowType(info.Env(), (std::string(name) + " must be a bigint").c_str());
  bool lossless = false;
  uint64_t v = info[i].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) throw Napi::RangeError::New(info.Env(), std::string(name) + " must fit in 64 unsigned bits");
  return v;
}

// Resolves (buffer, byteOffset) to an aligned, in-bounds word address.
template <size_t W>
void *WordAt(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArrayBuffer()) ThrowType(env, "first argument must be an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  uint64_t off = ArgSize(info, 1, "offset");
  size_t len = ab.ByteLength();
  if (off % W != 0) throw Napi::RangeError::New(env, "offset is not aligned to the word size");
  if (len < W || off > len - W) throw Napi::RangeError::New(env, "offset is outside the mapping (or it was unmapped)");
  return static_cast<uint8_t *>(ab.Data()) + off;
}

struct Mapping {
  void *addr;
  size_t len;
  bool mapped;
};

std::mutex g_maps_mu;
std::unordered_map<void *, Mapping *> g_maps;  // live mappings by address

void FinalizeMapping(Napi::Env, void *, Mapping *m) {
  {
    std::lock_guard<std::mutex> lock(g_maps_mu);
    if (m->mapped) {
      core_munmap(m->addr, m->len);
      g_maps.erase(m->addr);
    }
  }
  delete m;
}

Napi::Value ShmOpen(const Napi::CallbackInfo &info) {
  std::string name = ArgString(info, 0, "name");
  int flags = ArgInt(info, 1, "flags");
  int mode = ArgInt(info, 2, "mode");
  int fd = core_shm_open(name.c_str(), flags, static_cast<unsigned>(mode));
  if (fd < 0) throw ErrnoError(info.Env(), fd, "shm_open", name);
  return Napi::Number::New(info.Env(), fd);
}

Napi::Value ShmUnlink(const Napi::CallbackInfo &info) {
  std::string name = ArgString(info, 0, "name");
  int r = core_shm_unlink(name.c_str());
  if (r < 0) throw ErrnoError(info.Env(), r, "shm_unlink", name);
  return info.Env().Undefined();
}

Napi::Value Ftruncate(const Napi::CallbackInfo &info) {
  int r = core_ftruncate(ArgInt(info, 0, "fd"), ArgSize(info, 1, "size"));
  if (r < 0) throw ErrnoError(info.Env(), r, "ftruncate");
  return info.Env().Undefined();
}

Napi::Value FstatSize(const Napi::CallbackInfo &info) {
  int64_t r = core_fstat_size(ArgInt(info, 0, "fd"));
  if (r < 0) throw ErrnoError(info.Env(), static_cast<int>(r), "fstat");
  return Napi::Number::New(info.Env(), static_cast<double>(r));
}

Napi::Value Flock(const Napi::CallbackInfo &info) {
  int fd = ArgInt(info, 0, "fd");
  bool exclusive = info.Length() > 1 && info[1].ToBoolean();
  bool nonblock = info.Length() > 2 && info[2].ToBoolean();
  int r = core_flock(fd, exclusive, nonblock);
  if (r < 0) throw ErrnoError(info.Env(), r, "flock");
  return info.Env().Undefined();
}

Napi::Value Close(const Napi::CallbackInfo &info) {
  int r = core_close(ArgInt(info, 0, "fd"));
  if (r < 0) throw ErrnoError(info.Env(), r, "close");
  return info.Env().Undefined();
}

Napi::Value Mmap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "fd");
  uint64_t len = ArgSize(info, 1, "length");
  bool writable = info.Length() > 2 && info[2].ToBoolean();
  void *addr = nullptr;
  int r = core_mmap(fd, static_cast<size_t>(len), writable, &addr);
  if (r < 0) throw ErrnoError(env, r, "mmap");
  auto *m = new Mapping{addr, static_cast<size_t>(len), true};
  {
    std::lock_guard<std::mutex> lock(g_maps_mu);
    g_maps[addr] = m;
  }
  return Napi::ArrayBuffer::New(env, addr, m->len, FinalizeMapping, m);
}

Napi::Value Munmap(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) ThrowType(env, "argument must be an ArrayBuffer from mmap()");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  void *addr = ab.Data();
  std::lock_guard<std::mutex> lock(g_maps_mu);
  auto it = g_maps.find(addr);
  if (addr == nullptr || it == g_maps.end()) return Napi::Boolean::New(env, false);  // already unmapped
  Mapping *m = it->second;
  int r = core_munmap(m->addr, m->len);
  if (r < 0) throw ErrnoError(env, r, "munmap");
  m->mapped = false;
  g_maps.erase(it);
  ab.Detach();  // every view of it now has length 0, so no access can reach the old address
  return Napi::Boolean::New(env, true);
}

Napi::Value Load32(const Napi::CallbackInfo &info) {
  return Napi::Number::New(info.Env(), core_load32(WordAt<4>(info)));
}
Napi::Value Store32(const Napi::CallbackInfo &info) {
  void *p = WordAt<4>(info);
  core_store32(p, static_cast<uint32_t>(ArgSize(info, 2, "value")));
  return info.Env().Undefined();
}
Napi::Value Cas32(const Napi::CallbackInfo &info) {
  void *p = WordAt<4>(info);
  uint32_t expected = static_cast<uint32_t>(ArgSize(info, 2, "expected"));
  uint32_t desired = static_cast<uint32_t>(ArgSize(info, 3, "desired"));
  return Napi::Number::New(info.Env(), core_cas32(p, expected, desired));
}
template <uint32_t (*Op)(void *, uint32_t)>
Napi::Value Rmw32(const Napi::CallbackInfo &info) {
  void *p = WordAt<4>(info);
  return Napi::Number::New(info.Env(), Op(p, static_cast<uint32_t>(ArgSize(info, 2, "value"))));
}

// blockUsage(buffer, offset, count, heads): the bitmap's counts (core_block_usage).
Napi::Value BlockUsage(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  if (info.Length() < 4 || !info[0].IsArrayBuffer()) ThrowType(env, "first argument must be an ArrayBuffer");
  Napi::ArrayBuffer ab = info[0].As<Napi::ArrayBuffer>();
  uint64_t off = ArgSize(info, 1, "offset");
  uint64_t count = ArgSize(info, 2, "count");
  uint64_t heads = ArgSize(info, 3, "heads");
  size_t len = ab.ByteLength();
  if (off % 8 != 0) throw Napi::RangeError::New(env, "offset is not aligned to the word size");
  if (off > len || count > (len - off) / 8) throw Napi::RangeError::New(env, "the words are outside the buffer (or it was unmapped)");
  if (heads > 32) throw Napi::RangeError::New(env, "heads must be at most 32");
  uint64_t per_head[32] = {0}, shared_per_head[32] = {0}, counts[2] = {0, 0};
  core_block_usage(static_cast<uint8_t *>(ab.Data()) + off, count, static_cast<uint32_t>(heads), per_head, shared_per_head, counts);
  Napi::Array ph = Napi::Array::New(env, heads), sh = Napi::Array::New(env, heads);
  for (uint32_t h = 0; h < heads; h++) {
    ph.Set(h, Napi::Number::New(env, static_cast<double>(per_head[h])));
    sh.Set(h, Napi::Number::New(env, static_cast<double>(shared_per_head[h])));
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("perHead", ph);
  out.Set("sharedPerHead", sh);
  out.Set("free", Napi::Number::New(env, static_cast<double>(counts[0])));
  out.Set("referenced", Napi::Number::New(env, static_cast<double>(counts[1])));
  return out;
}

Napi::Value Load64(const Napi::CallbackInfo &info) {
  return Napi::BigInt::New(info.Env(), core_load64(WordAt<8>(info)));
}
Napi::Value Store64(const Napi::CallbackInfo &info) {
  void *p = WordAt<8>(info);
  core_store64(p, ArgBig(info, 2, "value"));
  return info.Env().Undefined();
}
Napi::Value Cas64(const Napi::CallbackInfo &info) {
  void *p = WordAt<8>(info);
  uint64_t expected = ArgBig(info, 2, "expected");
  uint64_t desired = ArgBig(info, 3, "desired");
  return Napi::BigInt::New(info.Env(), core_cas64(p, expected, desired));
}
template <uint64_t (*Op)(void *, uint64_t)>
Napi::Value Rmw64(const Napi::CallbackInfo &info) {
  void *p = WordAt<8>(info);
  return Napi::BigInt::New(info.Env(), Op(p, ArgBig(info, 2, "value")));
}

Napi::Value PeerCred(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  struct core_peer_cred cred {};
  int r = core_peer_cred(ArgInt(info, 0, "fd"), &cred);
  if (r < 0) throw ErrnoError(env, r, "getsockopt(SO_PEERCRED)");
  Napi::Object o = Napi::Object::New(env);
  o.Set("pid", Napi::Number::New(env, cred.pid));
  o.Set("uid", Napi::Number::New(env, cred.uid));
  o.Set("gid", Napi::Number::New(env, cred.gid));
  return o;
}

Napi::Value SocketPair(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int fds[2];
  int r = core_socketpair(fds);
  if (r < 0) throw ErrnoError(env, r, "socketpair");
  Napi::Array a = Napi::Array::New(env, 2);
  a.Set(0u, Napi::Number::New(env, fds[0]));
  a.Set(1u, Napi::Number::New(env, fds[1]));
  return a;
}

Napi::Value SendFds(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int sockfd = ArgInt(info, 0, "fd");
  if (info.Length() < 3 || !info[1].IsTypedArray() || !info[2].IsArray())
    ThrowType(env, "sendFds(fd, data: Uint8Array, fds: number[])");
  Napi::Uint8Array data = info[1].As<Napi::Uint8Array>();
  Napi::Array list = info[2].As<Napi::Array>();
  if (list.Length() > CORE_MAX_FDS) throw Napi::RangeError::New(env, "too many descriptors");
  int fds[CORE_MAX_FDS];
  for (uint32_t i = 0; i < list.Length(); i++) {
    Napi::Value v = list.Get(i);
    if (!v.IsNumber()) ThrowType(env, "descriptors must be numbers");
    fds[i] = v.As<Napi::Number>().Int32Value();
  }
  ssize_t n = core_send_fds(sockfd, data.Data(), data.ByteLength(), fds, static_cast<int>(list.Length()));
  if (n < 0) throw ErrnoError(env, static_cast<int>(n), "sendmsg");
  return Napi::Number::New(env, static_cast<double>(n));
}

Napi::Value RecvFds(const Napi::CallbackInfo &info) {
  Napi::Env env = info.Env();
  int sockfd = ArgInt(info, 0, "fd");
  uint64_t cap = ArgSize(info, 1, "capacity");
  if (cap == 0 || cap > (1u << 20)) throw Napi::RangeError::New(env, "capacity must be in 1..1MiB");
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::New(env, static_cast<size_t>(cap));
  int fds[CORE_MAX_FDS];
  int nfds = 0;
  ssize_t n = core_recv_fds(sockfd, buf.Data(), buf.Length(), fds, &nfds);
  if (n < 0) throw ErrnoError(env, static_cast<int>(n), "recvmsg");
  Napi::Object o = Napi::Object::New(env);
  o.Set("data", Napi::Buffer<uint8_t>::Copy(env, buf.Data(), static_cast<size_t>(n)));
  Napi::Array a = Napi::Array::New(env, static_cast<size_t>(nfds));
  for (int i = 0; i < nfds; i++) a.Set(static_cast<uint32_t>(i), Napi::Number::New(env, fds[i]));
  o.Set("fds", a);
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("shmOpen", Napi::Function::New(env, ShmOpen));
  exports.Set("shmUnlink", Napi::Function::New(env, ShmUnlink));
  exports.Set("ftruncate", Napi::Function::New(env, Ftruncate));
  exports.Set("fstatSize", Napi::Function::New(env, FstatSize));
  exports.Set("flock", Napi::Function::New(env, Flock));
  exports.Set("close", Napi::Function::New(env, Close));
  exports.Set("mmap", Napi::Function::New(env, Mmap));
  exports.Set("munmap", Napi::Function::New(env, Munmap));
  exports.Set("load32", Napi::Function::New(env, Load32));
  exports.Set("store32", Napi::Function::New(env, Store32));
  exports.Set("cas32", Napi::Function::New(env, Cas32));
  exports.Set("fetchAdd32", Napi::Function::New(env, Rmw32<core_fetch_add32>));
  exports.Set("load64", Napi::Function::New(env, Load64));
  exports.Set("blockUsage", Napi::Function::New(env, BlockUsage));
  exports.Set("store64", Napi::Function::New(env, Store64));
  exports.Set("cas64", Napi::Function::New(env, Cas64));
  exports.Set("fetchAdd64", Napi::Function::New(env, Rmw64<core_fetch_add64>));
  exports.Set("peerCred", Napi::Function::New(env, PeerCred));
  exports.Set("socketPair", Napi::Function::New(env, SocketPair));
  exports.Set("sendFds", Napi::Function::New(env, SendFds));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds));
  Napi::Object c = Napi::Object::New(env);
  c.Set("SHM_CREATE", Napi::Number::New(env, CORE_SHM_CREATE));
  c.Set("SHM_EXCL", Napi::Number::New(env, CORE_SHM_EXCL));
  c.Set("SHM_RDONLY", Napi::Number::New(env, CORE_SHM_RDONLY));
  c.Set("MAX_FDS", Napi::Number::New(env, CORE_MAX_FDS));
  exports.Set("constants", c);
  return exports;
}

}  // namespace

NODE_API_MODULE(cxl_mhd, Init)
