// The Node-API addon behind @clsi/plugin-host: loads CLSI runner plugins
// through clsi::PluginHost and runs their hooks through clsi::HostCompile,
// each hook call on a std::thread of its own (never on the event loop, never
// on the libuv threadpool, which fs and dns need). Results and output lines
// come back to the event loop through one Napi::ThreadSafeFunction per
// compile, in the order they happened: every line of a hook reaches onLine
// before the promise of that hook settles.
//
// The boundary: no C++ exception leaves this file into Node. Every method and
// every callback that runs on the event loop catches what it can and turns
// it into a rejected promise or a thrown JS Error that says what happened;
// what runs on the hook threads catches everything and reports it the same
// way. A crash in a plugin's own code still takes the process down: it runs
// in this process, like any native code.
//
// Lifetimes: a HostCore owns the loaded plugins; every compile holds it
// (shared_ptr) and counts as active from preCompile until its post-compile
// hooks are done, and close() unloads only once no compile is active. A
// compile's TSFN lives until its post-compile is done; it keeps the event
// loop alive only while a hook runs (as a pending fs call would), not while
// the render runs between the two hooks.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "clsi/plugin_abi.h"
#include "clsi/plugin_host.hpp"

namespace {

// ---- Messages from any thread to the event loop ----------------------------

// State that only the event loop may touch (JS references, promises waiting).
struct JsState {
  virtual ~JsState() = default;
};

struct Msg {
  virtual ~Msg() = default;
  virtual void run(Napi::Env env, JsState* state) = 0;
};

// Where a failure on the event loop that has no promise to reject goes.
void warn(Napi::Env env, const std::string& text) {
  try {
    Napi::HandleScope scope(env);
    auto process = env.Global().Get("process");
    if (!process.IsObject()) return;
    auto emit = process.As<Napi::Object>().Get("emitWarning");
    if (!emit.IsFunction()) return;
    emit.As<Napi::Function>().Call(
        process, {Napi::String::New(env, text), Napi::String::New(env, "ClsiPluginHostWarning")});
  } catch (...) {
    // Nothing more can be done without risking a throw into Node.
  }
}

// A thread-safe function with one owner thread count, which any thread may
// send messages through until it is released, and which goes quiet (drops
// messages) once the Node environment is being torn down: Node frees a
// thread-safe function at teardown even while threads still hold it, so
// every use goes through here, under a mutex, after a check. The teardown
// hook is added after the thread-safe function, so it runs before Node's
// own cleanup of it (cleanup hooks run in reverse order of addition).
class Channel {
 public:
  static std::shared_ptr<Channel> open(Napi::Env env, const char* name,
                                       std::shared_ptr<JsState> state) {
    auto ch = std::shared_ptr<Channel>(new Channel);
    auto* ctx = new Ctx{ch, std::move(state)};
    napi_value resource_name = Napi::String::New(env, name);
    napi_threadsafe_function tsfn = nullptr;
    napi_status s =
        napi_create_threadsafe_function(env, nullptr, nullptr, resource_name, 0 /* unbounded */, 1,
                                        nullptr, &Channel::finalize, ctx, &Channel::call, &tsfn);
    if (s != napi_ok) {
      delete ctx;
      throw Napi::Error::New(env, "cannot create a thread-safe function");
    }
    ch->tsfn_ = tsfn;
    if (napi_add_env_cleanup_hook(env, &Channel::on_teardown, ch.get()) == napi_ok)
      ch->hooked_ = true;
    return ch;
  }

  // Any thread. Takes `msg`; drops it once released or torn down.
  void send(Msg* msg) noexcept {
    std::lock_guard lock(mu_);
    if (!open_ || napi_call_threadsafe_function(tsfn_, msg, napi_tsfn_nonblocking) != napi_ok)
      delete msg;
  }
  // Any thread, once: no message after this one.
  void release() noexcept {
    std::lock_guard lock(mu_);
    if (!open_) return;
    open_ = false;
    napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  }
  // The event loop only: whether a pending message keeps Node alive.
  void ref(Napi::Env env, bool on) noexcept {
    std::lock_guard lock(mu_);
    if (!open_) return;
    if (on) {
      napi_ref_threadsafe_function(env, tsfn_);
    } else {
      napi_unref_threadsafe_function(env, tsfn_);
    }
  }

 private:
  struct Ctx {
    std::shared_ptr<Channel> channel;
    std::shared_ptr<JsState> state;
  };
  Channel() = default;

