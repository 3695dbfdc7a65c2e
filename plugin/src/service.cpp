#include "service.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "builder.hpp"
#include "clsi/errno_text.hpp"
#include "eviction.hpp"
#include "installer.hpp"
#include "isolation.hpp"
#include "key.hpp"
#include "lock.hpp"
#include "pip_spare.hpp"
#include "requirements.hpp"
#include "store_trust.hpp"
#include "venv_state.hpp"

namespace clsi::venv {
namespace {

using oplog::Level;
using protocol::Cause;
using protocol::Clock;
using protocol::Event;

constexpr int kMaxConnections = 512;
constexpr auto kRequestTimeout = std::chrono::seconds(2);  // a client sends at once
constexpr auto kSendTimeout = std::chrono::seconds(10);
constexpr auto kTick = std::chrono::milliseconds(200);

bool is_key(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Event done_ok(const std::string& key) {
  Event e;
  e.event = "done";
  e.ok = true;
  e.key = key;
  return e;
}

Event done_failed(Cause cause, std::string reason, const std::string& key = {}) {
  Event e;
  e.event = "done";
  e.cause = cause;
  e.reason = std::move(reason);
  e.key = key;
  return e;
}

Event line_event(std::string text) {
  Event e;
  e.event = "line";
  e.text = std::move(text);
  return e;
}

std::string utc_time(std::int64_t t) {
  return format_utc(t, "%Y-%m-%d %H:%M:%S UTC");
}

}  // namespace

struct BuildService::Job {
  std::string key;
  std::vector<Requirement> requirements;
  InterpreterFacts python;
  protocol::BuildRequest asked;    // by the first compile (its ids, for the log)
  std::vector<std::string> lines;  // progress so far, each ending in '\n'
  bool started = false;
  bool finished = false;
  Event result;
};

BuildService::BuildService(Config config, ProcessRunner runner, LineSink oplog)
    : config_(std::move(config)),
      store_(config_.venvs_dir),
      runner_(std::move(runner)),
      oplog_(std::move(oplog)),
      probe_(store_.probes_dir(), store_.tmp_dir(), runner_) {}

BuildService::~BuildService() {
  request_stop();
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  if (gc_thread_.joinable()) gc_thread_.join();
  if (metrics_thread_.joinable()) metrics_thread_.join();
  for (auto& [id, t] : connection_threads_)  // run() joined them, unless it never ran
    if (t.joinable()) t.join();
}

Expected<bool> BuildService::start() {
  ::umask(022);
  // libzip turns each entry's DOS time into a time_t with mktime(), which
  // reads TZ again and, with TZ unset, frees and duplicates glibc's copy of
  // its name on every call: from two workers unpacking at once, a race under
  // glibc's own lock that ThreadSanitizer cannot see, and reports. TZ set to
  // what unset means (glibc's default, /etc/localtime) makes those calls
  // read only. Before any thread of the service starts.
  // NOLINTNEXTLINE(concurrency-mt-unsafe): no thread yet
  if (std::getenv("TZ") == nullptr) {
    (void)::setenv("TZ", ":/etc/localtime", 0);  // NOLINT(concurrency-mt-unsafe): no thread yet
  }
  ::tzset();
  const uid_t me = ::geteuid();
  struct stat st {};
  if (::lstat(store_.root().c_str(), &st) == 0 && !S_ISDIR(st.st_mode))
    return Error{store_.root() + " is not a directory"};
  if (auto ok = check_store_ownership(store_, me); !ok) return ok;
  if (auto l = store_.ensure_layout(); !l) return l;
  if (auto ok = check_store_ownership(store_, me); !ok) return ok;
  // One service per store: a second one would take builds from under the first.
  const std::string lock_path = store_.root() + "/service.lock";
  // No service can hold its lock through a symlink or a directory (neither
  // opens for writing without following): one in its place is removed.
  if (::lstat(lock_path.c_str(), &st) == 0 && (S_ISLNK(st.st_mode) || S_ISDIR(st.st_mode))) {
    std::error_code ec;
    std::filesystem::remove_all(lock_path, ec);
  }
  store_lock_.reset(
      ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  if (!store_lock_) return Error{"cannot open " + lock_path + ": " + clsi::errno_text(errno)};
  if (::fcntl(store_lock_.get(), F_OFD_SETLK, &fl) != 0)
    return Error{"another build service already serves the store " + store_.root()};
  if (auto l = restrict_leases(); !l) return l;
  // Nothing runs yet: what a killed service left in tmp/ (build directories
  // with pip's downloads) and trash/ is garbage.
  for (const auto& dir : {store_.tmp_dir(), store_.trash_dir()}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::error_code rm;
      std::filesystem::remove_all(e.path(), rm);
      if (!rm)
        op_log(Level::kInfo, "cleanup",
               "removed " + e.path().string() + ", left by an interrupted build");
    }
  }
  // pip's cache is the service's alone: nobody else reads or plants entries.
  if (::chmod(store_.pip_cache_dir().c_str(), 0700) != 0)
    return Error{"cannot make " + store_.pip_cache_dir() + " private: " + clsi::errno_text(errno)};

  const std::string& path = config_.service.socket;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return Error{"service.socket " + path + " is too long"};
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // Its directory, when missing (systemd's RuntimeDirectory= usually makes it).
  if (auto slash = path.rfind('/'); slash != std::string::npos && slash > 0) {
    std::string parent = path.substr(0, slash);
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
      return Error{"cannot create " + parent + " for service.socket: " + clsi::errno_text(errno)};
  }
  // A socket left by a service that died is replaced; a live one is not.
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Error{path + " exists and is not a socket"};
    auto probe = protocol::connect(path, Clock::now() + std::chrono::milliseconds(500));
    if (probe) return Error{"another build service already listens on " + path};
    ::unlink(path.c_str());
  }
  listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!listener_) return Error{std::string("cannot create a socket: ") + clsi::errno_text(errno)};
  if (::bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    return Error{"cannot listen on " + path + ": " + clsi::errno_text(errno)};
  // Anyone may connect; who may ask is decided per peer (SO_PEERCRED), so a
  // refused peer is told why instead of seeing EACCES.
  ::chmod(path.c_str(), 0666);
  if (::listen(listener_.get(), 128) != 0)
    return Error{"cannot listen on " + path + ": " + clsi::errno_text(errno)};
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) return Error{std::string("eventfd: ") + clsi::errno_text(errno)};

