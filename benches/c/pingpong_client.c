/*
 * Minimal epoll closed-loop ping-pong client: the yardstick client of benches/engine.sh.
 *
 * Usage: pingpong_client -p PORT [-c CONNECTIONS] [-n MESSAGES_PER_CONN | -d SECONDS]
 *                        [-s SIZE] [-P PIPELINE] [-w CONNECT_WINDOW] [-T TIMEOUT_S]
 *
 *   -p  server port on 127.0.0.1 (required)
 *   -c  connections (default 1)
 *   -n  messages per connection (default 1000); or
 *   -d  run for SECONDS: stop starting messages then, finish those in flight
 *   -s  message size in bytes (default 64; ASCII)
 *   -P  messages kept in flight per connection (default 1: closed loop, one at a time)
 *   -w  connect pacing: at most this many connections may be connecting or waiting for
 *       their first reply at once (default 128, the smallest listen backlog in use), so a
 *       10k-connection storm never overflows a server's accept queue
 *   -T  give up after this many seconds in all (default 120)
 *
 * Every connection starts sending as soon as it is connected and keeps PIPELINE messages
 * of SIZE bytes in flight; echoed bytes complete messages in order. RTT is measured per
 * message with CLOCK_MONOTONIC, from the message's first write to its last echoed byte,
 * and recorded in a log-linear histogram (64 sub-buckets per power of two: under 1.6%
 * error). As in labrun, a connection's first message is not counted as an RTT (it includes
 * the server's accept). With PIPELINE 1 every echoed byte is compared with what was sent;
 * with PIPELINE > 1 nothing is verified (only counted), which is the point of comparing it
 * with labrun, which always verifies. Connections stay open until every connection is
 * done, so all of them are held at once at the end.
 *
 * Prints one JSON line: connections, messages, size, pipeline, seconds (first connect to
 * last reply), connect_seconds, msgs_per_sec, bytes_per_sec (echoed payload, one
 * direction), rtt_p50_us, rtt_p90_us, rtt_p99_us, rtt_max_us, rtt_count, verified, errors,
 * cpu_user_s, cpu_sys_s (getrusage), maxrss_kib. Exit status 0 when every message came
 * back (and matched, when verified), 1 otherwise, 2 on bad usage.
 *
 * Raises its own RLIMIT_NOFILE as far as it may. Build: gcc -O2 -Wall -Wextra.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define READ_CHUNK 65536
#define MAX_EVENTS 1024
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define HIST_SLOTS (64 * SUB)

enum state { IDLE, CONNECTING, RUNNING, DONE, FAILED };

struct conn {
    int fd;
    enum state state;
    int want_out;            /* EPOLLOUT currently requested */
    int awaiting;            /* connecting or waiting for its first reply (connect pacing) */
    uint64_t started;        /* messages started (first byte queued) */
    uint64_t completed;      /* messages whose last byte came back */
    uint64_t sent_bytes;     /* bytes written */
    uint64_t recv_bytes;     /* bytes read */
    uint64_t *stamps;        /* start time (ns) of message k at stamps[k % pipeline] */
};

static uint64_t hist[HIST_SLOTS];
static uint64_t hist_count, hist_max;
static char *pattern; /* the payload repeated: stream byte x is pattern[x % size] */
static size_t pattern_len;
static size_t size = 64;
static uint64_t pipeline = 1, per_conn = 1000;
static double duration;
static int epfd;
static uint64_t awaiting, finished, failed;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned slot_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS */
    unsigned idx = (e - SUB_BITS + 1) * SUB + (unsigned)((v >> (e - SUB_BITS)) & (SUB - 1));
    return idx < HIST_SLOTS ? idx : HIST_SLOTS - 1;
}

static double slot_mid(unsigned idx)
{
    if (idx < SUB)
        return idx;
    unsigned e = idx / SUB + SUB_BITS - 1, sub = idx % SUB;
    double low = (double)((uint64_t)(SUB + sub) << (e - SUB_BITS));
    return low + (double)(1ull << (e - SUB_BITS)) / 2;
}

static void record(uint64_t ns)
{
    hist[slot_of(ns)]++;
    hist_count++;
    if (ns > hist_max)
        hist_max = ns;
}

static double percentile_us(double q)
{
    if (!hist_count)
        return 0;
    uint64_t rank = (uint64_t)(q * (double)hist_count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_SLOTS; i++) {
        seen += hist[i];
        if (seen >= rank)
            return slot_mid(i) / 1000.0;
    }
    return (double)hist_max / 1000.0;
}

static void watch(struct conn *c, unsigned events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(epfd, op, c->fd, &ev) < 0) {
        perror("epoll_ctl");
        exit(1);
    }
}