  static void call(napi_env env, napi_value /*js_cb*/, void* context, void* data) {
    std::unique_ptr<Msg> msg(static_cast<Msg*>(data));
    // A NULL env: the function is being torn down with messages still queued.
    if (env == nullptr || msg == nullptr) return;
    Napi::Env e(env);
    try {
      Napi::HandleScope scope(e);
      msg->run(e, static_cast<Ctx*>(context)->state.get());
    } catch (const Napi::Error& err) {
      warn(e, std::string("@clsi/plugin-host: a callback threw: ") + err.Message());
    } catch (const std::exception& err) {
      warn(e, std::string("@clsi/plugin-host: internal error: ") + err.what());
    } catch (...) {
      warn(e, "@clsi/plugin-host: internal error (unknown exception)");
    }
  }
  static void finalize(napi_env env, void* /*data*/, void* context) {
    std::unique_ptr<Ctx> ctx(static_cast<Ctx*>(context));
    {
      std::lock_guard lock(ctx->channel->mu_);
      ctx->channel->open_ = false;
    }
    if (ctx->channel->hooked_)
      napi_remove_env_cleanup_hook(env, &Channel::on_teardown, ctx->channel.get());
  }
  static void on_teardown(void* arg) {
    auto* ch = static_cast<Channel*>(arg);
    std::lock_guard lock(ch->mu_);
    ch->open_ = false;
  }

  std::mutex mu_;
  bool open_ = true;
  bool hooked_ = false;
  napi_threadsafe_function tsfn_ = nullptr;
};

struct FnMsg : Msg {
  std::function<void(Napi::Env)> fn;
  explicit FnMsg(std::function<void(Napi::Env)> f) : fn(std::move(f)) {}
  void run(Napi::Env env, JsState* /*state*/) override { fn(env); }
};

Napi::Error make_error(Napi::Env env, const std::string& message, const char* code) {
  auto e = Napi::Error::New(env, message);
  if (code != nullptr) e.Set("code", Napi::String::New(env, code));
  return e;
}

std::string what_of(std::exception_ptr p) {
  try {
    std::rethrow_exception(std::move(p));
  } catch (const std::exception& e) {
    return e.what();
  } catch (...) {
    return "an unknown exception";
  }
}

// Runs `work` on a thread of its own; what it returns then runs on the event
// loop with the deferred. An exception from `work` rejects the promise.
using Settle = std::function<void(Napi::Env, Napi::Promise::Deferred&)>;
void run_off_loop(Napi::Env env, const char* name, Napi::Promise::Deferred deferred,
                  std::function<Settle()> work) {
  auto ch = Channel::open(env, name, nullptr);
  try {
    std::thread([ch, deferred, work = std::move(work)]() mutable {
      Settle settle;
      std::string failure;
      try {
        settle = work();
      } catch (...) {
        failure = what_of(std::current_exception());
      }
      ch->send(new FnMsg([deferred, settle = std::move(settle), failure](Napi::Env env) mutable {
        if (settle) {
          settle(env, deferred);
        } else {
          deferred.Reject(
              make_error(env, "@clsi/plugin-host: internal error: " + failure, "ERR_CLSI_INTERNAL")
                  .Value());
        }
      }));
      ch->release();
    }).detach();
  } catch (...) {
    ch->release();
    throw;
  }
}

const char* level_name(clsi_log_level level) {
  switch (level) {
    case CLSI_LOG_DEBUG:
      return "debug";
    case CLSI_LOG_INFO:
      return "info";
    case CLSI_LOG_WARNING:
      return "warning";
    case CLSI_LOG_ERROR:
      return "error";
  }
  return "info";
}

const char* status_word(clsi_status s) {
  switch (s) {
    case CLSI_STATUS_OK:
      return "ok";
    case CLSI_STATUS_NOTHING_TO_DO:
      return "nothing-to-do";
    case CLSI_STATUS_FELL_BACK:
      return "fell-back";
    case CLSI_STATUS_ERROR:
      return "error";
  }
  return "error";
}

const char* op_word(clsi_env_op op) {
  switch (op) {
    case CLSI_ENV_SET:
      return "set";
    case CLSI_ENV_PREPEND:
      return "prepend";
    case CLSI_ENV_UNSET:
      return "unset";
  }
  return "set";
}

// ---- Argument checks --------------------------------------------------------

std::string get_string(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsString()) throw Napi::TypeError::New(env, what + " must be a string");
  std::string s = v.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos)
    throw Napi::TypeError::New(env, what + " must not contain a NUL character");
  return s;
}

