/* bench/results_lock.c: the exclusive writer lock of a results file (see
 * results_lock.h). */
#define _GNU_SOURCE
#include "results_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef NAME_MAX
#define NAME_MAX 255
#endif

struct il_results_lock {
  int fd; /* -1: ILBENCH_NO_LOCK, nothing held */
  char *lock_path;
};

static uint64_t fnv1a64(const char *s) {
  uint64_t h = 14695981039346656037ULL;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
  return h;
}

il_status il_results_lock_path(const char *path, char *buf, size_t cap) {
  if (!path || !path[0]) return IL_ERR(IL_ERR_ARG, "results lock: empty results file path");
  if (!buf || cap == 0) return IL_ERR(IL_ERR_ARG, "results lock: no buffer for the lock file's path");
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  if (!base[0]) return IL_ERR(IL_ERR_ARG, "results file '%s' names a directory, not a file", path);
  int w;
  if (strlen(base) + strlen(".lock") <= NAME_MAX)
    w = snprintf(buf, cap, "%s.lock", path);
  else /* "<base>.lock" would not be a valid name: a fixed-length one in the same directory */
    w = snprintf(buf, cap, "%.*s.ilbench-%016llx.lock", (int)(base - path), path,
                 (unsigned long long)fnv1a64(base));
  if (w < 0 || (size_t)w >= cap) return IL_ERR(IL_ERR_ARG, "results file '%s': its lock file's path is too long", path);
  return IL_OK;
}