static void want_out(struct conn *c, int on)
{
    if (c->want_out != on) {
        c->want_out = on;
        watch(c, on ? EPOLLIN | EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
    }
}

/* The connection no longer counts against the connect window. */
static void release(struct conn *c)
{
    if (c->awaiting) {
        c->awaiting = 0;
        awaiting--;
    }
}

static void fail(struct conn *c)
{
    release(c);
    if (c->state == DONE)
        finished--;
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    c->state = FAILED;
    failed++;
}

static void finish(struct conn *c)
{
    release(c);
    c->state = DONE;
    finished++;
    want_out(c, 0);
}

static int start_connect(struct conn *c, const struct sockaddr_in *addr)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        perror("socket");
        return -1;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *)addr, sizeof *addr) < 0 && errno != EINPROGRESS) {
        perror("connect");
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->state = CONNECTING;
    c->want_out = 1;
    c->awaiting = 1;
    awaiting++;
    watch(c, EPOLLIN | EPOLLOUT, EPOLL_CTL_ADD);
    return 0;
}

/* Starts messages up to the pipeline depth and writes what is owed; -1 on error. */
static int pump(struct conn *c, int stop_starting)
{
    uint64_t now = 0;
    while (!stop_starting && c->started < per_conn && c->started - c->completed < pipeline) {
        if (!now)
            now = now_ns();
        c->stamps[c->started % pipeline] = now;
        c->started++;
    }
    uint64_t owed = c->started * size - c->sent_bytes;
    while (owed) {
        size_t off = c->sent_bytes % size;
        size_t len = pattern_len - off;
        if (len > owed)
            len = owed;
        ssize_t n = write(c->fd, pattern + off, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->sent_bytes += (uint64_t)n;
        owed -= (uint64_t)n;
    }
    want_out(c, owed != 0);
    return 0;
}

/* Reads what is there; returns messages newly completed, or -1 on error or mismatch. */
static int drain(struct conn *c, int verify)
{
    static char buf[READ_CHUNK];
    int done = 0;
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n == 0) {
            fprintf(stderr, "pingpong_client: server closed a connection\n");
            return -1;
        }
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return done;
            perror("read");
            return -1;
        }
        if (c->recv_bytes + (uint64_t)n > c->sent_bytes) {
            fprintf(stderr, "pingpong_client: more bytes came back than were sent\n");
            return -1;
        }
        if (verify) {
            size_t checked = 0;
            while (checked < (size_t)n) {
                size_t off = (c->recv_bytes + checked) % size;
                size_t len = size - off;
                if (len > (size_t)n - checked)
                    len = (size_t)n - checked;
                if (memcmp(buf + checked, pattern + off, len) != 0) {
                    fprintf(stderr, "pingpong_client: echoed bytes differ from those sent\n");
                    return -1;
                }
                checked += len;
            }
        }
        c->recv_bytes += (uint64_t)n;
        uint64_t now = 0;
        while (c->recv_bytes >= (c->completed + 1) * size) {
            if (!now)
                now = now_ns();
            if (c->completed == 0)
                release(c);
            else
                record(now - c->stamps[c->completed % pipeline]);
            c->completed++;
            done++;
        }
        if ((size_t)n < sizeof buf)
            return done;
    }
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s -p PORT [-c CONNECTIONS] [-n MESSAGES_PER_CONN | -d SECONDS] [-s SIZE]\n"
            "          [-P PIPELINE] [-w CONNECT_WINDOW] [-T TIMEOUT_S]\n",
            argv0);
    exit(2);
}

static double parse_num(const char *text, const char *argv0)
{
    char *end;
    double v = strtod(text, &end);
    if (*end || v < 0)
        usage(argv0);
    return v;
}

