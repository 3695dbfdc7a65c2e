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

#include <exception>
#include <memory>
#include <string>
#include <string_view>

#include "clsi/plugin_abi.h"

#if defined(__GNUC__)
#define CLSI_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define CLSI_PLUGIN_EXPORT extern "C"
#endif

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

// One hook call's view of a compile.
class CompileContext {
 public:
  CompileContext(const HostServices& host, const clsi_compile_v1* compile)
      : host_(host), compile_(compile) {}

  [[nodiscard]] std::string_view project_id() const { return str(compile_->project_id); }
  [[nodiscard]] std::string_view user_id() const { return str(compile_->user_id); }
  [[nodiscard]] std::string_view compile_dir() const { return str(compile_->compile_dir); }
  [[nodiscard]] bool allow_python_install() const { return compile_->allow_python_install != 0; }
  // -1: no deadline.
  [[nodiscard]] long long time_left_ms() const { return compile_->time_left_ms; }

  bool set_env(const std::string& name, const std::string& value) const {
    auto* cb = host_.callbacks();
    return cb && cb->set_env_callback &&
           cb->set_env_callback(compile_->compile_host_ptr, name.c_str(), value.c_str()) == 0;
  }
  // Appends text to output.log; a '\n' is added when missing.
  void append(std::string_view text) const {
    auto* cb = host_.callbacks();
    if (!cb || !cb->append_output_callback) return;
    std::string line(text);
    if (line.empty() || line.back() != '\n') line.push_back('\n');
    cb->append_output_callback(compile_->compile_host_ptr, line.data(), line.size());
  }
  void log(clsi_log_level level, const std::string& message) const { host_.log(level, message); }

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
