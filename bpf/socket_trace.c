// pxtui socket tracer: syscall tracepoints -> BPF ring buffer.
//
// Design (measured, see shared/reference/ebpf-notes.md §2-3):
//  * sys_enter_<io syscall> stores the user pointers in `active`, keyed by pid_tgid.
//  * sock:sock_send_length / sock:sock_recv_length fire inside sock_sendmsg/sock_recvmsg on the
//    same thread: they mark the entry as a socket and record family, protocol and sk. Files,
//    pipes and ttys never get that mark and are dropped in the kernel at sys_exit.
//  * sys_exit_<io syscall> copies up to MAX_MSG bytes per event (plain buffers: up to MAX_CHUNKS
//    events; iovecs: one event per iovec, up to MAX_IOV) into the ring buffer with
//    BPF_RB_NO_WAKEUP: user space polls on a timer, because wakeups (IPIs) cost 2-8x more.
//  * connect/accept/accept4/close give connection lifecycle events; inet_sock_set_state gives
//    sk -> 4-tuple without reading any kernel struct.
//  * TLS (ebpf-notes §4): uprobes on OpenSSL's SSL_read/SSL_write(_ex) emit the plaintext as
//    EV_DATA with F_SSL. The SSL* -> fd mapping needs no OpenSSL struct offsets: an SSL call in
//    progress is recorded per thread in `ssl_calls`, and the socket syscall it makes (seen by
//    mark_sock) gives the fd. That fd is then marked in `tls_fds` and its ciphertext is dropped
//    at sys_exit. SSL_do_handshake is probed too, so the handshake's ciphertext is dropped.
//    Attached per library by user space (cluster/pem/sources/openssl_probes.py).
//
// NEVER dereference kernel structs here: the headers (6.1) do not match the running kernel and
// BCC's Python frontend has no CO-RE. Tracepoint args are safe (BCC builds them from the running
// kernel's tracefs format files); user memory (sockaddr, iovec, msghdr) has a stable ABI.
//
// Compile-time knobs (-D): MAX_MSG (power of two <= 16384: per-CPU values are capped at 32 KiB),
// RINGBUF_PAGES (power of two).

#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf.h>

#ifndef MAX_MSG
#define MAX_MSG 16384
#endif
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 4096
#endif
#define MAX_CHUNKS 4
#define MAX_IOV 32
#define MAX_MMSG 8      // messages captured per sendmmsg/recvmmsg (glibc's resolver sends 2)
#define MAX_MMSG_IOV 2  // iovecs captured per message of a sendmmsg/recvmmsg
#define ADDR_LEN 28

#define PX_AF_INET 2
#define PX_AF_INET6 10
#define PX_EINPROGRESS 115
#define PX_TCP_ESTABLISHED 1
#define PX_IPPROTO_TCP 6

// Event types: the first byte of every record (mirrors socket_events.EV_*).
#define EV_DATA 1
#define EV_CONNECT 2
#define EV_ACCEPT 3
#define EV_CLOSE 4
#define EV_ESTABLISHED 5

// Syscall ids: the x86_64 syscall numbers, hard-coded so the value does not depend on how the
// tracepoint was reached.
#define SC_READ 0
#define SC_WRITE 1
#define SC_CLOSE 3
#define SC_READV 19
#define SC_WRITEV 20
#define SC_CONNECT 42
#define SC_ACCEPT 43
#define SC_SENDTO 44
#define SC_RECVFROM 45
#define SC_SENDMSG 46
#define SC_RECVMSG 47
#define SC_ACCEPT4 288
#define SC_RECVMMSG 299
#define SC_SENDMMSG 307
// Pseudo syscall ids of TLS plaintext events (above every x86_64 syscall number).
#define SC_SSL_READ 1000
#define SC_SSL_WRITE 1001
#define SC_SSL_READ_EX 1002
#define SC_SSL_WRITE_EX 1003

#define DIR_EGRESS 0
#define DIR_INGRESS 1
#define DIR_NONE 2

// hdr.flags bits
#define F_INGRESS 1     // data was read/received by the traced process
#define F_ADDR 2        // hdr.addr holds a sockaddr (peer for data/connect/accept, local for ESTABLISHED)
#define F_READ_FAIL 4   // bpf_probe_read_user of the payload failed: buf_size is 0
#define F_SSL 8         // plaintext captured inside a TLS library (SSL_read/SSL_write)

// counters[] indices
#define CNT_RING_FULL 0
#define CNT_READ_FAIL 1
#define CNT_ACTIVE_FULL 2
#define CNT_SSL_NO_FD 3  // TLS plaintext dropped: no socket syscall ever tied its SSL* to an fd