int main(int argc, char **argv)
{
    long port = -1;
    uint64_t conns_n = 1, window = 128;
    double timeout_s = 120;
    int opt;
    while ((opt = getopt(argc, argv, "p:c:n:d:s:P:w:T:")) != -1) {
        switch (opt) {
        case 'p': port = (long)parse_num(optarg, argv[0]); break;
        case 'c': conns_n = (uint64_t)parse_num(optarg, argv[0]); break;
        case 'n': per_conn = (uint64_t)parse_num(optarg, argv[0]); break;
        case 'd': duration = parse_num(optarg, argv[0]); break;
        case 's': size = (size_t)parse_num(optarg, argv[0]); break;
        case 'P': pipeline = (uint64_t)parse_num(optarg, argv[0]); break;
        case 'w': window = (uint64_t)parse_num(optarg, argv[0]); break;
        case 'T': timeout_s = parse_num(optarg, argv[0]); break;
        default: usage(argv[0]);
        }
    }
    if (optind != argc || port < 1 || port > 65535 || !conns_n || !size || !pipeline || !window ||
        (!duration && !per_conn))
        usage(argv[0]);
    if (duration > 0)
        per_conn = UINT64_MAX;
    int verify = pipeline == 1;

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rlim_t need = (rlim_t)conns_n + 64;
        if (rl.rlim_max < need) {
            struct rlimit more = {need, need}; /* only root may raise the hard limit */
            if (setrlimit(RLIMIT_NOFILE, &more) == 0)
                rl = more;
        }
        if (rl.rlim_cur < rl.rlim_max) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (rl.rlim_cur < need)
            fprintf(stderr, "pingpong_client: open-file limit %llu is below the %llu needed\n",
                    (unsigned long long)rl.rlim_cur, (unsigned long long)need);
    }
    signal(SIGPIPE, SIG_IGN);

    /* The payload: printable ASCII, repeated so one write can carry `pipeline` messages. */
    size_t reps = pipeline < 64 ? (size_t)pipeline : 64;
    pattern_len = size * (reps + 1);
    if (pattern_len < READ_CHUNK)
        pattern_len = (READ_CHUNK / size + 1) * size;
    pattern = malloc(pattern_len);
    struct conn *conns = calloc(conns_n, sizeof *conns);
    uint64_t *stamps = calloc(conns_n * pipeline, sizeof *stamps);
    if (!pattern || !conns || !stamps) {
        perror("malloc");
        return 1;
    }
    for (size_t i = 0; i < pattern_len; i++)
        pattern[i] = (char)('!' + (i % size) % 94);
    for (uint64_t i = 0; i < conns_n; i++) {
        conns[i].fd = -1;
        conns[i].stamps = stamps + i * pipeline;
    }

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) {
        perror("epoll_create1");
        return 1;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    uint64_t t0 = now_ns(), t_connected = t0, t_end = t0;
    uint64_t deadline = t0 + (uint64_t)(timeout_s * 1e9);
    uint64_t stop_at = duration > 0 ? t0 + (uint64_t)(duration * 1e9) : UINT64_MAX;
    uint64_t launched = 0, connected = 0, target = conns_n, total_msgs = 0;
    int stopping = 0, timed_out = 0;
    struct epoll_event events[MAX_EVENTS];

    while (finished + failed < target) {
        /* Pacing: connecting or awaiting a first reply counts against the window. */
        while (!stopping && launched < conns_n && awaiting < window) {
            if (start_connect(&conns[launched], &addr) < 0)
                fail(&conns[launched]);
            launched++;
        }
        uint64_t now = now_ns();
        if (now >= deadline) {
            timed_out = 1;
            break;
        }
        if (!stopping && now >= stop_at) {
            stopping = 1; /* -d: no new connections or messages; finish those in flight */
            target = launched;
            for (uint64_t i = 0; i < launched; i++)
                if (conns[i].state == RUNNING && conns[i].completed == conns[i].started)
                    finish(&conns[i]);
            continue;
        }
        uint64_t until = stop_at < deadline ? stop_at : deadline;
        int wait_ms = until > now ? (int)((until - now) / 1000000 + 1) : 0;
        if (wait_ms > 1000)
            wait_ms = 1000;
        int n = epoll_wait(epfd, events, MAX_EVENTS, wait_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->state == FAILED)
                continue; /* closed earlier in this batch */
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) {
                    fprintf(stderr, "pingpong_client: connect: %s\n", strerror(err));
                    fail(c);
                    continue;
                }
                if (!(events[i].events & EPOLLOUT))
                    continue;
                c->state = RUNNING;
                if (++connected == conns_n)
                    t_connected = now_ns();
            } else if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                int got = drain(c, verify);
                if (got < 0) {
                    fail(c);
                    continue;
                }
                total_msgs += (uint64_t)got;
                if (got)
                    t_end = now_ns();
            }
            if (c->state != RUNNING)
                continue;
            if (c->completed >= per_conn || (stopping && c->completed == c->started)) {
                finish(c);
                continue;
            }
            if (pump(c, stopping) < 0) {
                perror("write");
                fail(c);
            }
        }
    }

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    for (uint64_t i = 0; i < conns_n; i++)
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    if (timed_out) {
        fprintf(stderr, "pingpong_client: gave up after %.0f s with %llu of %llu connections done\n",
                timeout_s, (unsigned long long)finished, (unsigned long long)conns_n);
    }
    uint64_t errors = target - finished; /* failed or timed out */
    double seconds = (double)(t_end - t0) / 1e9;
    if (seconds <= 0)
        seconds = 1e-9;
    printf("{\"connections\": %llu, \"messages\": %llu, \"size\": %zu, \"pipeline\": %llu, "
           "\"seconds\": %.6f, \"connect_seconds\": %.6f, \"msgs_per_sec\": %.1f, "
           "\"bytes_per_sec\": %.1f, \"rtt_p50_us\": %.1f, \"rtt_p90_us\": %.1f, "
           "\"rtt_p99_us\": %.1f, \"rtt_max_us\": %.1f, \"rtt_count\": %llu, \"verified\": %s, "
           "\"errors\": %llu, \"cpu_user_s\": %.6f, \"cpu_sys_s\": %.6f, \"maxrss_kib\": %ld}\n",
           (unsigned long long)conns_n, (unsigned long long)total_msgs, size,
           (unsigned long long)pipeline, seconds, (double)(t_connected - t0) / 1e9,
           (double)total_msgs / seconds, (double)total_msgs * (double)size / seconds,
           percentile_us(0.50), percentile_us(0.90), percentile_us(0.99),
           (double)hist_max / 1000.0, (unsigned long long)hist_count, verify ? "true" : "false",
           (unsigned long long)errors, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
           ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6, ru.ru_maxrss);
    free(stamps);
    free(conns);
    free(pattern);
    return errors ? 1 : 0;
}