  // The counters go on from where the last run left them (metrics.json).
  started_at_ = static_cast<std::int64_t>(std::time(nullptr));
  if (auto l = metrics_.load(store_.metrics_state_path()); !l)
    op_log(Level::kWarning, "metrics", l.error());
  // Metrics are worth a warning, never a service that does not start.
  if (config_.service.metrics_address != "off") {
    auto http = MetricsHttpServer::listen(config_.service.metrics_address);
    if (http) {
      http_.emplace(std::move(*http));
    } else {
      op_log(Level::kError, "metrics", http.error() + "; metrics are not served over HTTP");
    }
  }

  if (config_.service.prestart_pip) {
    spares_ = std::make_unique<PipSpares>(
        store_.tmp_dir(), store_.dists_dir(),
        [this](std::string_view l) { op_log(Level::kWarning, "pip_spare", l); });
    spares_->prepare([this] { return probe_.facts(config_.base_python); });
  }
  for (int i = 0; i < config_.service.max_parallel_builds; ++i)
    workers_.emplace_back([this] { worker(); });
  gc_thread_ = std::thread([this] { gc_loop(); });
  metrics_thread_ = std::thread([this] { metrics_loop(); });
  op_log(Level::kInfo, "start",
         "listening on " + path + " for the store " + store_.root() + " as uid " +
             std::to_string(me) + " (" + std::to_string(config_.service.max_parallel_builds) +
             " parallel build(s))" +
             (http_ ? "; metrics on http://" + http_->address() + "/metrics" : std::string()) +
             (config_.service.metrics_textfile.empty()
                  ? std::string()
                  : "; metrics written to " + config_.service.metrics_textfile));
  return true;
}

