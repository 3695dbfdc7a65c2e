/*
 * clsi/plugin_abi.h -- the contract between a compile runner ("host") and a
 * runner plugin loaded with dlopen. Plain C; usable from C and C++.
 *
 * Lifecycle (one plugin instance; many compiles, possibly at once):
 *
 *   dlopen(RTLD_NOW | RTLD_LOCAL)
 *   dlsym(CLSI_PLUGIN_ENTRY_SYMBOL)
 *   entry(host_abi_major, host_abi_minor, &refusal) -> const clsi_plugin_v1 *
 *        |  host checks abi_major, struct_size
 *        v
 *   on_create(callbacks, config_path, &plugin_ptr)         once
 *        |
 *        +--> on_pre_compile(plugin_ptr, compile, &compile_ptr)   per compile
 *        |        ... host runs the compile command ...
 *        +--> on_post_compile(plugin_ptr, compile, compile_ptr, result)
 *        |         (always called once for every on_pre_compile that
 *        |          returned anything but CLSI_STATUS_ERROR)
 *        v
 *   on_destroy(plugin_ptr)                                  once, last
 *   dlclose
 *
 * Threads: on_create and on_destroy are never concurrent with anything else
 * on the same instance. on_pre_compile / on_post_compile for DIFFERENT
 * compiles may run at the same time on different threads; the two hooks of
 * ONE compile never overlap. The host's callbacks are thread-safe.
 *
 * Ownership: every string and struct that crosses this boundary belongs to
 * the side that passes it and lives only for the duration of the call.
 * Copy what you need to keep. Exceptions (C++) never cross this boundary.
 *
 * Growth: every struct begins with its size in bytes. Fields are only ever
 * appended; each appended field names the ABI minor version that added it.
 * A reader must check struct_size before touching a field added later than
 * the version it was built against.
 */
#ifndef CLSI_PLUGIN_ABI_H
#define CLSI_PLUGIN_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A change of major is incompatible: the entry symbol's name changes too. */
#define CLSI_PLUGIN_ABI_MAJOR 1
/* A change of minor only appends fields; older and newer minors interoperate.
 * 1.0: the first ABI.
 * 1.1: environment adjustments (set / prepend / unset) and a read of the
 *      command's environment; cancellation; a compile id and per-compile
 *      operator log; a permission set; optional (NULL) hooks. */
#define CLSI_PLUGIN_ABI_MINOR 1

#define CLSI_PLUGIN_ENTRY clsi_plugin_entry_v1
#define CLSI_PLUGIN_ENTRY_SYMBOL "clsi_plugin_entry_v1"

/* Outcome of a hook. */
typedef enum clsi_status {
  /* The hook did its work (e.g. injected an environment). */
  CLSI_STATUS_OK = 0,
  /* Nothing to do here (feature off, no requirements file). Not an error. */
  CLSI_STATUS_NOTHING_TO_DO = 1,
  /* Expected degradation: the compile runs without this plugin's help and
   * the plugin has written the reason to output.log. */
  CLSI_STATUS_FELL_BACK = 2,
  /* Hard error. From on_create: the host refuses the plugin. From
   * on_pre_compile: the host fails the compile without running it. From
   * on_post_compile: logged by the host, never changes the compile result. */
  CLSI_STATUS_ERROR = 3
} clsi_status;

/* Since 1.1: how adjust_env_callback changes one variable. */
typedef enum clsi_env_op {
  /* NAME=VALUE, replacing whatever the command would have had. */
  CLSI_ENV_SET = 0,
  /* VALUE in front of a colon-separated list (PATH, JUPYTER_PATH): the
   * command gets "VALUE:<what it would have had>", or just VALUE when the
   * variable is unset or empty. Never loses what the base environment has. */
  CLSI_ENV_PREPEND = 1,
  /* Remove NAME (VALUE is ignored and may be NULL). */
  CLSI_ENV_UNSET = 2
} clsi_env_op;