// 80 bytes; natural alignment gives no holes. Decoded in socket_tracer.py as
// "<BBHHHQQIIiIII28sI".
struct hdr_t {
    u8 type;
    u8 flags;
    u16 syscall;
    u16 family;
    u16 protocol;   // IPPROTO_* from the sock tracepoints (0 when unknown)
    u64 ts;         // bpf_ktime_get_ns (CLOCK_MONOTONIC); all chunks of one syscall share it
    u64 sk;
    u32 tgid;
    u32 tid;
    s32 fd;
    u32 msg_size;   // syscall return value (bytes moved); MAX_RW_COUNT keeps it below 2^31
    u32 buf_size;   // payload bytes following the header
    u32 pos;        // offset of the payload inside the syscall's bytes
    u8 addr[ADDR_LEN];
    u32 extra;      // ACCEPT: listening fd; ESTABLISHED: old TCP state
};

struct event_t {
    struct hdr_t h;
    u8 data[MAX_MSG];
};

struct est_event_t {
    struct hdr_t h;
    u8 remote[ADDR_LEN];
};

// The per-thread state of a syscall in progress.
struct active_t {
    u64 buf;          // plain buffer, or iovec array
    u64 addr;         // user sockaddr pointer (0: none)
    u64 addrlen_ptr;  // user int* the kernel writes the sockaddr length to (0: not applicable)
    u64 sk;
    u32 iovlen;       // 0 for plain buffers
    s32 fd;
    u16 syscall;
    u16 family;
    u16 protocol;
    u8 dir;
    u8 is_sock;
};

// user-space ABI of struct user_msghdr (the first fields are all we need)
struct px_msghdr {
    u64 name;
    s32 namelen;
    u32 pad;
    u64 iov;
    u64 iovlen;
};

struct px_iovec {
    u64 base;
    u64 len;
};

// user-space ABI of struct mmsghdr: a full user_msghdr (56 bytes), then msg_len (bytes moved for
// this message, written by the kernel), padded to 64.
struct px_mmsghdr {
    u64 name;
    s32 namelen;
    u32 pad;
    u64 iov;
    u64 iovlen;
    u64 control;
    u64 controllen;
    s32 flags;
    u32 pad2;
    u32 msg_len;
    u32 pad3;
};

// Like BCC's TRACEPOINT_PROBE, but without the `tracepoint__` prefix that BCC auto-attaches at
// load time: user space fills `excluded` first and then attaches, so the agent's own traffic is
// never captured, not even in the window between load and map update.
#define PX_TP(category, event) \
    int px__##category##__##event(struct tracepoint__##category##__##event *args)

BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(scratch, struct event_t, 1);  // events are too big for the 512-byte stack
BPF_PERCPU_ARRAY(counters, u64, 4);
BPF_HASH(active, u64, struct active_t, 65536);
BPF_HASH(excluded, u32, u8, 1024);              // tgids whose traffic is never captured (the agent)
BPF_TABLE("lru_hash", u64, u8, known_fds, 65536);  // (tgid << 32 | fd): emit CLOSE only for these

// ---- TLS state (used by the syscall probes too, hence declared here) ----
#define SSL_KIND_DATA 0
#define SSL_KIND_HANDSHAKE 1

// An SSL call in progress on a thread, from the uprobe to its uretprobe.
struct ssl_call_t {
    u64 ssl;      // the SSL*
    u64 buf;      // user buffer of SSL_read/SSL_write
    u64 len_ptr;  // *_ex: the size_t* the byte count is written to (0: the return value is the count)
    u64 sk;       // from the first socket syscall nested in the call
    s32 fd;       // -1 until a socket syscall nested in the call is seen
    u16 family;
    u16 protocol;
    u16 syscall;  // SC_SSL_*
    u8 dir;
    u8 kind;      // SSL_KIND_*
};

struct ssl_key_t {
    u64 ssl;
    u32 tgid;
    u32 pad;
};

// The socket an SSL* was last seen using: SSL_read served from OpenSSL's buffer makes no syscall.
struct ssl_sock_t {
    u64 sk;
    s32 fd;
    u16 family;
    u16 protocol;
};

BPF_HASH(ssl_calls, u64, struct ssl_call_t, 16384);                     // pid_tgid -> call
BPF_TABLE("lru_hash", struct ssl_key_t, struct ssl_sock_t, ssl_socks, 65536);
BPF_TABLE("lru_hash", u64, u8, tls_fds, 65536);  // (tgid << 32 | fd) of TLS sockets: ciphertext dropped

