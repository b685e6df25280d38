// Continuous CPU profiler: a perf-event program sampling every CPU at ~99 Hz that counts
// (process, user stack, kernel stack, Python stack) in the kernel, so user space reads only the
// counts of unique stacks once per push period instead of one event per sample.
//
// Double buffering (as Pixie's profiler): two sets of maps, side 0 and side 1. `control[0]`
// names the side samples go to; user space flips it, waits for in-flight samples, then reads and
// clears the other side, so no sample is lost or counted twice while a period is read.
//
// Python (beyond Pixie): for processes user space registered in `py_procs` (CPython 3.11), the
// program walks the sampled thread's interpreter frames (_PyInterpreterFrame chain) and stores
// their code object addresses; user space turns them into function names while the process lives.
//
// Build-time defines from cluster/pem/sources/perf_profiler.py: SELF_TGID (never profile the
// agent), STACK_MAP_SIZE, COUNTS_SIZE, PY_MAX_FRAMES.
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf_perf_event.h>
#include <uapi/asm-generic/errno-base.h>

#ifndef SELF_TGID
#define SELF_TGID 0
#endif
#ifndef STACK_MAP_SIZE
#define STACK_MAP_SIZE 16384
#endif
#ifndef COUNTS_SIZE
#define COUNTS_SIZE 16384
#endif
#ifndef PY_MAX_FRAMES
#define PY_MAX_FRAMES 64
#endif
#define PY_MAX_THREADS 16

struct stack_key_t {
    u32 tgid;
    s32 user_stack_id;    // -EFAULT (kernel threads) or -EEXIST (bucket collision) when absent
    s32 kernel_stack_id;
    u32 pad;
    u64 py_stack_id;      // 0: no Python frames
};

// Where CPython 3.11 keeps what the walk needs, for one process (filled by user space).
struct py_proc_t {
    u64 runtime;          // address of _PyRuntime in the process
    u32 tstate_current;   // offsetof(_PyRuntimeState, gilstate.tstate_current)
    u32 interp_head;      // offsetof(_PyRuntimeState, interpreters.head)
    u32 threads_head;     // offsetof(PyInterpreterState, threads.head)
    u32 tstate_next;      // offsetof(PyThreadState, next)
    u32 native_tid;       // offsetof(PyThreadState, native_thread_id)
    u32 cframe;           // offsetof(PyThreadState, cframe)
    u32 current_frame;    // offsetof(_PyCFrame, current_frame)
    u32 f_code;           // offsetof(_PyInterpreterFrame, f_code)
    u32 previous_word;    // (offsetof(previous) - offsetof(f_code)) / 8: its word in the window
    u32 is_entry_byte;    // offsetof(is_entry) - offsetof(f_code): its byte in the window
};

// One read per frame: PY_WINDOW bytes from f_code on hold f_code, previous and is_entry
// (3.11: f_code at 32, previous at 48, is_entry at 68). Probe reads cost ~0.1-0.2 us each, and
// a deep stack has dozens of frames.
#define PY_WINDOW_WORDS 5

// frames[i] = code object address | is_entry (bit 0; objects are 8-aligned), leaf first.
struct py_stack_t {
    u32 n;
    u32 truncated;  // the stack was deeper than PY_MAX_FRAMES: its root-most frames are missing
    u64 frames[PY_MAX_FRAMES];
};

BPF_ARRAY(control, u32, 1);
BPF_STACK_TRACE(stacks0, STACK_MAP_SIZE);
BPF_STACK_TRACE(stacks1, STACK_MAP_SIZE);
BPF_HASH(counts0, struct stack_key_t, u64, COUNTS_SIZE);
BPF_HASH(counts1, struct stack_key_t, u64, COUNTS_SIZE);
BPF_HASH(pystacks0, u64, struct py_stack_t, COUNTS_SIZE);
BPF_HASH(pystacks1, u64, struct py_stack_t, COUNTS_SIZE);
BPF_HASH(py_procs, u32, struct py_proc_t, 4096);
BPF_PERCPU_ARRAY(py_scratch, struct py_stack_t, 1);
// Processes already announced to user space; user space deletes a tgid when it exits.
BPF_HASH(seen, u32, u8, 65536);
BPF_RINGBUF_OUTPUT(new_procs, 16);  // 64 KiB: u32 tgids, drained every 0.5 s
// [0] samples, [1] counts map full, [2] new-process ring full, [3] Python walk failed
BPF_PERCPU_ARRAY(stats, u64, 4);

static __always_inline void bump(int i) {
    u64 *v = stats.lookup(&i);
    if (v)
        (*v)++;
}

// No branch on failure: the helper zero-fills v when the read faults, and branch-free reads keep
// the verifier's walk of the frame loop linear instead of doubling per iteration.
static __always_inline u64 read_ptr(u64 addr) {
    u64 v = 0;
    bpf_probe_read_user(&v, sizeof(v), (void *)addr);
    return v;
}