// With service.lease_gid, locks/ and every lock file in it are the compile
// hosts' group's to read, nobody else's: a lease needs a descriptor of the
// lock file, so a render cannot take one.
Expected<bool> BuildService::restrict_leases() const {
  if (config_.service.lease_gid < 0) {
    op_log(Level::kWarning, "config",
           "service.lease_gid is not set: anyone who can read the store can hold a "
           "venv's lease and keep it from being evicted or rebuilt");
    return true;
  }
  const auto gid = static_cast<gid_t>(config_.service.lease_gid);
  auto restrict = [&](const std::string& path, mode_t mode) -> Expected<bool> {
    if (::lchown(path.c_str(), static_cast<uid_t>(-1), gid) != 0 ||
        ::chmod(path.c_str(), mode) != 0) {
      return Error{
          "cannot give " + path + " to group " + std::to_string(gid) +
          " (service.lease_gid; the service's user must be a member): " + clsi::errno_text(errno)};
    }
    return true;
  };
  const std::string locks = store_.root() + "/locks";
  if (auto r = restrict(locks, 0750); !r) return r;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(locks, ec)) {
    if (e.is_regular_file(ec))
      if (auto r = restrict(e.path().string(), 0640); !r) return r;
  }
  return true;
}

void BuildService::request_stop() {
  if (stopping_.exchange(true)) return;
  {
    std::lock_guard lock(mu_);  // no waiter misses the flag
  }
  cv_.notify_all();
  if (wake_) {
    std::uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof one);
  }
}

void BuildService::run() {
  while (!stopping()) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, 1000) > 0 && (fds[0].revents & POLLIN)) accept_one();
    join_ended_connections();
  }
  op_log(Level::kInfo, "stop", "stopping: running builds are stopped and removed");
  listener_.reset();
  ::unlink(config_.service.socket.c_str());
  for (auto& w : workers_)
    if (w.joinable()) w.join();
  spares_.reset();  // no pip waits for a build that will not come
  if (gc_thread_.joinable()) gc_thread_.join();
  // Builds still queued get an answer.
  {
    std::lock_guard lock(mu_);
    for (auto& job : queue_) {
      job->finished = true;
      job->result =
          done_failed(Cause::kService, "the build service stopped before building it", job->key);
    }
    queue_.clear();
    jobs_.clear();
  }
  cv_.notify_all();
  // Connections still open are cut, so their threads end promptly; they use
  // this object, so run() returns only when every one has been joined.
  std::unique_lock lock(mu_);
  for (int fd : live_)
    ::shutdown(fd, SHUT_RDWR);
  cv_.wait(lock, [&] { return connections_ == 0; });
  lock.unlock();
  join_ended_connections();
  if (metrics_thread_.joinable()) metrics_thread_.join();  // it saves the counters last
  op_log(Level::kInfo, "stop", "stopped");
}

bool BuildService::allowed(const Peer& peer) const {
  if (peer.uid == ::geteuid()) return true;
  const auto& uids = config_.service.allowed_uids;
  const auto& gids = config_.service.allowed_gids;
  return std::find(uids.begin(), uids.end(), peer.uid) != uids.end() ||
         std::find(gids.begin(), gids.end(), peer.gid) != gids.end();
}

void BuildService::accept_one() {
  UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  if (!fd) return;
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
  Peer peer{cred.pid, cred.uid, cred.gid};
  protocol::LineChannel ch(std::move(fd));
  auto refuse = [&](const std::string& why) {
    Event e;
    e.event = "error";
    e.reason = why;
    ch.send(protocol::encode(e), Clock::now() + std::chrono::seconds(1));
  };
  if (!allowed(peer)) {
    // Said once a minute per uid: a flood of refused peers must not flood the log.
    auto now = Clock::now();
    auto& last = refusals_logged_[peer.uid];
    if (last == Clock::time_point() || now - last > std::chrono::minutes(1)) {
      last = now;
      op_log(Level::kWarning, "refused",
             "refused connections from uid " + std::to_string(peer.uid) + " gid " +
                 std::to_string(peer.gid) +
                 " (not in service.allowed_uids or service.allowed_gids)");
    }
    metrics_.refused("peer");
    return refuse("uid " + std::to_string(peer.uid) +
                  " may not use this build service (service.allowed_uids / allowed_gids)");
  }
  // A compile's report (`used`) is answered here when the whole request is
  // already in: a stat, a utimensat and an append, cheaper than a thread of
  // its own, and the most common of requests (one per compile). Anything
  // else, or a request still on its way, gets a thread.
  auto first = ch.receive(Clock::now());
  if (first) {
    if (auto request = protocol::decode_request(*first); request && request->op == "used")
      return serve_used(ch, request->used);
  }
  const int raw = ch.fd();
  const std::uint64_t id = next_connection_++;
  {
    std::lock_guard lock(mu_);
    if (connections_ >= kMaxConnections) {
      metrics_.refused("busy");
      return refuse("the build service is busy");
    }
    ++connections_;
    live_.insert(raw);
  }
  auto done = [this, raw, id] {
    std::lock_guard lock(mu_);
    --connections_;
    live_.erase(raw);
    ended_connections_.push_back(id);
    cv_.notify_all();
  };
  try {
    connection_threads_.emplace(
        id, std::thread([this, ch = std::move(ch), first = std::move(first), peer, done]() mutable {
          serve(ch, peer, std::move(first));
          done();
        }));
  } catch (const std::system_error& e) {  // out of threads (a pids limit)
    done();
    op_log(Level::kError, "error", std::string("cannot serve a connection: ") + e.what());
  }
}