static __always_inline void bump(u32 idx) {
    u64 *v = counters.lookup(&idx);
    if (v)
        *v += 1;
}

static __always_inline int is_excluded(u64 id) {
    u32 tgid = id >> 32;
    return excluded.lookup(&tgid) != 0;
}

static __always_inline void remember_fd(u64 id, s32 fd) {
    u64 key = (id & 0xffffffff00000000ULL) | (u32)fd;
    if (known_fds.lookup(&key))
        return;
    u8 one = 1;
    known_fds.update(&key, &one);
}

static __always_inline void output(void *e, u64 size) {
    if (events.ringbuf_output(e, size, BPF_RB_NO_WAKEUP) != 0)
        bump(CNT_RING_FULL);
}

// Read a user sockaddr (IPv4 or IPv6). The 28-byte read can fault when the caller's buffer is a
// 16-byte sockaddr_in at the end of a page, hence the fallback. Returns 0 for an inet family.
static __always_inline int read_sockaddr(u8 *dst, u64 src) {
    if (bpf_probe_read_user(dst, ADDR_LEN, (void *)src) != 0) {
        __builtin_memset(dst, 0, ADDR_LEN);
        if (bpf_probe_read_user(dst, 16, (void *)src) != 0)
            return -1;
    }
    u16 fam = *(u16 *)dst;
    return (fam == PX_AF_INET || fam == PX_AF_INET6) ? 0 : -1;
}

static __always_inline void store(u64 id, u16 syscall, u8 dir, s32 fd, u64 buf, u32 iovlen, u64 addr,
                                  u64 addrlen_ptr) {
    struct active_t a = {};
    a.syscall = syscall;
    a.dir = dir;
    a.fd = fd;
    a.buf = buf;
    a.iovlen = iovlen;
    a.addr = addr;
    a.addrlen_ptr = addrlen_ptr;
    if (active.update(&id, &a) != 0)
        bump(CNT_ACTIVE_FULL);
}

static __always_inline void begin(u16 syscall, u8 dir, s32 fd, u64 buf, u32 iovlen, u64 addr,
                                  u64 addrlen_ptr) {
    u64 id = bpf_get_current_pid_tgid();
    if (!is_excluded(id))
        store(id, syscall, dir, fd, buf, iovlen, addr, addrlen_ptr);
}

// A socket syscall made while an SSL call is in progress on the same thread is that SSL*'s own
// I/O: it gives the call its fd and marks the fd as TLS (its ciphertext is dropped at exit). One
// map lookup per socket syscall when no SSL call is in progress.
static __always_inline void note_ssl_socket(u64 id, struct active_t *a) {
    struct ssl_call_t *c = ssl_calls.lookup(&id);
    if (!c || (a->family != PX_AF_INET && a->family != PX_AF_INET6))
        return;
    if (c->fd < 0) {
        c->fd = a->fd;
        c->sk = a->sk;
        c->family = a->family;
        c->protocol = a->protocol;
    }
    u64 key = (id & 0xffffffff00000000ULL) | (u32)a->fd;
    if (!tls_fds.lookup(&key)) {
        u8 one = 1;
        tls_fds.update(&key, &one);
        remember_fd(id, a->fd);  // so close() clears the mark before the fd number is reused
    }
}

// The sock tracepoints fire for kernel-internal socket I/O too (NFS, iSCSI...) in whatever
// thread caused it; requiring the direction to match the syscall keeps such a send from
// marking a file read as socket traffic.
static __always_inline void mark_sock(u8 dir, u64 sk, u16 family, u16 protocol) {
    u64 id = bpf_get_current_pid_tgid();
    struct active_t *a = active.lookup(&id);
    if (!a || a->dir != dir)
        return;
    a->is_sock = 1;
    a->sk = sk;
    a->family = family;
    a->protocol = protocol;
    note_ssl_socket(id, a);
}

// Pops the thread's active entry into *out. Returns 0 when it is inet socket data to emit.
static __always_inline int finish(struct active_t *out, long ret) {
    u64 id = bpf_get_current_pid_tgid();
    struct active_t *a = active.lookup(&id);
    if (!a)
        return -1;
    __builtin_memcpy(out, a, sizeof(*out));
    active.delete(&id);
    if (!out->is_sock || ret <= 0)
        return -1;
    if (out->family != PX_AF_INET && out->family != PX_AF_INET6)
        return -1;
    u64 key = (id & 0xffffffff00000000ULL) | (u32)out->fd;
    if (tls_fds.lookup(&key))
        return -1;  // TLS ciphertext: the plaintext comes from the SSL uprobes
    return 0;
}