std::vector<std::string> get_strings(Napi::Env env, const Napi::Value& v, const std::string& what) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, what + " must be an array of strings");
  auto a = v.As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(a.Length());
  for (uint32_t i = 0; i < a.Length(); ++i)
    out.push_back(get_string(env, a.Get(i), what + "[" + std::to_string(i) + "]"));
  return out;
}

// ---- The operator's log -----------------------------------------------------

struct LogState : JsState {
  Napi::FunctionReference fn;  // may be empty: no log
};

struct LogMsg : Msg {
  std::string plugin, compile_id, message;
  clsi_log_level level;
  LogMsg(std::string_view p, clsi_log_level l, std::string_view c, std::string_view m)
      : plugin(p), compile_id(c), message(m), level(l) {}
  void run(Napi::Env env, JsState* state) override {
    auto* log = static_cast<LogState*>(state);
    if (log == nullptr || log->fn.IsEmpty()) return;
    auto entry = Napi::Object::New(env);
    entry.Set("level", level_name(level));
    entry.Set("plugin", plugin);
    entry.Set("compileId", compile_id);
    entry.Set("message", message);
    log->fn.Call({entry});
  }
};

// What PluginHost's OperatorLog calls, from any thread, until the plugins
// are unloaded. Also keeps the warnings of a load, for its error message.
struct LogSink {
  std::shared_ptr<Channel> channel;
  std::mutex mu;
  bool loading = true;
  std::vector<std::string> load_notes;

  void operator()(std::string_view plugin, clsi_log_level level, std::string_view compile_id,
                  std::string_view message) noexcept {
    try {
      {
        std::lock_guard lock(mu);
        if (loading && level >= CLSI_LOG_WARNING)
          load_notes.push_back(std::string(plugin) + ": " + std::string(message));
      }
      channel->send(new LogMsg(plugin, level, compile_id, message));
    } catch (...) {
      // Out of memory: the line is lost, the plugin is not disturbed.
    }
  }
};

// ---- The host ---------------------------------------------------------------

struct CompileCore;

struct HostCore {
  std::shared_ptr<LogSink> log;
  std::unique_ptr<clsi::PluginHost> plugins;  // null once unloaded
  std::vector<std::string> names;
  std::vector<std::string> skipped;

  std::mutex mu;
  std::condition_variable cv;
  bool closing = false;
  int active = 0;  // compiles whose post-compile is not done
  std::vector<std::weak_ptr<CompileCore>> compiles;

  void compile_finished() {
    std::lock_guard lock(mu);
    --active;
    cv.notify_all();
  }
  // Waits for every compile, then unloads (on_destroy in reverse, dlclose).
  // `force`: first cancels every compile and runs the post-compile hooks of
  // those that wait for theirs (exit status -1), on this thread.
  void drain_and_unload(bool force);
};

// ---- One compile ------------------------------------------------------------

struct Line {
  std::string plugin, text;
};

Napi::Array lines_array(Napi::Env env, const std::vector<Line>& lines) {
  auto a = Napi::Array::New(env, lines.size());
  for (uint32_t i = 0; i < lines.size(); ++i)
    a.Set(i, lines[i].text);
  return a;
}

Napi::Object post_result(Napi::Env env, const std::vector<Line>& lines) {
  auto r = Napi::Object::New(env);
  r.Set("lines", lines_array(env, lines));
  return r;
}

// The event loop's half of a compile; shared by its channel and its
// NativeCompile, both of which drop it on the event loop.
struct CompileState : JsState {
  Napi::FunctionReference on_line;  // may be empty
  std::vector<Napi::Promise::Deferred> post_waiters;
  bool post_done = false;
  std::vector<Line> post_lines;
  std::string post_error;

  void settle_post(Napi::Env env) {
    post_done = true;
    auto waiters = std::exchange(post_waiters, {});
    for (auto& d : waiters) {
      if (!post_error.empty()) {
        d.Reject(make_error(env, post_error, "ERR_CLSI_POST_COMPILE").Value());
      } else {
        d.Resolve(post_result(env, post_lines));
      }
    }
  }
};

enum class Stage { kPre, kWaiting, kPost, kDone };

