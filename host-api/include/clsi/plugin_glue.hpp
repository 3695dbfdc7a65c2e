// Plugin side: C++ over the C ABI. Trampolines turn every exception into
// CLSI_STATUS_ERROR with its message in the operator's log, so none crosses
// the boundary.
//
// A plugin defines a class Impl with:
//   static std::unique_ptr<Impl> create(const clsi::HostServices&, const char* config_path);
//   clsi_status pre_compile(clsi::CompileContext&, void** compile_ptr);
//   clsi_status post_compile(clsi::CompileContext&, void* compile_ptr,
//                            const clsi_compile_result_v1&);
// and exports: CLSI_DEFINE_PLUGIN_ENTRY(Impl, "name", "version")
#pragma once

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "clsi/plugin_abi.h"

#if defined(__GNUC__)
#define CLSI_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define CLSI_PLUGIN_EXPORT extern "C"
#endif

// True when a struct whose first member is its size has `field`: the side
// that filled it was built against the minor that added the field, or later.
#define CLSI_HAS_FIELD(ptr, type, field) \
  ((ptr) != nullptr &&                   \
   (ptr)->struct_size >= offsetof(type, field) + sizeof(((type*)nullptr)->field))

namespace clsi {

// The host's services, valid for the plugin instance's lifetime.
class HostServices {
 public:
  explicit HostServices(const clsi_host_callbacks_v1* cb) : cb_(cb) {}
  void log(clsi_log_level level, const std::string& message) const {
    if (cb_ && cb_->log_callback) cb_->log_callback(cb_->host_ptr, level, message.c_str());
  }
  [[nodiscard]] const clsi_host_callbacks_v1* callbacks() const { return cb_; }

 private:
  const clsi_host_callbacks_v1* cb_;
};

// One hook call's view of a compile. The ABI 1.1 calls degrade to what a
// 1.0 host can do (see each); check supports_env_adjust() when it matters.
class CompileContext {
 public:
  CompileContext(const HostServices& host, const clsi_compile_v1* compile)
      : host_(host), compile_(compile) {}

  [[nodiscard]] std::string_view project_id() const { return str(compile_->project_id); }
  [[nodiscard]] std::string_view user_id() const { return str(compile_->user_id); }
  [[nodiscard]] std::string_view compile_dir() const { return str(compile_->compile_dir); }
  // "" from a 1.0 host.
  [[nodiscard]] std::string_view compile_id() const {
    return CLSI_HAS_FIELD(compile_, clsi_compile_v1, compile_id) ? str(compile_->compile_id)
                                                                 : std::string_view();
  }
  // From a 1.0 host only CLSI_PERMISSION_PYTHON_INSTALL is known (its flag).
  [[nodiscard]] bool has_permission(std::string_view name) const {
    if (CLSI_HAS_FIELD(compile_, clsi_compile_v1, permissions) && compile_->permissions) {
      for (const char* const* p = compile_->permissions; *p != nullptr; ++p)
        if (name == *p) return true;
      return false;
    }
    return name == CLSI_PERMISSION_PYTHON_INSTALL && compile_->allow_python_install != 0;
  }
  [[nodiscard]] bool allow_python_install() const {
    return has_permission(CLSI_PERMISSION_PYTHON_INSTALL);
  }
  // -1: no deadline.
  [[nodiscard]] long long time_left_ms() const { return compile_->time_left_ms; }
  // The compile was cancelled or its deadline passed (always false from a
  // 1.0 host, which cannot say; the deadline is still in time_left_ms).
  [[nodiscard]] bool cancelled() const {
    auto* cb = host_.callbacks();
    return CLSI_HAS_FIELD(cb, clsi_host_callbacks_v1, cancelled_callback) &&
           cb->cancelled_callback != nullptr &&
           cb->cancelled_callback(compile_->compile_host_ptr) != 0;
  }