// Joins the threads of connections that have been served (each is at its
// very end, so this does not wait), from the accept thread.
void BuildService::join_ended_connections() {
  std::vector<std::uint64_t> ended;
  {
    std::lock_guard lock(mu_);
    ended.swap(ended_connections_);
  }
  for (auto id : ended) {
    auto it = connection_threads_.find(id);
    if (it == connection_threads_.end()) continue;
    if (it->second.joinable()) it->second.join();
    connection_threads_.erase(it);
  }
}

void BuildService::serve(protocol::LineChannel& ch, Peer peer, std::optional<std::string> line) {
  if (!line) line = ch.receive(Clock::now() + kRequestTimeout, [this] { return stopping(); });
  if (!line) return;
  auto request = protocol::decode_request(*line);
  if (!request) {
    metrics_.refused("bad_request");
    Event e;
    e.event = "error";
    e.reason = request.error();
    ch.send(protocol::encode(e), Clock::now() + kSendTimeout);
    return;
  }
  if (request->op == "build") return serve_build(ch, request->build, peer);
  if (request->op == "used") return serve_used(ch, request->used);
  if (request->op == "counters") {  // clsi-venvs stats: the live counters
    Event e;
    e.event = "counters";
    e.text = metrics::to_json(metrics_.snapshot());
    ch.send(protocol::encode(e), Clock::now() + kSendTimeout);
    return;
  }
  if (request->op == "status") {
    Event e;
    e.event = "status";
    {
      std::lock_guard lock(mu_);
      e.running = running_;
      e.queued = static_cast<int>(queue_.size());
      e.max_running_seen = max_running_seen_;
    }
    ch.send(protocol::encode(e), Clock::now() + kSendTimeout);
  }
}

void BuildService::serve_used(protocol::LineChannel& ch, const protocol::UseReport& report) {
  const bool used =
      report.outcome == protocol::Outcome::kHit || report.outcome == protocol::Outcome::kReady;
  if (used && is_key(report.key) && store_.is_complete(report.key)) {
    store_.touch(report.key);  // last use, for LRU eviction
    store_.append_event(report.outcome == protocol::Outcome::kHit ? "hit" : "use", report.key);
  }
  metrics_.outcome(report.outcome);
  ch.send(protocol::encode(done_ok(report.key)), Clock::now() + kSendTimeout);
}