clsi::CompileOutcome outcome_of(const Napi::Value& v) {
  clsi::CompileOutcome outcome{0, false, 0};
  if (!v.IsObject()) return outcome;
  auto o = v.As<Napi::Object>();
  auto code = o.Get("exitCode");
  if (code.IsNumber()) outcome.exit_status = code.As<Napi::Number>().Int32Value();
  outcome.timed_out = o.Get("timedOut").ToBoolean().Value();
  auto ms = o.Get("durationMs");
  if (ms.IsNumber()) outcome.duration_ms = ms.As<Napi::Number>().Int64Value();
  return outcome;
}

struct CompileCore : std::enable_shared_from_this<CompileCore> {
  std::shared_ptr<HostCore> host;
  std::unique_ptr<clsi::HostCompile> hc;  // reset once post-compile is done
  std::string compile_id;
  std::shared_ptr<Channel> channel;  // lines and results; released after post-compile

  std::mutex mu;
  Stage stage = Stage::kPre;
  bool post_after_pre = false;
  clsi::CompileOutcome pending{-1, false, 0};

  std::mutex lines_mu;
  std::vector<Line> lines;  // of the hook that runs

  // Never post-compiled (the Node environment went away first, or nothing
  // ever asked): HostCompile's destructor runs post-compile here, on the
  // thread that drops the last reference, while every member it reaches
  // through on_line still lives. Its lines go nowhere then.
  ~CompileCore() {
    try {
      hc.reset();
    } catch (...) {
    }
  }

  // HostCompile's line sink: any thread, during a hook.
  void on_line(std::string_view plugin, std::string_view text) noexcept {
    struct LineMsg : Msg {
      std::string plugin, text;
      void run(Napi::Env env, JsState* state) override {
        auto* c = static_cast<CompileState*>(state);
        if (c != nullptr && !c->on_line.IsEmpty())
          c->on_line.Call({Napi::String::New(env, plugin), Napi::String::New(env, text)});
      }
    };
    try {
      auto m = std::make_unique<LineMsg>();
      m->plugin = plugin;
      m->text = text;
      std::lock_guard lock(lines_mu);  // one order for `lines` and the messages
      lines.push_back({m->plugin, m->text});
      channel->send(m.release());
    } catch (...) {
      // Out of memory: the line is lost, the plugin is not disturbed.
    }
  }

  std::vector<Line> take_lines() {
    std::lock_guard lock(lines_mu);
    return std::exchange(lines, {});
  }

  void cancel() {
    std::lock_guard lock(mu);
    if (hc) hc->cancel();
  }

  // Claims the post-compile: true when the caller is to run it now; when the
  // pre-compile still runs, its thread runs post-compile right after it.
  bool claim_post(const clsi::CompileOutcome& outcome) {
    std::lock_guard lock(mu);
    if (stage == Stage::kPre) {
      if (!post_after_pre) pending = outcome;
      post_after_pre = true;
      return false;
    }
    if (stage != Stage::kWaiting) return false;
    stage = Stage::kPost;
    return true;
  }

  // Post-compile once, on this thread (a thread that may block).
  void post_here(const clsi::CompileOutcome& outcome) {
    if (claim_post(outcome)) run_post(outcome);
  }

  // Post-compile once, on a thread of its own (from the event loop).
  void post_async(const clsi::CompileOutcome& outcome) {
    if (!claim_post(outcome)) return;
    auto self = shared_from_this();
    try {
      std::thread([self, outcome] { self->run_post(outcome); }).detach();
    } catch (...) {
      run_post(outcome);  // no thread to be had: better late, on the loop, than never
    }
  }

