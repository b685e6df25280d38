"""One ELF file's function symbols, build id and load segments, for symbolising sampled addresses.

Why a small reader of our own instead of pyelftools: pyelftools parses every structure through
`construct` and builds hash and dynamic sections eagerly, which cost 40-120 ms per library here
(4 s for the 34 files a busy host maps), while the agent needs only the program headers, the
section headers, one note and the symbol tables. Those are read with `struct` and `array`: the
symbol table becomes three u64 columns in one call, names are sliced out of the string table only
when a symbol is looked up. Only 64-bit little-endian ELF (x86_64, aarch64) is read.
"""

from __future__ import annotations

import bisect
import hashlib
import mmap
import os
import struct
import sys
from array import array
from dataclasses import dataclass

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")  # p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align
_SHDR = struct.Struct("<IIQQQQIIQQ")  # name, type, flags, addr, offset, size, link, info, addralign, entsize
_NHDR = struct.Struct("<III")
_SYM_SIZE = 24
_PT_LOAD = 1
_PT_NOTE = 4
_SHT_SYMTAB = 2
_SHT_DYNSYM = 11
_NT_GNU_BUILD_ID = 3
_ET_DYN = 3
_STT_OBJECT = 1
_STT_FUNC = 2
_STT_GNU_IFUNC = 10


class ElfReadError(ValueError):
    """The file is not a readable 64-bit ELF; the message names the file and why."""


@dataclass(frozen=True, slots=True)
class LoadSegment:
    offset: int  # p_offset
    vaddr: int  # p_vaddr
    filesz: int