  bool set_env(const std::string& name, const std::string& value) const {
    auto* cb = host_.callbacks();
    return cb && cb->set_env_callback &&
           cb->set_env_callback(compile_->compile_host_ptr, name.c_str(), value.c_str()) == 0;
  }
  // The host takes set / prepend / unset (ABI 1.1).
  [[nodiscard]] bool supports_env_adjust() const {
    auto* cb = host_.callbacks();
    return CLSI_HAS_FIELD(cb, clsi_host_callbacks_v1, get_env_callback) &&
           cb->adjust_env_callback != nullptr && cb->get_env_callback != nullptr;
  }
  // False when refused, or when the host is 1.0 (then only set_env works).
  bool adjust_env(clsi_env_op op, const std::string& name, const std::string& value = {}) const {
    if (!supports_env_adjust()) return false;
    auto* cb = host_.callbacks();
    return cb->adjust_env_callback(compile_->compile_host_ptr, op, name.c_str(),
                                   op == CLSI_ENV_UNSET ? nullptr : value.c_str()) == 0;
  }
  // What the command would get for `name` so far; nullopt when unset or when
  // the host is 1.0 (which cannot say).
  [[nodiscard]] std::optional<std::string> get_env(const std::string& name) const {
    if (!supports_env_adjust()) return std::nullopt;
    auto* cb = host_.callbacks();
    std::string buf(256, '\0');
    for (;;) {
      long n =
          cb->get_env_callback(compile_->compile_host_ptr, name.c_str(), buf.data(), buf.size());
      if (n < 0) return std::nullopt;
      if (static_cast<std::size_t>(n) < buf.size()) {
        buf.resize(static_cast<std::size_t>(n));
        return buf;
      }
      buf.assign(static_cast<std::size_t>(n) + 1, '\0');
    }
  }
  // Appends text to output.log; a '\n' is added when missing.
  void append(std::string_view text) const {
    auto* cb = host_.callbacks();
    if (!cb || !cb->append_output_callback) return;
    std::string line(text);
    if (line.empty() || line.back() != '\n') line.push_back('\n');
    cb->append_output_callback(compile_->compile_host_ptr, line.data(), line.size());
  }
  // The operator's log, tagged with this compile where the host can (1.1).
  void log(clsi_log_level level, const std::string& message) const {
    auto* cb = host_.callbacks();
    if (CLSI_HAS_FIELD(cb, clsi_host_callbacks_v1, compile_log_callback) &&
        cb->compile_log_callback != nullptr) {
      cb->compile_log_callback(compile_->compile_host_ptr, level, message.c_str());
      return;
    }
    host_.log(level, message);
  }

 private:
  static std::string_view str(const char* s) {
    return s ? std::string_view(s) : std::string_view();
  }
  const HostServices& host_;
  const clsi_compile_v1* compile_;
};

namespace glue {

template <class Impl>
struct Instance {
  HostServices host;
  std::unique_ptr<Impl> impl;
};

template <class F>
clsi_status guarded(const HostServices& host, const char* hook, F&& f) noexcept {
  try {
    return f();
  } catch (const std::exception& e) {
    host.log(CLSI_LOG_ERROR, std::string(hook) + ": " + e.what());
  } catch (...) {
    host.log(CLSI_LOG_ERROR, std::string(hook) + ": unknown exception");
  }
  return CLSI_STATUS_ERROR;
}

template <class Impl>
clsi_status on_create(const clsi_host_callbacks_v1* callbacks, const char* config_path,
                      void** plugin_ptr) noexcept {
  HostServices host(callbacks);
  return guarded(host, "create", [&] {
    auto inst = std::make_unique<Instance<Impl>>(Instance<Impl>{host, nullptr});
    inst->impl = Impl::create(inst->host, config_path);
    *plugin_ptr = inst.release();
    return CLSI_STATUS_OK;
  });
}

template <class Impl>
clsi_status on_pre_compile(void* plugin_ptr, const clsi_compile_v1* compile,
                           void** compile_ptr) noexcept {
  auto* inst = static_cast<Instance<Impl>*>(plugin_ptr);
  return guarded(inst->host, "pre-compile", [&] {
    CompileContext ctx(inst->host, compile);
    return inst->impl->pre_compile(ctx, compile_ptr);
  });
}

template <class Impl>
clsi_status on_post_compile(void* plugin_ptr, const clsi_compile_v1* compile, void* compile_ptr,
                            const clsi_compile_result_v1* result) noexcept {
  auto* inst = static_cast<Instance<Impl>*>(plugin_ptr);
  return guarded(inst->host, "post-compile", [&] {
    CompileContext ctx(inst->host, compile);
    return inst->impl->post_compile(ctx, compile_ptr, *result);
  });
}

template <class Impl>
void on_destroy(void* plugin_ptr) noexcept {
  delete static_cast<Instance<Impl>*>(plugin_ptr);
}

template <class Impl>
const clsi_plugin_v1* table(const char* name, const char* version) noexcept {
  static const clsi_plugin_v1 kTable = {
      sizeof(clsi_plugin_v1),
      CLSI_PLUGIN_ABI_MAJOR,
      CLSI_PLUGIN_ABI_MINOR,
      name,
      version,
      &on_create<Impl>,
      &on_pre_compile<Impl>,
      &on_post_compile<Impl>,
      &on_destroy<Impl>,
  };
  return &kTable;
}

}  // namespace glue
}  // namespace clsi

#define CLSI_DEFINE_PLUGIN_ENTRY(Impl, name, version)                               \
  CLSI_PLUGIN_EXPORT const clsi_plugin_v1* CLSI_PLUGIN_ENTRY(                       \
      uint32_t host_abi_major, uint32_t /*host_abi_minor*/, const char** refusal) { \
    if (host_abi_major != CLSI_PLUGIN_ABI_MAJOR) {                                  \
      if (refusal) *refusal = "host speaks another ABI major";                      \
      return nullptr;                                                               \
    }                                                                               \
    return ::clsi::glue::table<Impl>(name, version);                                \
  }
