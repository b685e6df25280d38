"""Symbolisation for the CPU profiler: native code (ELF symbols cached by build id and address),
the kernel (/proc/kallsyms) and CPython 3.11 interpreter frames (code objects read from the live
process). Everything here runs in user space while the sampled processes are alive."""