void BuildService::serve_build(protocol::LineChannel& ch, const protocol::BuildRequest& request,
                               const Peer& peer) {
  auto send = [&](const Event& e) {
    return ch.send(protocol::encode(e), Clock::now() + kSendTimeout);
  };
  // The request's lines are untrusted like the file they came from.
  std::string text;
  for (const auto& l : request.requirements)
    text += l + "\n";
  auto parsed =
      parse_requirements(text, {config_.require_hashes, config_.caps.max_requirement_lines});
  if (!parsed.refusals.empty() || parsed.requirements.empty()) {
    metrics_.refused("bad_request");
    std::string why =
        parsed.requirements.empty()
            ? "the request lists no packages"
            : "the build service refused " + format_refusal("request", parsed.refusals[0]);
    send(done_failed(Cause::kRequirements, why));
    return;
  }
  if (auto l = store_.ensure_layout(); !l) {
    send(done_failed(Cause::kService, l.error()));
    return;
  }
  auto python = probe_.facts(config_.base_python);
  if (!python) {
    op_log(Level::kWarning, "probe", python.error());
    send(done_failed(Cause::kService, python.error()));
    return;
  }
  const std::string key =
      KeyCache(store_.keys_dir()).key_for(key_material(parsed.requirements, *python, config_));
  std::vector<std::string> canonical;
  for (const auto& r : parsed.requirements)
    canonical.push_back(r.canonical);
  const std::string id = short_key(key);
  // Hits and misses are compiles' lookups; warm and rewarm are not.
  const bool counted = request.origin == protocol::Origin::kCompile;

  std::shared_ptr<Job> job;
  std::size_t cursor = 0;
  bool created = false;
  {
    std::lock_guard lock(mu_);
    if (auto it = jobs_.find(key); it != jobs_.end()) {
      job = it->second;
      cursor = job->lines.size();
    }
  }
  if (job && counted) metrics_.miss();  // following a build under way
  if (!job) {
    auto check = check_venv(store_, ::geteuid(), key, canonical);
    // A compile can lease it only through a lock file that is a regular file;
    // the build below makes one, and finds the venv complete.
    struct stat lock_st {};
    if (check.state == VenvState::kUsable &&
        ::lstat(store_.lock_path(key).c_str(), &lock_st) == 0 && S_ISREG(lock_st.st_mode)) {
      store_.append_event("hit", key);
      if (counted) metrics_.hit();
      send(done_ok(key));
      return;
    }
    if (counted) metrics_.miss();
    if (check.state == VenvState::kUntrusted)
      op_log({Level::kWarning, "service", "rebuild", request.compile_id, request.project_id,
              request.user_id, key, std::nullopt, "untrusted",
              "environment " + id + " is rebuilt: " + check.why});
    if (auto f = store_.recent_failure(key, config_.retry_failed_after_s)) {
      auto remembered = decode_failure(f->reason);  // with its problems (builder.hpp)
      Event e =
          done_failed(Cause::kRequirements,
                      "the last build of environment " + id + " failed at " + utc_time(f->at) +
                          ": " + remembered.reason + "; it is tried again after " +
                          utc_time(f->retry_at) + ", or at once when the requirements change",
                      key);
      e.problems = std::move(remembered.problems);
      send(e);
      return;
    }
    std::lock_guard lock(mu_);
    if (stopping()) {
      send(done_failed(Cause::kService, "the build service is stopping", key));
      return;
    }
    if (auto it = jobs_.find(key); it != jobs_.end()) {
      job = it->second;
      cursor = job->lines.size();
    } else {
      job = std::make_shared<Job>();
      job->key = key;
      job->requirements = parsed.requirements;
      job->python = *python;
      job->asked = request;
      job->asked.requirements.clear();
      jobs_[key] = job;
      queue_.push_back(job);
      created = true;
      store_.append_event("miss", key);
      op_log({Level::kInfo,
              "service",
              "queued",
              request.compile_id,
              request.project_id,
              request.user_id,
              key,
              std::nullopt,
              {},
              "queued environment " + id + " for project " + request.project_id + " (uid " +
                  std::to_string(peer.uid) + ")"});
    }
  }
  // Sent once the build is queued: a compile that has already given up must
  // not keep the build from happening.
  Event k;
  k.event = "key";
  k.key = key;
  if (!send(k)) return;
  if (!created) {
    if (!send(line_event("[python-venv] another compile is already building environment " + id +
                         "; waiting for it\n")))
      return;
  }
  cv_.notify_all();

  int last_position = -1;
  std::unique_lock lock(mu_);
  for (;;) {
    std::vector<std::string> fresh(job->lines.begin() + static_cast<std::ptrdiff_t>(cursor),
                                   job->lines.end());
    cursor = job->lines.size();
    int position = 0;
    if (!job->started) {
      auto it = std::find(queue_.begin(), queue_.end(), job);
      position = it == queue_.end() ? 0 : static_cast<int>(it - queue_.begin()) + 1;
    }
    bool finished = job->finished;
    Event result = job->result;
    const std::size_t queued = queue_.size();
    const bool started = job->started;
    lock.unlock();
    for (auto& l : fresh)
      if (!send(line_event(std::move(l)))) return;  // the compile went away; the build goes on
    if (position > 0 && position != last_position) {
      Event q;
      q.event = "queued";
      q.position = position;
      if (!send(q)) return;
      last_position = position;
    }
    if (finished) {
      send(result);
      return;
    }
    lock.lock();
    // What changed while the lines above were sent is not waited for: a
    // notify_all() then found no one waiting (the last line, then the
    // result, came 200 ms late to one compile in two). The tick is the
    // backstop for what no notify tells (stopping()).
    cv_.wait_for(lock, kTick, [&] {
      return job->finished || job->lines.size() > cursor || job->started != started ||
             queue_.size() != queued;
    });
  }
}

