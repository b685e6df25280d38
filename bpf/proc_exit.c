// pxtui proc_exit tracer: sched:sched_process_exit -> ring buffer, abnormal exits only.
//
// The tracepoint carries comm, pid and (kernel >= 6.16) group_dead, but not the exit code, which
// lives in task_struct.exit_code (set by do_exit before the tracepoint fires). Struct offsets come
// from the running kernel's BTF (cluster/pem/sources/kernel_btf.py) as -D constants, because the
// installed headers describe an older kernel: never use the headers' struct layouts here.
//
// PX_TP(category, event) is defined by the loader (tracepoint_program.py): BCC's TRACEPOINT_PROBE
// without the auto-attach, so every probe is verified before any is attached.
//
// -D knobs: EXIT_CODE_OFF, GROUP_LEADER_OFF, START_BOOTTIME_OFF, TGID_OFF (byte offsets in
// task_struct), HAVE_GROUP_DEAD (the tracepoint has the group_dead field), RINGBUF_PAGES.

#include <uapi/linux/ptrace.h>

#ifndef RINGBUF_PAGES
#define RINGBUF_PAGES 64
#endif

struct exit_event_t {
    u64 ktime_ns;            // bpf_ktime_get_ns(), CLOCK_MONOTONIC
    u64 start_boottime_ns;   // group leader's start_boottime: the UPID's start time
    u32 tgid;
    u32 tgid_read;           // task->tgid through TGID_OFF: user space checks it equals tgid
    s32 exit_code;           // raw wait status: (code << 8) | signal
    u32 pad;
    char comm[16];
};

BPF_RINGBUF_OUTPUT(proc_exits, RINGBUF_PAGES);
// 0: ring full (lost), 1: kernel reads failed, 2: exits seen (all, normal ones included)
BPF_PERCPU_ARRAY(counters, u64, 3);

static __always_inline void count(int idx) {
    u64 *c = counters.lookup(&idx);
    if (c)
        (*c)++;
}

PX_TP(sched, sched_process_exit) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
#ifdef HAVE_GROUP_DEAD
    if (!args->group_dead)
        return 0;  // another thread is still alive: the process has not exited
#else
    if ((u32)id != tgid)
        return 0;  // a thread, not the process
#endif
    count(2);
    void *task = (void *)bpf_get_current_task();
    s32 code = 0;
    if (bpf_probe_read_kernel(&code, sizeof(code), task + EXIT_CODE_OFF) != 0) {
        count(1);
        return 0;
    }
    if (code == 0)
        return 0;  // a normal exit: Pixie's table holds the abnormal ones
    struct exit_event_t e = {};
    e.ktime_ns = bpf_ktime_get_ns();
    e.tgid = tgid;
    e.exit_code = code;
    void *leader = 0;
    if (bpf_probe_read_kernel(&leader, sizeof(leader), task + GROUP_LEADER_OFF) != 0 ||
        bpf_probe_read_kernel(&e.start_boottime_ns, sizeof(u64), leader + START_BOOTTIME_OFF) != 0 ||
        bpf_probe_read_kernel(&e.tgid_read, sizeof(u32), task + TGID_OFF) != 0)
        count(1);
    bpf_probe_read_kernel(&e.comm, sizeof(e.comm), args->comm);
    if (proc_exits.ringbuf_output(&e, sizeof(e), BPF_RB_NO_WAKEUP) != 0)
        count(0);
    return 0;
}
