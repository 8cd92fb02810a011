"""Policy: packs of Cedar rules, k-of-n signing, legal-assistance grants, the bulk guard,
justification codes and the decision point.

Pure: nothing here does I/O beyond reading the packs shipped inside the package.
"""

from sovra.policy.bulk import (
    Alert,
    BulkFlags,
    BulkGuard,
    BulkLimits,
    BulkUsage,
    GuardJournal,
    JournalEvent,
    JournalSession,
)
from sovra.policy.decide import (
    BUILT_IN_RULES,
    GOVERNANCE_ACTIONS,
    DecisionPoint,
    RecordFacts,
    ReviewItem,
    Target,
)
from sovra.policy.explain import Explanation, explain_entry
from sovra.policy.grants import (
    GrantChecker,
    GrantFacts,
    check_grant,
    cosign_grant,
    sign_grant,
    verify_grant_signature,
)
from sovra.policy.justification import Justification, default_justification, parse_justification
from sovra.policy.pack import (
    SHIPPED_PACKS,
    PackBundle,
    PackParameters,
    PolicyPack,
    default_pack,
    shipped_bundle,
)
from sovra.policy.signing import (
    PAYLOAD_TYPE,
    ActivePack,
    Envelope,
    VerifiedPack,
    key_id,
    pae,
    sign_pack,
    verify_pack,
)

__all__ = [
    "BUILT_IN_RULES",
    "GOVERNANCE_ACTIONS",
    "PAYLOAD_TYPE",
    "SHIPPED_PACKS",
    "ActivePack",
    "Alert",
    "BulkFlags",
    "BulkGuard",
    "BulkLimits",
    "BulkUsage",
    "DecisionPoint",
    "Envelope",
    "Explanation",
    "GrantChecker",
    "GrantFacts",
    "GuardJournal",
    "JournalEvent",
    "JournalSession",
    "Justification",
    "PackBundle",
    "PackParameters",
    "PolicyPack",
    "RecordFacts",
    "ReviewItem",
    "Target",
    "VerifiedPack",
    "check_grant",
    "cosign_grant",
    "default_justification",
    "default_pack",
    "explain_entry",
    "key_id",
    "pae",
    "parse_justification",
    "shipped_bundle",
    "sign_grant",
    "sign_pack",
    "verify_grant_signature",
    "verify_pack",
]
