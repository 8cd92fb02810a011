"""Request bodies of the HTTP API: strict (unknown fields are refused), documented."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["AccessBody", "IngestBody", "Strict", "SubjectRef"]


class Strict(BaseModel):
    """A body that refuses unknown fields (fail closed)."""

    model_config = ConfigDict(extra="forbid")


class IngestBody(Strict):
    """A record to store under its subject's home jurisdiction."""

    subject_id: str = Field(description="the subject's identifier, as the caller knows her")
    jurisdiction: str = Field(description="the subject's home jurisdiction, e.g. PL")
    content: str = Field(description="the record's text")
    purpose: str | None = Field(
        default=None,
        description="what the data is collected for (one of the jurisdiction's purposes); "
        "picks the minimisation rule for it",
    )
    other_homes: list[str] = Field(
        default_factory=list,
        description="a second home jurisdiction of the subject, if she has one, e.g. [\"DE\"]: "
        "the record is then keyed, placed, minimised and decided under both homes",
    )


class SubjectRef(Strict):
    """A subject named by her home jurisdiction and identifier."""

    jurisdiction: str
    subject_id: str


class AccessBody(Strict):
    """What to read, why, and under which grant. Name exactly one target."""

    purpose: str = Field(description="declared purpose, e.g. customer-support")
    record_ids: list[str] = Field(default_factory=list)
    subjects: list[SubjectRef] = Field(default_factory=list)
    jurisdiction: str | None = Field(default=None, description="every record of this jurisdiction")
    grant: dict[str, Any] | None = Field(
        default=None, description="a signed legal-assistance grant"
    )
    justification: str | None = Field(
        default=None, description="access justification code, e.g. customer-initiated-support"
    )
    reveal: bool = Field(
        default=False,
        description="also turn tokenized and sealed values back (decided as the reveal action)",
    )
