// Host side: load a plugin library, check it, create and destroy instances.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "clsi/plugin_abi.h"

namespace clsi {

// A dlopen'ed plugin library whose entry symbol accepted this host's ABI.
// dlclose on destruction.
class PluginLibrary {
 public:
  // On failure returns nullopt and sets `why` to a sentence naming the file
  // and the reason (not found, not a plugin, wrong ABI, refused, too small).
  static std::optional<PluginLibrary> open(const std::string& path, std::string& why);

  PluginLibrary(PluginLibrary&&) noexcept;
  PluginLibrary& operator=(PluginLibrary&&) noexcept;
  PluginLibrary(const PluginLibrary&) = delete;
  PluginLibrary& operator=(const PluginLibrary&) = delete;
  ~PluginLibrary();

  [[nodiscard]] const clsi_plugin_v1& table() const { return *table_; }
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string name() const { return table_->name ? table_->name : path_; }

 private:
  PluginLibrary() = default;
  void* handle_ = nullptr;
  const clsi_plugin_v1* table_ = nullptr;
  std::string path_;
};

// One created instance of a plugin; on_destroy on destruction.
class PluginInstance {
 public:
  // Calls on_create. On ERROR returns nullopt; the plugin has explained
  // itself through the log callback, and `why` says which plugin refused.
  static std::optional<PluginInstance> create(const PluginLibrary& library,
                                              const clsi_host_callbacks_v1* callbacks,
                                              const char* config_path, std::string& why);
  PluginInstance(PluginInstance&&) noexcept;
  PluginInstance& operator=(PluginInstance&&) = delete;
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;
  ~PluginInstance();

  clsi_status pre_compile(const clsi_compile_v1& compile, void** compile_ptr) const;
  clsi_status post_compile(const clsi_compile_v1& compile, void* compile_ptr,
                           const clsi_compile_result_v1& result) const;
  [[nodiscard]] const PluginLibrary& library() const { return *library_; }

 private:
  PluginInstance() = default;
  const PluginLibrary* library_ = nullptr;
  void* plugin_ptr_ = nullptr;
};

const char* status_name(clsi_status status);

}  // namespace clsi
