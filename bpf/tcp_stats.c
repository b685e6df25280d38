// pxtui tcp_stats: per-connection bytes and retransmits, plus resets and drops with their reasons.
//
// Tracepoints only (no kprobes on this kernel, see shared/reference/ebpf-notes.md §6):
//  * sock:inet_sock_set_state  the 4-tuple of every TCP socket that changes state; CLOSE emits the
//                              connection's final counters and forgets it. SYN_SENT fires in the
//                              connecting process, so it also names the owner.
//  * sock:sock_send_length / sock:sock_recv_length   payload bytes per socket (process context,
//                              so they name the owner of sockets accepted in softirq context).
//  * tcp:tcp_retransmit_skb    counts a retransmit on the socket and emits an event (pid is 0
//                              here: it fires from the retransmit timer).
//  * tcp:tcp_send_reset / tcp:tcp_receive_reset   reset events, with the kernel's reset reason.
//  * skb:kfree_skb             TCP packets the kernel dropped, with enum skb_drop_reason. The
//                              tracepoint has no addresses, so the IP and TCP headers are read from
//                              the skb at offsets taken from the running kernel's BTF (-D SKB_*),
//                              never from the installed (older) headers.
//
// Enum names (drop and reset reasons, TCP states) are resolved in user space from the running
// kernel's tracepoint format files. The 6.1 headers lack enum sk_rst_reason and
// enum skb_drop_reason, which the generated tracepoint structs use: declare them (their values
// come from the kernel, only the type name is needed to compile).
//
// -D knobs: SKB_HEAD_OFF, SKB_NETWORK_HEADER_OFF, SKB_TRANSPORT_HEADER_OFF, TASK_GROUP_LEADER_OFF,
// TASK_START_BOOTTIME_OFF, HAVE_RX_SK (kfree_skb has
// rx_sk), MAX_CONNS, RINGBUF_PAGES. PX_TP is defined by the loader (tracepoint_program.py).

#include <uapi/linux/ptrace.h>

enum sk_rst_reason { PX_SK_RST_REASON_ = 0 };
enum skb_drop_reason { PX_SKB_DROP_REASON_ = 0 };

#ifndef MAX_CONNS
#define MAX_CONNS 65536
#endif
#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 256
#endif

#define PX_AF_INET 2
#define PX_AF_INET6 10
#define PX_IPPROTO_TCP 6
#define PX_TCP_SYN_SENT 2
#define PX_TCP_CLOSE 7
#define PX_ETH_P_IP 0x0800
#define PX_ETH_P_IPV6 0x86DD

// Event kinds (mirror tcp_stats.py).
#define EV_RETRANSMIT 1
#define EV_SEND_RESET 2
#define EV_RECEIVE_RESET 3
#define EV_DROP 4
#define EV_CLOSE 5

struct conn_t {
    u64 tx;
    u64 rx;
    u64 start_ns;  // owner's start_boottime (the UPID's start time), read when it claims the socket
    u32 retransmits;
    u32 tgid;
    u8 saddr[16];  // local
    u8 daddr[16];  // remote
    u16 sport;     // host byte order
    u16 dport;
    u16 family;    // 0 until a tracepoint with the 4-tuple was seen
    u16 pad;
};

struct tcp_event_t {
    u64 ktime_ns;
    u64 sk;
    u64 tx;
    u64 rx;
    u64 start_ns;
    u32 retransmits;
    u32 tgid;
    s32 state;
    u32 reason;
    u8 saddr[16];
    u8 daddr[16];
    u16 sport;
    u16 dport;
    u16 family;
    u8 kind;
    u8 pad;
};

BPF_HASH(conns, u64, struct conn_t, MAX_CONNS);
BPF_RINGBUF_OUTPUT(tcp_events, RINGBUF_PAGES);
BPF_PERCPU_ARRAY(scratch, struct tcp_event_t, 1);
// 0: ring full (lost events), 1: conns map full (connections not tracked), 2: kernel reads failed
BPF_PERCPU_ARRAY(counters, u64, 3);

static __always_inline void count(int idx) {
    u64 *c = counters.lookup(&idx);
    if (c)
        (*c)++;
}

static __always_inline struct conn_t *conn_of(u64 sk) {
    struct conn_t zero = {};
    struct conn_t *c = conns.lookup(&sk);
    if (c)
        return c;
    if (conns.insert(&sk, &zero) != 0) {
        count(1);
        return 0;
    }
    return conns.lookup(&sk);
}

