"""stdnum's validator of each numeric identity-number kind: what the scanner's own checks
of those kinds are held to."""

from __future__ import annotations

from collections.abc import Callable

from stdnum.cn import ric
from stdnum.de import idnr
from stdnum.fr import nir
from stdnum.pl import nip, pesel, regon
from stdnum.us import itin, ssn
from stdnum.vn import mst

VALIDATORS: dict[str, Callable[[str], bool]] = {
    "pl_pesel": pesel.is_valid,
    "de_tax_id": idnr.is_valid,
    "pl_nip": nip.is_valid,
    "pl_regon": regon.is_valid,
    "vn_tax_code": mst.is_valid,
    "cn_resident_id": ric.is_valid,
    "fr_nir": nir.is_valid,
    "us_itin": itin.is_valid,
    "us_ssn": ssn.is_valid,
}
