"""Offline token counts in OpenAI's o200k_base encoding: the vendored ranks
(prompts/data/o200k_base.tiktoken.gz, checked against tiktoken's hash) and byte-pair merging
as tiktoken does it, in Python. Fast enough for templates (the editor's preview); not for
the request path, which estimates from characters (routing.router.estimate_tokens)."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from importlib import resources

import regex

RANKS_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
# tiktoken_ext.openai_public's o200k_base split pattern
PATTERN = regex.compile(
    "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    )
)


@functools.cache
def _ranks() -> dict[bytes, int]:
    data = gzip.decompress(
        resources.files("prompts.data").joinpath("o200k_base.tiktoken.gz").read_bytes()
    )
    if hashlib.sha256(data).hexdigest() != RANKS_SHA256:
        raise RuntimeError("prompts/data/o200k_base.tiktoken.gz is not tiktoken's o200k_base")
    ranks = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _piece_tokens(piece: bytes, ranks: dict[bytes, int]) -> int:
    """How many tokens byte-pair merging makes of one piece (tiktoken's _byte_pair_merge:
    merge the adjacent pair of lowest rank until no pair has a rank)."""
    if piece in ranks:
        return 1
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while len(parts) > 1:
        best, best_rank = -1, None
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):
                best, best_rank = i, rank
        if best < 0:
            break
        parts[best : best + 2] = [parts[best] + parts[best + 1]]
    return len(parts)


@functools.lru_cache(maxsize=4096)
def _cached_piece_tokens(piece: bytes) -> int:
    return _piece_tokens(piece, _ranks())


def count_tokens(text: str) -> int:
    """The number of o200k_base tokens in `text` (special tokens are read as plain text)."""
    return sum(
        _cached_piece_tokens(match.group().encode("utf-8")) for match in PATTERN.finditer(text)
    )