// The current process owns the socket: remember its tgid and start time (BTF offsets, see top).
static __always_inline void claim(struct conn_t *c) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (c->tgid == tgid && c->start_ns)
        return;
    c->tgid = tgid;
    void *task = (void *)bpf_get_current_task();
    void *leader = 0;
    if (bpf_probe_read_kernel(&leader, sizeof(leader), task + TASK_GROUP_LEADER_OFF) != 0 ||
        bpf_probe_read_kernel(&c->start_ns, sizeof(u64), leader + TASK_START_BOOTTIME_OFF) != 0)
        count(2);
}

static __always_inline struct tcp_event_t *new_event(u8 kind, u64 sk) {
    int zero = 0;
    struct tcp_event_t *e = scratch.lookup(&zero);
    if (!e)
        return 0;
    __builtin_memset(e, 0, sizeof(*e));
    e->ktime_ns = bpf_ktime_get_ns();
    e->kind = kind;
    e->sk = sk;
    return e;
}

static __always_inline void emit(struct tcp_event_t *e) {
    if (tcp_events.ringbuf_output(e, sizeof(*e), BPF_RB_NO_WAKEUP) != 0)
        count(0);
}

static __always_inline void copy_conn(struct tcp_event_t *e, struct conn_t *c) {
    e->tx = c->tx;
    e->rx = c->rx;
    e->retransmits = c->retransmits;
    e->tgid = c->tgid;
    e->start_ns = c->start_ns;
    if (e->family == 0) {
        __builtin_memcpy(e->saddr, c->saddr, 16);
        __builtin_memcpy(e->daddr, c->daddr, 16);
        e->sport = c->sport;
        e->dport = c->dport;
        e->family = c->family;
    }
}

PX_TP(sock, inet_sock_set_state) {
    if (args->protocol != PX_IPPROTO_TCP)
        return 0;
    u64 sk = (u64)args->skaddr;
    struct conn_t *c = conn_of(sk);
    if (!c)
        return 0;
    c->family = args->family;
    c->sport = args->sport;
    c->dport = args->dport;
    if (args->family == PX_AF_INET) {
        __builtin_memcpy(c->saddr, args->saddr, 4);
        __builtin_memcpy(c->daddr, args->daddr, 4);
    } else {
        __builtin_memcpy(c->saddr, args->saddr_v6, 16);
        __builtin_memcpy(c->daddr, args->daddr_v6, 16);
    }
    if (args->newstate == PX_TCP_SYN_SENT)
        claim(c);
    if (args->newstate == PX_TCP_CLOSE) {
        struct tcp_event_t *e = new_event(EV_CLOSE, sk);
        if (e) {
            e->state = args->oldstate;
            copy_conn(e, c);
            emit(e);
        }
        conns.delete(&sk);
    }
    return 0;
}

static __always_inline void add_bytes(u64 sk, int ret, u16 family, u16 protocol, int is_tx) {
    if (ret <= 0 || protocol != PX_IPPROTO_TCP || (family != PX_AF_INET && family != PX_AF_INET6))
        return;
    struct conn_t *c = conn_of(sk);
    if (!c)
        return;
    if (is_tx)
        c->tx += ret;
    else
        c->rx += ret;
    claim(c);
}

PX_TP(sock, sock_send_length) {
    add_bytes((u64)args->sk, args->ret, args->family, args->protocol, 1);
    return 0;
}

PX_TP(sock, sock_recv_length) {
    add_bytes((u64)args->sk, args->ret, args->family, args->protocol, 0);
    return 0;
}

PX_TP(tcp, tcp_retransmit_skb) {
    u64 sk = (u64)args->skaddr;
    struct tcp_event_t *e = new_event(EV_RETRANSMIT, sk);
    if (!e)
        return 0;
    e->state = args->state;
    e->family = args->family;
    e->sport = args->sport;
    e->dport = args->dport;
    if (args->family == PX_AF_INET) {
        __builtin_memcpy(e->saddr, args->saddr, 4);
        __builtin_memcpy(e->daddr, args->daddr, 4);
    } else {
        __builtin_memcpy(e->saddr, args->saddr_v6, 16);
        __builtin_memcpy(e->daddr, args->daddr_v6, 16);
    }
    struct conn_t *c = conn_of(sk);
    if (c) {
        c->retransmits++;
        if (c->family == 0) {
            c->family = e->family;
            c->sport = e->sport;
            c->dport = e->dport;
            __builtin_memcpy(c->saddr, e->saddr, 16);
            __builtin_memcpy(c->daddr, e->daddr, 16);
        }
        copy_conn(e, c);
    }
    emit(e);
    return 0;
}

