#include "clsi/plugin_host.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <utility>

namespace clsi {

struct PluginHost::Slot {
  std::string name;
  std::optional<PluginLibrary> library;
  std::optional<PluginInstance> instance;
  clsi_host_callbacks_v1 callbacks{};
  const OperatorLog* log = nullptr;
};

enum class Phase : int { kIdle, kInPre, kReady, kFailed, kPostDone };

struct HostCompile::PluginState {
  HostCompile* compile = nullptr;
  PluginHost::Slot* slot = nullptr;
  std::atomic<Phase> phase{Phase::kIdle};
  void* compile_ptr = nullptr;
  std::mutex out_mu;
  std::string partial;  // output after the last '\n'
};

namespace {

using State = HostCompile::PluginState;

bool valid_env_name(const char* name) {
  if (name == nullptr || *name == '\0' || std::isdigit(static_cast<unsigned char>(*name)))
    return false;
  for (const char* p = name; *p != '\0'; ++p) {
    if (!std::isalnum(static_cast<unsigned char>(*p)) && *p != '_') return false;
  }
  return true;
}

void cb_log(void* host_ptr, clsi_log_level level, const char* message) {
  auto* slot = static_cast<PluginHost::Slot*>(host_ptr);
  if (slot != nullptr && slot->log != nullptr && *slot->log)
    (*slot->log)(slot->name, level, "", message != nullptr ? message : "");
}

}  // namespace

// The C callbacks, reaching the compile through compile_host_ptr.
struct HostCallbacks {
  static int adjust(void* ptr, clsi_env_op op, const char* name, const char* value) {
    auto* st = static_cast<State*>(ptr);
    if (st == nullptr || !valid_env_name(name)) return -1;
    if (op != CLSI_ENV_SET && op != CLSI_ENV_PREPEND && op != CLSI_ENV_UNSET) return -1;
    if (op != CLSI_ENV_UNSET && value == nullptr) return -1;
    if (st->phase.load() != Phase::kInPre) return -1;
    std::lock_guard lock(st->compile->env_mu_);
    st->compile->changes_.push_back(
        {name, op, op == CLSI_ENV_UNSET ? std::string() : std::string(value), st->slot->name});
    return 0;
  }
  static int set(void* ptr, const char* name, const char* value) {
    return adjust(ptr, CLSI_ENV_SET, name, value);
  }
  static long get(void* ptr, const char* name, char* buf, std::size_t size) {
    auto* st = static_cast<State*>(ptr);
    if (st == nullptr || name == nullptr) return -1;
    std::optional<std::string> v;
    {
      std::lock_guard lock(st->compile->env_mu_);
      v = st->compile->lookup(name);
    }
    if (!v) return -1;
    if (buf != nullptr && size > 0) {
      std::size_t n = std::min(v->size(), size - 1);
      std::memcpy(buf, v->data(), n);
      buf[n] = '\0';
    }
    return static_cast<long>(v->size());
  }
  static void append(void* ptr, const char* text, std::size_t len) {
    auto* st = static_cast<State*>(ptr);
    if (st == nullptr || text == nullptr) return;
    std::lock_guard lock(st->out_mu);
    st->partial.append(text, len);
    std::size_t start = 0;
    for (std::size_t nl; (nl = st->partial.find('\n', start)) != std::string::npos;
         start = nl + 1) {
      std::string_view line(st->partial.data() + start, nl - start);
      if (st->compile->lines_) st->compile->lines_(st->slot->name, line);
    }
    st->partial.erase(0, start);
  }
  // The end of a hook completes a line it left open.
  static void flush(State& st) {
    std::lock_guard lock(st.out_mu);
    if (st.partial.empty()) return;
    if (st.compile->lines_) st.compile->lines_(st.slot->name, st.partial);
    st.partial.clear();
  }
  static int cancelled(void* ptr) {
    auto* st = static_cast<State*>(ptr);
    return st != nullptr && st->compile->cancelled() ? 1 : 0;
  }
  static void compile_log(void* ptr, clsi_log_level level, const char* message) {
    auto* st = static_cast<State*>(ptr);
    if (st == nullptr) return;
    const OperatorLog* log = st->slot->log;
    if (log != nullptr && *log)
      (*log)(st->slot->name, level, st->compile->compile_id(), message != nullptr ? message : "");
  }
};

std::unique_ptr<PluginHost> PluginHost::load(const std::vector<PluginSpec>& plugins,
                                             OperatorLog log, std::string& why) {
  std::unique_ptr<PluginHost> host(new PluginHost());
  host->log_ = std::move(log);
  for (const auto& spec : plugins) {
    auto slot = std::make_unique<Slot>();
    slot->log = &host->log_;
    std::string failure;
    slot->library = PluginLibrary::open(spec.path, failure);
    if (slot->library) {
      slot->name = slot->library->name();
      slot->callbacks = {sizeof(clsi_host_callbacks_v1),
                         slot.get(),
                         &cb_log,
                         &HostCallbacks::set,
                         &HostCallbacks::append,
                         &HostCallbacks::adjust,
                         &HostCallbacks::get,
                         &HostCallbacks::cancelled,
                         &HostCallbacks::compile_log};
      auto inst =
          PluginInstance::create(*slot->library, &slot->callbacks,
                                 spec.config.empty() ? nullptr : spec.config.c_str(), failure);
      if (inst) slot->instance.emplace(std::move(*inst));
    }
    if (!slot->instance) {
      if (!spec.optional) {
        why = failure;
        return nullptr;
      }
      std::string note = "optional plugin skipped: " + failure;
      if (host->log_) host->log_(spec.path, CLSI_LOG_WARNING, "", note);
      host->skipped_.push_back(note);
      continue;
    }
    host->slots_.push_back(std::move(slot));
  }
  return host;
}

PluginHost::~PluginHost() {
  for (auto it = slots_.rbegin(); it != slots_.rend(); ++it)
    (*it)->instance.reset();
}

const std::string& PluginHost::name(std::size_t i) const {
  return slots_.at(i)->name;
}

HostCompile::HostCompile(PluginHost& host, CompileRequest request, LineSink lines)
    : host_(host), request_(std::move(request)), lines_(std::move(lines)) {
  if (request_.compile_id.empty()) {
    request_.compile_id = std::to_string(::getpid()) + "-" + std::to_string(++host_.next_compile_);
  }
  for (const auto& p : request_.permissions)
    permission_ptrs_.push_back(p.c_str());
  permission_ptrs_.push_back(nullptr);
  for (auto& slot : host_.slots_) {
    auto st = std::make_unique<PluginState>();
    st->compile = this;
    st->slot = slot.get();
    plugins_.push_back(std::move(st));
  }
}

HostCompile::~HostCompile() {
  (void)post_compile({-1, false, 0});
}

bool HostCompile::cancelled() const {
  return cancelled_.load() ||
         (request_.deadline && std::chrono::steady_clock::now() >= *request_.deadline);
}

std::string HostCompile::running_plugin() const {
  for (const auto& st : plugins_) {
    if (st->phase.load() == Phase::kInPre) return st->slot->name;
  }
  return "";
}

clsi_compile_v1 HostCompile::facts(std::size_t i) const {
  long long left = -1;
  if (request_.deadline) {
    left = std::max<long long>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                      *request_.deadline - std::chrono::steady_clock::now())
                                      .count());
  }
  bool may_install = std::find(request_.permissions.begin(), request_.permissions.end(),
                               CLSI_PERMISSION_PYTHON_INSTALL) != request_.permissions.end();
  clsi_compile_v1 f{};
  f.struct_size = sizeof(clsi_compile_v1);
  f.compile_host_ptr = plugins_[i].get();
  f.project_id = request_.project_id.c_str();
  f.user_id = request_.user_id.c_str();
  f.compile_dir = request_.compile_dir.c_str();
  f.allow_python_install = may_install ? 1 : 0;
  f.time_left_ms = left;
  f.compile_id = request_.compile_id.c_str();
  f.permissions = permission_ptrs_.data();
  return f;
}

