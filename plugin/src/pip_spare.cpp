#include "pip_spare.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"
#include "isolation.hpp"
#include "pip_resolve_shim.hpp"

namespace clsi::venv {
namespace {

using Clock = std::chrono::steady_clock;

// What a spare that ended wrote, for the operator: its last lines, at most
// 2,000 bytes, on one line ("" when nothing).
std::string said_by(int fd) {
  if (fd < 0) return {};
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) {
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > 65536) text.erase(0, text.size() - 65536);
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r'))
    text.pop_back();
  if (text.size() > 2000) text = "..." + text.substr(text.size() - 2000);
  for (auto& c : text)
    if (c == '\n' || c == '\r') c = '|';
  return text.empty() ? std::string() : ": " + text;
}

bool same_interpreter(const InterpreterFacts& a, const InterpreterFacts& b) {
  return a.real_path == b.real_path && a.version == b.version && a.pip_version == b.pip_version &&
         a.identity.fingerprint() == b.identity.fingerprint();
}

}  // namespace

struct PipSpares::Spare {
  // Declared first, so destroyed last: the directory goes once the process has.
  PrivateWorkdir work;
  InterpreterFacts python;
  Child child;
  UniqueFd request;  // our end of its stdin
  Clock::time_point started;
  struct stat root {};  // its directory when it was made

  // Its directory is still the one it was started in, with what pip uses in
  // it (tmp/ of the store is the operator's to clean, or a crash's to lose).
  [[nodiscard]] bool intact() const {
    struct stat now {};
    if (::lstat(work.root().c_str(), &now) != 0 || now.st_dev != root.st_dev ||
        now.st_ino != root.st_ino)
      return false;
    for (const auto& d : {work.tmp(), work.home(), work.cwd()})
      if (::lstat(d.c_str(), &now) != 0 || !S_ISDIR(now.st_mode)) return false;
    return true;
  }
};

PipSpares::PipSpares(std::string tmp_dir, std::string dists_dir, LineSink oplog,
                     std::chrono::milliseconds max_idle)
    : tmp_dir_(std::move(tmp_dir)),
      dists_dir_(std::move(dists_dir)),
      oplog_(std::move(oplog)),
      max_idle_(max_idle) {
  thread_ = std::thread([this] { keep(); });
}

PipSpares::~PipSpares() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PipSpares::prepare(std::function<Expected<InterpreterFacts>()> facts) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    wanted_.push_back(std::move(facts));
  }
  cv_.notify_all();
}

std::size_t PipSpares::count() const {
  std::lock_guard lock(mu_);
  return spares_.size();
}

std::unique_ptr<PipSpares::Spare> PipSpares::start(const InterpreterFacts& python) const {
  auto work = PrivateWorkdir::create(tmp_dir_, "pip-spare");
  if (!work) return nullptr;
  int pair[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) return nullptr;
  UniqueFd ours(pair[0]);
  UniqueFd theirs(pair[1]);
  SpawnOptions o;
  o.executable = python.real_path;
  o.args = pip_spare_launcher(work->root() + "/venv", dists_dir_);
  o.env = isolated_environment(*work);
  o.cwd = work->cwd();
  o.input_fd = theirs.get();
  std::error_code ec;
  struct stat root {};
  if (::lstat(work->root().c_str(), &root) != 0) return nullptr;
  auto child = Child::spawn(o, ec);
  if (!child) return nullptr;
  ::shutdown(ours.get(), SHUT_RD);
  return std::unique_ptr<Spare>(
      new Spare{std::move(*work), python, std::move(*child), std::move(ours), Clock::now(), root});
}