// A sockaddr_in / sockaddr_in6 blob (28 bytes) into the event's address and port (host order).
static __always_inline void from_sockaddr(const u8 *sa, u8 *addr, u16 *port, u16 *family) {
    u16 fam = sa[0] | (sa[1] << 8);
    *port = (sa[2] << 8) | sa[3];
    if (fam == PX_AF_INET) {
        __builtin_memcpy(addr, sa + 4, 4);
    } else if (fam == PX_AF_INET6) {
        __builtin_memcpy(addr, sa + 8, 16);
    }
    *family = fam;
}

PX_TP(tcp, tcp_send_reset) {
    u64 sk = (u64)args->skaddr;
    struct tcp_event_t *e = new_event(EV_SEND_RESET, sk);
    if (!e)
        return 0;
    e->state = args->state;
    e->reason = args->reason;
    u16 fam2 = 0;
    from_sockaddr(args->saddr, e->saddr, &e->sport, &e->family);
    from_sockaddr(args->daddr, e->daddr, &e->dport, &fam2);
    struct conn_t *c = sk ? conns.lookup(&sk) : 0;
    if (c)
        copy_conn(e, c);
    emit(e);
    return 0;
}

PX_TP(tcp, tcp_receive_reset) {
    u64 sk = (u64)args->skaddr;
    struct tcp_event_t *e = new_event(EV_RECEIVE_RESET, sk);
    if (!e)
        return 0;
    e->family = args->family;
    e->sport = args->sport;
    e->dport = args->dport;
    if (args->family == PX_AF_INET) {
        __builtin_memcpy(e->saddr, args->saddr, 4);
        __builtin_memcpy(e->daddr, args->daddr, 4);
    } else {
        __builtin_memcpy(e->saddr, args->saddr_v6, 16);
        __builtin_memcpy(e->daddr, args->daddr_v6, 16);
    }
    struct conn_t *c = conns.lookup(&sk);
    if (c)
        copy_conn(e, c);
    emit(e);
    return 0;
}

PX_TP(skb, kfree_skb) {
    u16 proto = args->protocol;
    if (proto != PX_ETH_P_IP && proto != PX_ETH_P_IPV6)
        return 0;
    void *skb = (void *)args->skbaddr;
    void *head = 0;
    u16 nh = 0, th = 0;
    if (bpf_probe_read_kernel(&head, sizeof(head), skb + SKB_HEAD_OFF) != 0 ||
        bpf_probe_read_kernel(&nh, sizeof(nh), skb + SKB_NETWORK_HEADER_OFF) != 0 ||
        bpf_probe_read_kernel(&th, sizeof(th), skb + SKB_TRANSPORT_HEADER_OFF) != 0) {
        count(2);
        return 0;
    }
    if (head == 0 || nh == 0xFFFF)
        return 0;  // no network header yet
    u8 ip[40] = {};
    u16 l4 = 0;
    u8 family = 0;
    if (proto == PX_ETH_P_IP) {
        if (bpf_probe_read_kernel(ip, 20, head + nh) != 0) {
            count(2);
            return 0;
        }
        if ((ip[0] >> 4) != 4 || ip[9] != PX_IPPROTO_TCP)
            return 0;
        l4 = nh + (ip[0] & 0xF) * 4;
        family = PX_AF_INET;
    } else {
        if (bpf_probe_read_kernel(ip, 40, head + nh) != 0) {
            count(2);
            return 0;
        }
        if ((ip[0] >> 4) != 6 || ip[6] != PX_IPPROTO_TCP)
            return 0;
        l4 = nh + 40;
        family = PX_AF_INET6;
    }
    if (th != 0xFFFF && th > nh)
        l4 = th;
    u8 ports[4] = {};
    if (bpf_probe_read_kernel(ports, 4, head + l4) != 0) {
        count(2);
        return 0;
    }
#ifdef HAVE_RX_SK
    u64 rx_sk = (u64)args->rx_sk;  // kernel >= 6.12: the socket the packet was delivered to
#else
    u64 rx_sk = 0;
#endif
    struct tcp_event_t *e = new_event(EV_DROP, rx_sk);
    if (!e)
        return 0;
    e->reason = args->reason;
    e->family = family;
    // Packet order: source then destination; user space decides which side is local.
    if (family == PX_AF_INET) {
        __builtin_memcpy(e->saddr, ip + 12, 4);
        __builtin_memcpy(e->daddr, ip + 16, 4);
    } else {
        __builtin_memcpy(e->saddr, ip + 8, 16);
        __builtin_memcpy(e->daddr, ip + 24, 16);
    }
    e->sport = (ports[0] << 8) | ports[1];
    e->dport = (ports[2] << 8) | ports[3];
    struct conn_t *c = rx_sk ? conns.lookup(&rx_sk) : 0;
    if (c) {
        e->tgid = c->tgid;
        e->start_ns = c->start_ns;
    }
    emit(e);
    return 0;
}