// The PyThreadState of the sampled thread: the GIL holder when it is this thread, else a walk
// of the interpreter's thread list (a thread blocked in C code has released the GIL).
static __always_inline u64 py_tstate(struct py_proc_t *p, u32 tid) {
    u64 ts = read_ptr(p->runtime + p->tstate_current);
    u64 ntid = 0;
    if (ts && read_ptr(ts + p->native_tid) == tid)
        return ts;
    u64 interp = read_ptr(p->runtime + p->interp_head);
    if (!interp)
        return 0;
    ts = read_ptr(interp + p->threads_head);
    for (int i = 0; i < PY_MAX_THREADS; i++) {
        if (!ts)
            return 0;
        ntid = read_ptr(ts + p->native_tid);
        if (ntid == tid)
            return ts;
        ts = read_ptr(ts + p->tstate_next);
    }
    return 0;
}

// Walk the interpreter frames into the per-CPU scratch; return a hash of them (0: none).
static __always_inline u64 py_walk(struct py_proc_t *p, u32 tid, struct py_stack_t **out) {
    int zero = 0;
    struct py_stack_t *s = py_scratch.lookup(&zero);
    if (!s)
        return 0;
    s->n = 0;
    s->truncated = 0;
    u64 ts = py_tstate(p, tid);
    if (!ts)
        return 0;
    u64 cf = read_ptr(ts + p->cframe);
    if (!cf)
        return 0;
    u64 frame = read_ptr(cf + p->current_frame);
    u64 h = 14695981039346656037ULL;  // FNV-1a over the frame words
    u32 n = 0;
    u32 pw = p->previous_word;
    u32 eb = p->is_entry_byte;
    if (pw >= PY_WINDOW_WORDS || eb >= PY_WINDOW_WORDS * 8)
        return 0;
    u64 win[PY_WINDOW_WORDS];
    for (int i = 0; i < PY_MAX_FRAMES; i++) {
        if (!frame)
            break;
        bpf_probe_read_user(win, sizeof(win), (void *)(frame + p->f_code));  // zero-filled on a fault
        u8 entry = ((u8 *)win)[eb];
        u64 word = (win[0] & ~7ULL) | (entry & 1);
        s->frames[i & (PY_MAX_FRAMES - 1)] = word;
        h = (h ^ word) * 1099511628211ULL;
        n = i + 1;
        frame = win[pw];
    }
    if (frame)
        s->truncated = 1;
    s->n = n;
    *out = s;
    if (n == 0)
        return 0;
    return h | 1;  // never 0
}

int on_sample(struct bpf_perf_event_data *ctx) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    u32 tid = (u32)id;
    if (tgid == 0 || tgid == SELF_TGID)  // idle, and the agent itself
        return 0;
    bump(0);

    if (!seen.lookup(&tgid)) {
        u8 one = 1;
        seen.update(&tgid, &one);
        if (new_procs.ringbuf_output(&tgid, sizeof(tgid), BPF_RB_NO_WAKEUP) != 0)
            bump(2);
    }

    struct stack_key_t key = {};
    key.tgid = tgid;
    struct py_stack_t *py = 0;
    struct py_proc_t *pp = py_procs.lookup(&tgid);
    if (pp) {
        key.py_stack_id = py_walk(pp, tid, &py);
        if (!key.py_stack_id)
            bump(3);
    }

    // A sample taken in user mode has no kernel stack: asking anyway returns -EFAULT but costs
    // about 4 us here (measured: 5.9 us per sample with the call, 1.8 us without it).
    int in_user = (ctx->regs.cs & 3) == 3;
    int zero = 0;
    u32 *side = control.lookup(&zero);
    u64 one64 = 1;
    if (side && *side) {
        key.user_stack_id = stacks1.get_stackid(ctx, BPF_F_USER_STACK);
        key.kernel_stack_id = in_user ? -EFAULT : stacks1.get_stackid(ctx, 0);
        if (py && key.py_stack_id && !pystacks1.lookup(&key.py_stack_id))
            pystacks1.update(&key.py_stack_id, py);
        u64 *c = counts1.lookup(&key);
        if (!c && counts1.insert(&key, &one64) != 0)
            c = counts1.lookup(&key);  // another CPU inserted it first, or the map is full
        else if (!c)
            return 0;
        if (c)
            __sync_fetch_and_add(c, 1);
        else
            bump(1);
    } else {
        key.user_stack_id = stacks0.get_stackid(ctx, BPF_F_USER_STACK);
        key.kernel_stack_id = in_user ? -EFAULT : stacks0.get_stackid(ctx, 0);
        if (py && key.py_stack_id && !pystacks0.lookup(&key.py_stack_id))
            pystacks0.update(&key.py_stack_id, py);
        u64 *c = counts0.lookup(&key);
        if (!c && counts0.insert(&key, &one64) != 0)
            c = counts0.lookup(&key);  // another CPU inserted it first, or the map is full
        else if (!c)
            return 0;
        if (c)
            __sync_fetch_and_add(c, 1);
        else
            bump(1);
    }
    return 0;
}
