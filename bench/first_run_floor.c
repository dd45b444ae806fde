/* A first Synchronize's unavoidable work in C, one step at a time: the floor
 * that no Python around it can go under (bench/compiled_floor.py builds and
 * runs it; see bench/README.md, "Synchronize").
 *
 *   first_run_floor TREE DATABASE TASK_ID OUTPUT_FOLDER
 *
 * TREE holds folders of small files (bench/synchronize.py's build_tree);
 * DATABASE is a migrated SQLite database of the project with a task TASK_ID;
 * the IDX batches are written to OUTPUT_FOLDER.
 * Prints, per file, the CPU microseconds of each step over every file:
 *   walk    readdir and fstatat of each file (what the Python walk does);
 *   read    readdir, then openat (O_NOFOLLOW | O_NONBLOCK), fstat, read, close;
 *   sha256  the content's digest (OpenSSL);
 *   format  the IDX document, as idx.format_file_document writes it for an
 *           ASCII name with nothing to escape;
 *   batch   IDX batches of 1000 documents written, fsynced and renamed;
 *   record  one datastore row per document, 1000 to a transaction, with the
 *           real table and indexes (WAL, synchronous=NORMAL, as the product).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_FILES 2000000
#define MAX_CONTENT 256

typedef struct {
    char folder[64];
    char name[64];
    long long size, mtime_ns;
    unsigned char data[MAX_CONTENT];
    char hex[65];
} Doc;

static Doc *docs;
static int count;
static const char *tree;

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

/* Calls visit(folder fd, folder name, file name) for every file of every folder. */
static void each_file(void (*visit)(int, const char *, const char *)) {
    DIR *top = opendir(tree);
    if (!top) die("opendir");
    struct dirent *folder;
    while ((folder = readdir(top))) {
        if (folder->d_name[0] == '.') continue;
        int fd = openat(dirfd(top), folder->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (fd < 0) die("openat folder");
        DIR *dir = fdopendir(fd);
        struct dirent *file;
        while ((file = readdir(dir))) {
            if (file->d_type == DT_REG) visit(dirfd(dir), folder->d_name, file->d_name);
        }
        closedir(dir);
    }
    closedir(top);
}

static void stat_one(int folder, const char *folder_name, const char *name) {
    struct stat st;
    (void)folder_name;
    if (fstatat(folder, name, &st, AT_SYMLINK_NOFOLLOW) == 0) count++;
}

static void read_one(int folder, const char *folder_name, const char *name) {
    int fd = openat(folder, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) die("openat");
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size >= MAX_CONTENT) die("fstat");
    Doc *doc = &docs[count++];
    ssize_t got = read(fd, doc->data, st.st_size + 1);
    if (got != st.st_size) die("read");
    close(fd);
    snprintf(doc->folder, sizeof doc->folder, "%s", folder_name);
    snprintf(doc->name, sizeof doc->name, "%s", name);
    doc->size = st.st_size;
    doc->mtime_ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
}

static void hash_all(void) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < count; i++) {
        unsigned char digest[SHA256_DIGEST_LENGTH];
        SHA256(docs[i].data, docs[i].size, digest);
        for (int j = 0; j < SHA256_DIGEST_LENGTH; j++) {
            docs[i].hex[2 * j] = digits[digest[j] >> 4];
            docs[i].hex[2 * j + 1] = digits[digest[j] & 15];
        }
        docs[i].hex[64] = 0;
    }
}

static char *idx;
static size_t *idx_end;

static void format_all(void) {
    size_t at = 0;
    for (int i = 0; i < count; i++) {
        Doc *d = &docs[i];
        time_t second = d->mtime_ns / 1000000000LL;
        struct tm tm;
        char modified[32];
        gmtime_r(&second, &tm);
        strftime(modified, sizeof modified, "%Y-%m-%dT%H:%M:%SZ", &tm);
        at += sprintf(idx + at,
                      "#DREREFERENCE %s/%s\n#DRETITLE %s\n#DREFIELD DREREFERENCE=\"%s/%s\"\n"
                      "#DREFIELD TASK=\"BENCH\"\n#DREFIELD PATH=\"%s/%s\"\n"
                      "#DREFIELD NAME=\"%s\"\n#DREFIELD SIZE=\"%lld\"\n"
                      "#DREFIELD MODIFIED=\"%s\"\n#DREFIELD SHA256=\"%s\"\n"
                      "#DREFIELD CONTENTMODE=\"text\"\n#DRECONTENT\n%.*s#DREENDDOC\n",
                      d->folder, d->name, d->name, d->folder, d->name, d->folder, d->name,
                      d->name, d->size, modified, d->hex, (int)d->size, (char *)d->data);
        idx_end[i] = at;
    }
}

