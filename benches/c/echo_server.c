/*
 * Minimal epoll TCP echo server: the yardstick server of benches/engine.sh.
 *
 * Usage: echo_server [-r RUSAGE_FILE] PORT
 *
 * Listens on 127.0.0.1:PORT (0 picks a free port) with SO_REUSEADDR and a backlog of 4096,
 * prints "listening on 127.0.0.1:<port>" on stdout, and echoes every byte back on every
 * connection: single-threaded, level-triggered epoll, nonblocking sockets, TCP_NODELAY.
 * A write the kernel takes only in part leaves the rest in a per-connection buffer; the
 * connection then stops reading (back-pressure) and waits for EPOLLOUT until the buffer is
 * drained. SIGTERM or SIGINT (read through a signalfd) ends it cleanly with exit status 0;
 * with -r it first writes its own CPU time and peak RSS as one JSON line to RUSAGE_FILE, so
 * a benchmark can subtract the server from the rusage of the process that reaped it.
 *
 * Build: gcc -O2 -Wall -Wextra -o echo_server echo_server.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define MAX_EVENTS 512

struct conn {
    char *pending; /* bytes read but not yet written back; NULL when none */
    size_t len;    /* bytes in pending */
    size_t off;    /* bytes of pending already written */
};

static struct conn *conns; /* indexed by fd */
static size_t conns_cap;
static int epfd;
static unsigned long long accepted, echoed;

static void die(const char *what)
{
    perror(what);
    exit(1);
}

static struct conn *conn_of(int fd)
{
    if ((size_t)fd >= conns_cap) {
        size_t cap = conns_cap ? conns_cap : 1024;
        while (cap <= (size_t)fd)
            cap *= 2;
        struct conn *grown = realloc(conns, cap * sizeof *grown);
        if (!grown)
            die("realloc");
        memset(grown + conns_cap, 0, (cap - conns_cap) * sizeof *grown);
        conns = grown;
        conns_cap = cap;
    }
    return &conns[fd];
}

static void close_conn(int fd)
{
    struct conn *c = conn_of(fd);
    free(c->pending);
    memset(c, 0, sizeof *c);
    close(fd); /* also removes it from the epoll set */
}

static void watch(int fd, unsigned events, int op)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(epfd, op, fd, &ev) < 0)
        die("epoll_ctl");
}

/* Writes what is pending; returns 0 when drained, 1 when the kernel is full, -1 on error. */
static int flush_pending(int fd, struct conn *c)
{
    while (c->off < c->len) {
        ssize_t n = write(fd, c->pending + c->off, c->len - c->off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -1;
        }
        c->off += (size_t)n;
        echoed += (unsigned long long)n;
    }
    free(c->pending);
    c->pending = NULL;
    c->len = c->off = 0;
    return 0;
}

static void on_readable(int fd)
{
    static char buf[READ_CHUNK];
    struct conn *c = conn_of(fd);
    for (int rounds = 0; rounds < 16 && !c->pending; rounds++) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) {
            close_conn(fd);
            return;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                close_conn(fd);
            return;
        }
        size_t done = 0;
        while (done < (size_t)n) {
            ssize_t w = write(fd, buf + done, (size_t)n - done);
            if (w < 0) {
                if (errno == EINTR)
                    continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    close_conn(fd);
                    return;
                }
                break;
            }
            done += (size_t)w;
            echoed += (unsigned long long)w;
        }
        if (done < (size_t)n) { /* partial write: keep the rest, stop reading, wait for EPOLLOUT */
            c->len = (size_t)n - done;
            c->off = 0;
            c->pending = malloc(c->len);
            if (!c->pending)
                die("malloc");
            memcpy(c->pending, buf + done, c->len);
            watch(fd, EPOLLOUT, EPOLL_CTL_MOD);
            return;
        }
        if ((size_t)n < sizeof buf)
            return; /* the socket is most likely empty now */
    }
}

static void on_writable(int fd)
{
    struct conn *c = conn_of(fd);
    int r = flush_pending(fd, c);
    if (r < 0)
        close_conn(fd);
    else if (r == 0)
        watch(fd, EPOLLIN, EPOLL_CTL_MOD);
}

static void on_listener(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                fprintf(stderr, "echo_server: accept: %s\n", strerror(errno));
            return; /* EAGAIN, or out of descriptors: try again on the next event */
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn_of(fd);
        watch(fd, EPOLLIN, EPOLL_CTL_ADD);
        accepted++;
    }
}

static void write_rusage(const char *path)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return;
    }
    fprintf(f,
            "{\"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f, \"maxrss_kib\": %ld, "
            "\"accepted\": %llu, \"echoed_bytes\": %llu}\n",
            ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
            ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss, accepted, echoed);
    fclose(f);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    const char *rusage_path = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "r:")) != -1) {
        if (opt == 'r') {
            rusage_path = optarg;
        } else {
            fprintf(stderr, "usage: %s [-r RUSAGE_FILE] PORT\n", argv[0]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: %s [-r RUSAGE_FILE] PORT\n", argv[0]);
        return 2;
    }
    char *end;
    long port = strtol(argv[optind], &end, 10);
    if (*end || port < 0 || port > 65535) {
        fprintf(stderr, "echo_server: bad port '%s'\n", argv[optind]);
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
        die("sigprocmask");
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        die("signalfd");

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (lfd < 0)
        die("socket");
    int one = 1;
    if (setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
        die("setsockopt SO_REUSEADDR");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(lfd, 4096) < 0)
        die("listen");
    socklen_t alen = sizeof addr;
    if (getsockname(lfd, (struct sockaddr *)&addr, &alen) < 0)
        die("getsockname");
    printf("listening on 127.0.0.1:%u\n", ntohs(addr.sin_port));
    fflush(stdout);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        die("epoll_create1");
    watch(lfd, EPOLLIN, EPOLL_CTL_ADD);
    watch(sfd, EPOLLIN, EPOLL_CTL_ADD);

    struct epoll_event events[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            unsigned ev = events[i].events;
            if (fd == sfd) {
                if (rusage_path)
                    write_rusage(rusage_path);
                for (size_t f = 0; f < conns_cap; f++)
                    free(conns[f].pending);
                free(conns);
                return 0; /* the kernel closes every socket */
            }
            if (fd == lfd) {
                on_listener(lfd);
                continue;
            }
            if ((size_t)fd >= conns_cap)
                continue;
            if (conns[fd].pending) {
                if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                    on_writable(fd);
            } else if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                on_readable(fd);
            }
        }
    }
}