static __always_inline struct event_t *data_header(struct active_t *a, long ret) {
    u32 zero = 0;
    struct event_t *e = scratch.lookup(&zero);
    if (!e)
        return 0;
    u64 id = bpf_get_current_pid_tgid();
    e->h.type = EV_DATA;
    e->h.flags = a->dir == DIR_INGRESS ? F_INGRESS : 0;
    e->h.syscall = a->syscall;
    e->h.family = a->family;
    e->h.protocol = a->protocol;
    e->h.ts = bpf_ktime_get_ns();
    e->h.sk = a->sk;
    e->h.tgid = id >> 32;
    e->h.tid = (u32)id;
    e->h.fd = a->fd;
    e->h.msg_size = (u32)ret;
    e->h.buf_size = 0;
    e->h.pos = 0;
    e->h.extra = 0;
    __builtin_memset(e->h.addr, 0, ADDR_LEN);
    if (a->addr) {
        int len = 1;
        if (a->addrlen_ptr)  // the kernel wrote back how much of the sockaddr it filled
            bpf_probe_read_user(&len, sizeof(len), (void *)a->addrlen_ptr);
        if (len > 0 && read_sockaddr(e->h.addr, a->addr) == 0)
            e->h.flags |= F_ADDR;
    }
    remember_fd(id, a->fd);
    return e;
}

// Copy n (1 <= n <= MAX_MSG) user bytes into the event and emit it. The `(n - 1) & (MAX_MSG - 1)`
// form is what the verifier accepts as a bounded, non-zero size (ebpf-notes §2, pitfall 2).
static __always_inline void emit_payload(struct event_t *e, u64 src, u64 n) {
    u32 nm1 = ((u32)n - 1) & (MAX_MSG - 1);
    if (bpf_probe_read_user(e->data, nm1 + 1, (void *)src) != 0) {
        bump(CNT_READ_FAIL);
        e->h.buf_size = 0;
        e->h.flags |= F_READ_FAIL;
        output(e, sizeof(struct hdr_t));
        e->h.flags &= ~F_READ_FAIL;
        return;
    }
    e->h.buf_size = nm1 + 1;
    output(e, sizeof(struct hdr_t) + nm1 + 1);
}

static __always_inline int exit_plain(long ret) {
    struct active_t a;
    if (finish(&a, ret) != 0)
        return 0;
    struct event_t *e = data_header(&a, ret);
    if (!e)
        return 0;
    u64 total = (u64)ret;
#pragma unroll
    for (int i = 0; i < MAX_CHUNKS; i++) {
        u64 off = (u64)i * MAX_MSG;
        if (off >= total)
            break;
        u64 n = total - off;
        if (n > MAX_MSG)
            n = MAX_MSG;
        e->h.pos = (u32)off;
        emit_payload(e, a.buf + off, n);
    }
    return 0;
}

// One event per iovec, with `pos` its offset in the syscall's bytes. The bytes moved fill the
// iovecs in order, so the remaining return value bounds each one.
static __always_inline int exit_iov(long ret) {
    struct active_t a;
    if (finish(&a, ret) != 0)
        return 0;
    struct event_t *e = data_header(&a, ret);
    if (!e)
        return 0;
    u64 remaining = (u64)ret;
    u64 pos = 0;
    u32 iovlen = a.iovlen;
#pragma unroll
    for (int i = 0; i < MAX_IOV; i++) {
        if (i >= iovlen || remaining == 0)
            break;
        struct px_iovec iov = {};
        if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(a.buf + i * sizeof(struct px_iovec))) != 0)
            break;
        u64 n = iov.len < remaining ? iov.len : remaining;
        if (n > 0) {
            e->h.pos = (u32)pos;
            emit_payload(e, iov.base, n > MAX_MSG ? MAX_MSG : n);
        }
        pos += n;
        remaining -= n;
    }
    return 0;
}

// sendmsg/recvmsg: the iovec array and the peer address live in the user msghdr.
static __always_inline void begin_msg(u16 syscall, u8 dir, s32 fd, u64 msg) {
    u64 id = bpf_get_current_pid_tgid();
    if (is_excluded(id))
        return;  // before reading the msghdr: the agent's own I/O costs one lookup only
    struct px_msghdr m = {};
    if (bpf_probe_read_user(&m, sizeof(m), (void *)msg) != 0)
        return;
    u64 addr = m.namelen > 0 ? m.name : 0;
    // recvmsg: the kernel writes the real name length back into msg_namelen (offset 8).
    u64 addrlen_ptr = dir == DIR_INGRESS && addr ? msg + 8 : 0;
    store(id, syscall, dir, fd, m.iov, m.iovlen > MAX_IOV ? MAX_IOV : (u32)m.iovlen, addr, addrlen_ptr);
}