class ElfSymbols:
    """Sorted function symbols of one ELF file, looked up by virtual address (st_value space).

    `build_id` is the GNU build id (hex), or a sha1 of path, size and mtime for files without one,
    so caches keyed by it never mix two different builds.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            with open(path, "rb") as f:
                st = os.fstat(f.fileno())
                if st.st_size < _EHDR.size:
                    raise ElfReadError(f"{path}: not an ELF file (too short)")
                with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
                    self._parse(mm, st)
        except OSError as e:
            raise ElfReadError(f"{path}: cannot read ({e.strerror or e})") from e
        except (struct.error, ValueError, IndexError) as e:
            if isinstance(e, ElfReadError):
                raise
            raise ElfReadError(f"{path}: malformed ELF ({type(e).__name__}: {e})") from e

    def _parse(self, mm: mmap.mmap, st: os.stat_result) -> None:
        (ident, e_type, _m, _v, _entry, phoff, shoff, _fl, _eh, phentsize, phnum, shentsize, shnum, _shstrndx) = (
            _EHDR.unpack_from(mm, 0)
        )
        if ident[:4] != b"\x7fELF":
            raise ElfReadError(f"{self.path}: not an ELF file")
        if ident[4] != 2 or ident[5] != 1:
            raise ElfReadError(f"{self.path}: only 64-bit little-endian ELF is supported")
        self.is_pie_or_shared = e_type == _ET_DYN
        phdrs = [_PHDR.unpack_from(mm, phoff + i * phentsize) for i in range(phnum)]
        self.segments = [LoadSegment(p[2], p[3], p[5]) for p in phdrs if p[0] == _PT_LOAD]
        build_id = None
        for p in phdrs:
            if p[0] == _PT_NOTE and build_id is None:
                build_id = _find_build_id(mm, p[2], p[5])
        self.build_id = build_id or _fallback_id(self.path, st)
        shdrs = [_SHDR.unpack_from(mm, shoff + i * shentsize) for i in range(shnum)] if shoff else []
        starts: list[int] = []
        ends: list[int] = []
        name_offs: list[int] = []
        strtabs: list[bytes] = []
        which: list[int] = []
        self._object_cache: dict[str, int | None] = {}
        self._object_strtabs: list[tuple[bytes, array]] = []
        # .symtab first: when both tables name an address, the first one seen wins.
        tables = sorted((s for s in shdrs if s[1] in (_SHT_SYMTAB, _SHT_DYNSYM)), key=lambda s: s[1] != _SHT_SYMTAB)
        seen: set[int] = set()
        for sec in tables:
            off, size, link = sec[4], sec[5], sec[6]
            strsec = shdrs[link]
            strtab = bytes(mm[strsec[4] : strsec[4] + strsec[5]])
            words = array("Q")
            words.frombytes(mm[off : off + size - size % _SYM_SIZE])
            if sys.byteorder != "little":
                words.byteswap()
            tab = len(strtabs)
            strtabs.append(strtab)
            w0, values, sizes = words[0::3], words[1::3], words[2::3]
            objects = array("Q")
            for head, value, sz in zip(w0, values, sizes, strict=True):
                kind = (head >> 32) & 0xF
                if not value or not (head >> 48):  # undefined (st_shndx 0) or no address
                    continue
                if kind in (_STT_FUNC, _STT_GNU_IFUNC):
                    if value in seen:
                        continue
                    seen.add(value)
                    starts.append(value)
                    ends.append(value + (sz or 1))
                    name_offs.append(head & 0xFFFFFFFF)
                    which.append(tab)
                elif kind == _STT_OBJECT:
                    objects.append(head & 0xFFFFFFFF)
                    objects.append(value)
            self._object_strtabs.append((strtab, objects))
        order = sorted(range(len(starts)), key=starts.__getitem__)
        self._starts = [starts[i] for i in order]
        self._ends = [ends[i] for i in order]
        self._name_offs = [name_offs[i] for i in order]
        self._which = [which[i] for i in order]
        self._strtabs = strtabs

    def __len__(self) -> int:
        return len(self._starts)

    def vaddr_of_offset(self, file_offset: int) -> int | None:
        """The virtual address a file offset is loaded at (before the process's load bias)."""
        for seg in self.segments:
            if seg.offset <= file_offset < seg.offset + seg.filesz:
                return file_offset - seg.offset + seg.vaddr
        return None

    def lookup(self, vaddr: int) -> str | None:
        """The raw (mangled) name of the function containing vaddr, or None if no symbol covers it.

        The size check matters: stripped libraries keep only exported symbols, and a bare nearest
        preceding symbol would attribute static functions to the wrong name.
        """
        i = bisect.bisect_right(self._starts, vaddr) - 1
        # A sized function may enclose later zero-size labels (assembly): look a few entries back.
        for j in range(i, max(i - 4, -1), -1):
            if vaddr < self._ends[j]:
                return self._name(j)
        return None

    def _name(self, j: int) -> str:
        strtab = self._strtabs[self._which[j]]
        off = self._name_offs[j]
        return strtab[off : strtab.find(b"\0", off)].decode(errors="replace")

    def object_address(self, name: str) -> int | None:
        """st_value of a data symbol (e.g. _PyRuntime), or None. A linear scan, memoised per name."""
        if name in self._object_cache:
            return self._object_cache[name]
        self._object_cache[name] = found = self._scan_objects(name.encode())
        return found

    def _scan_objects(self, want: bytes) -> int | None:
        for strtab, objects in self._object_strtabs:
            for k in range(0, len(objects), 2):
                off = objects[k]
                if strtab.startswith(want, off) and strtab[off + len(want) : off + len(want) + 1] == b"\0":
                    return objects[k + 1]
        return None


def _find_build_id(mm: mmap.mmap, off: int, size: int) -> str | None:
    end = off + size
    while off + _NHDR.size <= end:
        namesz, descsz, ntype = _NHDR.unpack_from(mm, off)
        name_at = off + _NHDR.size
        desc_at = name_at + ((namesz + 3) & ~3)
        if ntype == _NT_GNU_BUILD_ID and mm[name_at : name_at + namesz] == b"GNU\0":
            return mm[desc_at : desc_at + descsz].hex()
        off = desc_at + ((descsz + 3) & ~3)
    return None


def _fallback_id(path: str, st: os.stat_result) -> str:
    return "nobuildid-" + hashlib.sha1(f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
