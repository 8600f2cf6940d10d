#!/usr/bin/env python3
"""Writes the hand-made seeds of ward's fuzz corpus (fuzz/corpus/seed-*), one per kind of hostile
action, so a short run starts from inputs that already reach every decoder. The format is the
fuzz host's (fuzz/host_fuzz.cc): byte 0 picks the function, byte 1 sizes the out/inout buffer,
the rest is the puppet's script (ops in fuzz/fuzz_puppet.h)."""
import os
import struct
import sys

RUN, RUN_REC, RUN_STR, RUN_OUT, RUN_INOUT, RUN_BOOL, RUN_HANDLE, NESTED = range(8)
RET, POKE, CALL, FORGE, FRAME, WAKE, FAULT, EXIT, CRASH, SCRIBBLE = range(10)
LOG, SUM, FILL, TWIDDLE, ECHO, NAME, GRANT, USE, AGAIN, DENIED = range(10)
ARENA = 1 << 31  # "off" operands at or above this count from the arena's start
MSG_RET, MSG_UPCALL = 4, 5


def u8(v): return struct.pack('<B', v & 0xff)
def u16(v): return struct.pack('<H', v & 0xffff)
def u32(v): return struct.pack('<I', v & 0xffffffff)
def u64(v): return struct.pack('<Q', v & 0xffffffffffffffff)


def ret(mode, a=0, b=0): return u8(RET) + u8(mode) + u64(a) + u64(b)
def call(svc, operands=b''): return u8(CALL) + u8(svc) + operands
def forge(kind, table, fn, frame, length, top, a, b):
    return u8(FORGE) + u16(kind) + u16(table) + u32(fn) + u32(frame) + u64(length) + u32(top) + u64(a) + u64(b)
def frame(off, slots):  # slots: (mode, value, b); mode 0 raw, 1 script-relative offset, 2 null
    return u8(FRAME) + u32(off) + u8(len(slots)) + b''.join(u8(m) + u64(v) + u64(b) for m, v, b in slots)


def rec(a, ok, tag, s, d): return struct.pack('<iBBHd', a, ok, tag, s, d)


