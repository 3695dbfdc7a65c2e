// What the first SHA-256 costs a process, by API. clsi-runner makes a fresh
// process (and plugin instance) per compile, so a one-time cost is paid on
// every cache hit. The plugin hashes through EVP (key.cpp: EVP_DigestInit_ex
// with EVP_sha256()); in OpenSSL 3 the first EVP use initialises the library:
// it reads openssl.cnf, loads the default provider and fetches the algorithm.
//
//   bench_sha256_first_use [N]     N fresh processes per API (default 41)
//
// Each child is forked before this process touches OpenSSL, times its first
// digest of 400 bytes (about the size of the plugin's key material), and
// reports through a pipe; the parent prints the medians.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
double first_digest_us(int api) {
  std::string data(400, 'k');
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  auto t0 = std::chrono::steady_clock::now();
  if (api == 0) {  // what key.cpp does
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, data.data(), data.size());
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
  } else if (api == 1) {  // the same, without reading openssl.cnf
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
    EVP_DigestUpdate(ctx, data.data(), data.size());
    EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
  } else if (api == 2) {  // one-shot SHA256(): a wrapper over EVP in OpenSSL 3
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), out);
  } else {  // the low-level functions: no provider, no configuration
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data.data(), data.size());
    SHA256_Final(out, &c);
  }
  auto t1 = std::chrono::steady_clock::now();
  if (out[0] == 0x42 && out[1] == 0x42) std::puts("");  // keep the digest alive
  return std::chrono::duration<double, std::micro>(t1 - t0).count();
}
#pragma GCC diagnostic pop

double median_in_fresh_processes(int api, int n) {
  std::vector<double> us;
  for (int i = 0; i < n; ++i) {
    int fds[2];
    if (::pipe(fds) != 0) std::exit(2);
    pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      double t = first_digest_us(api);
      (void)!::write(fds[1], &t, sizeof t);
      ::_exit(0);
    }
    ::close(fds[1]);
    double t = -1;
    if (::read(fds[0], &t, sizeof t) != sizeof t) std::exit(2);
    ::close(fds[0]);
    ::waitpid(pid, nullptr, 0);
    us.push_back(t);
  }
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 41;
  const char* names[] = {
      "EVP_DigestInit_ex(EVP_sha256()) (the plugin's way)",
      "OPENSSL_init_crypto(NO_LOAD_CONFIG), then EVP",
      "SHA256() one-shot",
      "SHA256_Init/Update/Final (low-level)",
  };
  std::printf("first SHA-256 of 400 bytes in a fresh process, median of %d processes:\n", n);
  for (int api = 0; api < 4; ++api)
    std::printf("  %-52s %8.1f us\n", names[api], median_in_fresh_processes(api, n));
  return 0;
}