// ---- data syscalls -------------------------------------------------------------------------

PX_TP(syscalls, sys_enter_write) {
    begin(SC_WRITE, DIR_EGRESS, (s32)args->fd, (u64)args->buf, 0, 0, 0);
    return 0;
}
PX_TP(syscalls, sys_exit_write) { return exit_plain(args->ret); }

PX_TP(syscalls, sys_enter_read) {
    begin(SC_READ, DIR_INGRESS, (s32)args->fd, (u64)args->buf, 0, 0, 0);
    return 0;
}
PX_TP(syscalls, sys_exit_read) { return exit_plain(args->ret); }

PX_TP(syscalls, sys_enter_sendto) {
    u64 addr = args->addr_len > 0 ? (u64)args->addr : 0;
    begin(SC_SENDTO, DIR_EGRESS, (s32)args->fd, (u64)args->buff, 0, addr, 0);
    return 0;
}
PX_TP(syscalls, sys_exit_sendto) { return exit_plain(args->ret); }

PX_TP(syscalls, sys_enter_recvfrom) {
    u64 addr = args->addr_len ? (u64)args->addr : 0;
    begin(SC_RECVFROM, DIR_INGRESS, (s32)args->fd, (u64)args->ubuf, 0, addr, (u64)args->addr_len);
    return 0;
}
PX_TP(syscalls, sys_exit_recvfrom) { return exit_plain(args->ret); }

PX_TP(syscalls, sys_enter_writev) {
    u64 n = args->vlen;
    begin(SC_WRITEV, DIR_EGRESS, (s32)args->fd, (u64)args->vec, n > MAX_IOV ? MAX_IOV : (u32)n, 0, 0);
    return 0;
}
PX_TP(syscalls, sys_exit_writev) { return exit_iov(args->ret); }

PX_TP(syscalls, sys_enter_readv) {
    u64 n = args->vlen;
    begin(SC_READV, DIR_INGRESS, (s32)args->fd, (u64)args->vec, n > MAX_IOV ? MAX_IOV : (u32)n, 0, 0);
    return 0;
}
PX_TP(syscalls, sys_exit_readv) { return exit_iov(args->ret); }

PX_TP(syscalls, sys_enter_sendmsg) {
    begin_msg(SC_SENDMSG, DIR_EGRESS, (s32)args->fd, (u64)args->msg);
    return 0;
}
PX_TP(syscalls, sys_exit_sendmsg) { return exit_iov(args->ret); }

PX_TP(syscalls, sys_enter_recvmsg) {
    begin_msg(SC_RECVMSG, DIR_INGRESS, (s32)args->fd, (u64)args->msg);
    return 0;
}
PX_TP(syscalls, sys_exit_recvmsg) { return exit_iov(args->ret); }

// sendmmsg/recvmmsg (glibc's resolver, libuv/dig): the return value is the number of messages,
// each one datagram with its own length and, when given, its own peer. One event per message
// (pos 0, msg_size = that message's length) and, inside it, one per iovec; `iovlen` holds vlen.
static __always_inline int exit_mmsg(long ret) {
    struct active_t a;
    if (finish(&a, ret) != 0)
        return 0;
    u32 count = (u32)ret < a.iovlen ? (u32)ret : a.iovlen;
    u64 vec = a.buf;
#pragma unroll
    for (int i = 0; i < MAX_MMSG; i++) {
        if (i >= count)
            break;
        struct px_mmsghdr m = {};
        if (bpf_probe_read_user(&m, sizeof(m), (void *)(vec + i * sizeof(struct px_mmsghdr))) != 0)
            break;
        if (m.msg_len == 0)
            continue;
        // After the syscall msg_namelen holds the real length (recvmmsg writes it back).
        a.addr = m.namelen > 0 ? m.name : 0;
        a.addrlen_ptr = 0;
        struct event_t *e = data_header(&a, m.msg_len);
        if (!e)
            return 0;
        u64 remaining = m.msg_len;
        u64 pos = 0;
#pragma unroll
        for (int j = 0; j < MAX_MMSG_IOV; j++) {
            if (j >= m.iovlen || remaining == 0)
                break;
            struct px_iovec iov = {};
            if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(m.iov + j * sizeof(struct px_iovec))) != 0)
                break;
            u64 n = iov.len < remaining ? iov.len : remaining;
            if (n > 0) {
                e->h.pos = (u32)pos;
                emit_payload(e, iov.base, n > MAX_MSG ? MAX_MSG : n);
            }
            pos += n;
            remaining -= n;
        }
    }
    return 0;
}

