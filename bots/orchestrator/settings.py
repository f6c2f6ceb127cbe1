"""Settings of the orchestrator: each persona's reply queue (``QueueSettings``, the ``queue:``
section of a persona file: how events are ranked, bounded and filtered; the queue itself is
:mod:`bots.orchestrator.queue`, whose docstring explains the overflow policy and the
worst-case wait bound) and how personas share the show (``ShowSettings``, ``show:`` in
``vstage.yaml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator

from bots.events import ChatMessage, Event, Notice, Redemption, Role, Utterance
from vstage_core.settings import FrozenModel

__all__ = ["QueueSettings", "ShowSettings"]


class QueueSettings(FrozenModel):
    """How one persona's queue ranks, bounds and filters viewer events.

    Priorities are plain numbers on one scale; aging adds ``aging_per_s`` per second waited.
    See the module docstring for the overflow policy and the worst-case wait bound.
    """

    # -- priority weights ----------------------------------------------------------------
    utterance_priority: float = Field(
        100.0, description="Live voice conversation (an Utterance): the highest class."
    )
    paid_base: float = Field(60.0, description="A cheer (ChatMessage with bits > 0), before bits.")
    per_bit: float = Field(0.02, ge=0, description="Added per bit cheered (1000 bits: +20).")
    redemption_base: float = Field(60.0, description="A channel-point redemption, before cost.")
    redemption_per_point: float = Field(
        0.0, ge=0, description="Added per channel point the reward cost (0: cost ignored)."
    )
    paid_cap: float = Field(
        90.0, description="Ceiling of any paid priority; keep it below utterance_priority."
    )
    notice_priority: float = Field(40.0, description="Subscriptions, gifts, raids, follows.")
    mod_priority: float = Field(30.0, description="Chat from a moderator or the broadcaster.")
    vip_priority: float = Field(25.0, description="Chat from a VIP.")
    subscriber_priority: float = Field(20.0, description="Chat from a subscriber.")
    chat_priority: float = Field(10.0, description="Any other chat: the lowest class.")

    # -- waiting -------------------------------------------------------------------------
    aging_per_s: float = Field(
        1.0,
        ge=0,
        description="Priority gained per second waited; > 0 bounds every wait (see max_wait_s).",
    )
    stale_after_s: float | None = Field(
        120.0, gt=0, description="An unpaid item waiting this long is dropped (None: never)."
    )
    paid_stale_after_s: float | None = Field(
        None,
        gt=0,
        description="A paid item waiting this long is refused explicitly (None: never).",
    )

    # -- bounds --------------------------------------------------------------------------
    max_length: int = Field(50, ge=1, description="Queue length at which eviction starts.")
    min_capacity: int = Field(
        5, ge=1,
        description="The fewest items kept however slow answers are (see set_service_time).",
    )
    paid_overflow: int = Field(
        25, ge=0, description="Paid items accepted beyond max_length when only paid are queued."
    )
    max_per_user: int = Field(2, ge=1, description="Unpaid items queued at once per user.")

    # -- spam ----------------------------------------------------------------------------
    duplicate_window_s: float = Field(
        30.0, ge=0, description="Same normalised text accepted within this window is refused."
    )
    similarity_threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Also refuse texts this similar (trigram Jaccard) to a recent one (None: off).",
    )
    similarity_recent: int = Field(
        32, ge=1, description="How many recent accepted texts the similarity check compares."
    )
    redelivery_memory: int = Field(
        10_000, ge=0, description="How many recent msg_ids are remembered to drop redeliveries."
    )

    # -- cooldowns -----------------------------------------------------------------------
    user_cooldown_s: float = Field(
        10.0, ge=0, description="A user's next item waits this long after their last answer."
    )
    persona_cooldown_s: float = Field(
        0.0, ge=0, description="Minimum gap between the end of one reply and the next pop."
    )

    # -- exemptions ----------------------------------------------------------------------
    mods_bypass_limits: bool = Field(
        True, description="Moderators and the broadcaster skip user cooldown and per-user cap."
    )
    paid_bypasses_limits: bool = Field(
        True, description="Paid events skip user cooldown, per-user cap and duplicate checks."
    )
    voice_bypasses_cooldown: bool = Field(
        True, description="Utterances skip the user cooldown (a conversation has quick turns)."
    )

    @model_validator(mode="after")
    def _check_paid_cap(self) -> QueueSettings:
        if self.paid_cap < max(self.paid_base, self.redemption_base):
            raise ValueError("paid_cap must be at least paid_base and redemption_base")
        return self

    @property
    def top_priority(self) -> float:
        """The highest base priority any event can get (``P_top`` of the aging bound)."""
        return max(
            self.utterance_priority,
            self.paid_cap,
            self.notice_priority,
            self.mod_priority,
            self.vip_priority,
            self.subscriber_priority,
            self.chat_priority,
        )

    def base_priority(self, event: Event) -> float:
        """The priority ``event`` starts with, before any aging.

        Args:
            event: a viewer event (a ``ModCommand`` is never queued; it gets chat priority).
        """
        if isinstance(event, Utterance):
            return self.utterance_priority
        if isinstance(event, Redemption):
            return min(self.paid_cap, self.redemption_base + self.redemption_per_point * event.cost)
        if isinstance(event, ChatMessage) and event.bits > 0:
            return min(self.paid_cap, self.paid_base + self.per_bit * event.bits)
        if isinstance(event, Notice):
            return self.notice_priority
        roles = event.viewer.roles
        if not roles:
            return self.chat_priority
        best = self.chat_priority
        if Role.BROADCASTER in roles or Role.MODERATOR in roles:
            best = max(best, self.mod_priority)
        if Role.VIP in roles:
            best = max(best, self.vip_priority)
        if Role.SUBSCRIBER in roles:
            best = max(best, self.subscriber_priority)
        return best

    def max_wait_s(self, base_priority: float, *, reply_s: float, paid: bool = False) -> float:
        """Worst-case wait of an item that is not evicted, expired or cleared.

        ``(top_priority - base_priority) / aging_per_s + N * (reply_s + persona_cooldown_s)``
        with ``N = max_length`` (``+ paid_overflow`` when paid), plus any paused time.

        Args:
            base_priority: the item's base priority (see :meth:`base_priority`).
            reply_s: the longest a reply takes from ``pop`` to ``mark_answered``.
            paid: whether the item is paid (paid items may share the queue with overflow).

        Returns:
            Seconds; ``inf`` when ``aging_per_s`` is 0 (no bound).
        """
        if self.aging_per_s <= 0:
            return float("inf")
        capacity = self.max_length + (self.paid_overflow if paid else 0)
        climb = max(0.0, self.top_priority - base_priority) / self.aging_per_s
        return climb + capacity * (reply_s + self.persona_cooldown_s)


class ShowSettings(FrozenModel):
    """How personas share the stage and the render workers."""

    exclusive_stage: bool = Field(
        True, description="one persona on stage at a time; others wait their turn (fair FIFO)"
    )
    render_workers: int = Field(1, ge=1, le=64, description="render jobs run at once, shared")
    lookahead: int = Field(
        1, ge=0, le=4,
        description="replies a persona prepares while one plays (no dead air); 0: none",
    )
    traces_kept: int = Field(500, ge=10, description="recent traces kept for /api/traces")
    audit_log: Path | None = Field(
        Path("audit.jsonl"), description="moderation audit log (JSONL), relative to state_dir"
    )
    broker_url: SecretStr | None = Field(
        None,
        description="amqp://user:pass@host:5672/vhost: render on `vstage worker` processes over "
        "RabbitMQ instead of in this process; set VSTAGE_SHOW__BROKER_URL",
    )