HostCompile::PreResult HostCompile::pre_compile() {
  PreResult result;
  for (std::size_t i = 0; i < plugins_.size(); ++i) {
    auto& st = *plugins_[i];
    auto f = facts(i);
    st.phase = Phase::kInPre;
    clsi_status s = st.slot->instance->pre_compile(f, &st.compile_ptr);
    HostCallbacks::flush(st);
    result.statuses.push_back(s);
    if (s == CLSI_STATUS_ERROR) {
      st.phase = Phase::kFailed;
      result.ok = false;
      result.failed_plugin = st.slot->name;
      break;
    }
    st.phase = Phase::kReady;
  }
  return result;
}

std::vector<clsi_status> HostCompile::post_compile(const CompileOutcome& outcome) {
  std::lock_guard lock(post_mu_);
  std::vector<clsi_status> statuses;
  clsi_compile_result_v1 r{sizeof(clsi_compile_result_v1), outcome.exit_status,
                           outcome.timed_out ? 1 : 0, outcome.duration_ms};
  for (std::size_t i = plugins_.size(); i-- > 0;) {
    auto& st = *plugins_[i];
    Phase ready = Phase::kReady;
    if (!st.phase.compare_exchange_strong(ready, Phase::kPostDone)) continue;
    auto f = facts(i);
    clsi_status s = st.slot->instance->post_compile(f, st.compile_ptr, r);
    HostCallbacks::flush(st);
    statuses.push_back(s);
    if (s == CLSI_STATUS_ERROR && host_.log_)
      host_.log_(st.slot->name, CLSI_LOG_WARNING, request_.compile_id,
                 "post-compile hook failed (ignored)");
  }
  return statuses;
}

std::optional<std::string> HostCompile::lookup(const std::string& name) const {
  std::optional<std::string> v;
  std::string prefix = name + "=";
  for (const auto& e : request_.base_env) {
    if (e.compare(0, prefix.size(), prefix) == 0) v = e.substr(prefix.size());
  }
  for (const auto& c : changes_) {
    if (c.name != name) continue;
    switch (c.op) {
      case CLSI_ENV_SET:
        v = c.value;
        break;
      case CLSI_ENV_PREPEND:
        v = (v && !v->empty()) ? c.value + ":" + *v : c.value;
        break;
      case CLSI_ENV_UNSET:
        v.reset();
        break;
    }
  }
  return v;
}

std::vector<std::string> HostCompile::environment() const {
  std::lock_guard lock(env_mu_);
  std::vector<std::string> names;  // changed, in order of first change
  for (const auto& c : changes_) {
    if (std::find(names.begin(), names.end(), c.name) == names.end()) names.push_back(c.name);
  }
  std::vector<std::string> env;
  for (const auto& e : request_.base_env) {
    auto eq = e.find('=');
    std::string name = e.substr(0, eq);
    if (std::find(names.begin(), names.end(), name) == names.end()) env.push_back(e);
  }
  for (const auto& name : names) {
    if (auto v = lookup(name)) env.push_back(name + "=" + *v);
  }
  return env;
}

std::vector<EnvChange> HostCompile::env_changes() const {
  std::lock_guard lock(env_mu_);
  return changes_;
}

}  // namespace clsi