  void run_pre(Napi::Promise::Deferred deferred) {
    clsi::HostCompile::PreResult pre;
    std::vector<std::string> env;
    std::vector<clsi::EnvChange> changes;
    std::string failure;
    try {
      pre = hc->pre_compile();
      env = hc->environment();
      changes = hc->env_changes();
    } catch (...) {
      failure = what_of(std::current_exception());
    }
    auto lines = take_lines();
    bool post_now = false;
    clsi::CompileOutcome outcome;
    {
      std::lock_guard lock(mu);
      stage = Stage::kWaiting;
      if (post_after_pre) {
        stage = Stage::kPost;
        post_now = true;
        outcome = pending;
      }
    }
    auto self = shared_from_this();
    channel->send(new FnMsg([self, deferred, pre = std::move(pre), env = std::move(env),
                             changes = std::move(changes), lines = std::move(lines),
                             failure](Napi::Env e) mutable {
      {
        // Between the hooks the render runs: that alone keeps Node alive.
        std::lock_guard lock(self->mu);
        if (self->stage == Stage::kWaiting) self->channel->ref(e, false);
      }
      if (!failure.empty()) {
        deferred.Reject(make_error(e, "pre-compile failed in the plugin host: " + failure,
                                   "ERR_CLSI_PRE_COMPILE")
                            .Value());
        return;
      }
      auto r = Napi::Object::New(e);
      r.Set("status", pre.ok ? "ok" : "error");
      r.Set("failedPlugin", pre.ok ? e.Null() : Napi::String::New(e, pre.failed_plugin));
      auto plugins = Napi::Array::New(e, pre.statuses.size());
      for (uint32_t i = 0; i < pre.statuses.size(); ++i) {
        auto p = Napi::Object::New(e);
        p.Set("name", i < self->host->names.size() ? self->host->names[i] : std::string());
        p.Set("status", status_word(pre.statuses[i]));
        plugins.Set(i, p);
      }
      r.Set("plugins", plugins);
      auto envobj = Napi::Object::New(e);
      for (const auto& kv : env) {
        auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) continue;
        envobj.Set(kv.substr(0, eq), kv.substr(eq + 1));
      }
      r.Set("env", envobj);
      auto ch = Napi::Array::New(e, changes.size());
      for (uint32_t i = 0; i < changes.size(); ++i) {
        auto c = Napi::Object::New(e);
        c.Set("name", changes[i].name);
        c.Set("op", op_word(changes[i].op));
        c.Set("value",
              changes[i].op == CLSI_ENV_UNSET ? e.Null() : Napi::String::New(e, changes[i].value));
        c.Set("plugin", changes[i].plugin);
        ch.Set(i, c);
      }
      r.Set("changes", ch);
      r.Set("lines", lines_array(e, lines));
      r.Set("compileId", self->compile_id);
      deferred.Resolve(r);
    }));
    if (post_now) run_post(outcome);
  }

  void run_post(const clsi::CompileOutcome& outcome) {
    std::string failure;
    try {
      hc->post_compile(outcome);
    } catch (...) {
      failure = "post-compile failed in the plugin host: " + what_of(std::current_exception());
    }
    std::unique_ptr<clsi::HostCompile> done;
    {
      std::lock_guard lock(mu);
      done = std::move(hc);
      stage = Stage::kDone;
    }
    try {
      done.reset();  // post-compile ran: the destructor has nothing left to do
    } catch (...) {
    }
    struct PostDone : Msg {
      std::vector<Line> lines;
      std::string failure;
      void run(Napi::Env env, JsState* state) override {
        auto* c = static_cast<CompileState*>(state);
        if (c == nullptr) return;
        c->post_lines = std::move(lines);
        c->post_error = std::move(failure);
        c->settle_post(env);
      }
    };
    try {
      auto m = std::make_unique<PostDone>();
      m->lines = take_lines();
      m->failure = std::move(failure);
      channel->send(m.release());
    } catch (...) {
    }
    host->compile_finished();
    channel->release();
  }
};

void HostCore::drain_and_unload(bool force) {
  if (force) {
    std::vector<std::shared_ptr<CompileCore>> live;
    {
      std::lock_guard lock(mu);
      for (auto& w : compiles)
        if (auto c = w.lock()) live.push_back(std::move(c));
    }
    for (auto& c : live)
      c->cancel();
    for (auto& c : live)
      c->post_here({-1, false, 0});
  }
  std::unique_ptr<clsi::PluginHost> unload;
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return active == 0; });
    unload = std::move(plugins);
  }
  unload.reset();
  if (log) log->channel->release();
}

// Whether this Node environment is still running: false once it is being
// torn down (process exit, a worker ending), when finalizers leave plugins
// and compiles alone (the process is going; so are its locks).
using Alive = std::shared_ptr<std::atomic<bool>>;

// ---- JS classes ---------------------------------------------------------------

struct CompileInit {
  std::shared_ptr<CompileCore> core;
  std::shared_ptr<CompileState> state;
  Alive alive;
};

