#include "venv_plugin.hpp"

#include <sys/stat.h>

#include <cstdlib>
#include <stdexcept>

#include "key.hpp"
#include "lock.hpp"
#include "requirements_file.hpp"

namespace clsi::venv {
namespace {

using Clock = std::chrono::steady_clock;

// What a compile holds between its two hooks: the key's shared lock.
struct CompileState {
  std::string key;
  KeyLock lock;
};

std::string seconds(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", s);
  return buf;
}

// The venv's interpreter still is the base interpreter.
bool healthy(const Store& store, const std::string& key, const InterpreterFacts& python) {
  struct stat st {};
  std::string py = store.env_dir(key) + "/bin/python3";
  return ::stat(py.c_str(), &st) == 0 && st.st_dev == python.identity.dev &&
         st.st_ino == python.identity.ino;
}

}  // namespace

Seams Seams::production() {
  return {[](const char* name) -> const char* { return std::getenv(name); },
          default_process_runner()};
}

VenvPlugin::VenvPlugin(Config config, const HostServices& host, Seams seams)
    : config_(std::move(config)),
      host_(host),
      store_(config_.venvs_dir),
      probe_(store_.probes_dir(), store_.tmp_dir(), seams.runner),
      installer_(config_, store_, seams.runner) {}

std::unique_ptr<VenvPlugin> VenvPlugin::create(const HostServices& host, const char* config_path) {
  auto seams = Seams::production();
  auto config = load_config(config_path, seams.getenv);
  if (!config) throw std::runtime_error(config.error());
  return std::make_unique<VenvPlugin>(std::move(*config), host, std::move(seams));
}

clsi_status VenvPlugin::pre_compile(CompileContext& ctx, void** compile_ptr) {
  *compile_ptr = nullptr;
  if (!config_.enabled) return CLSI_STATUS_NOTHING_TO_DO;
  const auto start = Clock::now();
  auto say = [&](const std::string& line) { ctx.append("[python-venv] " + line); };
  auto fall_back = [&](const std::string& why) {
    say(why);
    say("the render runs on the base interpreter (" + config_.base_python + ")");
    return CLSI_STATUS_FELL_BACK;
  };

  // 1. The requirements file: untrusted, read carefully, parsed by allowlist.
  auto file = read_requirements_file(std::string(ctx.compile_dir()), config_.requirements_files,
                                     config_.caps.max_requirements_bytes);
  if (!file) {
    ctx.append(file.error());
    return fall_back("not installing Python packages: the requirements file was refused");
  }
  if (!file->has_value()) return CLSI_STATUS_NOTHING_TO_DO;
  const std::string& name = (*file)->name;
  auto parsed = parse_requirements((*file)->text,
                                   {config_.require_hashes, config_.caps.max_requirement_lines});
  if (!parsed.refusals.empty()) {
    for (const auto& r : parsed.refusals)
      ctx.append(format_refusal(name, r));
    return fall_back("not installing Python packages: " + std::to_string(parsed.refusals.size()) +
                     " line(s) of ./" + name + " were refused; fix them to get the packages");
  }
  if (parsed.requirements.empty()) {
    say("./" + name + " lists no packages; using the base interpreter");
    return CLSI_STATUS_NOTHING_TO_DO;
  }

  // 2. Gating: the web tier decides who may install; default deny.
  if (!ctx.allow_python_install()) {
    return fall_back("not installing the packages in ./" + name +
                     ": this compile's user may not install Python packages (only the project "
                     "owner and invited collaborators may)");
  }

  // 3. The key.
  auto layout = store_.ensure_layout();
  if (!layout) return fall_back("the venv store is not usable: " + layout.error());
  bool probed = false;
  auto python = probe_.facts(config_.base_python, &probed);
  if (!python) return fall_back(python.error());
  if (probed) ctx.log(CLSI_LOG_INFO, "probed " + config_.base_python + ": " + python->version);
  const std::string key = venv_key(parsed.requirements, *python, config_);
  const std::string id = short_key(key);

  auto lock = KeyLock::open(store_.lock_path(key), true);
  if (!lock) return fall_back(lock.error());
  auto inject = [&](KeyLock held) {
    std::string py = store_.env_dir(key) + "/bin/python3";
    if (!ctx.set_env("QUARTO_PYTHON", py)) {
      return fall_back("the host refused to set QUARTO_PYTHON");
    }
    *compile_ptr = new CompileState{key, std::move(held)};
    return CLSI_STATUS_OK;
  };

  // 4. Cache hit: shared lock, complete, healthy.
  if (lock->try_lock(KeyLock::Mode::kShared)) {
    if (store_.is_complete(key) && healthy(store_, key, *python)) {
      say("reusing environment " + id + " for ./" + name);
      return inject(std::move(*lock));
    }
    lock->unlock();
  }

  // 5. Build once: exclusive lock, check again, build.
  const long long left_ms = ctx.time_left_ms();
  Clock::time_point compile_deadline = left_ms < 0
                                           ? Clock::time_point::max()
                                           : start + std::chrono::milliseconds(left_ms) -
                                                 std::chrono::seconds(config_.render_reserve_s);
  if (!lock->try_lock(KeyLock::Mode::kExclusive)) {
    say("waiting for another compile's build of environment " + id);
    if (!lock->lock_until(KeyLock::Mode::kExclusive, compile_deadline)) {
      return fall_back("environment " + id +
                       " is still being built by another compile; compile again shortly to use it");
    }
  }
  if (store_.is_complete(key) && healthy(store_, key, *python)) {
    lock->downgrade();
    say("environment " + id + " was built by another compile; reusing it");
    return inject(std::move(*lock));
  }
  struct stat st {};
  if (store_.is_complete(key)) {
    say("environment " + id + " no longer matches the base interpreter; rebuilding it");
  } else if (::lstat(store_.env_dir(key).c_str(), &st) == 0) {
    say("removing an unfinished build of environment " + id + " left by an interrupted compile");
  }
  if (auto removed = store_.remove_env(key); !removed) return fall_back(removed.error());

  BuildRequest req{key, parsed.requirements, *python, {}, {}};
  auto install_deadline = Clock::now() + std::chrono::seconds(config_.caps.install_timeout_s);
  if (compile_deadline < install_deadline) {
    req.deadline = compile_deadline;
    req.deadline_reason = "the time left for this compile";
  } else {
    req.deadline = install_deadline;
    req.deadline_reason =
        "caps.install_timeout_s (" + std::to_string(config_.caps.install_timeout_s) + " s)";
  }
  say("building environment " + id + " for ./" + name + " (" +
      std::to_string(parsed.requirements.size()) + " requirement(s); no environment for them yet)");
  auto built =
      installer_.build(req, [&](std::string_view line) { ctx.append("  " + std::string(line)); });
  if (!built.ok) {
    return fall_back("building environment " + id + " failed: " + built.failure);
  }
  if (auto w = store_.write_record(built.record); !w) {
    (void)store_.remove_env(key);
    return fall_back("could not mark environment " + id + " complete: " + w.error());
  }
  lock->downgrade();
  say("built environment " + id + " in " + seconds(built.record.build_seconds) + " (" +
      std::to_string(built.record.installed.size()) + " package(s), " +
      std::to_string(built.record.size_bytes / (1024 * 1024)) + " MB)");
  return inject(std::move(*lock));
}

clsi_status VenvPlugin::post_compile(CompileContext& /*ctx*/, void* compile_ptr,
                                     const clsi_compile_result_v1& /*result*/) {
  std::unique_ptr<CompileState> state(static_cast<CompileState*>(compile_ptr));
  if (!state) return CLSI_STATUS_NOTHING_TO_DO;
  store_.touch(state->key);  // last use, for LRU eviction
  state->lock.unlock();
  return CLSI_STATUS_OK;
}

}  // namespace clsi::venv
