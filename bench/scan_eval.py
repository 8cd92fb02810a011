"""Accuracy and throughput of sovra's scanner beside Microsoft Presidio, on one corpus.

The corpus (``scan_corpus``, ``scan_templates``) is generated: Faker values in seven
locales and python-stdnum identifiers planted in hand-written sentence templates, with
look-alike negatives (broken checksums, prices, order numbers, dates that are not birth
dates). The ``test`` split uses other templates and another seed than ``dev``; tune on
``dev`` only (``--split dev``).

A finding matches a label when the kind is the same and the spans overlap (each label
matches at most one finding). Presidio is scored on the kinds it has a recognizer for;
kinds it lacks count as misses, and the table also gives its F1 on the shared kinds.

How Presidio runs here (offline, as shipped): ``presidio-analyzer`` with a spaCy *blank*
English pipeline as its NLP engine (tokenizer only: no model can be downloaded, so no NER
and no lemmas), every predefined recognizer for English, plus the Polish, Spanish,
British and German recognizers re-registered for English so that they run on every
text; default score threshold (0). tldextract is pointed at its bundled suffix list.

Throughput is for one core: ``mb_per_s_per_core`` is one scan() call over 1 MB of
mixed-language text, news prose (Polish and Vietnamese) with 10% of the corpus (seven
languages, dense with personal data) mixed in; ``mb_per_s_by_pii_share`` the same for
0, 1, 2, 5, 10 and 25% of the corpus, to show how the cost grows with the density of
personal data (``mb_per_s_prose`` is its 0% point, the prose alone);
``mb_per_s_per_document_call`` one call per corpus document (a few hundred bytes each),
as a gateway scans each record; ``mb_per_s_per_document_batch`` all of them in one
``scan_many`` batch, as a gateway scans a batch of records (``batch_same_findings`` says
whether it found for each document exactly what its own call did). Each is the best of
three runs after a warm-up on texts made from documents of another seed.

Usage: ``python bench/scan_eval.py [--quick] [--split test|dev] [--no-presidio]``.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scan_corpus import LOCALES, Document, documents
from scan_templates import TEMPLATES
from sovra.classify import scan, scan_many

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
SPLIT_SEEDS = {"dev": 11, "test": 29}
WARM_UP_SEED = 1000  # added to the split's seed: documents for warming up, never measured
# 290,000 characters of documents, more than the densest mix takes (250,000), so no
# document is repeated in a measured text (a repeated number would be checked once).
MIX_PER_LANGUAGE = 220
# Shares of the corpus in the mixed megabyte for the throughput curve; 10% is the
# headline figure, 0% the prose alone.
PII_SHARES = (0.0, 0.01, 0.02, 0.05, 0.1, 0.25)
HEADLINE_SHARE = 0.1

# Presidio entity type -> sovra kind. Types not listed (DATE_TIME, URL, US_BANK_NUMBER,
# US_DRIVER_LICENSE, ...) have no counterpart here and are ignored, not counted as errors.
PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "payment_card",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip_address",
    "US_SSN": "us_ssn",
    "US_ITIN": "us_itin",
    "UK_NINO": "gb_nino",
    "PL_PESEL": "pl_pesel",
    "ES_NIF": "es_dni",
    "ES_NIE": "es_nie",
    "DE_TAX_ID": "de_tax_id",
    "DE_ID_CARD": "de_id_card",
    "DE_VAT_ID": "vat_number",
}

Span = tuple[str, int, int]


def score(labels: list[Span], found: list[Span]) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """(true positives, false positives, false negatives) per kind for one document."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    free = list(labels)
    for kind, start, end in found:
        for i, (lkind, lstart, lend) in enumerate(free):
            if lkind == kind and start < lend and lstart < end:
                tp[kind] += 1
                del free[i]
                break
        else:
            fp[kind] += 1
    for kind, _, _ in free:
        fn[kind] += 1
    return tp, fp, fn


def f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f


