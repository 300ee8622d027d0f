"""HJ 212 framing: `##` + 4-digit length + data segment + 4 hex CRC + CR LF.

HJ 212-2017 section 6.3 (DOMAIN.md "HJ 212-2017"): the length is the data segment's size in
decimal, four digits, 0..1024; the CRC (Appendix A, `crc.py`) covers the data segment only. The text
is ASCII; Chinese text (a few loggers' remarks) arrives as GBK, of which ASCII is a subset, so the
segment is decoded as GBK and its length and CRC are counted in bytes. We emit upper-case hex;
peers differ on case, so either is accepted.

`FrameReader` splits a TCP byte stream into frames. Its buffer never holds more than one frame
(at most `FRAME_OVERHEAD + MAX_SEGMENT` bytes) beyond the chunk being fed; after garbage or a bad
frame it resynchronises on the next `##`.
"""

from __future__ import annotations

from .crc import crc16

MAX_SEGMENT = 1024
"""The standard's limit on the data segment, in bytes (the length field's allowed range is 0..1024)."""
HEADER = b"##"
TRAILER = b"\r\n"
FRAME_OVERHEAD = 2 + 4 + 4 + 2
"""`##`, the length, the CRC and CR LF around the segment."""
TEXT_ENCODING = "gbk"

# FrameError.reason values: stable strings, used as counter labels and in logs.
BAD_START = "bad_start"
BAD_LENGTH = "bad_length"
LENGTH_MISMATCH = "length_mismatch"
BAD_CRC = "bad_crc"
MISSING_CRLF = "missing_crlf"
OVERSIZE = "oversize"
BAD_TEXT = "bad_text"
TRUNCATED = "truncated"
REASONS = (BAD_START, BAD_LENGTH, LENGTH_MISMATCH, BAD_CRC, MISSING_CRLF, OVERSIZE, BAD_TEXT, TRUNCATED)


class FrameError(ValueError):
    """A frame that breaks the standard's framing; `reason` is one of `REASONS`, `raw` the bytes
    concerned (at most the first 200 kept, for a log line)."""

    def __init__(self, reason: str, message: str, raw: bytes = b"") -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.raw = bytes(raw[:200])


def encode_frame(segment: str) -> bytes:
    """The frame for `segment`; FrameError (oversize, bad_text) for a segment the standard cannot carry."""
    try:
        body = segment.encode(TEXT_ENCODING)
    except UnicodeEncodeError as e:
        raise FrameError(BAD_TEXT, f"segment has a character GBK cannot carry at {e.start}") from None
    if len(body) > MAX_SEGMENT:
        raise FrameError(OVERSIZE, f"segment is {len(body)} bytes, the limit is {MAX_SEGMENT}: split it")
    if b"\r" in body or b"\n" in body:
        raise FrameError(BAD_TEXT, "segment contains CR or LF")
    return b"%s%04d%s%04X\r\n" % (HEADER, len(body), body, crc16(body))


def _length_field(field: bytes, raw: bytes) -> int:
    if len(field) != 4 or not field.isdigit():
        raise FrameError(BAD_LENGTH, f"length field {field!r} is not four decimal digits", raw)
    length = int(field)
    if length > MAX_SEGMENT:
        raise FrameError(OVERSIZE, f"declared segment length {length} exceeds {MAX_SEGMENT}", raw)
    return length


def _check_body(body: bytes, crc_field: bytes, raw: bytes) -> str:
    """The segment's text once its CRC matches; FrameError bad_crc or bad_text."""
    try:
        sent = int(crc_field, 16) if len(crc_field) == 4 and all(c in b"0123456789abcdefABCDEF" for c in crc_field) \
            else None
    except ValueError:
        sent = None
    if sent is None:
        raise FrameError(BAD_CRC, f"CRC field {crc_field!r} is not four hex digits", raw)
    computed = crc16(body)
    if sent != computed:
        raise FrameError(BAD_CRC, f"CRC {crc_field.decode('ascii')} sent, {computed:04X} computed", raw)
    try:
        return body.decode(TEXT_ENCODING)
    except UnicodeDecodeError as e:
        raise FrameError(BAD_TEXT, f"segment is neither ASCII nor GBK at byte {e.start}", raw) from None


def decode_frame(raw: bytes) -> str:
    """The data segment of one complete frame (`##` .. CR LF); FrameError naming what is wrong."""
    if not raw.startswith(HEADER):
        raise FrameError(BAD_START, f"frame starts {raw[:2]!r}, not '##'", raw)
    length = _length_field(raw[2:6], raw)
    if not raw.endswith(TRAILER):
        raise FrameError(MISSING_CRLF, "frame does not end in CR LF", raw)
    if len(raw) != length + FRAME_OVERHEAD:
        raise FrameError(LENGTH_MISMATCH, f"length field says {length}, the segment is "
                         f"{len(raw) - FRAME_OVERHEAD} bytes", raw)
    return _check_body(raw[6:6 + length], raw[6 + length:10 + length], raw)