class NativeCompile : public Napi::ObjectWrap<NativeCompile> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeCompile",
                       {InstanceMethod<&NativeCompile::PostCompile>("postCompile"),
                        InstanceMethod<&NativeCompile::Cancel>("cancel"),
                        InstanceAccessor<&NativeCompile::Id>("compileId")});
  }
  explicit NativeCompile(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeCompile>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeCompile is made by NativeHost.startCompile");
    auto* init = info[0].As<Napi::External<CompileInit>>().Data();
    core_ = init->core;
    state_ = init->state;
    alive_ = init->alive;
  }
  ~NativeCompile() override {
    // Garbage-collected before its post-compile: that still runs, on a
    // thread of its own, and keeps Node alive until it is done.
    try {
      if (!core_ || !alive_ || !alive_->load()) return;
      {
        std::lock_guard lock(core_->mu);
        if (core_->stage == Stage::kWaiting) core_->channel->ref(Env(), true);
      }
      core_->post_async({-1, false, 0});
    } catch (...) {
    }
  }

 private:
  // postCompile({exitCode, timedOut, durationMs}) -> Promise<{lines}>; once:
  // a later call settles as the first did.
  Napi::Value PostCompile(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto deferred = Napi::Promise::Deferred::New(env);
    clsi::CompileOutcome outcome;
    try {
      outcome = outcome_of(info.Length() > 0 ? info[0] : env.Undefined());
      if (state_->post_done) {
        if (!state_->post_error.empty()) {
          deferred.Reject(make_error(env, state_->post_error, "ERR_CLSI_POST_COMPILE").Value());
        } else {
          deferred.Resolve(post_result(env, state_->post_lines));
        }
        return deferred.Promise();
      }
      state_->post_waiters.push_back(deferred);
      std::lock_guard lock(core_->mu);
      if (core_->stage == Stage::kWaiting) core_->channel->ref(env, true);
    } catch (const Napi::Error& e) {
      deferred.Reject(e.Value());
      return deferred.Promise();
    } catch (const std::exception& e) {
      deferred.Reject(
          make_error(env, std::string("postCompile: ") + e.what(), "ERR_CLSI_INTERNAL").Value());
      return deferred.Promise();
    }
    core_->post_async(outcome);
    return deferred.Promise();
  }

  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    core_->cancel();
    return info.Env().Undefined();
  }
  Napi::Value Id(const Napi::CallbackInfo& info) {
    return Napi::String::New(info.Env(), core_->compile_id);
  }

  std::shared_ptr<CompileCore> core_;
  std::shared_ptr<CompileState> state_;
  Alive alive_;
};

struct HostInit {
  std::shared_ptr<HostCore> core;
  Alive alive;
  Napi::FunctionReference* compile_ctor;
};