class Tally:
    def __init__(self) -> None:
        self.by_kind: dict[str, Counter[str]] = defaultdict(Counter)
        self.by_lang: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, lang: str, labels: list[Span], found: list[Span]) -> None:
        tp, fp, fn = score(labels, found)
        for name, counter in (("tp", tp), ("fp", fp), ("fn", fn)):
            for kind, n in counter.items():
                self.by_kind[kind][name] += n
                self.by_lang[lang][name] += n

    def micro(self, kinds: Iterable[str] | None = None) -> float:
        wanted = set(kinds) if kinds is not None else set(self.by_kind)
        total = Counter()
        for kind, c in self.by_kind.items():
            if kind in wanted:
                total.update(c)
        return f1(total["tp"], total["fp"], total["fn"])[2]

    def lang_f1(self, lang: str) -> float:
        c = self.by_lang[lang]
        return f1(c["tp"], c["fp"], c["fn"])[2]


def run(docs: list[Document], finder: Callable[[Document], list[Span]]) -> tuple[Tally, float]:
    tally = Tally()
    started = time.perf_counter()
    results = [finder(doc) for doc in docs]
    elapsed = time.perf_counter() - started
    for doc, found in zip(docs, results, strict=True):
        tally.add(doc.lang, doc.labels, found)
    return tally, elapsed


def sovra_finder(doc: Document) -> list[Span]:
    return [(f.kind, f.start, f.end) for f in scan(doc.text)]


def presidio_finder() -> Callable[[Document], list[Span]]:
    import spacy
    import tldextract
    import tldextract.tldextract as tld_module
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        DeIdCardRecognizer,
        DeTaxIdRecognizer,
        DeVatIdRecognizer,
        EsNieRecognizer,
        EsNifRecognizer,
        PlPeselRecognizer,
        UkNinoRecognizer,
    )

    # No network: the e-mail recognizer's domain check must not try to download the
    # public suffix list.
    tld_module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())

    class BlankSpacyEngine(SpacyNlpEngine):
        def load(self) -> None:
            self.nlp = {"en": spacy.blank("en")}

    engine = BlankSpacyEngine(models=[{"lang_code": "en", "model_name": "blank-en"}])
    engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=engine)
    present = {r.name for r in registry.recognizers}
    for recognizer in (
        PlPeselRecognizer,
        EsNifRecognizer,
        EsNieRecognizer,
        UkNinoRecognizer,
        DeTaxIdRecognizer,
        DeIdCardRecognizer,
        DeVatIdRecognizer,
    ):
        if recognizer.__name__ not in present:
            registry.add_recognizer(recognizer(supported_language="en"))
    analyzer = AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
    analyzer.analyze("warm up 192.168.1.1 a@b.pl", language="en")

    def find(doc: Document) -> list[Span]:
        found = []
        for result in analyzer.analyze(doc.text, language="en"):
            kind = PRESIDIO_KINDS.get(result.entity_type)
            if kind is not None:
                found.append((kind, result.start, result.end))
        # Presidio may report overlapping results; keep the best-scored per span group
        # as its own anonymizer would (here: drop exact duplicates).
        return sorted(set(found), key=lambda s: (s[1], s[2]))

    return find