/* Since 1.1: the permission a user needs to have packages installed for a
 * compile (the web tier grants it; default deny). */
#define CLSI_PERMISSION_PYTHON_INSTALL "python.install"

typedef enum clsi_log_level {
  CLSI_LOG_DEBUG = 0,
  CLSI_LOG_INFO = 1,
  CLSI_LOG_WARNING = 2,
  CLSI_LOG_ERROR = 3
} clsi_log_level;

/*
 * Services the host offers. Passed to on_create; the table and host_ptr stay
 * valid until on_destroy returns (the one exception to "lives for the call").
 * All callbacks are thread-safe.
 */
typedef struct clsi_host_callbacks_v1 {
  uint32_t struct_size; /* sizeof(clsi_host_callbacks_v1) as the host built it */
  void* host_ptr;       /* opaque; pass back to log_callback */

  /* Operator's log (the host's stderr or journal). Legal in every hook,
   * including on_create and on_destroy. message: NUL-terminated, caller-owned. */
  void (*log_callback)(void* host_ptr, clsi_log_level level, const char* message);

  /* Set NAME=VALUE in the environment of this compile's command. Legal only
   * during on_pre_compile of that compile. Returns 0 on success, non-zero if
   * refused (wrong hook, invalid name). The host records which plugin set it;
   * a later plugin's value wins. */
  int (*set_env_callback)(void* compile_host_ptr, const char* name, const char* value);

  /* Append LEN bytes to this compile's output.log (the user-visible log).
   * Legal during on_pre_compile and on_post_compile of that compile, from the
   * hook's thread or any thread it waits for. Text should end lines with '\n'. */
  void (*append_output_callback)(void* compile_host_ptr, const char* text, size_t len);

  /* ---- Since 1.1 (check struct_size before use) ---- */

  /* Change one variable of this compile's command environment (see
   * clsi_env_op). Legal only during on_pre_compile. Adjustments apply in
   * plugin order, then in call order, to the environment the host gives the
   * command; the host records which plugin made each one. set_env_callback
   * is adjust_env_callback with CLSI_ENV_SET. Returns 0, non-zero if refused
   * (wrong hook, invalid name, NULL value for SET or PREPEND). */
  int (*adjust_env_callback)(void* compile_host_ptr, clsi_env_op op, const char* name,
                             const char* value);

  /* The value NAME has in the command's environment as it stands: the
   * host's base environment with the adjustments made so far (earlier
   * plugins', then this plugin's own). Legal during on_pre_compile. Copies
   * the value, truncated to buf_size - 1 bytes and NUL-terminated, into buf
   * (buf may be NULL when buf_size is 0) and returns its full length, or -1
   * when NAME is unset. Call again with a larger buffer when the length
   * returned is >= buf_size. */
  long (*get_env_callback)(void* compile_host_ptr, const char* name, char* buf, size_t buf_size);

  /* Non-zero once this compile was cancelled (the user stopped it, the host
   * is shutting down) or its deadline passed. A hook that waits checks it
   * at least every 200 ms and then returns promptly (FELL_BACK from
   * on_pre_compile). Legal in both compile hooks, from any thread. */
  int (*cancelled_callback)(void* compile_host_ptr);

  /* The operator's log for one compile: the host adds the compile's id and
   * the plugin's name. Legal in both compile hooks, from any thread. */
  void (*compile_log_callback)(void* compile_host_ptr, clsi_log_level level, const char* message);
} clsi_host_callbacks_v1;