class NativeHost : public Napi::ObjectWrap<NativeHost> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "NativeHost",
                       {InstanceMethod<&NativeHost::StartCompile>("startCompile"),
                        InstanceMethod<&NativeHost::Close>("close"),
                        InstanceAccessor<&NativeHost::Plugins>("plugins"),
                        InstanceAccessor<&NativeHost::Skipped>("skipped")});
  }
  explicit NativeHost(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeHost>(info) {
    if (info.Length() < 1 || !info[0].IsExternal())
      throw Napi::TypeError::New(info.Env(), "NativeHost is made by load()");
    auto* init = info[0].As<Napi::External<HostInit>>().Data();
    core_ = init->core;
    alive_ = init->alive;
    compile_ctor_ = init->compile_ctor;
  }
  ~NativeHost() override {
    // Garbage-collected without close(): unload once its compiles are done,
    // off the event loop.
    try {
      if (!core_ || !alive_ || !alive_->load()) return;
      {
        std::lock_guard lock(core_->mu);
        if (core_->closing) return;
        core_->closing = true;
      }
      std::thread([core = core_] { core->drain_and_unload(false); }).detach();
    } catch (...) {
    }
  }

 private:
  // startCompile(request, onLine) -> [NativeCompile, Promise<result>]
  Napi::Value StartCompile(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject())
      throw Napi::TypeError::New(env, "preCompile: the compile request must be an object");
    auto o = info[0].As<Napi::Object>();
    clsi::CompileRequest req;
    req.project_id = get_string(env, o.Get("projectId"), "projectId");
    req.user_id = get_string(env, o.Get("userId"), "userId");
    req.compile_dir = get_string(env, o.Get("compileDir"), "compileDir");
    if (req.compile_dir.empty() || req.compile_dir[0] != '/')
      throw Napi::TypeError::New(env, "compileDir must be an absolute path");
    req.permissions = get_strings(env, o.Get("permissions"), "permissions");
    req.base_env = get_strings(env, o.Get("baseEnv"), "baseEnv");
    auto cid = o.Get("compileId");
    if (!cid.IsUndefined() && !cid.IsNull()) req.compile_id = get_string(env, cid, "compileId");
    auto left = o.Get("timeLeftMs");
    if (!left.IsUndefined() && !left.IsNull()) {
      if (!left.IsNumber()) throw Napi::TypeError::New(env, "timeLeftMs must be a number");
      double ms = left.As<Napi::Number>().DoubleValue();
      if (std::isnan(ms)) throw Napi::TypeError::New(env, "timeLeftMs must be a number");
      ms = std::clamp(ms, 0.0, 1e12);
      req.deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<long long>(ms));
    }
    auto state = std::make_shared<CompileState>();
    if (info.Length() > 1 && info[1].IsFunction())
      state->on_line = Napi::Persistent(info[1].As<Napi::Function>());

    auto core = std::make_shared<CompileCore>();
    core->host = core_;
    core->channel = Channel::open(env, "clsi-compile", state);
    bool counted = false;
    auto undo = [&] {
      {
        std::lock_guard lock(core->mu);
        core->stage = Stage::kDone;
        core->hc.reset();  // no hook ran: nothing to post-compile
      }
      core->channel->release();
      if (counted) core_->compile_finished();
    };
    Napi::Object wrapped;
    auto deferred = Napi::Promise::Deferred::New(env);
    try {
      {
        std::lock_guard lock(core_->mu);
        if (core_->closing || !core_->plugins)
          throw make_error(env, "the plugin host is closed", "ERR_CLSI_HOST_CLOSED");
        core->hc = std::make_unique<clsi::HostCompile>(
            *core_->plugins, std::move(req),
            [c = core.get()](std::string_view plugin, std::string_view line) {
              c->on_line(plugin, line);
            });
        core->compile_id = core->hc->compile_id();
        ++core_->active;
        counted = true;
        auto& list = core_->compiles;
        list.erase(std::remove_if(list.begin(), list.end(), [](auto& w) { return w.expired(); }),
                   list.end());
        list.push_back(core);
      }
      CompileInit init{core, state, alive_};
      wrapped = compile_ctor_->New({Napi::External<CompileInit>::New(env, &init)});
    } catch (const Napi::Error&) {
      undo();
      throw;
    } catch (...) {
      std::string why = what_of(std::current_exception());
      undo();
      throw make_error(env, "preCompile: " + why, "ERR_CLSI_INTERNAL");
    }
    try {
      std::thread([core, deferred] { core->run_pre(deferred); }).detach();
    } catch (...) {
      std::string why = what_of(std::current_exception());
      undo();
      throw make_error(env, "preCompile: cannot start a thread for the hooks: " + why,
                       "ERR_CLSI_INTERNAL");
    }
    auto result = Napi::Array::New(env, 2);
    result.Set(0u, wrapped);
    result.Set(1u, deferred.Promise());
    return result;
  }

  // close(force) -> Promise<void>
  Napi::Value Close(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    auto deferred = Napi::Promise::Deferred::New(env);
    bool force = info.Length() > 0 && info[0].ToBoolean().Value();
    {
      std::lock_guard lock(core_->mu);
      if (core_->closing) {
        deferred.Reject(
            make_error(env, "the plugin host is already closed", "ERR_CLSI_HOST_CLOSED").Value());
        return deferred.Promise();
      }
      core_->closing = true;
    }
    try {
      run_off_loop(env, "clsi-host-close", deferred, [core = core_, force]() -> Settle {
        core->drain_and_unload(force);
        return [](Napi::Env env, Napi::Promise::Deferred& d) { d.Resolve(env.Undefined()); };
      });
    } catch (...) {
      deferred.Reject(make_error(env,
                                 "close: cannot start a thread to unload the plugins: " +
                                     what_of(std::current_exception()),
                                 "ERR_CLSI_INTERNAL")
                          .Value());
    }
    return deferred.Promise();
  }

  Napi::Value Plugins(const Napi::CallbackInfo& info) {
    auto a = Napi::Array::New(info.Env(), core_->names.size());
    for (uint32_t i = 0; i < core_->names.size(); ++i)
      a.Set(i, core_->names[i]);
    return a;
  }
  Napi::Value Skipped(const Napi::CallbackInfo& info) {
    auto a = Napi::Array::New(info.Env(), core_->skipped.size());
    for (uint32_t i = 0; i < core_->skipped.size(); ++i)
      a.Set(i, core_->skipped[i]);
    return a;
  }

  std::shared_ptr<HostCore> core_;
  Alive alive_;
  Napi::FunctionReference* compile_ctor_ = nullptr;
};

