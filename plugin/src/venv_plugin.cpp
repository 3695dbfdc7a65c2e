#include "venv_plugin.hpp"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <stdexcept>
#include <thread>

#include "builder.hpp"
#include "key.hpp"
#include "requirements_file.hpp"

namespace clsi::venv {
namespace {

using Clock = std::chrono::steady_clock;

// What a compile holds between its two hooks: the key's shared lock.
struct CompileState {
  std::string key;
  KeyLock lock;
};

// The venv's interpreter still is the base interpreter.
bool healthy(const Store& store, const std::string& key, const InterpreterFacts& python) {
  struct stat st {};
  std::string py = store.env_dir(key) + "/bin/python3";
  return ::stat(py.c_str(), &st) == 0 && st.st_dev == python.identity.dev &&
         st.st_ino == python.identity.ino;
}

std::string utc_time(std::int64_t t) {
  return format_utc(t, "%H:%M:%S UTC");
}

// Appends what a build writes to its log file to this compile's output.log.
class LogTail {
 public:
  void start(const std::string& path, bool from_beginning) {
    fd_.reset(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd_ && !from_beginning) ::lseek(fd_.get(), 0, SEEK_END);
    pending_.clear();
  }
  void pump(const CompileContext& ctx) {
    if (!fd_) return;
    char buf[8192];
    ssize_t n;
    while ((n = ::read(fd_.get(), buf, sizeof buf)) > 0)
      pending_.append(buf, static_cast<size_t>(n));
    auto last = pending_.rfind('\n');
    if (last == std::string::npos) return;
    ctx.append(std::string_view(pending_).substr(0, last + 1));
    pending_.erase(0, last + 1);
  }

 private:
  UniqueFd fd_;
  std::string pending_;
};

// clsi-venvs next to the library this code is in: <prefix>/lib/x.so -> <prefix>/bin/clsi-venvs.
std::string find_builder_next_to_plugin() {
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&find_builder_next_to_plugin), &info) == 0 ||
      !info.dli_fname) {
    return {};
  }
  std::string self = info.dli_fname;
  auto slash = self.rfind('/');
  if (slash == std::string::npos) return {};
  std::string dir = self.substr(0, slash);
  for (const auto& candidate : {dir + "/../bin/clsi-venvs", dir + "/clsi-venvs"}) {
    if (::access(candidate.c_str(), X_OK) == 0) {
      char real[PATH_MAX];
      return ::realpath(candidate.c_str(), real) ? std::string(real) : candidate;
    }
  }
  return {};
}

}  // namespace

// Everything a compile asks for, once the requirements are parsed and keyed.
struct VenvPlugin::Want {
  std::string file_name;  // e.g. requirements.txt
  std::string key;
  std::string id;  // short key, for messages
  std::vector<Requirement> requirements;
  InterpreterFacts python;
  Clock::time_point compile_deadline;  // when the render must start
};

Seams Seams::production() {
  return {[](const char* name) -> const char* { return std::getenv(name); },
          default_process_runner()};
}

VenvPlugin::VenvPlugin(Config config, const HostServices& host, Seams seams)
    : config_(std::move(config)),
      host_(host),
      seams_(std::move(seams)),
      store_(config_.venvs_dir),
      probe_(store_.probes_dir(), store_.tmp_dir(), seams_.runner) {
  if (config_.builder == "inline") {
    builder_note_ = "builder: inline";
  } else if (config_.builder == "auto") {
    builder_path_ = find_builder_next_to_plugin();
    if (builder_path_.empty()) {
      builder_note_ = "clsi-venvs was not found next to the plugin";
    }
  } else if (::access(config_.builder.c_str(), X_OK) == 0) {
    builder_path_ = config_.builder;
  } else {
    builder_note_ = "builder " + config_.builder + " is not executable";
  }
  if (config_.enabled && !builder_note_.empty() && config_.builder != "inline") {
    host_.log(CLSI_LOG_WARNING,
              builder_note_ + "; builds run inside the compile and cannot outlive it");
  }
}

std::unique_ptr<VenvPlugin> VenvPlugin::create(const HostServices& host, const char* config_path) {
  auto seams = Seams::production();
  auto config = load_config(config_path, seams.getenv);
  if (!config) throw std::runtime_error(config.error());
  return std::make_unique<VenvPlugin>(std::move(*config), host, std::move(seams));
}

// The compile goes on as it would without this plugin: QUARTO_PYTHON is left
// to the deployment, which is what "the base interpreter" means here.
clsi_status VenvPlugin::fall_back(CompileContext& ctx, const std::string& why) const {
  ctx.append(note(why));
  ctx.append(note("the render runs on the base interpreter, without the project's packages"));
  return CLSI_STATUS_FELL_BACK;
}

