"""What one ``scan()`` call costs on a short text: the scanner's cost per call.

    .venv/bin/python bench/scan_calls.py [--quick]

CPU time per call (``time.thread_time``, so time the process waits for a core on a shared
machine is not counted), the best of several passes over many texts, on: the gateway's
benchmark record (about 300 bytes with a phone number, a PESEL and an e-mail address),
records of the same kind in six more languages (each a phone number, an identity or
account number and an e-mail address), prose of the same length without a digit,
``"ok"`` (the fixed cost of a call), and the test documents of ``bench/scan_eval.py``
(seven languages, about 200 bytes each). To
compare two versions of the scanner, run it with ``PYTHONPATH`` pointing at each source
in turn, alternately. The last line printed is one JSON object.

Where the scanner has ``scan_many``, each figure is also given per text of a batch
(``*_batch_us``: ``scan_many`` over batches of 1,000 texts, as ``Gateway.ingest_many``
takes them; ``record_batch16_us``: batches of 16, as sixteen threads' single ingests are
gathered). The gateway's record repeats one phone number and one PESEL, which a batch
parses once; ``record_distinct`` gives every record its own of both, as real records
have.
"""

from __future__ import annotations

import argparse
import json
import time

from stdnum.pl import pesel

from scan_corpus import documents
from scan_templates import TEMPLATES
from sovra.classify import scan

try:
    from sovra.classify import scan_many
except ImportError:  # a scanner from before scan_many: per-call figures only
    scan_many = None

BATCH = 1000

RECORD = (
    "Zgłoszenie {i}: klientka prosi o zmianę adresu dostawy, tel. +48 601 234 567, "
    "PESEL 44051401359, e-mail klient{i}@example.pl. Uwagi: paczka ma być zostawiona u "
    "sąsiada pod numerem 5, jeśli nikogo nie będzie w domu; kontakt po godzinie 17:00."
)
# The same request in other languages, each with the number shapes of its country.
RECORDS = {
    "en": (
        "Ticket {i}: customer asks to change the delivery address, phone (212) 555-0187, "
        "SSN 123-45-6789, email jane.doe{i}@example.com. Note: leave the parcel with the "
        "neighbour at number 5 if nobody is home; call after 5 pm."
    ),
    "de": (
        "Anfrage {i}: Kundin bittet um Änderung der Lieferadresse, Tel. 030 12345678, "
        "Steuer-ID 65929970489, E-Mail anna{i}@beispiel.de. Hinweis: Paket bitte beim "
        "Nachbarn in Hausnummer 5 abgeben, falls niemand zu Hause ist."
    ),
    "fr": (
        "Demande {i} : la cliente souhaite changer l'adresse de livraison, tél. 06 12 34 56 "
        "78, IBAN FR14 2004 1010 0505 0001 3M02 606, courriel marie{i}@exemple.fr. "
        "Remarque : laisser le colis chez le voisin au numéro 5."
    ),
    "es": (
        "Solicitud {i}: la clienta pide cambiar la dirección de entrega, teléfono 612 345 "
        "678, DNI 12345678Z, correo lucia{i}@ejemplo.es. Nota: dejar el paquete con el "
        "vecino del número 5 si no hay nadie en casa."
    ),
    "vi": (
        "Yêu cầu {i}: khách hàng muốn đổi địa chỉ giao hàng, số điện thoại 0912 345 678, "
        "CCCD 001085012345, email lan{i}@vidu.vn. Ghi chú: để gói hàng ở nhà hàng xóm số 5 "
        "nếu không có ai ở nhà."
    ),
    "zh": (
        "工单{i}\uff1a客户要求更改收货地址\uff0c电话 138 0013 8000\uff0c"
        "身份证号 11010519491231002X\uff0c"
        "邮箱 wang{i}@example.cn。备注\uff1a如果家里没人\uff0c请把包裹放在5号邻居家。"
    ),
}
PROSE = (
    "Klientka prosi o zmianę adresu dostawy. Uwagi: paczka ma być zostawiona u sąsiada, "
    "jeśli nikogo nie będzie w domu; kontakt wieczorem, najlepiej po pracy. Dziękujemy za "
    "cierpliwość i zapraszamy ponownie do naszego sklepu internetowego."
)


def distinct_record(i: int) -> str:
    """The gateway's record with a phone number and a PESEL of its own."""
    body = f"{40 + i % 50:02d}{1 + i % 12:02d}{1 + i % 28:02d}{i % 10_000:04d}"
    number = body + pesel.calc_check_digit(body)
    phone = f"+48 6{i % 100:02d} {i * 7919 % 1000:03d} {i * 104_729 % 1000:03d}"
    return RECORD.format(i=i).replace("+48 601 234 567", phone).replace("44051401359", number)


def per_call(texts: list[str], passes: int) -> float:
    """Best CPU microseconds per call over *passes* passes through *texts*."""
    for text in texts[:20]:
        scan(text)
    best = float("inf")
    for _ in range(passes):
        start = time.thread_time()
        for text in texts:
            scan(text)
        best = min(best, (time.thread_time() - start) / len(texts))
    return best * 1e6


def per_text_in_batches(texts: list[str], passes: int, size: int = BATCH) -> float:
    """Best CPU microseconds per text over *passes* passes of ``scan_many`` over *texts*
    in batches of *size*."""
    assert scan_many is not None
    scan_many(texts[:size])
    best = float("inf")
    for _ in range(passes):
        start = time.thread_time()
        for at in range(0, len(texts), size):
            scan_many(texts[at : at + size])
        best = min(best, (time.thread_time() - start) / len(texts))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    args = parser.parse_args()
    n, passes = (500, 5) if args.quick else (2000, 9)
    corpus = [d.text for d in documents("test", 7, 30, TEMPLATES)]
    texts = {
        "record": [RECORD.format(i=i) for i in range(n)],
        "record_distinct": [distinct_record(i) for i in range(n)],
        **{f"record_{lang}": [r.format(i=i) for i in range(n)] for lang, r in RECORDS.items()},
        "prose": [PROSE + " " * (i % 5) for i in range(n)],
        "ok": ["ok"] * n,
        "corpus_document": corpus * max(1, n // len(corpus)),
    }
    figures = {f"{name}_us": per_call(batch, passes) for name, batch in texts.items()}
    if scan_many is not None:
        figures |= {
            f"{name}_batch_us": per_text_in_batches(batch, passes) for name, batch in texts.items()
        }
        figures["record_batch16_us"] = per_text_in_batches(texts["record"], passes, 16)
        figures["record_distinct_batch16_us"] = per_text_in_batches(
            texts["record_distinct"], passes, 16
        )
    sizes = {
        "record": len(RECORD.format(i=0).encode()),
        **{f"record_{lang}": len(r.format(i=0).encode()) for lang, r in RECORDS.items()},
        "prose": len(PROSE.encode()),
        "corpus_document_mean": sum(len(t.encode()) for t in corpus) // len(corpus),
    }
    print("CPU per scan() call, or per text of a scan_many() batch (best of passes)")
    for name, us in figures.items():
        print(f"  {name:<22} {us:8.1f} us")
    print(
        json.dumps({**{k: round(v, 1) for k, v in figures.items()}, "bytes": sizes, "batch": BATCH})
    )


if __name__ == "__main__":
    main()