class Addon : public Napi::Addon<Addon> {
 public:
  Addon(Napi::Env env, Napi::Object exports) : alive_(std::make_shared<std::atomic<bool>>(true)) {
    host_ctor_ = Napi::Persistent(NativeHost::Define(env));
    compile_ctor_ = Napi::Persistent(NativeCompile::Define(env));
    std::string abi =
        std::to_string(CLSI_PLUGIN_ABI_MAJOR) + "." + std::to_string(CLSI_PLUGIN_ABI_MINOR);
    DefineAddon(exports, {InstanceMethod<&Addon::Load>("load"),
                          InstanceValue("abiVersion", Napi::String::New(env, abi), napi_enumerable),
                          InstanceValue("pythonInstallPermission",
                                        Napi::String::New(env, CLSI_PERMISSION_PYTHON_INSTALL),
                                        napi_enumerable)});
    env.AddCleanupHook([alive = alive_] { alive->store(false); });
  }

 private:
  // load([{path, config, optional}], log) -> Promise<NativeHost>
  Napi::Value Load(const Napi::CallbackInfo& info) {
    auto env = info.Env();
    if (info.Length() < 1 || !info[0].IsArray())
      throw Napi::TypeError::New(env, "load: the plugins must be an array of {path, config}");
    auto arr = info[0].As<Napi::Array>();
    std::vector<clsi::PluginSpec> specs;
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      auto v = arr.Get(i);
      std::string at = "plugins[" + std::to_string(i) + "]";
      if (!v.IsObject()) throw Napi::TypeError::New(env, at + " must be an object");
      auto o = v.As<Napi::Object>();
      clsi::PluginSpec s;
      s.path = get_string(env, o.Get("path"), at + ".path");
      auto cfg = o.Get("config");
      if (!cfg.IsUndefined() && !cfg.IsNull()) s.config = get_string(env, cfg, at + ".config");
      s.optional = o.Get("optional").ToBoolean().Value();
      specs.push_back(std::move(s));
    }
    auto deferred = Napi::Promise::Deferred::New(env);
    auto log_state = std::make_shared<LogState>();
    if (info.Length() > 1 && info[1].IsFunction())
      log_state->fn = Napi::Persistent(info[1].As<Napi::Function>());
    auto sink = std::make_shared<LogSink>();
    sink->channel = Channel::open(env, "clsi-plugin-log", log_state);
    sink->channel->ref(env, false);  // the operator's log never keeps Node alive
    try {
      run_off_loop(env, "clsi-host-load", deferred,
                   [specs = std::move(specs), sink, alive = alive_, this]() -> Settle {
                     std::string why;
                     auto host = clsi::PluginHost::load(
                         specs,
                         [sink](std::string_view p, clsi_log_level l, std::string_view c,
                                std::string_view m) { (*sink)(p, l, c, m); },
                         why);
                     std::vector<std::string> notes;
                     {
                       std::lock_guard lock(sink->mu);
                       sink->loading = false;
                       notes = std::move(sink->load_notes);
                     }
                     if (!host) {
                       sink->channel->release();
                       for (const auto& n : notes)
                         why += "\n  " + n;
                       return [why](Napi::Env env, Napi::Promise::Deferred& d) {
                         d.Reject(make_error(env, why, "ERR_CLSI_PLUGIN_LOAD").Value());
                       };
                     }
                     auto core = std::make_shared<HostCore>();
                     core->log = sink;
                     for (std::size_t i = 0; i < host->size(); ++i)
                       core->names.push_back(host->name(i));
                     core->skipped = host->skipped();
                     core->plugins = std::move(host);
                     return [core, alive, this](Napi::Env env, Napi::Promise::Deferred& d) {
                       HostInit init{core, alive, &compile_ctor_};
                       d.Resolve(host_ctor_.New({Napi::External<HostInit>::New(env, &init)}));
                     };
                   });
    } catch (...) {
      sink->channel->release();
      deferred.Reject(make_error(env,
                                 "load: cannot start a thread to load the plugins: " +
                                     what_of(std::current_exception()),
                                 "ERR_CLSI_INTERNAL")
                          .Value());
    }
    return deferred.Promise();
  }

  Alive alive_;
  Napi::FunctionReference host_ctor_;
  Napi::FunctionReference compile_ctor_;
};

}  // namespace

NODE_API_ADDON(Addon)
