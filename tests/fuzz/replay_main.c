/* tests/fuzz/replay_main.c: a main() for the fuzz targets where libFuzzer is not used (gcc, or
 * no clang). It runs LLVMFuzzerTestOneInput once on every file named on the command line or
 * found (not recursively) in a named directory, so the seed corpora and the saved crash
 * inputs under tests/fuzz/corpus/<target>/ are regression tests in every build (ctest
 * fuzz_replay_*), under AddressSanitizer + UBSan in the debug-asan build. Exit 0 when every
 * input ran; a failing property aborts, as under libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* optional, as under libFuzzer: called once before the first input */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return 1;
  }
  size_t cap = 1 << 12, n = 0, k;
  uint8_t *buf = malloc(cap);
  while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
    n += k;
    if (n == cap) {
      uint8_t *nb = realloc(buf, cap * 2);
      if (!nb) break;
      buf = nb;
      cap *= 2;
    }
  }
  fclose(f);
  if (!buf) return 1;
  /* libFuzzer never passes its own buffer's slack: copy to an exact-size block for ASan */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) return 1;
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv) {
  int ran = 0, bad = 0;
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  for (int a = 1; a < argc; a++) {
    struct stat st;
    if (stat(argv[a], &st) != 0) {
      perror(argv[a]);
      bad++;
      continue;
    }
    if (!S_ISDIR(st.st_mode)) {
      bad += run_file(argv[a]);
      ran++;
      continue;
    }
    DIR *d = opendir(argv[a]);
    if (!d) {
      perror(argv[a]);
      bad++;
      continue;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.') continue;
      char **nn = realloc(names, (n + 1) * sizeof *names);
      if (!nn) break;
      names = nn;
      size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
      names[n] = malloc(len);
      if (!names[n]) break;
      snprintf(names[n], len, "%s/%s", argv[a], e->d_name);
      n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
      if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
        bad += run_file(names[i]);
        ran++;
      }
      free(names[i]);
    }
    free(names);
  }
  printf("%s: %d inputs replayed, %d unreadable\n", argv[0], ran, bad);
  return bad ? 1 : (ran ? 0 : 1);
}
