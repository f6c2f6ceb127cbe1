"""The Wav2Lip renderer with random weights in the published checkpoint format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from avatar_engine.renderers.base import Renderer
from avatar_engine.renderers.wav2lip import (
    Wav2LipNet,
    Wav2LipRenderer,
    Wav2LipSettings,
    load_checkpoint,
)
from avatar_engine.types import Speech, frame_count
from tests.wav2lip.helpers import FACE_BOX, random_net
from vstage_core.errors import ConfigError, MissingDependency


def speech(seconds: float = 0.36, rate: int = 22050) -> Speech:
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * rate)) / rate
    audio = 0.4 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 4 * t))
    audio = audio + 0.05 * rng.standard_normal(t.size)
    return Speech(text="hi", audio=audio.astype(np.float32), sample_rate=rate)


def make(checkpoint: Path, avatar_png: Path, **kw) -> Wav2LipRenderer:
    kw.setdefault("device", "cpu")
    return Wav2LipRenderer(checkpoint=checkpoint, avatar_image=avatar_png, face_box=FACE_BOX, **kw)


@pytest.fixture(scope="module")
def renderer(checkpoint: Path, avatar_png: Path) -> Wav2LipRenderer:
    return make(checkpoint, avatar_png, batch_size=8)


@pytest.fixture(scope="module")
def frames(renderer: Wav2LipRenderer) -> torch.Tensor:
    return renderer.render(speech())


def test_network_shapes(net: Wav2LipNet) -> None:
    with torch.inference_mode():
        out = net(torch.randn(2, 1, 80, 16), torch.rand(2, 6, 96, 96))
    assert out.shape == (2, 3, 96, 96)
    assert out.min() >= 0 and out.max() <= 1


def test_state_dict_uses_the_published_key_names(net: Wav2LipNet) -> None:
    sd = net.state_dict()
    assert sd["face_encoder_blocks.0.0.conv_block.0.weight"].shape == (16, 6, 7, 7)
    assert sd["face_encoder_blocks.6.1.conv_block.0.weight"].shape == (512, 512, 1, 1)
    assert sd["audio_encoder.0.conv_block.1.running_mean"].shape == (32,)
    assert sd["audio_encoder.12.conv_block.0.weight"].shape == (512, 512, 1, 1)
    assert sd["face_decoder_blocks.1.0.conv_block.0.weight"].shape == (1024, 512, 3, 3)
    assert sd["face_decoder_blocks.6.0.conv_block.0.weight"].shape == (160, 64, 3, 3)
    assert sd["output_block.0.conv_block.0.weight"].shape == (32, 80, 3, 3)
    assert sd["output_block.1.weight"].shape == (3, 32, 1, 1)
    n_params = sum(p.numel() for p in net.parameters())
    assert 36_000_000 < n_params < 36_600_000  # the published generator's size


@pytest.mark.parametrize("which", ["checkpoint", "checkpoint_plain"])
def test_checkpoint_loads_with_and_without_module_prefix(
    request: pytest.FixtureRequest, which: str, net: Wav2LipNet
) -> None:
    loaded = load_checkpoint(request.getfixturevalue(which))
    assert not loaded.training
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k


def test_bare_state_dict_loads(tmp_path: Path, net: Wav2LipNet) -> None:
    path = tmp_path / "bare.pth"
    torch.save(net.state_dict(), path)
    loaded = load_checkpoint(path)
    key = "output_block.1.weight"
    assert torch.equal(loaded.state_dict()[key], net.state_dict()[key])


def test_missing_checkpoint_says_where_to_put_one(tmp_path: Path, avatar_png: Path) -> None:
    where = tmp_path / "models" / "wav2lip.pth"
    with pytest.raises(MissingDependency, match="no weights ship") as e:
        make(where, avatar_png)
    assert str(where) in str(e.value)


def test_wrong_checkpoint_is_a_config_error(tmp_path: Path, avatar_png: Path) -> None:
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"module.fc.weight": torch.zeros(2, 2)}}, path)
    with pytest.raises(ConfigError, match="not a 96x96 Wav2Lip"):
        make(path, avatar_png)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="not a readable"):
        make(path, avatar_png)


def test_face_box_must_fit(checkpoint: Path, avatar_png: Path) -> None:
    with pytest.raises(ConfigError, match="face_box"):
        Wav2LipRenderer(checkpoint=checkpoint, avatar_image=avatar_png, face_box=(120, 0, 64, 64))


def test_is_a_renderer(renderer: Wav2LipRenderer) -> None:
    assert isinstance(renderer, Renderer)
    assert renderer.size == (160, 128)
    assert renderer.device == torch.device("cpu")


def test_output_shape(renderer: Wav2LipRenderer, frames: torch.Tensor) -> None:
    n = frame_count(speech().duration, 25)
    assert frames.shape == (n, 128, 160, 4)
    assert frames.dtype == torch.uint8


def test_only_the_lower_face_changes(frames: torch.Tensor, avatar_png: Path) -> None:
    avatar = torch.from_numpy(np.array(Image.open(avatar_png).convert("RGBA")))
    x, y, w, h = FACE_BOX
    inside = torch.zeros(avatar.shape[:2], dtype=torch.bool)
    inside[y + h // 2 : y + h, x : x + w] = True
    same = frames == avatar[None]
    assert same[:, ~inside].all()  # outside the lower half of the box: bit for bit
    assert torch.equal(frames[..., 3], avatar[None, ..., 3].expand_as(frames[..., 3]))
    assert not same[:, inside].all()  # and the mouth area did change


def test_batch_size_does_not_change_the_result(
    checkpoint: Path, avatar_png: Path, frames: torch.Tensor
) -> None:
    one = make(checkpoint, avatar_png, batch_size=1).render(speech())
    diff = (one.int() - frames.int()).abs()
    assert diff.max() <= 1  # float summation order only
    assert (diff == 0).float().mean() > 0.99


def test_deterministic(renderer: Wav2LipRenderer, frames: torch.Tensor) -> None:
    assert torch.equal(renderer.render(speech(), start_frame=100), frames)


def test_different_audio_different_mouth(renderer: Wav2LipRenderer, frames: torch.Tensor) -> None:
    quiet = Speech(text="", audio=np.zeros_like(speech().audio), sample_rate=22050)
    assert not torch.equal(renderer.render(quiet), frames)


def test_idle_repeats_the_silent_frame(renderer: Wav2LipRenderer) -> None:
    idle = renderer.idle(4, start_frame=9)
    assert idle.shape == (4, 128, 160, 4)
    assert all(torch.equal(idle[0], f) for f in idle)
    assert renderer.idle(0).shape == (0, 128, 160, 4)


def test_cuda_falls_back_to_cpu(checkpoint: Path, avatar_png: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    r = make(checkpoint, avatar_png, device="cuda")
    assert r.device == torch.device("cpu") and r.dtype == torch.float32


def test_settings_and_relative_paths(tmp_path: Path, avatar_png: Path) -> None:
    (tmp_path / "models").mkdir()
    torch.save({"state_dict": random_net(1).state_dict()}, tmp_path / "models" / "wav2lip.pth")
    (tmp_path / "avatar.png").write_bytes(avatar_png.read_bytes())
    settings = Wav2LipSettings(avatar_image=Path("avatar.png"), face_box=FACE_BOX, device="cpu")
    r = Wav2LipRenderer.from_settings(settings, config_dir=tmp_path)
    assert r.face_box == FACE_BOX and r.batch_size == 16
    with pytest.raises(ValueError):
        Wav2LipSettings(avatar_image=Path("a.png"), face_box=(0, 0, 4, 4))