clsi_status VenvPlugin::inject(CompileContext& ctx, const Want& want, KeyLock held,
                               void** compile_ptr) {
  std::string py = store_.env_dir(want.key) + "/bin/python3";
  if (!ctx.set_env("QUARTO_PYTHON", py))
    return fall_back(ctx, "the host refused to set QUARTO_PYTHON");
  *compile_ptr = new CompileState{want.key, std::move(held)};
  return CLSI_STATUS_OK;
}

clsi_status VenvPlugin::pre_compile(CompileContext& ctx, void** compile_ptr) {
  *compile_ptr = nullptr;
  if (!config_.enabled) return CLSI_STATUS_NOTHING_TO_DO;
  const auto start = Clock::now();

  // 1. The requirements file: untrusted, read carefully, parsed by allowlist.
  auto file = read_requirements_file(std::string(ctx.compile_dir()), config_.requirements_files,
                                     config_.caps.max_requirements_bytes);
  if (!file) {
    ctx.append(file.error());
    return fall_back(ctx, "not installing Python packages: the requirements file was refused");
  }
  if (!file->has_value()) return CLSI_STATUS_NOTHING_TO_DO;
  Want want;
  want.file_name = (*file)->name;
  auto parsed = parse_requirements((*file)->text,
                                   {config_.require_hashes, config_.caps.max_requirement_lines});
  if (!parsed.refusals.empty()) {
    for (const auto& r : parsed.refusals)
      ctx.append(format_refusal(want.file_name, r));
    return fall_back(
        ctx, "not installing Python packages: " + std::to_string(parsed.refusals.size()) +
                 " line(s) of ./" + want.file_name + " were refused; fix them to get the packages");
  }
  if (parsed.requirements.empty()) {
    ctx.append(note("./" + want.file_name + " lists no packages; using the base interpreter"));
    return CLSI_STATUS_NOTHING_TO_DO;
  }
  want.requirements = std::move(parsed.requirements);

  // 2. Gating: the web tier decides who may install; default deny.
  if (!ctx.allow_python_install()) {
    return fall_back(ctx, "not installing the packages in ./" + want.file_name +
                              ": this compile's user may not install Python packages (only the "
                              "project owner and invited collaborators may)");
  }

  // 3. The key. The interpreter's facts come from the store's probe cache.
  auto layout = store_.ensure_layout();
  if (!layout) return fall_back(ctx, "the venv store is not usable: " + layout.error());
  bool probed = false;
  auto python = probe_.facts(config_.base_python, &probed);
  if (!python) return fall_back(ctx, python.error());
  if (probed) ctx.log(CLSI_LOG_INFO, "probed " + config_.base_python + ": " + python->version);
  want.python = std::move(*python);
  want.key =
      KeyCache(store_.keys_dir()).key_for(key_material(want.requirements, want.python, config_));
  want.id = short_key(want.key);
  const long long left_ms = ctx.time_left_ms();
  want.compile_deadline = left_ms < 0 ? Clock::time_point::max()
                                      : start + std::chrono::milliseconds(left_ms) -
                                            std::chrono::seconds(config_.render_reserve_s);

  auto lock = KeyLock::open(store_.lock_path(want.key), true);
  if (!lock) return fall_back(ctx, lock.error());

  // 4. Cache hit: shared lock, complete, healthy. No process, no wait.
  if (lock->try_lock(KeyLock::Mode::kShared)) {
    if (store_.is_complete(want.key) && healthy(store_, want.key, want.python)) {
      ctx.append(note("reusing environment " + want.id + " for ./" + want.file_name));
      store_.append_event("hit", want.key);
      return inject(ctx, want, std::move(*lock), compile_ptr);
    }
    lock->unlock();
  }
  store_.append_event("miss", want.key);
  return build_or_wait(ctx, want, std::move(*lock), compile_ptr);
}

