// PAM module for PostgreSQL logins with a token as the password: hands the whole password to
// pg-token-verifier on its stdin (never argv/env; pam_exec would cut it at 511 bytes) and
// succeeds iff the verifier exits 0.
//   auth required pam_token_broker.so verifier=/abs/pg-token-verifier config=/abs/config.json
#include <fcntl.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

// Only the pam_sm_* entry points leave the module (built with hidden visibility).
#define PAM_EXPORT __attribute__((visibility("default")))

namespace {
constexpr size_t kMaxToken =
    size_t{16} * 1024;  // as pg-token-verifier; well below the 64 KiB pipe buffer
}

extern "C" PAM_EXPORT int pam_sm_authenticate(pam_handle_t* pamh, int, int argc,
                                              const char** argv) {
  const char *verifier = nullptr, *config = nullptr, *user = nullptr, *token = nullptr;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "verifier=", 9) == 0) verifier = argv[i] + 9;
    if (std::strncmp(argv[i], "config=", 7) == 0) config = argv[i] + 7;
  }
  if (verifier == nullptr || config == nullptr) return PAM_SERVICE_ERR;
  if (pam_get_user(pamh, &user, nullptr) != PAM_SUCCESS || user == nullptr) return PAM_USER_UNKNOWN;
  if (pam_get_authtok(pamh, PAM_AUTHTOK, &token, nullptr) != PAM_SUCCESS || token == nullptr) {
    return PAM_AUTH_ERR;
  }
  const size_t size = std::strlen(token);
  if (size > kMaxToken) return PAM_AUTH_ERR;
  // The whole token goes into the pipe before the verifier starts: no partial writes, no SIGPIPE.
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return PAM_SYSTEM_ERR;
  const bool written = write(fds[1], token, size) == static_cast<ssize_t>(size);
  close(fds[1]);
  if (!written) return close(fds[0]), PAM_SYSTEM_ERR;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[0], STDIN_FILENO);
  posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);  // no server sockets
  const char* args[] = {verifier, "--config", config, "--user", user, nullptr};
  const char* env[] = {"PATH=/usr/bin:/bin", nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, verifier, &actions, nullptr, const_cast<char**>(args),
                                  const_cast<char**>(env));
  posix_spawn_file_actions_destroy(&actions);
  close(fds[0]);
  if (spawned != 0) return PAM_SYSTEM_ERR;
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return PAM_SYSTEM_ERR;
  }
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? PAM_SUCCESS : PAM_AUTH_ERR;
}

extern "C" PAM_EXPORT int pam_sm_setcred(pam_handle_t*, int, int, const char**) {
  return PAM_SUCCESS;
}

extern "C" PAM_EXPORT int pam_sm_acct_mgmt(pam_handle_t*, int, int, const char**) {
  return PAM_SUCCESS;
}