PX_TP(syscalls, sys_enter_sendmmsg) {
    u64 n = args->vlen;
    begin(SC_SENDMMSG, DIR_EGRESS, (s32)args->fd, (u64)args->mmsg, n > MAX_MMSG ? MAX_MMSG : (u32)n, 0, 0);
    return 0;
}
PX_TP(syscalls, sys_exit_sendmmsg) { return exit_mmsg(args->ret); }

PX_TP(syscalls, sys_enter_recvmmsg) {
    u64 n = args->vlen;
    begin(SC_RECVMMSG, DIR_INGRESS, (s32)args->fd, (u64)args->mmsg, n > MAX_MMSG ? MAX_MMSG : (u32)n, 0, 0);
    return 0;
}
PX_TP(syscalls, sys_exit_recvmmsg) { return exit_mmsg(args->ret); }

// ---- socket marking ------------------------------------------------------------------------

PX_TP(sock, sock_send_length) {
    mark_sock(DIR_EGRESS, (u64)args->sk, args->family, args->protocol);
    return 0;
}

PX_TP(sock, sock_recv_length) {
    mark_sock(DIR_INGRESS, (u64)args->sk, args->family, args->protocol);
    return 0;
}

// ---- connection lifecycle ------------------------------------------------------------------

static __always_inline void conn_header(struct hdr_t *h, u8 type, u16 syscall, s32 fd) {
    u64 id = bpf_get_current_pid_tgid();
    h->type = type;
    h->syscall = syscall;
    h->ts = bpf_ktime_get_ns();
    h->tgid = id >> 32;
    h->tid = (u32)id;
    h->fd = fd;
}

PX_TP(syscalls, sys_enter_connect) {
    begin(SC_CONNECT, DIR_NONE, (s32)args->fd, 0, 0, (u64)args->uservaddr, 0);
    return 0;
}

PX_TP(syscalls, sys_exit_connect) {
    u64 id = bpf_get_current_pid_tgid();
    struct active_t *a = active.lookup(&id);
    if (!a)
        return 0;
    s32 fd = a->fd;
    u64 addr = a->addr;
    active.delete(&id);
    long ret = args->ret;
    if (ret != 0 && ret != -PX_EINPROGRESS)
        return 0;
    struct hdr_t h = {};
    if (!addr || read_sockaddr(h.addr, addr) != 0)
        return 0;  // AF_UNIX, AF_UNSPEC (UDP disconnect), AF_NETLINK...
    conn_header(&h, EV_CONNECT, SC_CONNECT, fd);
    h.flags = F_ADDR;
    h.family = *(u16 *)h.addr;
    remember_fd(id, fd);
    output(&h, sizeof(h));
    return 0;
}

PX_TP(syscalls, sys_enter_accept) {
    begin(SC_ACCEPT, DIR_NONE, (s32)args->fd, 0, 0, (u64)args->upeer_sockaddr, (u64)args->upeer_addrlen);
    return 0;
}

PX_TP(syscalls, sys_enter_accept4) {
    begin(SC_ACCEPT4, DIR_NONE, (s32)args->fd, 0, 0, (u64)args->upeer_sockaddr, (u64)args->upeer_addrlen);
    return 0;
}

static __always_inline int exit_accept(long ret) {
    u64 id = bpf_get_current_pid_tgid();
    struct active_t *a = active.lookup(&id);
    if (!a)
        return 0;
    s32 listen_fd = a->fd;
    u64 addr = a->addr;
    u16 syscall = a->syscall;
    active.delete(&id);
    if (ret < 0)
        return 0;
    struct hdr_t h = {};
    if (addr) {
        if (read_sockaddr(h.addr, addr) != 0)
            return 0;  // not an inet listener
        h.flags = F_ADDR;
        h.family = *(u16 *)h.addr;
    }
    // With a NULL address the family is unknown: the event is emitted without one (family 0)
    // and user space resolves it from later data or ESTABLISHED events.
    conn_header(&h, EV_ACCEPT, syscall, (s32)ret);
    h.extra = (u32)listen_fd;
    remember_fd(id, (s32)ret);
    output(&h, sizeof(h));
    return 0;
}

