#include "clsi/plugin_loader.hpp"

#include <dlfcn.h>

#include <cstddef>
#include <utility>

namespace clsi {
namespace {

// The smallest plugin table this host can use: ABI 1.0 ends with on_destroy.
constexpr std::size_t kMinPluginTableSize =
    offsetof(clsi_plugin_v1, on_destroy) + sizeof(clsi_plugin_v1::on_destroy);

// The text of the last dl* error, and clears it. glibc keeps that state per
// thread (dlerror(3): MT-Safe), so hosts that load plugins on several threads
// at once see only their own errors.
const char* take_dl_error() {
  return ::dlerror();  // NOLINT(concurrency-mt-unsafe): per-thread state in glibc, above
}

}  // namespace

std::optional<PluginLibrary> PluginLibrary::open(const std::string& path, std::string& why) {
  // A name without a slash would be searched on the library path: refuse
  // the ambiguity and load only what the operator named.
  std::string load_path = path.find('/') == std::string::npos ? "./" + path : path;
  (void)take_dl_error();  // a stale one
  void* handle = ::dlopen(load_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = take_dl_error();
    why = "cannot load plugin " + path + ": " + (err ? err : "unknown dlopen error");
    return std::nullopt;
  }
  auto fail = [&](std::string reason) {
    ::dlclose(handle);
    why = "refusing plugin " + path + ": " + std::move(reason);
    return std::nullopt;
  };
  void* sym = ::dlsym(handle, CLSI_PLUGIN_ENTRY_SYMBOL);
  if (sym == nullptr) {
    return fail("it is not a clsi plugin (it exports no " CLSI_PLUGIN_ENTRY_SYMBOL
                " symbol; is it built for another ABI major?)");
  }
  auto entry = reinterpret_cast<clsi_plugin_entry_fn>(sym);
  const char* refusal = nullptr;
  const clsi_plugin_v1* table = entry(CLSI_PLUGIN_ABI_MAJOR, CLSI_PLUGIN_ABI_MINOR, &refusal);
  if (table == nullptr) {
    return fail(std::string("its entry point refused this host: ") +
                (refusal ? refusal : "no reason given"));
  }
  if (table->abi_major != CLSI_PLUGIN_ABI_MAJOR) {
    return fail("it was built for ABI " + std::to_string(table->abi_major) + "." +
                std::to_string(table->abi_minor) + ", this host speaks ABI " +
                std::to_string(CLSI_PLUGIN_ABI_MAJOR) + "." +
                std::to_string(CLSI_PLUGIN_ABI_MINOR));
  }
  if (table->struct_size < kMinPluginTableSize) {
    return fail("its plugin table is " + std::to_string(table->struct_size) +
                " bytes, smaller than the " + std::to_string(kMinPluginTableSize) +
                " bytes ABI 1.0 requires");
  }
  // Since 1.1 only on_create is required; a 1.0 table has all four.
  if (!table->on_create) return fail("its plugin table has no on_create hook");
  if (table->abi_minor < 1 &&
      (!table->on_pre_compile || !table->on_post_compile || !table->on_destroy)) {
    return fail("its plugin table leaves a hook empty, which ABI 1.0 does not allow");
  }
  PluginLibrary lib;
  lib.handle_ = handle;
  lib.table_ = table;
  lib.path_ = path;
  return lib;
}

PluginLibrary::PluginLibrary(PluginLibrary&& other) noexcept
    : handle_(std::exchange(other.handle_, nullptr)),
      table_(std::exchange(other.table_, nullptr)),
      path_(std::move(other.path_)) {}

PluginLibrary& PluginLibrary::operator=(PluginLibrary&& other) noexcept {
  if (this != &other) {
    if (handle_) ::dlclose(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
    table_ = std::exchange(other.table_, nullptr);
    path_ = std::move(other.path_);
  }
  return *this;
}

PluginLibrary::~PluginLibrary() {
  if (handle_) ::dlclose(handle_);
}

std::optional<PluginInstance> PluginInstance::create(const PluginLibrary& library,
                                                     const clsi_host_callbacks_v1* callbacks,
                                                     const char* config_path, std::string& why) {
  void* ptr = nullptr;
  clsi_status st = library.table().on_create(callbacks, config_path, &ptr);
  if (st == CLSI_STATUS_ERROR) {
    why = "plugin " + library.name() + " (" + library.path() + ") failed to start";
    return std::nullopt;
  }
  PluginInstance inst;
  inst.library_ = &library;
  inst.plugin_ptr_ = ptr;
  return inst;
}

PluginInstance::PluginInstance(PluginInstance&& other) noexcept
    : library_(std::exchange(other.library_, nullptr)),
      plugin_ptr_(std::exchange(other.plugin_ptr_, nullptr)) {}

PluginInstance::~PluginInstance() {
  if (library_ && library_->table().on_destroy) library_->table().on_destroy(plugin_ptr_);
}

// A hook left NULL (ABI 1.1) has nothing to do.
clsi_status PluginInstance::pre_compile(const clsi_compile_v1& compile, void** compile_ptr) const {
  if (!library_->table().on_pre_compile) return CLSI_STATUS_NOTHING_TO_DO;
  return library_->table().on_pre_compile(plugin_ptr_, &compile, compile_ptr);
}

clsi_status PluginInstance::post_compile(const clsi_compile_v1& compile, void* compile_ptr,
                                         const clsi_compile_result_v1& result) const {
  if (!library_->table().on_post_compile) return CLSI_STATUS_OK;
  return library_->table().on_post_compile(plugin_ptr_, &compile, compile_ptr, &result);
}

const char* status_name(clsi_status status) {
  switch (status) {
    case CLSI_STATUS_OK:
      return "ok";
    case CLSI_STATUS_NOTHING_TO_DO:
      return "nothing to do";
    case CLSI_STATUS_FELL_BACK:
      return "fell back";
    case CLSI_STATUS_ERROR:
      return "error";
  }
  return "unknown status";
}

}  // namespace clsi