static void write_batches(const char *out) {
    char part[4096], done[4096];
    size_t from = 0;
    for (int start = 0; start < count; start += 1000) {
        int last = (start + 1000 < count ? start + 1000 : count) - 1;
        snprintf(part, sizeof part, "%s/batch-%06d.idx.part", out, start / 1000);
        snprintf(done, sizeof done, "%s/batch-%06d.idx", out, start / 1000);
        int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) die("open batch");
        if (write(fd, idx + from, idx_end[last] - from) < 0) die("write batch");
        if (fsync(fd) != 0) die("fsync");
        close(fd);
        if (rename(part, done) != 0) die("rename");
        from = idx_end[last];
    }
}

static void check(int rc, sqlite3 *db) {
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(db));
        exit(1);
    }
}

static void record_all(const char *database, int task) {
    sqlite3 *db;
    sqlite3_stmt *insert;
    char identifier[256], folder[128], path[256];
    check(sqlite3_open(database, &db), db);
    check(sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                           " PRAGMA wal_autocheckpoint=10000",
                       NULL, NULL, NULL),
          db);
    check(sqlite3_prepare_v2(
              db,
              "INSERT INTO connector_datastoredocument (task_id, identifier, folder, path, size,"
              " modified_ns, content_hash, metadata, held, last_ingested_at)"
              " VALUES (?, ?, ?, ?, ?, ?, ?, '{}', 0, '2026-12-02 00:00:00')"
              " ON CONFLICT (task_id, identifier) DO UPDATE SET folder = excluded.folder,"
              " path = excluded.path, size = excluded.size, modified_ns = excluded.modified_ns,"
              " content_hash = excluded.content_hash,"
              " last_ingested_at = excluded.last_ingested_at",
              -1, &insert, NULL),
          db);
    for (int i = 0; i < count; i++) {
        Doc *d = &docs[i];
        if (i % 1000 == 0) check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), db);
        /* As long as the product's identifiers: base64 of task, root and path. */
        snprintf(identifier, sizeof identifier, "RlMxAEJFTkNIADAA%s/%s", d->folder, d->name);
        snprintf(folder, sizeof folder, "RlMxAEJFTkNIADAA%s", d->folder);
        snprintf(path, sizeof path, "%s/%s", d->folder, d->name);
        sqlite3_bind_int(insert, 1, task);
        sqlite3_bind_text(insert, 2, identifier, -1, SQLITE_STATIC);
        sqlite3_bind_text(insert, 3, folder, -1, SQLITE_STATIC);
        sqlite3_bind_text(insert, 4, path, -1, SQLITE_STATIC);
        sqlite3_bind_int64(insert, 5, d->size);
        sqlite3_bind_int64(insert, 6, d->mtime_ns);
        sqlite3_bind_text(insert, 7, d->hex, 64, SQLITE_STATIC);
        check(sqlite3_step(insert), db);
        sqlite3_reset(insert);
        if (i % 1000 == 999 || i == count - 1)
            check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db);
    }
    sqlite3_finalize(insert);
    sqlite3_close(db);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s TREE DATABASE TASK_ID OUTPUT_FOLDER\n", argv[0]);
        return 2;
    }
    tree = argv[1];
    docs = calloc(MAX_FILES, sizeof *docs);
    idx = malloc((size_t)MAX_FILES * 1024);
    idx_end = calloc(MAX_FILES, sizeof *idx_end);
    if (!docs || !idx || !idx_end) die("malloc");

    double best_walk = 1e9, t;
    for (int round = 0; round < 3; round++) {
        count = 0;
        t = cpu_now();
        each_file(stat_one);
        t = cpu_now() - t;
        if (t < best_walk) best_walk = t;
    }
    int files = count;
    count = 0;
    t = cpu_now();
    each_file(read_one);
    double read_seconds = cpu_now() - t;
    t = cpu_now();
    hash_all();
    double hash_seconds = cpu_now() - t;
    t = cpu_now();
    format_all();
    double format_seconds = cpu_now() - t;
    t = cpu_now();
    write_batches(argv[4]);
    double batch_seconds = cpu_now() - t;
    t = cpu_now();
    record_all(argv[2], atoi(argv[3]));
    double record_seconds = cpu_now() - t;

    printf("files %d\n", files);
    printf("walk %.3f\nread %.3f\nsha256 %.3f\nformat %.3f\nbatch %.3f\nrecord %.3f\n",
           best_walk / files * 1e6, read_seconds / count * 1e6, hash_seconds / count * 1e6,
           format_seconds / count * 1e6, batch_seconds / count * 1e6,
           record_seconds / count * 1e6);
    return 0;
}
