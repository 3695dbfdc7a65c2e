"""Word counts and a readability score for plain text."""
import re
from collections import Counter

from tinytable import markdown_table

__version__ = "1.0.0"


def words(text):
    return re.findall(r"[A-Za-z']+", text)


def sentences(text):
    return [s for s in re.split(r"[.!?]+", text) if s.strip()]


def syllables(word):
    groups = re.findall(r"[aeiouy]+", word.lower())
    return max(1, len(groups) - (word.lower().endswith("e") and len(groups) > 1))


def flesch_reading_ease(text):
    """Flesch reading ease: higher is easier (60-70 is plain English)."""
    w, s = words(text), sentences(text)
    if not w or not s:
        return 0.0
    return 206.835 - 1.015 * len(w) / len(s) - 84.6 * sum(map(syllables, w)) / len(w)


def top_words(text, n=5, min_length=4):
    counts = Counter(x.lower() for x in words(text) if len(x) >= min_length)
    return counts.most_common(n)


def summary_table(text):
    """A Markdown table of the text's basic statistics."""
    w = words(text)
    rows = [("words", len(w)), ("sentences", len(sentences(text))),
            ("distinct words", len({x.lower() for x in w})),
            ("reading ease", flesch_reading_ease(text))]
    return markdown_table(rows, ["measure", "value"])