void BuildService::worker() {
  for (;;) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping() || !queue_.empty(); });
      if (stopping()) return;
      job = queue_.front();
      queue_.pop_front();
      job->started = true;
      ++running_;
      max_running_seen_ = std::max(max_running_seen_, running_);
    }
    cv_.notify_all();
    // Room first: a build into a volume that is (nearly) full fails halfway
    // and takes other writers down with it. Refused, it is the service's
    // problem, and the compile falls back saying so.
    // The check alone needs no lock: a build does not wait for an eviction
    // pass (the first one of a service walks every venv) unless it must.
    Expected<bool> room = true;
    if (!room_enough(config_, store_)) {
      std::lock_guard gc(gc_mu_);
      room = make_room(config_, store_, {job->key}, gc_log(), &sizes_);
    }
    Event result;
    if (!room) {
      metrics_.refused("low_disk");
      op_log({Level::kError, "service", "refused", job->asked.compile_id, job->asked.project_id,
              job->asked.user_id, job->key, std::nullopt, "low_disk", room.error()});
      result = done_failed(Cause::kService, room.error(), job->key);
    } else {
      result = build(*job);
    }
    const bool built = result.ok;
    {
      std::lock_guard lock(mu_);  // waiters read result once finished is set
      job->result = std::move(result);
      --running_;
      job->finished = true;
      jobs_.erase(job->key);
    }
    cv_.notify_all();
    // The next build's pip starts now, on the spares' own thread.
    if (spares_ && !stopping()) spares_->prepare([python = job->python] { return python; });
    // Then eviction, on the eviction thread, once the key's lock is released
    // and the waiting compiles are told: neither they nor the next build wait
    // for store-wide work (a walk of every venv, in a service that has just
    // started). The venvs just built are kept; one a compile uses is leased
    // (a compile told `ready` waits a moment for its lease when the pass
    // holds its key's lock: VenvPlugin::ask_service).
    if (built) {
      {
        std::lock_guard lock(mu_);
        evict_keep_.insert(job->key);
      }
      cv_.notify_all();
    }
  }
}