class FrameReader:
    """Incremental splitter for a TCP byte stream: `feed(chunk)` -> the frames completed by it, each a
    segment `str` or a `FrameError` (in stream order). Nothing is raised; nothing grows without bound.

    A frame ends where its length field says; if CR LF is not there, the frame is reported (missing
    CR LF, or length mismatch when a CR LF comes earlier or later before the next `##`) and reading
    resumes at the next `##`. Bytes before a `##` are reported once per run as bad_start. A `##`
    inside an unfinished frame means the frame was cut off: truncated. `close()` reports what is left.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skipping = False  # inside bytes already reported (no second bad_start for the same run)

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[str | FrameError]:
        if not self._buf and chunk[:2] == HEADER:  # the common case: a chunk that is one whole frame
            field = chunk[2:6]
            end = int(field) + FRAME_OVERHEAD if len(field) == 4 and field.isdigit() else -1
            if (len(chunk) == end and end <= MAX_SEGMENT + FRAME_OVERHEAD and chunk.endswith(TRAILER)
                    and chunk.find(HEADER, 2, end - 1) < 0 and chunk.find(TRAILER, 2, end - 1) < 0):
                # what `_step` decides for such a chunk, without copying it into the buffer and out
                self._skipping = False
                try:
                    return [_check_body(chunk[6:end - 6], chunk[end - 6:end - 2], chunk)]
                except FrameError as e:
                    return [e]
        self._buf += chunk
        out: list[str | FrameError] = []
        while self._step(out):
            pass
        return out

    def close(self) -> list[FrameError]:
        """End of stream: an unfinished frame is reported as truncated (garbage as bad_start)."""
        rest = bytes(self._buf)
        self._buf.clear()
        if not rest.strip():
            return []
        if rest.startswith(HEADER):
            return [FrameError(TRUNCATED, f"stream ended {len(rest)} bytes into a frame", rest)]
        return [] if self._skipping else [FrameError(BAD_START, "stream ended in bytes outside a frame", rest)]

    def _drop(self, n: int) -> None:
        del self._buf[:n]

    def _step(self, out: list[str | FrameError]) -> bool:
        """Consume one frame, error or garbage run from the buffer; False when more bytes are needed."""
        buf = self._buf
        start = buf.find(HEADER)
        if start < 0:
            keep = 1 if buf.endswith(b"#") else 0  # a '#' may be the first half of the next header
            garbage = len(buf) - keep
            if garbage > 0:
                if not self._skipping and bytes(buf[:garbage]).strip():
                    out.append(FrameError(BAD_START, f"{garbage} bytes outside a frame", bytes(buf[:garbage])))
                self._skipping = True
                self._drop(garbage)
            return False
        if start > 0:
            if not self._skipping and bytes(buf[:start]).strip():
                out.append(FrameError(BAD_START, f"{start} bytes before '##'", bytes(buf[:start])))
            self._drop(start)
        self._skipping = False
        if len(buf) < 6:
            return False
        try:
            length = _length_field(bytes(buf[2:6]), bytes(buf[:64]))
        except FrameError as e:
            out.append(e)
            self._resync()
            return True
        end = length + FRAME_OVERHEAD
        window = bytes(buf[2:end - 1])  # segment and CRC, after this frame's '##'
        cut = window.find(HEADER)  # a '##' starting where CR LF belongs is a missing CR LF, below
        early_crlf = window.find(TRAILER, 0, max(0, end - 3))  # ends before the expected CR LF
        if early_crlf >= 0 and (cut < 0 or early_crlf < cut):
            raw = bytes(buf[:early_crlf + 4])
            out.append(FrameError(LENGTH_MISMATCH, f"length field says {length}, CR LF came after "
                                  f"{len(raw) - FRAME_OVERHEAD} bytes", raw))
            self._drop(len(raw))
            return True
        if cut >= 0:
            out.append(FrameError(TRUNCATED, f"frame cut off after {cut + 2} bytes by the next '##'",
                                  bytes(buf[:cut + 2])))
            self._drop(cut + 2)
            return True
        if len(buf) < end:
            return False
        if buf[end - 2:end] == TRAILER:
            raw = bytes(buf[:end])
            self._drop(end)
            try:
                out.append(_check_body(raw[6:6 + length], raw[6 + length:10 + length], raw))
            except FrameError as e:
                out.append(e)
            return True
        # No CR LF where the length says: a later CR LF (before the next '##') is a length mismatch.
        later = buf.find(TRAILER, end - 2)
        nxt = buf.find(HEADER, end - 2)
        if later >= 0 and (nxt < 0 or later < nxt):
            raw = bytes(buf[:later + 2])
            out.append(FrameError(LENGTH_MISMATCH, f"length field says {length}, CR LF came after "
                                  f"{len(raw) - FRAME_OVERHEAD} bytes", raw))
            self._drop(len(raw))
            return True
        if nxt >= 0 or len(buf) >= MAX_SEGMENT + FRAME_OVERHEAD:
            out.append(FrameError(MISSING_CRLF, f"no CR LF after the {length}-byte segment and CRC",
                                  bytes(buf[:end])))
            self._resync()
            return True
        return False

    def _resync(self) -> None:
        """Skip this frame's '##'; what follows up to the next '##' was reported with it."""
        self._drop(2)
        self._skipping = True
