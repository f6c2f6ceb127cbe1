"""The moderator of one persona: input rules, output check and audit log behind one object.

The orchestrator asks :meth:`Moderator.check_input` before it queues an event and
:meth:`Moderator.check_output` before each sentence is voiced; every decision is counted and
written to the audit log. Input *allows* can be sampled (``audit_allow_every``) because they
are most of the traffic; refusals, blocks, mod commands and output decisions are always
written.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from bots.events import Event, ModCommand, Viewer
from bots.moderation.audit import AuditLog, Decision, Stage
from bots.moderation.matchers import CompiledModeration, compile_moderation
from bots.moderation.output import OutputContext, check_output, name_is_blocked
from bots.moderation.rules import Verdict, check_input
from bots.moderation.settings import ModerationSettings

logger = logging.getLogger(__name__)

__all__ = ["Moderator"]


class Moderator:
    """Moderation of one persona.

    Args:
        settings: the persona's ``moderation`` settings. Assign ``moderator.settings`` to
            change them live, e.g. ``settings.model_copy(update={"mod_only": True})``: the
            new settings are validated again (``model_copy`` does not validate) and the
            matchers recompiled; invalid ones raise ``pydantic.ValidationError`` and the
            old ones stay.
        audit: where decisions are written; None: nowhere (they are still counted).
        persona: the persona id written to the audit log when an event names none.
        instructions: the persona's standing instructions (system prompt); the persona may
            never recite them.

    Attributes:
        counts: decisions so far, keyed ``"<stage>:allow"`` or ``"<stage>:<rule>"``
            (e.g. ``"input:links"``), for metrics.
    """

    def __init__(
        self,
        *,
        settings: ModerationSettings,
        audit: AuditLog | None = None,
        persona: str | None = None,
        instructions: Sequence[str] = (),
    ) -> None:
        # The matchers are compiled now, not on the first viewer's message.
        self._compiled: CompiledModeration = compile_moderation(settings)
        # What replies are checked against: the instructions, recently refused messages.
        self.output_context = OutputContext.for_instructions(instructions)
        self.audit = audit
        self.persona = persona
        self.counts: Counter[str] = Counter()
        self._allows = 0
        self._names: dict[str, bool] = {}

    @property
    def settings(self) -> ModerationSettings:
        """The settings in force (validated; the matchers are compiled from them)."""
        return self._compiled.settings

    @settings.setter
    def settings(self, settings: ModerationSettings) -> None:
        # Validate again from plain data: a copy made with model_copy(update=...) skips
        # validation, so it may hold e.g. a regex that does not compile.
        validated = ModerationSettings.model_validate(settings.model_dump())
        self._compiled = compile_moderation(validated)
        self._names.clear()  # cached name verdicts were made with the old word lists

    def check_input(self, event: Event) -> Verdict:
        """Whether ``event`` may reach the persona; its ``text`` is the cleaned text to use.

        A refusal's ``reason`` can be shown to the viewer; it never names what was blocked.
        """
        verdict = check_input(event, self._compiled)
        stage: Stage = "mod" if isinstance(event, ModCommand) else "input"
        if verdict.allowed:
            self.counts[stage + ":allow"] += 1
            if self.audit is None:
                return verdict
            if stage == "input":
                every = self.settings.audit_allow_every
                self._allows += 1
                if not every or self._allows % every:
                    return verdict
            decision: Decision = "allow"
        else:
            self.counts[f"{stage}:{verdict.rule}"] += 1
            if stage == "input" and isinstance(verdict.text, str):
                self.output_context.add_refused(verdict.text)  # never to be quoted on stage
            logger.debug(
                "%s refused %s from %s: %s", stage, event.trace_id, event.viewer.name,
                verdict.rule,
            )
            if self.audit is None:
                return verdict
            decision = "reject"
        text = f"!{event.command}" if isinstance(event, ModCommand) else verdict.text
        self.record(event, stage=stage, decision=decision, verdict=verdict, text=text)
        return verdict

    def check_output(self, text: str, *, event: Event | None = None) -> Verdict:
        """Whether the persona may say ``text`` (one sentence) in reply to ``event``.

        A blocked sentence must not be voiced: drop it or say a neutral line instead.
        """
        verdict = check_output(
            text, self._compiled, viewer=event.viewer if event else None,
            prompt=event.text if event else None, context=self.output_context,
        )
        if verdict.allowed:
            self.counts["output:allow"] += 1
        else:
            self.counts[f"output:{verdict.rule}"] += 1
            logger.warning(
                "blocked a sentence of %s: %s (%s)",
                event.trace_id if event else "-", verdict.rule, verdict.detail,
            )
        if self.audit is not None:
            self.record(
                event, stage="output", decision="allow" if verdict.allowed else "block",
                verdict=verdict, text=text,
            )
        return verdict

    def speakable_name(self, viewer: Viewer, *, fallback: str = "friend") -> str:
        """The viewer's name, or ``fallback`` when the name holds a blocked word; use it in
        prompts so the persona is not led to say it."""
        blocked = self._names.get(viewer.name)
        if blocked is None:
            blocked = name_is_blocked(viewer.name, self._compiled)
            if len(self._names) >= 10_000:
                self._names.clear()
            self._names[viewer.name] = blocked
        return fallback if blocked else viewer.name

    def record(
        self,
        event: Event | None,
        *,
        stage: Stage,
        decision: Decision,
        verdict: Verdict | None = None,
        rule: str | None = None,
        reason: str | None = None,
        text: str | None = None,
    ) -> None:
        """Write one decision about ``event`` to the audit log, if there is one. Also for the
        orchestrator's own decisions, e.g. ``stage="queue", decision="drop"``."""
        audit = self.audit
        if audit is None:
            return
        if verdict is not None:
            rule = rule or verdict.rule
            reason = reason or verdict.reason
        if event is None:
            audit.record(
                stage=stage, decision=decision, persona=self.persona, rule=rule, reason=reason,
                detail=verdict.detail if verdict else None, text=text,
            )
            return
        viewer = event.viewer
        audit.record(
            stage=stage,
            decision=decision,
            trace_id=event.trace_id,
            persona=event.persona or self.persona,
            platform=event.platform,
            viewer_id=viewer.id,
            viewer_name=viewer.name,
            rule=rule,
            reason=reason,
            detail=verdict.detail if verdict else None,
            text=event.text if text is None else text,
        )