// Returns the answer for everyone waiting; the worker publishes it.
Event BuildService::build(Job& job) {
  const std::string id = short_key(job.key);
  UniqueFd log;  // logs/<key>.log, opened once the key's lock is held
  auto sink = [&](std::string_view line) {
    std::string l(line);
    l += '\n';
    if (log) (void)!::write(log.get(), l.data(), l.size());
    {
      std::lock_guard lock(mu_);
      job.lines.push_back(std::move(l));
    }
    cv_.notify_all();
  };
  // Everything pip says, for the operator only: compiles get `sink`'s lines.
  auto detail = [&](std::string_view line) {
    std::string l(line);
    l += '\n';
    if (log) (void)!::write(log.get(), l.data(), l.size());
  };
  auto fail = [&](Cause cause, const std::string& why) {
    op_log({Level::kWarning, "service", "build_failed", job.asked.compile_id, job.asked.project_id,
            job.asked.user_id, job.key, std::nullopt,
            cause == Cause::kRequirements ? "requirements" : "service",
            "environment " + id +
                (cause == Cause::kRequirements
                     ? ": "
                     : " could not be built for a reason of the service's: ") +
                why});
    return done_failed(cause, why, job.key);
  };
  // Only a regular lock file is ever locked (KeyLock): anything else in its
  // place (a symlink, a FIFO, a directory) holds no lease and is replaced.
  struct stat lock_st {};
  if (::lstat(store_.lock_path(job.key).c_str(), &lock_st) == 0 && !S_ISREG(lock_st.st_mode)) {
    std::error_code ec;
    std::filesystem::remove_all(store_.lock_path(job.key), ec);
  }
  auto lock = KeyLock::open(store_.lock_path(job.key), true);
  if (!lock) return fail(Cause::kService, lock.error());
  if (config_.service.lease_gid >= 0 &&
      (::fchown(lock->fd(), static_cast<uid_t>(-1),
                static_cast<gid_t>(config_.service.lease_gid)) != 0 ||
       ::fchmod(lock->fd(), 0640) != 0)) {
    return fail(Cause::kService, "cannot give the lock file of " + id +
                                     " to service.lease_gid: " + clsi::errno_text(errno));
  }
  // Renders of a venv being replaced hold shared leases: wait for them a
  // while (they end with their compiles), not for ever, so that a lease held
  // on purpose cannot take a build slot for long.
  auto deadline = Clock::now() + std::chrono::seconds(std::min(config_.caps.install_timeout_s, 60));
  while (!lock->try_lock(KeyLock::Mode::kExclusive)) {
    if (lock->stale()) {  // eviction deleted it under its lock: the new one is ours
      lock = KeyLock::open(store_.lock_path(job.key), true);
      if (!lock) return fail(Cause::kService, lock.error());
      continue;
    }
    if (stopping()) return fail(Cause::kService, "the build service is stopping");
    if (Clock::now() >= deadline) {
      metrics_.build_failed(Cause::kService);
      return fail(Cause::kService, "environment " + id + " stayed in use; it was not rebuilt");
    }
    std::this_thread::sleep_for(kTick);
  }
  // Under the lock, so eviction (which removes the logs of gone keys under
  // their locks) leaves this one be.
  log.reset(::open(store_.build_log_path(job.key).c_str(),
                   O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0644));
  struct stat log_st {};
  if (log && (::fstat(log.get(), &log_st) != 0 || !S_ISREG(log_st.st_mode))) log.reset();
  std::vector<std::string> canonical;
  for (const auto& r : job.requirements)
    canonical.push_back(r.canonical);
  if (check_venv(store_, ::geteuid(), job.key, canonical).state == VenvState::kUsable) {
    return done_ok(job.key);
  }
  BuildRequest req{job.key, job.requirements, job.python, {}, {}};
  set_install_deadline(config_, req);
  // Stopping the service stops pip at once, started ahead or not: every
  // poll hook of the build asks.
  auto or_stopping = [this](const PollHook& hook) -> PollHook {
    return [this, &hook]() -> std::string {
      if (stopping()) return "the build service is stopping";
      return hook ? hook() : std::string();
    };
  };
  ProcessRunner runner = [this, or_stopping](const SpawnOptions& o, Deadline d, const LineSink& s,
                                             const PollHook& hook) {
    return runner_(o, d, s, or_stopping(hook));
  };
  ResolveAhead ahead;
  if (spares_) {
    ahead = [this, or_stopping](const InterpreterFacts& python,
                                const std::vector<std::string>& args, Deadline d, const LineSink& s,
                                const PollHook& hook, const LineSink& note) {
      return spares_->run(python, args, d, s, or_stopping(hook), note);
    };
  }
  auto start = Clock::now();
  auto out = build_locked(
      config_, store_, runner, req, sink, [this] { return stopping(); }, detail, ahead);
  double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (out.ok) {
    metrics_.built(secs);
    op_log({Level::kInfo,
            "service",
            "built",
            job.asked.compile_id,
            job.asked.project_id,
            job.asked.user_id,
            job.key,
            secs,
            {},
            "built environment " + id + " in " + std::to_string(secs) + " s"});
    return done_ok(job.key);
  }
  if (stopping()) return fail(Cause::kService, "the build service stopped during the build");
  metrics_.build_failed(out.service_fault ? Cause::kService : Cause::kRequirements);
  if (out.service_fault) return fail(Cause::kService, out.failure);
  // The operator's log has it in full; compiles get the user's words and
  // the problems to annotate their lines with.
  Event e = fail(Cause::kRequirements, out.failure);
  e.reason = out.summary.empty() ? out.failure : out.summary;
  e.problems = std::move(out.problems);
  return e;
}

