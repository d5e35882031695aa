"""Every secret the run handles (tokens, client secrets, nonces), so that output can be scrubbed.

Anything that leaves the process (console, reports, curl reproductions, warnings, log records) goes
through `redact`, or `cut` where it is shortened for display. A hostile server may echo a secret in
another form than it was sent, so each secret is matched in the forms it can be written in:

- as it is;
- base64, standard and URL-safe, padded or not, at each of the three byte alignments it can have
  inside a longer base64 text (only the characters its own bits decide: a secret encoded at byte
  offset 1 of a blob shares its first characters with the byte before it);
- percent-encoded (`quote`, `quote_plus`, every byte escaped; upper- and lower-case hex);
- hex (upper- and lower-case);
- through JSON `\\uXXXX` and percent `%XX` escapes, all characters escaped or some: the text is
  searched once more with its escapes decoded, and a match is mapped back onto the escaped text.

Speed: a report of megabytes with hundreds of nonces (each in a dozen forms) is searched in one pass
over the runs of characters encoded secrets are made of, sampling an 8-character window every 17
characters and looking it up among 17 consecutive windows of every form (an occurrence of a form of
24 characters or more always holds one sampled window at one of any 17 consecutive offsets); the
few shorter or odd-charactered forms are searched for one by one.
"""

from __future__ import annotations

import base64
import bisect
import re
import threading
from collections.abc import Iterator
from urllib.parse import quote, quote_plus

REPLACEMENT = "[REDACTED]"
# Values shorter than this are too generic to scrub without mangling text; it is also the shortest
# tail of a cut text that is taken for the start of a secret.
_MIN_SECRET_LENGTH = 4
# The characters an encoded form of a secret is made of (base64, hex, percent and `\u` escapes), and
# most tokens too. A form made of these alone, and at least _SAMPLED_LENGTH long, is found by sampling.
_FORM_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-.~%\\")
_WINDOW = 8
_SAMPLED_LENGTH = 24
_STRIDE = _SAMPLED_LENGTH - _WINDOW + 1
# Runs are found on a copy of the text where each form character is "a" and anything else a space
# (one byte per character, so positions are kept): bytes.find of 24 "a"s skips through it in C.
_RUN_MAP = bytes(0x61 if chr(byte) in _FORM_CHARACTERS else 0x20 for byte in range(256))
_RUN_SEED = b"a" * _SAMPLED_LENGTH
# One escaped character: a JSON \uXXXX escape, or a percent escape. Two patterns, each with a
# literal first character, which the engine skips to quickly; one alternation would be tried everywhere.
_LONGEST_ESCAPE = len("\\u0000")
_LONGEST_UTF8 = 4
# What a cut can leave of an escape at the end of a text: a backslash, "\\u" and up to 3 digits, "%"
# and up to one.
_PARTIAL_ESCAPE = re.compile(r"(?:\\(?:u[0-9a-fA-F]{0,3})?|%[0-9a-fA-F]?)\Z")
_ESCAPES = (re.compile(r"\\u([0-9a-fA-F]{4})"), re.compile(r"%([0-9a-fA-F]{2})"))


def encoded_forms(secret: str) -> set[str]:
    """The texts `secret` can appear as in output, besides through escapes (see the module)."""
    data = secret.encode("utf-8")
    forms = {secret, data.hex(), data.hex().upper()}
    for text in (quote(secret, safe=""), quote(secret), quote_plus(secret), _every_byte_escaped(data)):
        forms |= {text, _lower_escapes(text)}
    # Encoded alone, whole with its last character and padding; inside a longer text, its core.
    whole = base64.b64encode(data).decode("ascii")
    for standard in (whole, whole.rstrip("="), *_base64_cores(data)):
        forms |= {standard, standard.translate(_URL_SAFE)}
    return {form for form in forms if len(form) >= _MIN_SECRET_LENGTH}


_URL_SAFE = str.maketrans("+/", "-_")


