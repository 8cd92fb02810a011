"""Policy: packs of Cedar rules, legal-assistance grants, the bulk guard, the decision point.

Pure: nothing here does I/O beyond reading the packaged default pack.
"""

from sovra.policy.bulk import BulkGuard, BulkLimits
from sovra.policy.decide import DecisionPoint, RecordFacts
from sovra.policy.grants import GrantFacts, check_grant, sign_grant, verify_grant_signature
from sovra.policy.pack import PolicyPack, default_pack

__all__ = [
    "BulkGuard",
    "BulkLimits",
    "DecisionPoint",
    "GrantFacts",
    "PolicyPack",
    "RecordFacts",
    "check_grant",
    "default_pack",
    "sign_grant",
    "verify_grant_signature",
]