// Gets the venv built, by this compile or by whoever is building it, and
// waits for it within the compile's deadline. A build started in the
// background goes on when the deadline passes; the next compile uses it.
clsi_status VenvPlugin::build_or_wait(CompileContext& ctx, const Want& want, KeyLock lock,
                                      void** compile_ptr) {
  LogTail tail;
  bool launched = false;
  bool announced_wait = false;
  auto pause = std::chrono::milliseconds(20);
  for (;;) {
    tail.pump(ctx);
    if (lock.try_lock(KeyLock::Mode::kShared)) {
      tail.pump(ctx);  // the build has ended: show the rest of its log
      if (store_.is_complete(want.key) && healthy(store_, want.key, want.python)) {
        if (!launched) ctx.append(note("environment " + want.id + " is ready; reusing it"));
        return inject(ctx, want, std::move(lock), compile_ptr);
      }
      lock.unlock();
      if (auto f = store_.recent_failure(want.key, config_.retry_failed_after_s)) {
        if (launched)
          return fall_back(ctx, "environment " + want.id + " could not be built (see above)");
        return fall_back(ctx, "the last build of environment " + want.id + " failed at " +
                                  utc_time(f->at) + ": " + f->reason +
                                  "; it is tried again after " + utc_time(f->retry_at) +
                                  ", or at once when ./" + want.file_name + " changes");
      }
      if (launched) {
        return fall_back(ctx, "the build of environment " + want.id +
                                  " stopped without finishing; compile again to retry it");
      }
      if (!lock.try_lock(KeyLock::Mode::kExclusive)) continue;  // somebody else started
      if (store_.is_complete(want.key) && healthy(store_, want.key, want.python)) {
        lock.downgrade();
        return inject(ctx, want, std::move(lock), compile_ptr);
      }
      ctx.append(
          note("no environment for ./" + want.file_name + " yet; building environment " + want.id));
      if (!builder_path_.empty() && launch_builder(ctx, want, lock)) {
        launched = true;
        tail.start(store_.build_log_path(want.key), true);
        auto reopened = KeyLock::open(store_.lock_path(want.key), true);
        if (!reopened) return fall_back(ctx, reopened.error());
        lock = std::move(*reopened);
        continue;
      }
      // Inline: the build runs here, bounded by the compile's deadline too.
      BuildRequest req{want.key, want.requirements, want.python, {}, {}};
      set_install_deadline(config_, req);
      if (want.compile_deadline < req.deadline) {
        req.deadline = want.compile_deadline;
        req.deadline_reason = "the time left for this compile";
      }
      auto built = build_locked(config_, store_, seams_.runner, req,
                                [&](std::string_view line) { ctx.append(line); });
      if (!built.ok) {
        lock.unlock();
        return fall_back(ctx, "environment " + want.id + " is not available");
      }
      lock.downgrade();
      return inject(ctx, want, std::move(lock), compile_ptr);
    }
    // Held exclusively: a build (or an eviction) is running.
    if (!announced_wait && !launched) {
      ctx.append(note("waiting for another compile's build of environment " + want.id));
      tail.start(store_.build_log_path(want.key), false);
      announced_wait = true;
    }
    if (Clock::now() >= want.compile_deadline) {
      return fall_back(ctx, "environment " + want.id +
                                " is being prepared in the background and was not ready before "
                                "this compile's deadline; compile again shortly to use it");
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
}

// Starts `clsi-venvs build` detached, handing it the exclusive lock: the
// child inherits the lock's open file description, so the lock is held for
// exactly as long as the build runs, and released by the kernel if it dies.
bool VenvPlugin::launch_builder(CompileContext& ctx, const Want& want, KeyLock& exclusive) {
  std::string request = store_.tmp_dir() + "/request-" + want.id + "-XXXXXX";
  {
    UniqueFd fd(::mkostemp(request.data(), O_CLOEXEC));
    if (!fd) return false;
    std::string content;
    for (const auto& r : want.requirements)
      content += r.canonical + "\n";
    if (::write(fd.get(), content.data(), content.size()) != static_cast<ssize_t>(content.size())) {
      ::unlink(request.c_str());
      return false;
    }
  }
  UniqueFd log(::open(store_.build_log_path(want.key).c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (!log) {
    ::unlink(request.c_str());
    return false;
  }
  SpawnOptions o;
  o.executable = builder_path_;
  o.args = {"build", "--venvs-dir", config_.venvs_dir,
            "--key", want.key,      "--requirements",
            request, "--lock-fd",   std::to_string(exclusive.fd())};
  if (!config_.path.empty()) o.args.insert(o.args.begin() + 1, {"--config", config_.path});
  o.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
  o.cwd = "/";
  o.output_fd = log.get();
  o.detach = true;
  o.die_with_parent = false;
  o.inherit_fds = {exclusive.fd()};
  std::error_code ec;
  auto child = Child::spawn(o, ec);
  if (!child) {
    ::unlink(request.c_str());
    ctx.log(CLSI_LOG_WARNING, "cannot start " + builder_path_ + ": " + ec.message());
    return false;
  }
  child->wait();  // the intermediate process; the builder is an orphan now
  exclusive.forget();
  return true;
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
