// Real users for tests that need a second and third uid: the build service's
// own user, a render's user. Created with useradd, removed with userdel when
// the object goes. Needs root; names carry the pid, so parallel runs do not
// collide.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "test_env.hpp"

namespace testenv {

class SystemUser {
 public:
  // `role`: a few letters naming what the user is for, e.g. "svc".
  explicit SystemUser(const std::string& role, const std::string& home)
      : name_("clsi-t" + role + "-" + std::to_string(::getpid())) {
    remove();  // left by a crashed run that had the same pid
    auto r = admin({"/usr/sbin/useradd", "--system", "--user-group", "--home-dir", home,
                    "--create-home", "--shell", "/usr/sbin/nologin", name_});
    if (r.status != 0) throw std::runtime_error("useradd " + name_ + " failed: " + r.output);
    passwd* pw = ::getpwnam(name_.c_str());
    if (!pw) throw std::runtime_error("useradd made no user " + name_);
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
  }
  ~SystemUser() { remove(); }
  SystemUser(const SystemUser&) = delete;
  SystemUser& operator=(const SystemUser&) = delete;

  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] uid_t uid() const { return uid_; }
  [[nodiscard]] gid_t gid() const { return gid_; }
  // argv prefix that runs a command as this user (no shell, no PAM).
  [[nodiscard]] std::vector<std::string> as() const {
    return {"/usr/bin/setpriv", "--reuid=" + std::to_string(uid_),
            "--regid=" + std::to_string(gid_), "--init-groups", "--"};
  }
  // chown -R to this user.
  void own(const std::string& path) const {
    if (run({"/bin/chown", "-R", name_ + ":" + name_, path}).status != 0)
      throw std::runtime_error("chown " + path + " failed");
  }

 private:
  static CommandResult admin(const std::vector<std::string>& argv) {
    CommandResult r;
    for (int attempt = 0; attempt < 20; ++attempt) {  // another run may hold /etc/passwd's lock
      r = run(argv);
      if (r.status == 0 || r.output.find("lock") == std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return r;
  }
  void remove() const {
    if (::getpwnam(name_.c_str())) admin({"/usr/sbin/userdel", name_});
    if (::getgrnam(name_.c_str())) admin({"/usr/sbin/groupdel", name_});
  }
  std::string name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
};

}  // namespace testenv