PX_TP(syscalls, sys_exit_accept) { return exit_accept(args->ret); }
PX_TP(syscalls, sys_exit_accept4) { return exit_accept(args->ret); }

PX_TP(syscalls, sys_enter_close) {
    u64 id = bpf_get_current_pid_tgid();
    s32 fd = (s32)args->fd;
    u64 key = (id & 0xffffffff00000000ULL) | (u32)fd;
    if (!known_fds.lookup(&key))
        return 0;
    known_fds.delete(&key);
    tls_fds.delete(&key);
    struct hdr_t h = {};
    conn_header(&h, EV_CLOSE, SC_CLOSE, fd);
    output(&h, sizeof(h));
    return 0;
}

// Fires in softirq context for the server side (SYN_RECV -> ESTABLISHED), so the current task
// is unrelated to the socket: the event carries only sk and the 4-tuple. saddr/sport are the
// local side of skaddr, daddr/dport the remote side; ports arrive in host order.
PX_TP(sock, inet_sock_set_state) {
    if (args->newstate != PX_TCP_ESTABLISHED || args->protocol != PX_IPPROTO_TCP)
        return 0;
    u16 family = args->family;
    struct est_event_t ev = {};
    ev.h.type = EV_ESTABLISHED;
    ev.h.flags = F_ADDR;
    ev.h.family = family;
    ev.h.protocol = PX_IPPROTO_TCP;
    ev.h.ts = bpf_ktime_get_ns();
    ev.h.sk = (u64)args->skaddr;
    ev.h.fd = -1;
    ev.h.buf_size = ADDR_LEN;
    ev.h.extra = (u32)args->oldstate;
    u16 sport = args->sport;
    u16 dport = args->dport;
    if (family == PX_AF_INET) {
        *(u16 *)&ev.h.addr[0] = PX_AF_INET;
        ev.h.addr[2] = sport >> 8;
        ev.h.addr[3] = sport & 0xff;
        __builtin_memcpy(&ev.h.addr[4], args->saddr, 4);
        *(u16 *)&ev.remote[0] = PX_AF_INET;
        ev.remote[2] = dport >> 8;
        ev.remote[3] = dport & 0xff;
        __builtin_memcpy(&ev.remote[4], args->daddr, 4);
    } else if (family == PX_AF_INET6) {
        *(u16 *)&ev.h.addr[0] = PX_AF_INET6;
        ev.h.addr[2] = sport >> 8;
        ev.h.addr[3] = sport & 0xff;
        __builtin_memcpy(&ev.h.addr[8], args->saddr_v6, 16);
        *(u16 *)&ev.remote[0] = PX_AF_INET6;
        ev.remote[2] = dport >> 8;
        ev.remote[3] = dport & 0xff;
        __builtin_memcpy(&ev.remote[8], args->daddr_v6, 16);
    } else {
        return 0;
    }
    output(&ev, sizeof(ev));
    return 0;
}

// ---- TLS plaintext: OpenSSL 3 / 1.1.1 uprobes ----------------------------------------------
// Attached per libssl file by user space (openssl_probes.py), pid -1: every process mapping it.
// SSL_read/SSL_write return the byte count; the *_ex variants return 1 and write the count to
// their 4th argument. PT_REGS_RC is the whole rax: an int return must be cast (ebpf-notes §2.7).
// Program names start with px_ssl_ (not uprobe__): BCC must not auto-attach them.

static __always_inline void ssl_enter(struct pt_regs *ctx, u16 syscall, u8 dir, u8 ex) {
    u64 id = bpf_get_current_pid_tgid();
    if (is_excluded(id))
        return;
    struct ssl_call_t c = {};
    c.ssl = PT_REGS_PARM1(ctx);
    c.buf = PT_REGS_PARM2(ctx);
    c.len_ptr = ex ? PT_REGS_PARM4(ctx) : 0;
    c.fd = -1;
    c.syscall = syscall;
    c.dir = dir;
    c.kind = SSL_KIND_DATA;
    ssl_calls.update(&id, &c);
}

