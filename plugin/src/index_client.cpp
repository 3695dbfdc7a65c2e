#include "index_client.hpp"

#include <algorithm>

namespace clsi::venv {
namespace {

// argv: MODE URL MAX_BYTES TIMEOUT_S. Prints "state found|missing|error",
// then, when found, one "v <value>" line per link: for MODE "projects" the
// link's text normalised (a project name), for "files" the file name.
constexpr const char* kFetchScript = R"PY(
import base64, html.parser, os, re, sys, urllib.error, urllib.parse, urllib.request
mode, url, limit, timeout = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sys.stdout.reconfigure(errors="backslashreplace")

def fetch(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        path = urllib.request.url2pathname(parts.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read(limit + 1)
    headers = {"Accept": "text/html", "User-Agent": "clsi-venvs"}
    if parts.username is not None:
        cred = urllib.parse.unquote(parts.username) + ":" + urllib.parse.unquote(parts.password or "")
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        host = parts.hostname or ""
        host = "[%s]" % host if ":" in host else host
        netloc = host + (":%d" % parts.port if parts.port else "")
        url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers),
                                    timeout=timeout) as r:
            return r.read(limit + 1)
    except urllib.error.HTTPError as e:
        if e.code in (404, 410):
            return None
        raise

class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.href, self.text, self.links = None, [], []
    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self.href, self.text = dict(attrs).get("href") or "", []
    def handle_data(self, data):
        if self.href is not None:
            self.text.append(data)
    def handle_endtag(self, tag):
        if tag == "a" and self.href is not None:
            self.links.append((self.href, "".join(self.text).strip()))
            self.href = None

try:
    body = fetch(url)
except Exception as e:
    print("state error", type(e).__name__)
    sys.exit(0)
if body is None:
    print("state missing")
    sys.exit(0)
if len(body) > limit:
    print("state error too large")
    sys.exit(0)
links = Links()
links.feed(body.decode("utf-8", "replace"))
links.close()
print("state found")
for href, text in links.links:
    if mode == "projects":
        print("v", re.sub(r"[-_.]+", "-", text).lower())
    else:
        name = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rstrip("/").rsplit("/", 1)[-1])
        print("v", name or text)
)PY";

constexpr std::size_t kMaxValues = 1000000;

bool safe_value(std::string_view v, std::string_view extra) {
  if (v.empty() || v.size() > 300) return false;
  for (char c : v) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              extra.find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

}  // namespace

IndexClient::IndexClient(std::string index_url, std::string python, const PrivateWorkdir& workdir,
                         ProcessRunner runner, Deadline deadline,
                         std::chrono::milliseconds per_request)
    : index_url_(std::move(index_url)),
      python_(std::move(python)),
      workdir_(workdir),
      runner_(std::move(runner)),
      deadline_(deadline),
      per_request_(per_request) {
  if (index_url_.empty() || index_url_.back() != '/') index_url_ += '/';
}

IndexClient::Fetched IndexClient::fetch(const std::string& mode, const std::string& url,
                                        std::size_t max_bytes) const {
  Fetched out;
  auto now = std::chrono::steady_clock::now();
  if (now >= deadline_) return out;
  Deadline until = std::min(deadline_, now + per_request_);
  auto timeout_s = std::chrono::duration_cast<std::chrono::seconds>(until - now).count();
  SpawnOptions o;
  o.executable = python_;
  o.args = {"-I",
            "-S",
            "-c",
            kFetchScript,
            mode,
            url,
            std::to_string(max_bytes),
            std::to_string(std::max<long long>(1, timeout_s))};
  o.env = isolated_environment(workdir_);
  o.cwd = workdir_.cwd();
  bool stated = false;
  const std::string_view extra = mode == "projects" ? "-" : "-._+!";
  auto sink = [&](std::string_view line) {
    if (!stated) {
      stated = true;
      if (line == "state found") {
        out.state = ProjectPage::State::kFound;
      } else if (line == "state missing") {
        out.state = ProjectPage::State::kMissing;
      }
      return;
    }
    if (out.state != ProjectPage::State::kFound || line.substr(0, 2) != "v ") return;
    std::string_view v = line.substr(2);
    if (out.values.size() < kMaxValues && safe_value(v, extra)) out.values.emplace_back(v);
  };
  auto r = runner_(o, until, sink, {});
  if (!r.ok()) out.state = ProjectPage::State::kUnknown;
  return out;
}

ProjectPage IndexClient::project(const std::string& name) const {
  auto f = fetch("files", index_url_ + name + "/", std::size_t{8} * 1024 * 1024);
  return {f.state, std::move(f.values)};
}

std::vector<std::string> IndexClient::projects() const {
  auto f = fetch("projects", index_url_, std::size_t{64} * 1024 * 1024);
  if (f.state != ProjectPage::State::kFound) return {};
  std::sort(f.values.begin(), f.values.end());
  f.values.erase(std::unique(f.values.begin(), f.values.end()), f.values.end());
  return std::move(f.values);
}

}  // namespace clsi::venv