void PipSpares::keep() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Spares nobody used for a while, or whose process has ended, go.
    auto next_check = Clock::now() + max_idle_;
    std::vector<std::unique_ptr<Spare>> gone;
    std::vector<std::string> said;
    for (auto it = spares_.begin(); it != spares_.end();) {
      const auto expires = it->second->started + max_idle_;
      if (auto status = it->second->child.try_wait()) {
        failed_[it->first] = Clock::now() + max_idle_;
        said.push_back("a pip started ahead for " + it->first +
                       " ended by itself before a build used it (exit status " +
                       std::to_string(Child::shell_status(*status)) +
                       "); builds start their own pip for a while" +
                       said_by(it->second->child.output_fd()));
        gone.push_back(std::move(it->second));
        it = spares_.erase(it);
      } else if (Clock::now() >= expires) {
        gone.push_back(std::move(it->second));
        it = spares_.erase(it);
      } else {
        next_check = std::min(next_check, expires);
        ++it;
      }
    }
    if (!gone.empty()) {
      lock.unlock();
      gone.clear();  // kills and reaps each, removes its directory
      for (const auto& line : said)
        if (oplog_) oplog_(line);
      lock.lock();
      continue;
    }
    if (wanted_.empty()) {
      // Woken at the first expiry, and at least every second: a spare that
      // ends by itself is seen (and told) soon.
      next_check = std::min(next_check, Clock::now() + std::chrono::seconds(1));
      cv_.wait_until(lock, next_check, [&] { return stopping_ || !wanted_.empty(); });
      continue;
    }
    auto facts = std::move(wanted_.front());
    wanted_.erase(wanted_.begin());
    lock.unlock();
    auto python = facts();
    lock.lock();
    // A pip that cannot resolve first installs, and needs no spare.
    if (!python || !pip_resolves_first(python->pip_version) ||
        spares_.count(python->real_path) != 0)
      continue;
    if (auto f = failed_.find(python->real_path); f != failed_.end()) {
      if (Clock::now() < f->second) continue;
      failed_.erase(f);
    }
    lock.unlock();
    auto spare = start(*python);
    lock.lock();
    if (spare && !stopping_) spares_.emplace(python->real_path, std::move(spare));
    if (stopping_) {
      lock.unlock();
      spare.reset();
      lock.lock();
    }
  }
  auto all = std::move(spares_);
  spares_.clear();
  lock.unlock();
  all.clear();
}

std::optional<RunOutcome> PipSpares::run(const InterpreterFacts& python,
                                         const std::vector<std::string>& pip_args,
                                         Deadline deadline, const LineSink& on_line,
                                         const PollHook& poll_hook, const LineSink& note) {
  std::unique_ptr<Spare> spare;
  {
    std::lock_guard lock(mu_);
    auto it = spares_.find(python.real_path);
    if (it == spares_.end()) return std::nullopt;
    spare = std::move(it->second);
    spares_.erase(it);
  }
  cv_.notify_all();
  const auto age = Clock::now() - spare->started;
  if (!same_interpreter(spare->python, python) || age >= max_idle_) {
    note(
        "clsi-venvs: a pip started ahead was not used: the interpreter changed, or it waited "
        "too long");
    return std::nullopt;  // stopped as it goes out of scope
  }
  if (!spare->intact()) {
    note("clsi-venvs: a pip started ahead was not used: its directory in " + tmp_dir_ +
         " is gone or was changed");
    return std::nullopt;
  }
  std::string request;
  try {
    request = nlohmann::json(pip_args).dump() + "\n";
  } catch (const nlohmann::json::exception&) {  // an argument that is not UTF-8
    return std::nullopt;
  }
  for (std::size_t sent = 0; sent < request.size();) {
    ssize_t n =
        ::send(spare->request.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      note("clsi-venvs: a pip started ahead was not used: it took no request (" +
           std::string(clsi::errno_text(errno)) + ")");
      return std::nullopt;
    }
    sent += static_cast<std::size_t>(n);
  }
  spare->request.reset();  // end of its input: one resolve, no more

  // Until the spare says it is ready, its lines are its start's (the venv,
  // pip's imports); after, pip's.
  bool ready = false;
  std::vector<std::string> before;
  auto outcome = run_to_end(
      spare->child, deadline,
      [&](std::string_view line) {
        if (ready) {
          on_line(line);
        } else if (line == kSpareReadyLine) {
          ready = true;
          note("clsi-venvs: pip was started ahead of this build (" +
               std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(age).count()) +
               " ms before)");
          for (const auto& b : before)
            on_line(b);
        } else if (before.size() < 200) {
          before.emplace_back(line);
        }
      },
      poll_hook);
  if (ready || outcome.timed_out || !outcome.stopped_because.empty()) return outcome;
  std::string said;
  for (const auto& b : before)
    said += (said.empty() ? "" : " | ") + b;
  note("clsi-venvs: a pip started ahead ended before it was ready (exit status " +
       std::to_string(Child::shell_status(outcome.wait_status)) + ")" +
       (said.empty() ? std::string() : ": " + said.substr(0, 2000)));
  return std::nullopt;
}

}  // namespace clsi::venv