// Pops the thread's SSL call of `kind` into *out and resolves its socket into *sock: from the
// call's own nested syscall (remembered for the SSL*), else the SSL*'s last one.
// Returns -1 when no such call is in progress, 1 when its socket is unknown, 0 otherwise.
static __always_inline int ssl_finish(u64 id, u8 kind, struct ssl_call_t *out, struct ssl_sock_t *sock) {
    struct ssl_call_t *c = ssl_calls.lookup(&id);
    if (!c || c->kind != kind)
        return -1;  // a handshake nested in a data call leaves the data call's entry alone
    __builtin_memcpy(out, c, sizeof(*out));
    ssl_calls.delete(&id);
    struct ssl_key_t key = {};
    key.ssl = out->ssl;
    key.tgid = id >> 32;
    if (out->fd >= 0) {
        sock->sk = out->sk;
        sock->fd = out->fd;
        sock->family = out->family;
        sock->protocol = out->protocol;
        ssl_socks.update(&key, sock);
        return 0;
    }
    struct ssl_sock_t *s = ssl_socks.lookup(&key);
    if (!s)
        return 1;
    __builtin_memcpy(sock, s, sizeof(*sock));
    return 0;
}

static __always_inline int ssl_exit(struct pt_regs *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    struct ssl_call_t c = {};
    struct ssl_sock_t sock = {};
    int found = ssl_finish(id, SSL_KIND_DATA, &c, &sock);
    if (found < 0)
        return 0;
    int ret = (int)PT_REGS_RC(ctx);
    if (ret <= 0)
        return 0;
    u64 total = (u64)ret;
    if (c.syscall == SC_SSL_READ_EX || c.syscall == SC_SSL_WRITE_EX) {
        if (ret != 1 || !c.len_ptr)
            return 0;
        if (bpf_probe_read_user(&total, sizeof(total), (void *)c.len_ptr) != 0)
            return 0;
    }
    if (total == 0 || total > 0x7fffffff)
        return 0;
    if (found > 0) {
        bump(CNT_SSL_NO_FD);
        return 0;
    }
    u32 zero = 0;
    struct event_t *e = scratch.lookup(&zero);
    if (!e)
        return 0;
    e->h.type = EV_DATA;
    e->h.flags = (c.dir == DIR_INGRESS ? F_INGRESS : 0) | F_SSL;
    e->h.syscall = c.syscall;
    e->h.family = sock.family;
    e->h.protocol = sock.protocol;
    e->h.ts = bpf_ktime_get_ns();
    e->h.sk = sock.sk;
    e->h.tgid = id >> 32;
    e->h.tid = (u32)id;
    e->h.fd = sock.fd;
    e->h.msg_size = (u32)total;
    e->h.buf_size = 0;
    e->h.pos = 0;
    e->h.extra = 0;
    __builtin_memset(e->h.addr, 0, ADDR_LEN);
    remember_fd(id, sock.fd);
#pragma unroll
    for (int i = 0; i < MAX_CHUNKS; i++) {
        u64 off = (u64)i * MAX_MSG;
        if (off >= total)
            break;
        u64 n = total - off;
        if (n > MAX_MSG)
            n = MAX_MSG;
        e->h.pos = (u32)off;
        emit_payload(e, c.buf + off, n);
    }
    return 0;
}

int px_ssl_write_enter(struct pt_regs *ctx) {
    ssl_enter(ctx, SC_SSL_WRITE, DIR_EGRESS, 0);
    return 0;
}
int px_ssl_write_ex_enter(struct pt_regs *ctx) {
    ssl_enter(ctx, SC_SSL_WRITE_EX, DIR_EGRESS, 1);
    return 0;
}
int px_ssl_read_enter(struct pt_regs *ctx) {
    ssl_enter(ctx, SC_SSL_READ, DIR_INGRESS, 0);
    return 0;
}
int px_ssl_read_ex_enter(struct pt_regs *ctx) {
    ssl_enter(ctx, SC_SSL_READ_EX, DIR_INGRESS, 1);
    return 0;
}
// One return probe serves all four: the entry recorded which call it was.
int px_ssl_data_exit(struct pt_regs *ctx) { return ssl_exit(ctx); }

// SSL_do_handshake (SSL_connect and SSL_accept call it): no data, but its socket syscalls mark the
// fd as TLS from the ClientHello on, so no handshake ciphertext reaches user space. It never
// replaces a data call in progress on the thread (BPF_NOEXIST).
int px_ssl_handshake_enter(struct pt_regs *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    if (is_excluded(id))
        return 0;
    struct ssl_call_t c = {};
    c.ssl = PT_REGS_PARM1(ctx);
    c.fd = -1;
    c.kind = SSL_KIND_HANDSHAKE;
    ssl_calls.insert(&id, &c);
    return 0;
}
int px_ssl_handshake_exit(struct pt_regs *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    struct ssl_call_t c = {};
    struct ssl_sock_t sock = {};
    ssl_finish(id, SSL_KIND_HANDSHAKE, &c, &sock);
    return 0;
}
