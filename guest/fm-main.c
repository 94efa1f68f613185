/*
 * cxl-mhd-fm: the guest FM client as one static binary. QuickJS (Debian's
 * libquickjs, linked statically) runs the bundled TypeScript client
 * (src/cli/guest/main.ts), whose source scripts/build-fm-client.mjs
 * generates into fm-bundle.h as `fm_bundle` / `fm_bundle_len`. The only
 * native addition is connecting a Unix socket, which quickjs-libc lacks:
 * `cxl-mhd-fm --port SOCKET` then works as `cxl-mhd fm --port SOCKET` does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "quickjs-libc.h"
#include "quickjs.h"
#ifndef FM_COMPILE
#include "fm-bundle.h"
#endif

/*
 * Debian trixie builds libquickjs.a against glibc 2.41, whose headers map
 * strtol to the C23 entry point; an older static glibc (the build host's)
 * has only strtol, which behaves the same for the bases libquickjs uses.
 */
long __isoc23_strtol(const char *s, char **end, int base);
long __isoc23_strtol(const char *s, char **end, int base) { return strtol(s, end, base); }

/* cxlmhdConnectUnix(path): a connected, non-blocking stream socket fd, or -errno. */
#ifndef FM_COMPILE
static JSValue connect_unix(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv) {
  (void)this_val;
  (void)argc;
  const char *path = JS_ToCString(ctx, argv[0]);
  if (!path) return JS_EXCEPTION;
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int rc;
  if (strlen(path) >= sizeof sa.sun_path) {
    rc = -ENAMETOOLONG;
  } else {
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      rc = -errno;
    } else if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      rc = -errno;
      close(fd);
    } else {
      rc = fd;
    }
  }
  JS_FreeCString(ctx, path);
  return JS_NewInt32(ctx, rc);
}
#endif

#ifdef FM_COMPILE
/* fm-compile BUNDLE.js HEADER.h: the module's bytecode as a C array. */
int main(int argc, char **argv) {
  if (argc != 3) return 64;
  JSRuntime *rt = JS_NewRuntime();
  JSContext *ctx = rt ? JS_NewContext(rt) : NULL;
  if (!ctx) return 70;
  js_init_module_std(ctx, "qjs:std");
  js_init_module_os(ctx, "qjs:os");
  size_t len;
  uint8_t *src = js_load_file(ctx, &len, argv[1]);
  if (!src) return 66;
  JSValue mod = JS_Eval(ctx, (const char *)src, len, "cxl-mhd-fm.js", JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
  if (JS_IsException(mod)) {
    js_std_dump_error(ctx);
    return 65;
  }
  size_t n;
  uint8_t *code = JS_WriteObject(ctx, &n, mod, JS_WRITE_OBJ_BYTECODE);
  FILE *out = fopen(argv[2], "w");
  if (!code || !out) return 73;
  fprintf(out, "static const uint32_t fm_bundle_len = %zu;\nstatic const uint8_t fm_bundle[%zu] = {", n, n);
  for (size_t i = 0; i < n; i++) fprintf(out, "%s0x%02x,", i % 16 ? "" : "\n", code[i]);
  fprintf(out, "\n};\n");
  return fclose(out) == 0 ? 0 : 74;
}
#else
int main(int argc, char **argv) {
  JSRuntime *rt = JS_NewRuntime();
  if (!rt) return 70;
  js_std_init_handlers(rt);
  JSContext *ctx = JS_NewContext(rt);
  if (!ctx) return 70;
  js_init_module_std(ctx, "qjs:std");
  js_init_module_os(ctx, "qjs:os");
  js_std_add_helpers(ctx, argc, argv);
  JSValue global = JS_GetGlobalObject(ctx);
  JS_SetPropertyStr(ctx, global, "cxlmhdConnectUnix", JS_NewCFunction(ctx, connect_unix, "cxlmhdConnectUnix", 1));
  JS_FreeValue(ctx, global);
  js_std_eval_binary(ctx, fm_bundle, fm_bundle_len, 0);
  js_std_loop(ctx);
  /* main.ts exits through std.exit once its command is done; reaching here means it never settled. */
  return 70;
}
#endif