SEEDS = {
    'run-empty': u8(RUN) + u8(0),
    'run-returns': u8(RUN) + u8(0) + ret(0, 42),
    'rec-valid': u8(RUN_REC) + u8(0) + u8(RET) + u8(0) + rec(7, 1, 2, 3, 1.5),
    'str-null': u8(RUN_STR) + u8(0) + ret(0),
    'str-static': u8(RUN_STR) + u8(0) + ret(1),
    'str-arena': u8(RUN_STR) + u8(0) + u8(POKE) + u32(0x400) + u8(13) + b'in the arena\0' + ret(2, 0x400),
    'str-unterminated': u8(RUN_STR) + u8(0) + u8(SCRIBBLE) + u8(0x41) + ret(2, 0x400),
    'str-buffer': u8(RUN_STR) + u8(0) + ret(3, 0x6c6c6568, 0x6f),
    'out': u8(RUN_OUT) + u8(16) + ret(0, 16),
    'inout': u8(RUN_INOUT) + u8(8) + ret(0, 8),
    'bool': u8(RUN_BOOL) + u8(0) + ret(0, 1),
    'handle-granted': u8(RUN_HANDLE) + u8(0) + call(GRANT, u32(1)) + ret(1, 0),
    'handle-forged': u8(RUN_HANDLE) + u8(0) + ret(0, 0x1234567890),
    'svc-log': u8(RUN) + u8(0) + call(LOG, u8(5) + b'hello'),
    'svc-sum': u8(RUN) + u8(0) + call(SUM, u8(1) + u16(8)),
    'svc-fill': u8(RUN) + u8(0) + call(FILL, u16(100)),
    'svc-twiddle': u8(RUN) + u8(0) + call(TWIDDLE, u32(4)),
    'svc-twiddle-negative': u8(RUN) + u8(0) + call(TWIDDLE, u32(-1)),
    'svc-echo': u8(RUN) + u8(0) + call(ECHO, rec(1, 0, 0, 0, 0.0) + u16(3) + u32(4) + u8(1)),
    'svc-name': u8(RUN) + u8(0) + call(NAME, u32(2)) + call(NAME, u32(7)),
    'svc-grant-use': u8(RUN) + u8(0) + call(GRANT, u32(1)) + call(USE, u8(0) + u64(0)),
    'svc-use-forged': u8(RUN) + u8(0) + call(USE, u8(1) + u64(0xdeadbeef)),
    'svc-again': u8(RUN) + u8(0) + call(AGAIN, u8(18)) + ret(0, 5),
    'svc-denied': u8(RUN) + u8(0) + call(DENIED),
    'forge-upcall-denied': u8(RUN) + u8(0) + frame(0x100, [(0, 0, 0)]) + forge(MSG_UPCALL, 1, 9, 0x100, 16, 0x200, 0, 0),
    'nested': u8(NESTED) + u8(0) + call(AGAIN, u8(2)) + call(AGAIN, u8(0)),
    'forge-ret': u8(RUN) + u8(0) + forge(MSG_RET, 0, 0, 0xffffffff, 0, 0x200, 9, 0),
    'forge-ret-rec': u8(RUN_REC) + u8(0) + forge(MSG_RET, 0, 0, 0xffffffff, 0, 0x200, 0x40, 16),
    'forge-ret-str': u8(RUN_STR) + u8(0) + forge(MSG_RET, 0, 0, 0xffffffff, 0, 0x200, 0x10, 1 << 20),
    'forge-upcall-sum': u8(RUN) + u8(0) + frame(0x100, [(0, 0, 0), (1, 0, 8), (0, 8, 0)]) +
                        forge(MSG_UPCALL, 1, 1, 0x100, 48, 0x200, 0, 0),
    'forge-upcall-log': u8(RUN) + u8(0) + frame(0x100, [(0, 0, 0), (1, 0x140, 5)]) +
                        forge(MSG_UPCALL, 1, 0, 0x100, 32, 0x200, 0, 0),
    'forge-upcall-bad-table': u8(RUN) + u8(0) + forge(MSG_UPCALL, 9, 0, 0x100, 32, 0x200, 0, 0),
    'forge-kind': u8(RUN) + u8(0) + forge(0x77, 0, 0, 0xffffffff, 0, 0, 0, 0),
    'poke-control': u8(RUN) + u8(0) + u8(POKE) + u32(ARENA + 208) + u8(8) + b'\x04\0\0\0\0\0\0\0',
    'poke-frame': u8(RUN_REC) + u8(0) + u8(POKE) + u32(0) + u8(4) + b'\xff' * 4,
    'wake': u8(RUN) + u8(0) + u8(WAKE) + u8(3),
    'fault-then-exit': u8(RUN) + u8(0) + u8(FAULT) + u32(1) + u32(59) + u32(0) + u32(0) + u64(0) + u8(EXIT) + u8(0),
    'fault-ungranted': u8(RUN) + u8(0) + u8(FAULT) + u32(2) + u32(0) + u32(99) + u32(99) + u64(0) + u8(CRASH),
    'exit': u8(RUN) + u8(0) + u8(EXIT) + u8(3),
    'crash': u8(RUN) + u8(0) + u8(CRASH),
    # Issue 8, finding 6: a bool field holding 0x24, returned by value and passed to a service.
    'rec-invalid-bool': u8(RUN_REC) + u8(0) + u8(RET) + u8(0) + rec(7, 0x24, 0, 0, 0.0),
    'echo-invalid-bool': u8(RUN) + u8(0) + call(ECHO, rec(1, 0x11, 0, 0, 0.0) + u16(0) + u32(0) + u8(0)),
    'scribble': u8(RUN_OUT) + u8(32) + u8(SCRIBBLE) + u8(0xff) + ret(0, 1),
}

if __name__ == '__main__':
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), 'corpus')
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, 'seed-' + name), 'wb') as f:
            f.write(data)
    print(f'{len(SEEDS)} seeds in {out}')