void BuildService::gc_loop() {
  const bool scheduled = config_.eviction.gc_interval_s > 0;
  const auto interval = std::chrono::seconds(std::max(config_.eviction.gc_interval_s, 1));
  auto next = Clock::now() + interval;
  std::unique_lock lock(mu_);
  while (!stopping()) {
    if (!scheduled) next = Clock::now() + std::chrono::hours(1);  // woken by builds only
    cv_.wait_until(lock, next, [&] { return stopping() || !evict_keep_.empty(); });
    if (stopping()) return;
    if (!evict_keep_.empty()) {  // after builds: one pass for all that ended meanwhile
      auto keep = std::move(evict_keep_);
      evict_keep_.clear();
      lock.unlock();
      {
        std::lock_guard gc(gc_mu_);
        counted_gc(evict_after_build(config_, store_, keep, gc_log(), &sizes_));
      }
      lock.lock();
      continue;
    }
    if (!scheduled || Clock::now() < next) continue;
    lock.unlock();
    std::unique_lock gc(gc_mu_);
    auto report = collect_garbage(store_, gc_options(config_), &sizes_);
    gc.unlock();
    for (const auto& l : report.lines)
      op_log(report.error.empty() ? Level::kInfo : Level::kError, "gc", "gc: " + l);
    for (const auto& key : report.removed)
      store_.append_event("evict", key);
    counted_gc(report);
    next = Clock::now() + interval;
    lock.lock();
  }
}

void BuildService::counted_gc(const GcReport& report) {
  if (!report.error.empty() || (report.lines.empty() && report.removed.empty())) return;
  metrics_.gc_ran(static_cast<std::int64_t>(std::time(nullptr)));
  metrics_.evicted(report.removed.size());
}

void BuildService::op_log(oplog::Entry e) const {
  e.source = "service";
  oplog_(oplog::line(e));
}

LineSink BuildService::gc_log() const {
  return [this](std::string_view l) { op_log(Level::kInfo, "gc", l); };
}

void BuildService::op_log(Level level, std::string_view event, std::string_view message) const {
  oplog::Entry e;
  e.level = level;
  e.event = event;
  e.message = message;
  op_log(e);
}

HttpResponse BuildService::scrape() {
  HttpResponse r;
  auto usage = measure_store(store_, &sizes_);
  if (!usage) {
    // Zeros would read as an empty store; a failed scrape reads as what it is.
    r.status = 503;
    r.content_type = "text/plain; charset=utf-8";
    r.body = usage.error() + "\n";
    return r;
  }
  metrics::Gauges g;
  {
    std::lock_guard lock(mu_);
    g.running = running_;
    g.queued = static_cast<int>(queue_.size());
  }
  g.budget_bytes = config_.eviction.max_total_mb * 1024 * 1024;
  g.pip_cache_max_bytes = config_.eviction.max_pip_cache_mb * 1024 * 1024;
  g.min_free_bytes = config_.eviction.min_free_mb * 1024 * 1024;
  if (auto f = free_bytes(store_.root())) g.free_bytes = *f;
  g.start_time = started_at_;
  r.body = metrics::render(metrics_.snapshot(), g, *usage);
  return r;
}

// metrics.json, and the textfile when configured: what a restart, or a
// node exporter, reads. A textfile of a store that cannot be read is removed,
// not left with old numbers.
void BuildService::publish_metrics() {
  if (auto s = metrics_.save(store_.metrics_state_path()); !s && !textfile_failing_)
    op_log(Level::kWarning, "metrics", "cannot keep the counters: " + s.error());
  const std::string& path = config_.service.metrics_textfile;
  if (path.empty()) return;
  auto r = scrape();
  Expected<bool> written = true;
  if (r.status == 200) {
    written = write_file_atomically(path, r.body);
  } else {
    (void)::unlink(path.c_str());
    written = Error{r.body.substr(0, r.body.size() - 1) + "; " + path + " removed"};
  }
  if (!written && !textfile_failing_) op_log(Level::kError, "metrics", written.error());
  if (written && textfile_failing_) op_log(Level::kInfo, "metrics", "writing " + path + " again");
  textfile_failing_ = !written;
}

void BuildService::metrics_loop() {
  const auto interval = std::chrono::seconds(config_.service.metrics_interval_s);
  auto next = Clock::now();  // the textfile at once, so that it is there from the start
  while (!stopping()) {
    if (Clock::now() >= next) {
      publish_metrics();
      next = Clock::now() + interval;
    }
    pollfd fds[2] = {{wake_.get(), POLLIN, 0}, {http_ ? http_->fd() : -1, POLLIN, 0}};
    auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next - Clock::now());
    int n = ::poll(fds, 2, static_cast<int>(std::clamp<long long>(wait.count(), 0, 1000)));
    if (n > 0 && (fds[1].revents & POLLIN) && !stopping())
      http_->serve_one([this] { return scrape(); });
  }
  publish_metrics();  // the last counts of this run
}

}  // namespace clsi::venv