def mixed_text(docs: list[Document], size: int = 1_000_000, share: float = 0.1) -> str:
    """News prose (the Polish and Vietnamese seeds) with corpus documents mixed in.

    About *share* of the characters come from the labelled corpus (all seven
    languages, dense with personal data; none at 0), the rest is prose with none. Documents are
    taken one language after the other, and repeated only when there are too few.
    """
    seeds = [p.read_text(encoding="utf-8") for p in sorted(SEEDS.glob("*.txt"))]
    prose = "\n".join(seeds)
    if share <= 0:
        return (prose * (size // len(prose) + 1))[:size]
    # One document of each language in turn, so that every language is in the mix
    # however many documents there are per language.
    by_lang: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        by_lang[doc.lang].append(doc)
    turns = itertools.zip_longest(*by_lang.values())
    docs = [doc for turn in turns for doc in turn if doc is not None]
    pieces: list[str] = []
    length = 0
    i = 0
    while length < size:
        doc = docs[i % len(docs)].text
        pieces.append(doc)
        filler = prose * max(1, round(len(doc) * (1 - share) / share / len(prose)))
        filler = filler[: round(len(doc) * (1 - share) / share)]
        pieces.append(filler)
        length += len(doc) + len(filler)
        i += 1
    return "\n".join(pieces)[:size]


def throughput(text: str, warm_up: str, repeat: int = 3) -> float:
    """MB/s of one scan() call over *text* on one core: the best of *repeat* calls.

    *warm_up* (another text of the same make) is scanned first, so that the tables the
    scanner builds on first use exist, as in a long-running gateway, while nothing it
    computed for *text* itself can be reused.
    """
    scan(warm_up, max_numbers=len(warm_up))
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        scan(text, max_numbers=len(text))
        best = min(best, time.perf_counter() - started)
    return len(text.encode()) / best / 1e6


def per_document(docs: list[Document], repeat: int = 3) -> float:
    """MB/s of one scan() call per document, as a gateway scans each record it ingests."""
    size = sum(len(d.text.encode()) for d in docs)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for doc in docs:
            scan(doc.text)
        best = min(best, time.perf_counter() - started)
    return size / best / 1e6


def per_document_batch(docs: list[Document], repeat: int = 3) -> tuple[float, bool]:
    """MB/s of ``scan_many`` over all the documents at once, as a gateway scans a batch of
    records; and whether it found for each document exactly what a call of its own does."""
    texts = [d.text for d in docs]
    size = sum(len(t.encode()) for t in texts)
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        found = scan_many(texts)
        best = min(best, time.perf_counter() - started)
    return size / best / 1e6, found == [scan(t) for t in texts]


def seed_findings() -> list[dict[str, object]]:
    out = []
    for path in sorted(SEEDS.glob("*.txt")):
        text = path.read_text(encoding="utf-8")
        for f in scan(text):
            out.append({"file": path.name, "kind": f.kind, "value": text[f.start : f.end]})
    return out


def table(name: str, ours: Tally, theirs: Tally | None) -> None:
    print(f"\n{name}")
    header = f"{'':22} {'sovra P':>8} {'R':>6} {'F1':>6}"
    if theirs is not None:
        header += f" | {'Presidio P':>10} {'R':>6} {'F1':>6}"
    print(header)
    keys = sorted(ours.by_kind) if name == "per kind" else list(LOCALES)
    for key in keys:
        c = ours.by_kind[key] if name == "per kind" else ours.by_lang[key]
        p, r, f = f1(c["tp"], c["fp"], c["fn"])
        line = f"{key:22} {p:8.3f} {r:6.3f} {f:6.3f}"
        if theirs is not None:
            t = theirs.by_kind[key] if name == "per kind" else theirs.by_lang[key]
            tp, tr, tf = f1(t["tp"], t["fp"], t["fn"])
            line += f" | {tp:10.3f} {tr:6.3f} {tf:6.3f}"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller test split, < 1 min")
    parser.add_argument("--split", choices=sorted(SPLIT_SEEDS), default="test")
    parser.add_argument("--docs", type=int, help="documents per language")
    parser.add_argument("--no-presidio", action="store_true")
    args = parser.parse_args()
    per_language = args.docs or (60 if args.quick else 400)
    docs = documents(args.split, SPLIT_SEEDS[args.split], per_language, TEMPLATES)
    total_bytes = sum(len(d.text.encode()) for d in docs)
    labels = sum(len(d.labels) for d in docs)
    print(
        f"split {args.split}: {len(docs)} documents, {labels} labels, "
        f"{total_bytes / 1e6:.2f} MB, {len(LOCALES)} languages"
    )

    # Warm-up on documents of another seed: builds the fold table, the term automaton
    # and stdnum's and phonenumbers' registries once, as a long-running gateway would
    # have, without scanning any text that is measured.
    warm = documents(args.split, SPLIT_SEEDS[args.split] + WARM_UP_SEED, per_language, TEMPLATES)
    for doc in warm:
        scan(doc.text)
    ours, our_time = run(docs, sovra_finder)
    theirs = None
    presidio_time = 0.0
    if not args.no_presidio:
        theirs, presidio_time = run(docs, presidio_finder())

    table("per kind", ours, theirs)
    table("per language", ours, theirs)
    shared = set(PRESIDIO_KINDS.values())
    our_mbps = total_bytes / our_time / 1e6
    print(f"\nmicro-F1: sovra {ours.micro():.4f}", end="")
    if theirs is not None:
        print(
            f", Presidio {theirs.micro():.4f}; on the {len(shared)} kinds Presidio covers: "
            f"sovra {ours.micro(shared):.4f}, Presidio {theirs.micro(shared):.4f}"
        )
    else:
        print()
    # Enough documents that none is repeated in the mixed megabyte (a repeated number
    # would be validated once per call); the first documents are the ones above.
    mix = docs
    if per_language < MIX_PER_LANGUAGE:
        mix = documents(args.split, SPLIT_SEEDS[args.split], MIX_PER_LANGUAGE, TEMPLATES)
    curve = {
        share: throughput(mixed_text(mix, share=share), mixed_text(warm, share=share))
        for share in PII_SHARES
    }
    mixed, prose = curve[HEADLINE_SHARE], curve[0.0]
    one_per_call = per_document(docs)
    batched, batch_same = per_document_batch(docs)
    print("\nthroughput, one core, one scan() call over 1 MB of prose with corpus mixed in")
    print(f"{'corpus share':>12} {'MB/s':>7} {'ms per MB':>10}")
    for share, mbps in curve.items():
        print(f"{share:12.0%} {mbps:7.1f} {1000 / mbps:10.1f}")
    print(
        f"throughput, one core: sovra {mixed:.1f} MB/s on 1 MB of mixed-language text "
        f"(news prose with 10% of the corpus mixed in), {prose:.1f} MB/s on the news prose "
        f"alone, {one_per_call:.2f} MB/s with one scan() call per document (about "
        f"{total_bytes / len(docs):.0f} bytes each; {our_mbps:.2f} MB/s in the accuracy run), "
        f"{batched:.2f} MB/s with all of them in one scan_many() batch "
        f"({'the same findings' if batch_same else 'OTHER FINDINGS than one call each'})"
        + (
            f"; Presidio {total_bytes / presidio_time / 1e6:.3f} MB/s on this corpus"
            if theirs
            else ""
        )
    )
    seeds = seed_findings()
    print(f"findings on the news seeds: {seeds or 'none'}")
    result = {
        "split": args.split,
        "documents": len(docs),
        "labels": labels,
        "micro_f1": round(ours.micro(), 4),
        "min_language_f1": round(min(ours.lang_f1(lang) for lang in LOCALES), 4),
        "language_f1": {lang: round(ours.lang_f1(lang), 4) for lang in LOCALES},
        "presidio_micro_f1": round(theirs.micro(), 4) if theirs else None,
        "shared_kinds_f1": round(ours.micro(shared), 4),
        "presidio_shared_kinds_f1": round(theirs.micro(shared), 4) if theirs else None,
        "mb_per_s_per_core": round(mixed, 2),
        "mb_per_s_prose": round(prose, 2),
        "mb_per_s_by_pii_share": {f"{share:.0%}": round(mbps, 2) for share, mbps in curve.items()},
        "mb_per_s_per_document_call": round(one_per_call, 2),
        "mb_per_s_per_document_batch": round(batched, 2),
        "batch_same_findings": batch_same,
        "presidio_mb_per_s": round(total_bytes / presidio_time / 1e6, 4) if theirs else None,
        "seed_findings": len(seeds),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
