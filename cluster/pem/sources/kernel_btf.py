"""Field offsets of kernel structs, read from the running kernel's BTF (/sys/kernel/btf/vmlinux).

Why: BCC compiles against the installed headers (6.1 here) while the kernel is newer (6.18), so a
struct field dereferenced in BPF C would use the headers' offset, which may be wrong; and BCC's
Python frontend has no CO-RE to fix it up. The kernel describes its own layout in BTF, so this
module reads the offsets the running kernel really uses, and the BPF program receives them as
-D constants: the same relocation CO-RE performs, done once at load time.

Format (Documentation/bpf/btf.rst): a header, then a type section of variable-size records
(struct btf_type followed by kind-specific data), then a string section. Type ids start at 1 in
section order, so finding one struct means walking the section once.
"""

from __future__ import annotations

import functools
import struct

VMLINUX = "/sys/kernel/btf/vmlinux"
_MAGIC = 0xEB9F

# kind -> bytes of data after the 12-byte btf_type: fixed, or per vlen entry
_FIXED = {1: 4, 3: 12, 14: 4, 17: 4}
_PER_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}
KIND_STRUCT, KIND_UNION, KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG = 4, 5, 8, 9, 10, 11, 18
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)


class BtfError(RuntimeError):
    """The kernel's BTF is missing or does not describe what was asked; the message says which."""


class Btf:
    """An index of one BTF blob: type records and their names, enough to find member offsets."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BtfError("BTF blob too short")
        magic, _ver, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != _MAGIC:
            raise BtfError(f"bad BTF magic {magic:#x} (big-endian BTF is not supported)")
        type_off, type_len, str_off, _str_len = struct.unpack_from("<IIII", data, 8)
        self._data = data
        self._strings = hdr_len + str_off
        self._pos: list[int] = [0]  # type id -> offset of its btf_type record; id 0 is void
        self._by_name: dict[str, list[int]] = {}
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        unpack = struct.Struct("<III").unpack_from
        while pos < end:
            name_off, info, _ = unpack(data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            tid = len(self._pos)
            self._pos.append(pos)
            if kind in (KIND_STRUCT, KIND_UNION) and name_off:
                self._by_name.setdefault(self._name(name_off), []).append(tid)
            pos += 12 + _FIXED.get(kind, 0) + _PER_VLEN.get(kind, 0) * vlen

    def _name(self, off: int) -> str:
        start = self._strings + off
        return self._data[start : self._data.index(b"\0", start)].decode()

    def _type(self, tid: int) -> tuple[int, int, int, int, bool]:
        """(name_off, kind, vlen, size_or_type, kind_flag) of a type id."""
        name_off, info, size = struct.unpack_from("<III", self._data, self._pos[tid])
        return name_off, (info >> 24) & 0x1F, info & 0xFFFF, size, bool(info >> 31)

    def _resolve(self, tid: int) -> int:
        while True:
            _, kind, _, ref, _ = self._type(tid)
            if kind not in _MODIFIERS:
                return tid
            tid = ref

    def _find_member(self, tid: int, field: str) -> int | None:
        """Bit offset of `field` in a struct/union, looking through anonymous members."""
        _, kind, vlen, _, kflag = self._type(tid)
        if kind not in (KIND_STRUCT, KIND_UNION):
            return None
        base = self._pos[tid] + 12
        for i in range(vlen):
            name_off, mtype, moff = struct.unpack_from("<III", self._data, base + 12 * i)
            bit = moff & 0xFFFFFF if kflag else moff
            if name_off and self._name(name_off) == field:
                return bit
            if not name_off:
                inner = self._find_member(self._resolve(mtype), field)
                if inner is not None:
                    return bit + inner
        return None

    def member_offset(self, struct_name: str, field: str) -> int:
        """Byte offset of struct_name.field in the running kernel."""
        for tid in self._by_name.get(struct_name, []):
            if self._type(tid)[2] == 0:
                continue  # an empty declaration
            bit = self._find_member(tid, field)
            if bit is not None:
                if bit % 8:
                    raise BtfError(f"{struct_name}.{field} is a bitfield (bit offset {bit})")
                return bit // 8
        raise BtfError(f"the kernel's BTF has no member {struct_name}.{field}")


@functools.lru_cache(maxsize=1)
def vmlinux() -> Btf:
    """The running kernel's BTF, parsed once per process (about 0.2 s)."""
    try:
        with open(VMLINUX, "rb") as f:
            return Btf(f.read())
    except OSError as e:
        raise BtfError(
            f"cannot read {VMLINUX} ({e.strerror}): the kernel was built without CONFIG_DEBUG_INFO_BTF"
        ) from e


def offsets(fields: dict[str, tuple[str, str]]) -> dict[str, int]:
    """name -> byte offset for {name: (struct, field)}, e.g. {"EXIT_CODE_OFF": ("task_struct", "exit_code")}."""
    btf = vmlinux()
    return {name: btf.member_offset(s, f) for name, (s, f) in fields.items()}