def _every_byte_escaped(data: bytes) -> str:
    return "".join(f"%{byte:02X}" for byte in data)


def _lower_escapes(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), text)


def _base64_cores(data: bytes) -> Iterator[str]:
    """For each alignment (the secret's first byte at offset 0, 1 or 2 of a 3-byte group), the
    base64 characters whose 6 bits all come from the secret: the same whatever surrounds it."""
    for alignment in range(3):
        encoded = base64.b64encode(bytes(alignment) + data).decode("ascii")
        first = -(-8 * alignment // 6)
        end = 8 * (alignment + len(data)) // 6
        yield encoded[first:end]


def head(data: bytes, limit: int) -> bytes:
    """The first `limit` bytes of `data` for a message made where no registry is at hand (a judge's):
    when the cut goes through a run of the characters secrets are made of, the run is left out
    whole. A whole secret before the cut is redacted where the message is output; one cut short
    would no longer be found there."""
    if len(data) <= limit:
        return data
    kept = data[: max(limit, 0)]
    if chr(data[len(kept)]) not in _FORM_CHARACTERS:
        return kept
    return kept[: len(kept.translate(_RUN_MAP).rstrip(b"a"))]


class _Forms:
    """The forms of every secret, indexed for the search and for the prefix test of `cut`."""

    def __init__(self) -> None:
        self.sorted: list[str] = []
        self.longest = 0
        self.windows: dict[str, list[tuple[str, int]]] = {}
        self.one_by_one: list[str] = []

    def add(self, form: str) -> None:
        index = bisect.bisect_left(self.sorted, form)
        if index < len(self.sorted) and self.sorted[index] == form:
            return
        self.sorted.insert(index, form)
        self.longest = max(self.longest, len(form))
        if len(form) >= _SAMPLED_LENGTH and _FORM_CHARACTERS.issuperset(form):
            # Any _STRIDE consecutive windows serve (one sample always falls on one of them): those
            # that fewest forms share, so that secrets alike (tokens of one header, nonces of one
            # prefix) do not make every sample a long list of candidates to check.
            last = len(form) - _SAMPLED_LENGTH
            first = min((last, 0, last // 2), key=lambda start: self._sharing(form, start))
            for offset in range(first, first + _STRIDE):
                self.windows.setdefault(form[offset : offset + _WINDOW], []).append((form, offset))
        else:
            self.one_by_one.append(form)

    def _sharing(self, form: str, first: int) -> int:
        return sum(
            len(self.windows.get(form[offset : offset + _WINDOW], ()))
            for offset in range(first, first + _STRIDE)
        )

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where any form occurs in `text`, as (start, end) pairs, overlaps merged."""
        return _merged(self.spans_one_by_one(text) + self.spans_sampled(text, 0, len(text)))

    def spans_one_by_one(self, text: str) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for form in self.one_by_one:
            start = text.find(form)
            while start >= 0:
                found.append((start, start + len(form)))
                start = text.find(form, start + 1)
        return found

    def spans_sampled(self, text: str, begin: int, end: int) -> list[tuple[int, int]]:
        """Where a sampled form occurs in `text[begin:end]` (not merged)."""
        found: list[tuple[int, int]] = []
        if self.windows:
            windows = self.windows
            for run_start, run_end in _runs(text, begin, end):
                for position in range(run_start, run_end - _WINDOW + 1, _STRIDE):
                    candidates = windows.get(text[position : position + _WINDOW])
                    if candidates is None:
                        continue
                    for form, offset in candidates:
                        start = position - offset
                        if start >= run_start and text.startswith(form, start, run_end):
                            found.append((start, start + len(form)))
        return found

    def starts_one(self, text: str) -> bool:
        """Whether `text` is the beginning of some form."""
        index = bisect.bisect_left(self.sorted, text)
        return index < len(self.sorted) and self.sorted[index].startswith(text)


def _runs(text: str, begin: int, end: int) -> Iterator[tuple[int, int]]:
    """The runs of form characters at least _SAMPLED_LENGTH long in `text[begin:end]`."""
    mapped = text[begin:end].encode("ascii", "replace").translate(_RUN_MAP)
    position = mapped.find(_RUN_SEED)
    while position >= 0:
        run_start = mapped.rfind(b" ", 0, position) + 1
        run_end = mapped.find(b" ", position)
        run_end = len(mapped) if run_end < 0 else run_end
        yield begin + run_start, begin + run_end
        position = mapped.find(_RUN_SEED, run_end)


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _replaced(text: str, spans: list[tuple[int, int]]) -> str:
    if not spans:
        return text
    pieces, previous = [], 0
    for start, end in spans:
        pieces += [text[previous:start], REPLACEMENT]
        previous = end
    pieces.append(text[previous:])
    return "".join(pieces)


class _Unescaped:
    """`text` with its `\\uXXXX` and `%XX` escapes decoded, and the way back to `text`'s positions.

    With `form_characters_only`, only escapes of a form character are decoded: no other can be part
    of a form made of those characters alone (the sampled ones).
    """

    def __init__(self, text: str, *, form_characters_only: bool) -> None:
        escapes: list[tuple[int, int, str]] = []
        for pattern in _ESCAPES:
            for match in pattern.finditer(text):
                character = chr(int(match.group(1), 16))
                if not form_characters_only or character in _FORM_CHARACTERS:
                    escapes.append((match.start(), match.end(), character))
        escapes.sort()  # the two kinds cannot overlap: neither "\\" nor "%" is a hex digit
        pieces: list[str] = []
        # For each escape: where its character is in the decoded text, where the escape starts in
        # `text`, and how long it is there.
        self._decoded_at: list[int] = []
        self._original: list[tuple[int, int]] = []
        previous = decoded_length = 0
        for start, end, character in escapes:
            pieces += [text[previous:start], character]
            decoded_length += start - previous
            self._decoded_at.append(decoded_length)
            self._original.append((start, end - start))
            decoded_length += 1
            previous = end
        pieces.append(text[previous:])
        self.text = "".join(pieces)
        self.escaped = bool(self._decoded_at)

    def around_escapes(self, reach: int) -> list[tuple[int, int]]:
        """The stretches of the decoded text within `reach` characters of a decoded escape of a form
        character (where a sampled form can hold one)."""
        stretches: list[tuple[int, int]] = []
        for at in self._decoded_at:
            if self.text[at] not in _FORM_CHARACTERS:
                continue
            begin, end = max(0, at - reach), min(len(self.text), at + reach)
            if stretches and begin <= stretches[-1][1]:
                stretches[-1] = (stretches[-1][0], end)
            else:
                stretches.append((begin, end))
        return stretches

    def start_in_original(self, decoded: int) -> int:
        index = bisect.bisect_right(self._decoded_at, decoded) - 1
        if index < 0:
            return decoded
        escaped_at, (original, length) = self._decoded_at[index], self._original[index]
        return original if decoded == escaped_at else original + length + decoded - escaped_at - 1

    def end_in_original(self, decoded_end: int) -> int:
        last = decoded_end - 1
        index = bisect.bisect_right(self._decoded_at, last) - 1
        if index >= 0 and self._decoded_at[index] == last:
            original, length = self._original[index]
            return original + length
        return self.start_in_original(last) + 1


class SecretRegistry:
    def __init__(self) -> None:
        # Reentrant: `cut` redacts, then tests the tail, under one hold.
        self._lock = threading.RLock()
        self._secrets: set[str] = set()
        self._forms = _Forms()

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if secret not in self._secrets:
                self._secrets.add(secret)
                for form in encoded_forms(secret):
                    self._forms.add(form)

    def __repr__(self) -> str:
        return f"SecretRegistry({len(self._secrets)} secrets)"

    @property
    def reach(self) -> int:
        """How long a text one secret can take up, in any form: its longest, every character escaped."""
        with self._lock:
            return _LONGEST_ESCAPE * self._forms.longest

    def redact(self, text: str) -> str:
        """`text` with every secret, in every form the module lists, replaced by REPLACEMENT."""
        with self._lock:
            forms = self._forms
            if not forms.sorted:
                return text
            text = _replaced(text, forms.spans(text))
            if "\\u" not in text and "%" not in text:
                return text
            unescaped = _Unescaped(text, form_characters_only=not forms.one_by_one)
            if not unescaped.escaped:
                return text
            # The few forms searched one by one are searched again in all the decoded text; the
            # sampled ones only around escapes of their characters (elsewhere it is the text searched).
            decoded = unescaped.text
            found = forms.spans_one_by_one(decoded)
            for begin, end in unescaped.around_escapes(forms.longest):
                found += forms.spans_sampled(decoded, begin, end)
            spans = [
                (unescaped.start_in_original(start), unescaped.end_in_original(stop))
                for start, stop in _merged(found)
            ]
            return _replaced(text, _merged(spans))

    def cut(self, text: str, limit: int, marker: str = "") -> str:
        """`text` redacted, then at most `limit` characters of it, less a tail that begins a secret
        (in any form) that the cut would otherwise leave half shown; `marker` follows a cut text.

        Every text cut for output is cut by this: a secret cut short would no longer be found."""
        return self._cut(text, limit, whole=True, marker=marker)

    def excerpt(self, data: bytes, limit: int) -> str:
        """The start of `data` (UTF-8, undecodable bytes replaced) as `cut` gives it, without
        decoding all of a large body."""
        window = data[: _LONGEST_UTF8 * (limit + self.reach)]
        return self._cut(window.decode("utf-8", "replace"), limit, whole=len(window) == len(data))

    def _cut(self, text: str, limit: int, *, whole: bool, marker: str = "") -> str:
        limit = max(limit, 0)
        with self._lock:
            # Past a secret's reach beyond the cut nothing can change what is kept.
            window = limit + self.reach
            if len(text) > window:
                text, whole = text[:window], False
            redacted = self.redact(text)
            if whole and len(redacted) <= limit:
                return redacted
            text = redacted[:limit]
            # A replacement cut through ("[REDA") is left out whole.
            for kept in range(1, len(REPLACEMENT)):
                if redacted.startswith(REPLACEMENT, limit - kept):
                    text = text[: limit - kept]
                    break
            forms = self._forms
            while forms.sorted:
                shortened = _escaped_tail_removed(_raw_tail_removed(text, forms), forms)
                if shortened == text:
                    break
                text = shortened
            return text + marker


def _raw_tail_removed(text: str, forms: _Forms) -> str:
    for length in range(min(len(text), forms.longest - 1), _MIN_SECRET_LENGTH - 1, -1):
        if forms.starts_one(text[-length:]):
            return text[:-length]
    return text


def _escaped_tail_removed(text: str, forms: _Forms) -> str:
    # The tail that can decode to the start of a secret.
    window_start = max(0, len(text) - _LONGEST_ESCAPE * forms.longest)
    window = text[window_start:]
    partial = _PARTIAL_ESCAPE.search(window)
    if partial is not None:
        # An escape cut through says nothing but may begin a secret's escaped form: never kept.
        return text[: window_start + partial.start()]
    if "\\u" not in window and "%" not in window:
        return text
    unescaped = _Unescaped(window, form_characters_only=False)
    decoded = unescaped.text
    for length in range(min(len(decoded), forms.longest - 1), 0, -1):
        start = unescaped.start_in_original(len(decoded) - length)
        # Counted as written: "\u0063\u0061" is the start of "canary..." 12 characters long.
        if len(window) - start >= _MIN_SECRET_LENGTH and forms.starts_one(decoded[-length:]):
            return text[: window_start + start]
    return text