static int no_lock_env(void) {
  const char *v = getenv("ILBENCH_NO_LOCK");
  return v && v[0] && strcmp(v, "0") != 0;
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void sleep_s(double s) {
  struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

/* "pid ... on host ... since ..." from the holder's lock file, or a phrase
 * saying it has not written one yet (it is between flock and write). */
static void describe_holder(const char *lock_path, char *buf, size_t cap) {
  char text[512] = "";
  for (int attempt = 0; attempt < 3 && !text[0]; attempt++) {
    if (attempt) sleep_s(0.01);
    int fd = open(lock_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) break;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    text[n > 0 ? n : 0] = '\0';
  }
  long pid = 0;
  char host[256] = "", since[64] = "";
  if (sscanf(text, "pid=%ld host=%255s since=%63s", &pid, host, since) == 3)
    snprintf(buf, cap, "pid %ld on host %s since %s", pid, host, since);
  else
    snprintf(buf, cap, "another process (its lock file names no holder yet)");
}

static int unsupported_errno(int e) {
  return e == ENOLCK || e == ENOSYS || e == EOPNOTSUPP || e == EINVAL
#if defined(ENOTSUP) && ENOTSUP != EOPNOTSUPP
         || e == ENOTSUP
#endif
      ;
}

/* Record this process as the holder in the locked file. */
static il_status write_holder(int fd, const char *path, const char *lock_path) {
  char host[256] = "unknown", since[32] = "unknown", text[512];
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "unknown");
  host[sizeof host - 1] = '\0';
  for (char *c = host; *c; c++)
    if (*c == ' ' || *c == '\n') *c = '_'; /* one word: the reader splits on blanks */
  time_t t = time(NULL);
  struct tm tm;
  if (gmtime_r(&t, &tm)) strftime(since, sizeof since, "%Y-%m-%dT%H:%M:%SZ", &tm);
  int len = snprintf(text, sizeof text, "pid=%ld host=%s since=%s\n", (long)getpid(), host, since);
  if (len < 0 || (size_t)len >= sizeof text) len = (int)strlen(text);
  if (ftruncate(fd, 0) != 0)
    return IL_ERR(IL_ERR_IO, "results file '%s': cannot truncate its lock file '%s' (%s)", path, lock_path,
                  strerror(errno));
  size_t off = 0;
  while (off < (size_t)len) {
    ssize_t w = pwrite(fd, text + off, (size_t)len - off, (off_t)off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      return IL_ERR(IL_ERR_IO, "results file '%s': cannot write its lock file '%s' (%s)", path, lock_path,
                    w < 0 ? strerror(errno) : "short write");
    off += (size_t)w;
  }
  if (fsync(fd) != 0)
    return IL_ERR(IL_ERR_IO, "results file '%s': cannot sync its lock file '%s' (%s)", path, lock_path,
                  strerror(errno));
  return IL_OK;
}

il_status il_results_lock_acquire(const char *path, double wait_s, il_results_lock **out) {
  if (!out) return IL_ERR(IL_ERR_ARG, "results lock: no output pointer");
  *out = NULL;
  if (!(wait_s >= 0) || !isfinite(wait_s))
    return IL_ERR(IL_ERR_ARG, "results lock: the wait must be a finite number of seconds >= 0, not %g", wait_s);
  il_results_lock *l = calloc(1, sizeof *l);
  if (!l) return IL_ERR(IL_ERR_NOMEM, "results lock: out of memory");
  l->fd = -1;
  if (no_lock_env()) {
    *out = l;
    return IL_OK;
  }
  size_t cap = strlen(path ? path : "") + 64;
  if (!(l->lock_path = malloc(cap))) {
    free(l);
    return IL_ERR(IL_ERR_NOMEM, "results lock: out of memory");
  }
  il_status st = il_results_lock_path(path, l->lock_path, cap);
  if (st != IL_OK) goto fail;
  const double deadline = now_s() + wait_s;
  for (int replaced = 0;;) {
    int fd = open(l->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      int e = errno;
      st = IL_ERR(IL_ERR_IO, "results file '%s': cannot create or open its lock file '%s' (%s)%s", path, l->lock_path,
                  strerror(e),
                  e == EACCES || e == EPERM || e == EROFS
                      ? "; ILBENCH_NO_LOCK=1 writes without the lock, if no other process writes the file"
                      : "");
      goto fail;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      /* A releaser unlinks before it unlocks: the inode we locked may no
       * longer be the one the path names. Then try again on the new one. */
      struct stat fs, ps;
      if (fstat(fd, &fs) != 0 || stat(l->lock_path, &ps) != 0 || fs.st_dev != ps.st_dev || fs.st_ino != ps.st_ino) {
        close(fd);
        if (++replaced < 10000) continue;
        st = IL_ERR(IL_ERR_IO, "results file '%s': its lock file '%s' keeps being replaced; giving up", path,
                    l->lock_path);
        goto fail;
      }
      l->fd = fd;
      st = write_holder(fd, path, l->lock_path);
      if (st != IL_OK) {
        il_results_lock_release(l);
        return st;
      }
      *out = l;
      return IL_OK;
    }
    int e = errno;
    close(fd);
    if (e == EINTR) continue;
    if (e == EWOULDBLOCK) {
      if (now_s() < deadline) {
        sleep_s(0.05);
        continue;
      }
      char holder[512];
      describe_holder(l->lock_path, holder, sizeof holder);
      if (wait_s > 0)
        st = IL_ERR(IL_ERR_IO,
                    "results file '%s' is being written by %s (lock file '%s'); wait for it, or pass "
                    "--wait-lock SECONDS (still held after waiting %g s)",
                    path, holder, l->lock_path, wait_s);
      else
        st = IL_ERR(IL_ERR_IO,
                    "results file '%s' is being written by %s (lock file '%s'); wait for it, or pass "
                    "--wait-lock SECONDS",
                    path, holder, l->lock_path);
      goto fail;
    }
    if (unsupported_errno(e))
      st = IL_ERR(IL_ERR_UNSUPPORTED,
                  "results file '%s': the filesystem of its lock file '%s' does not support flock (%s; on "
                  "Lustre, mount with -o flock); set ILBENCH_NO_LOCK=1 to write without the lock, making sure "
                  "no other process writes the file",
                  path, l->lock_path, strerror(e));
    else
      st = IL_ERR(IL_ERR_IO, "results file '%s': cannot lock its lock file '%s' (%s)", path, l->lock_path,
                  strerror(e));
    goto fail;
  }
fail:
  free(l->lock_path);
  free(l);
  return st;
}

void il_results_lock_release(il_results_lock *l) {
  if (!l) return;
  if (l->fd >= 0) {
    unlink(l->lock_path); /* before unlocking: a waiter then sees a new inode, not ours */
    close(l->fd);
  }
  free(l->lock_path);
  free(l);
}