/* Per-compile facts. Owned by the host; valid for the duration of a hook call. */
typedef struct clsi_compile_v1 {
  uint32_t struct_size;
  void* compile_host_ptr;       /* opaque; pass to set_env / append_output */
  const char* project_id;       /* never NULL; may be "" */
  const char* user_id;          /* never NULL; may be "" */
  const char* compile_dir;      /* absolute path of the compile directory */
  int32_t allow_python_install; /* non-zero: this user may install packages.
                                   The web tier decides; default deny (0). */
  int64_t time_left_ms;         /* ms before the compile's deadline at the time
                                   of the call; -1 = no deadline */

  /* ---- Since 1.1 (check struct_size before use) ---- */
  const char* compile_id; /* unique among this host's compiles; never NULL */
  /* The permissions the web tier granted this user for this compile: a
   * NULL-terminated list of names such as CLSI_PERMISSION_PYTHON_INSTALL;
   * never NULL, may be empty. Supersedes allow_python_install, which a 1.1
   * host still sets (to whether "python.install" is in the list). */
  const char* const* permissions;
} clsi_compile_v1;

/* What happened to the compile command. Owned by the host; valid for the call. */
typedef struct clsi_compile_result_v1 {
  uint32_t struct_size;
  int32_t exit_status; /* the command's exit status; 128+N if killed by signal N */
  int32_t timed_out;   /* non-zero: the deadline expired and the host killed it */
  int64_t duration_ms; /* wall-clock run time of the command */
} clsi_compile_result_v1;

/*
 * The plugin's table, returned by the entry symbol. Owned by the plugin;
 * must stay valid until dlclose.
 */
typedef struct clsi_plugin_v1 {
  uint32_t struct_size; /* sizeof(clsi_plugin_v1) as the plugin built it */
  uint32_t abi_major;   /* CLSI_PLUGIN_ABI_MAJOR the plugin was built against */
  uint32_t abi_minor;   /* CLSI_PLUGIN_ABI_MINOR the plugin was built against */
  const char* name;     /* short, stable name, e.g. "python-venv" */
  const char* version;  /* plugin version string */

  /* Create an instance. config_path: the host's --plugin-config (may be NULL).
   * On success store the instance in *plugin_ptr and return OK or
   * NOTHING_TO_DO. On ERROR, explain through log_callback; the host then
   * refuses the plugin and runs nothing. callbacks outlive the instance. */
  clsi_status (*on_create)(const clsi_host_callbacks_v1* callbacks, const char* config_path,
                           void** plugin_ptr);

  /* Before the compile command runs. May call set_env and append_output.
   * *compile_ptr: optional per-compile state (PAM-style), handed back to
   * on_post_compile of the same compile; set it even on FELL_BACK. On ERROR
   * the plugin must have released its per-compile state itself. */
  clsi_status (*on_pre_compile)(void* plugin_ptr, const clsi_compile_v1* compile,
                                void** compile_ptr);

  /* After the command ended (or was killed). Releases compile_ptr. May call
   * append_output, not set_env. Its status never fails the compile. */
  clsi_status (*on_post_compile)(void* plugin_ptr, const clsi_compile_v1* compile,
                                 void* compile_ptr, const clsi_compile_result_v1* result);

  /* Destroy the instance. No hook of it is running or will run. */
  void (*on_destroy)(void* plugin_ptr);
} clsi_plugin_v1;

/* Optional hooks (since 1.1): a 1.1 host accepts NULL for on_pre_compile,
 * on_post_compile and on_destroy and skips the call; on_create is always
 * required. A 1.0 host refuses such a table, so a plugin that leaves a hook
 * NULL refuses hosts older than 1.1 in its entry (host_abi_minor < 1).
 *
 * Compatibility: a 1.0 plugin loads in a 1.1 host (the host reads no field
 * past the sizes the plugin declares). A 1.1 plugin loads in a 1.0 host when
 * it reads the 1.1 callbacks and compile fields only after checking
 * struct_size, as the C++ glue (clsi/plugin_glue.hpp) does. */

/*
 * The one exported symbol. The host passes the ABI it was built against.
 * Return the plugin's table, or NULL to refuse, with *refusal pointing to a
 * static NUL-terminated reason. Must be cheap and free of side effects.
 */
typedef const clsi_plugin_v1* (*clsi_plugin_entry_fn)(uint32_t host_abi_major,
                                                      uint32_t host_abi_minor,
                                                      const char** refusal);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CLSI_PLUGIN_ABI_H */
