"""The semantic cache's guard against near-misses that embeddings alone get wrong.

Two prompts whose vectors are close may still ask different things: "sort ascending" /
"sort descending", "convert 5 km" / "convert 50 km", "in Paris" / "in Rome", "with sugar" /
"without sugar", "from USD to EUR" / "from EUR to USD". :func:`features` extracts what such
pairs differ in — numbers, dates, quoted strings, named entities, negations, polar words and
directed pairs — and :func:`compatible` refuses a match when they disagree, however close
the vectors are. It is deliberately strict: a refused paraphrase costs one provider call, a
wrong answer costs the user.
"""

from __future__ import annotations

import re
from functools import lru_cache

import attrs

__all__ = ["Features", "compatible", "features"]

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'\-\.+#]*[A-Za-z0-9+#]|[A-Za-z]")
_NUMBER = re.compile(r"(?<![A-Za-z])[-+]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?%?")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|`([^`]+)`|(?<![A-Za-z])'([^']+)'(?![A-Za-z])")
_DIRECTED = re.compile(
    r"\b(?:from\s+)?([A-Za-z0-9$€£¥#+]+)\s+(?:to|into|->|→|than|over|versus|vs\.?|before|after)"
    r"\s+([A-Za-z0-9$€£¥#+]+)",
    re.IGNORECASE,
)


def _words(text: str) -> list[str]:
    """A word list written as one string."""
    return text.split()


_NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        _words(
            "zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000",
     "million": "1000000", "billion": "1000000000", "first": "1", "second": "2", "third": "3",
     "half": "0.5", "dozen": "12", "single": "1", "double": "2", "triple": "3"}  # fmt: skip
_DATE_WORDS = frozenset(
    _words(
        "january february march april may june july august september october november december "
        "jan feb mar apr jun jul aug sep sept oct nov dec monday tuesday wednesday thursday "
        "friday saturday sunday today tomorrow yesterday tonight weekend morning evening spring "
        "summer autumn fall winter"
    )
) - {"may", "march", "fall", "second"}  # also plain words; counted when capitalised
_NEGATIONS = frozenset(
    _words(
        "not no never without none nothing nobody neither nor cannot can't don't doesn't didn't "
        "isn't aren't wasn't weren't won't wouldn't shouldn't couldn't mustn't haven't hasn't "
        "hadn't avoid except excluding lacking"
    )
)
# words on one axis with opposite senses: a prompt using one never matches one using the other
_POLAR_PAIRS = _words(
    "ascending/descending asc/desc increase/decrease increasing/decreasing enable/disable "
    "enabled/disabled enabling/disabling add/remove adding/removing encrypt/decrypt "
    "encode/decode encoding/decoding compress/decompress upload/download import/export "
    "true/false on/off open/close start/stop buy/sell before/after above/below over/under "
    "max/min maximum/minimum largest|biggest/smallest highest/lowest most/least "
    "bigger|larger|greater/smaller|lesser cause|causes/effect|effects more/less "
    "longer/shorter faster/slower better/worse cheapest/most-expensive first/last "
    "oldest/newest earliest/latest early/late plus/minus multiply/divide left/right up/down "
    "in/out inside/outside input/output push/pull send/receive lock/unlock "
    "install/uninstall allow/deny|block accept/reject include/exclude serialize/deserialize "
    "upper/lower uppercase/lowercase horizontal/vertical north/south east/west hot/cold "
    "warm/cool positive/negative pros/cons advantages/disadvantages benefits/drawbacks "
    "love/hate like/dislike agree/disagree win/lose profit/loss import/export "
    "inbound/outbound ingress/egress client/server sync/async synchronous/asynchronous "
    "mean/median soft/hard strong/weak rise/fall gain/lose success/failure"
)
_POLAR: dict[str, tuple[str, int]] = {}
for _pair in _POLAR_PAIRS:
    _plus, _minus = _pair.split("/")
    for _word in _plus.split("|"):
        _POLAR.setdefault(_word, (_pair, +1))
    for _word in _minus.split("|"):
        _POLAR.setdefault(_word, (_pair, -1))
_CONNECTIVES = frozenset(["than", "to", "from", "into", "vs", "versus", "before", "after", "over"])
_ANTONYM_PREFIXES = ("un", "dis", "non", "in", "im", "ir", "il")
_STARTERS = frozenset(
    _words(
        "what how why when where who which whom whose is are was were do does did can could "
        "should would will may might please tell explain describe give list show write i i'm "
        "i've my we our you your the a an in on at for of to and or if it this that these those "
        "hey hi hello ok okay so also then now let let's make find create help"
    )
)
_STOPWORDS = _STARTERS | frozenset(
    _words(
        "is are be been being am was were do does did has have had with about into from by as "
        "than then there their them they he she him her his its me us"
    )
)


def _canon(word: str) -> str:
    """A word as compared: lower case, no hyphens or dots, an acronym's plural dropped."""
    if len(word) > 2 and word.endswith("s") and word[:-1].isupper():
        word = word[:-1]  # APIs -> API
    return word.lower().replace("-", "").replace(".", "").rstrip("'")


@attrs.frozen(slots=True)
class Features:
    """What a prompt's meaning hinges on beyond its vector."""

    words: frozenset[str]
    content: tuple[str, ...]
    numbers: frozenset[str]
    quoted: frozenset[str]
    entities: frozenset[str]
    negations: int
    polar: frozenset[tuple[str, int]]
    directed: frozenset[tuple[str, str]]


def _entities(text: str) -> set[str]:
    """Capitalised words not starting a sentence, acronyms and mixed-case/digit names."""
    out: set[str] = set()
    sentence_start = True
    for match in _WORD.finditer(text):
        word = match.group(0).rstrip(".")
        before = text[: match.start()].rstrip()
        sentence_start = not before or before[-1] in ".!?:;\n\"'(“"
        lower = _canon(word)
        if (
            any(c.isdigit() for c in word)
            or (len(word) > 1 and word.isupper())
            or (word[:1].isupper() and not sentence_start and lower not in _STARTERS)
            or (word[:1].isupper() and lower in _DATE_WORDS | {"may", "march"})
            or any(c.isupper() for c in word[1:])
        ):
            out.add(lower)
    return out


@lru_cache(maxsize=4096)
def features(text: str) -> Features:
    """The guard's view of one prompt."""
    raw = [w.rstrip(".") for w in _WORD.findall(text)]
    words = [w.lower() for w in raw]
    numbers = {n.replace(",", "").lstrip("+") for n in _NUMBER.findall(text)}
    numbers |= {_NUMBER_WORDS[w] for w in words if w in _NUMBER_WORDS}
    numbers |= {w for w in words if w in _DATE_WORDS}
    quoted = {next(g for g in m if g).strip().lower() for m in _QUOTED.findall(text)}
    negations = sum(w in _NEGATIONS or w.endswith("n't") for w in words)
    polar = {_POLAR[w] for w in words if w in _POLAR}
    directed = {
        (a.lower(), b.lower())
        for a, b in _DIRECTED.findall(text)
        if a.lower() not in _STARTERS and b.lower() not in _STARTERS
    }
    return Features(
        words=frozenset(_canon(w) for w in raw),
        content=tuple(_canon(w) for w in raw if w.lower() not in _STOPWORDS),
        numbers=frozenset(numbers),
        quoted=frozenset(quoted),
        entities=frozenset(_entities(text)),
        negations=negations,
        polar=frozenset(polar),
        directed=frozenset(directed),
    )


def compatible(a: str, b: str) -> bool:
    """Whether the guard lets ``a`` and ``b`` share an answer (their vectors being close)."""
    if a == b:
        return True
    fa, fb = features(a), features(b)
    if fa.numbers != fb.numbers or fa.quoted != fb.quoted:
        return False
    # an entity of one must appear, in any case, among the other's words
    if not fa.entities <= fb.words | fb.entities or not fb.entities <= fa.words | fa.entities:
        return False
    if (fa.negations > 0) != (fb.negations > 0) or fa.negations % 2 != fb.negations % 2:
        return False
    # an axis both mention ("ascending" / "descending") must have the same sense in both
    axes = {axis for axis, _ in fa.polar} & {axis for axis, _ in fb.polar}
    for axis in axes:
        if {s for x, s in fa.polar if x == axis} != {s for x, s in fb.polar if x == axis}:
            return False
    if any((y, x) in fb.directed for x, y in fa.directed if x != y):
        return False
    # the same content words in another order: "A faster than B" / "B faster than A"
    if (
        fa.words & _CONNECTIVES
        and fb.words & _CONNECTIVES
        and sorted(fa.content) == sorted(fb.content)
        and fa.content != fb.content
    ):
        return False
    # a word and its prefixed antonym: "healthy" / "unhealthy", "like" / "dislike"
    only_a, only_b = fa.words - fb.words, fb.words - fa.words
    for word in only_a:
        for p in _ANTONYM_PREFIXES:
            if p + word in only_b or (word.startswith(p) and word[len(p) :] in only_b):
                return False
    return True
