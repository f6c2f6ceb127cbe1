"""LiveStream: real-time pacing, continuity, speech in and out, A/V locked by construction,
no work without subscribers, sentence changes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from overlays.live.stream import LiveStream, LiveTick, SentenceChange
from tests.live.conftest import FPS, FakePerformer, performance

SPT = 48000 // FPS


async def _take(sub, n: int) -> list[LiveTick]:
    out = []
    async for tick in sub:
        out.append(tick)
        if len(out) == n:
            break
    return out


async def test_ticks_are_consecutive_paced_and_carry_one_frame_of_audio(performer):
    async with LiveStream(persona="vee", performer=performer) as stream:
        sub = stream.subscribe("t")
        ticks = await _take(sub, 30)
        sub.close()
    assert [t.index for t in ticks] == list(range(30))
    assert all(t.audio.dtype == np.int16 and t.audio.shape == (SPT,) for t in ticks)
    assert all(t.rgba.shape == (48, 64, 4) for t in ticks)
    assert all(t.reply_id is None and t.idle_key is not None for t in ticks)
    assert all(t.pts_s == pytest.approx(t.index / FPS) for t in ticks)
    # Paced in real time: 29 intervals of 40 ms, against the monotonic schedule.
    span = ticks[-1].released - ticks[0].released
    assert 0.8 * 29 / FPS < span < 1.5 * 29 / FPS, span
    # Idle keys: same key, same pixels; different key, different pixels.
    by_key: dict[int, np.ndarray] = {}
    for t in ticks:
        if t.idle_key in by_key:
            assert np.array_equal(by_key[t.idle_key], t.rgba)
        by_key[t.idle_key] = t.rgba
    assert len(by_key) >= 2
    assert len({id(t.rgba) for t in ticks}) < len(ticks)  # repeated frames are shared


async def test_no_subscriber_renders_nothing_and_resumes_on_subscribe(performer):
    async with LiveStream(persona="vee", performer=performer) as stream:
        await asyncio.sleep(0.3)
        assert performer.idle_frames_made == 0 and stream.ticks == 0
        sub = stream.subscribe("t")
        await _take(sub, 5)
        sub.close()
        await asyncio.sleep(0.1)  # the pacer notices the last subscriber left
        made, ticks = performer.idle_frames_made, stream.ticks
        await asyncio.sleep(0.4)
        assert performer.idle_frames_made == made and stream.ticks == ticks
        sub = stream.subscribe("again")
        more = await _take(sub, 3)
        assert more[0].index == ticks  # indices continue
        sub.close()


async def test_speech_shows_within_lead_plus_one_ticks_and_plays_every_frame(performer):
    async with LiveStream(persona="vee", performer=performer, lead_frames=1) as stream:
        sub = stream.subscribe("t", max_queue=1000)
        await _take(sub, 5)
        perf = performance(reply_id="r1", seconds=0.5)  # 13 frames
        pushed_at = stream.ticks
        stream.push(perf)
        assert stream.speaking
        ticks = await _take(sub, 25)
        sub.close()
    speech = [t for t in ticks if t.reply_id == "r1"]
    assert speech[0].index - pushed_at <= stream.lead_frames + 1
    # Every frame, in order, back to back, and idle again after it.
    assert [int(t.rgba[0, 0, 1]) for t in speech] == list(range(perf.n_frames))
    assert [t.index for t in speech] == list(range(speech[0].index,
                                                   speech[0].index + perf.n_frames))
    assert all(t.text == perf.text and t.sentence == 0 for t in speech)
    after = [t for t in ticks if t.index > speech[-1].index]
    assert after and all(t.reply_id is None for t in after)


async def test_sentences_play_back_to_back_in_push_order(performer):
    async with LiveStream(persona="vee", performer=performer) as stream:
        sub = stream.subscribe("t", max_queue=1000)
        await _take(sub, 2)
        a = performance(reply_id="r", index=0, seconds=0.2)
        b = performance(reply_id="r", index=1, seconds=0.3)
        stream.push(a)
        stream.push(b)
        ticks = await _take(sub, 20)
        sub.close()
    said = [(t.sentence, int(t.rgba[0, 0, 1])) for t in ticks if t.reply_id == "r"]
    assert said == [(0, i) for i in range(a.n_frames)] + [(1, i) for i in range(b.n_frames)]
    first = next(i for i, t in enumerate(ticks) if t.reply_id == "r")
    assert all(t.reply_id == "r" for t in ticks[first:first + len(said)])  # no idle gap


async def test_cancel_stops_speech_at_the_next_tick_and_drops_late_pushes(performer):
    async with LiveStream(persona="vee", performer=performer, lead_frames=2) as stream:
        sub = stream.subscribe("t", max_queue=1000)
        stream.push(performance(reply_id="gone", index=0, seconds=2.0))
        stream.push(performance(reply_id="gone", index=1, seconds=2.0))
        stream.push(performance(reply_id="next", index=0, seconds=0.2))
        seen = []
        async for tick in sub:
            seen.append(tick)
            if tick.reply_id == "gone" and int(tick.rgba[0, 0, 1]) == 5:
                stream.cancel("gone")
                break
        stream.push(performance(reply_id="gone", index=2, seconds=1.0))  # late: dropped
        after = await _take(sub, 20)
        sub.close()
    assert all(t.reply_id != "gone" for t in after)
    assert after[0].reply_id == "next"  # the next reply follows at once
    assert [t.index for t in seen + after] == list(range(len(seen) + len(after)))
    assert stream.dropped_pushes == 1 and not stream.speaking


async def test_a_click_in_the_audio_lands_in_the_tick_of_its_frame(performer):
    async with LiveStream(persona="vee", performer=performer) as stream:
        sub = stream.subscribe("t", max_queue=1000)
        perf = performance(reply_id="click", seconds=1.0, click_frame=11)
        stream.push(perf)
        ticks = [t for t in await _take(sub, 40) if t.reply_id == "click"]
        sub.close()
    loud = [int(t.rgba[0, 0, 1]) for t in ticks if np.abs(t.audio).max() > 10000]
    assert loud == [11]
    assert all(np.abs(t.audio).max() == 0 for t in ticks if int(t.rgba[0, 0, 1]) != 11)
    assert sum(len(t.audio) for t in ticks) == perf.n_frames * SPT


async def test_a_lagging_subscriber_loses_its_oldest_ticks_not_the_others(performer):
    async with LiveStream(persona="vee", performer=performer) as stream:
        slow = stream.subscribe("slow", max_queue=3)
        fast = stream.subscribe("fast", max_queue=100)
        ticks = await _take(fast, 12)
        got = await _take(slow, 3)
        slow.close()
        fast.close()
    assert [t.index for t in ticks] == list(range(12))
    assert slow.dropped >= 8 and got[-1].index >= 10
    assert got[0].index < got[1].index < got[2].index


async def test_sentence_changes_are_reported_when_they_go_on_air(performer):
    changes: list[SentenceChange] = []
    async with LiveStream(persona="vee", performer=performer) as stream:
        stream.on_sentence(changes.append)
        sub = stream.subscribe("t", max_queue=1000)
        await _take(sub, 2)
        stream.push(performance(reply_id="r", index=0, seconds=0.2))
        stream.push(performance(reply_id="r", index=1, seconds=0.2))
        ticks = await _take(sub, 20)
        sub.close()
    said = [(c.reply_id, c.sentence) for c in changes]
    assert said == [(None, None), ("r", 0), ("r", 1), (None, None)]
    first = {(t.reply_id, t.sentence): t.index for t in reversed(ticks)}
    assert changes[1].index == first[("r", 0)] and changes[2].index == first[("r", 1)]
    assert changes[1].text == "sentence 0 of r"


async def test_a_late_loop_keeps_every_index_and_catches_up_without_a_burst(performer):
    async with LiveStream(persona="vee", performer=performer, max_late_s=0.2) as stream:
        sub = stream.subscribe("t", max_queue=1000)
        await _take(sub, 3)
        import time

        time.sleep(0.5)  # noqa: ASYNC251 - the event loop stalls, deliberately
        ticks = await _take(sub, 10)
        sub.close()
    assert [t.index for t in ticks] == list(range(3, 13))
    assert stream.rebased == 1
    gaps = np.diff([t.released for t in ticks[2:]])
    assert np.median(gaps) > 0.5 / FPS  # paced again, not released in a burst


def test_wrong_audio_rate_for_fps_is_a_config_error():
    from vstage_core.errors import ConfigError

    with pytest.raises(ConfigError):
        LiveStream(persona="vee", performer=FakePerformer(fps=7))


async def test_what_was_said_to_nobody_is_not_replayed_to_a_late_viewer(performer):
    async with LiveStream(persona="vee", performer=performer) as stream:
        sub = stream.subscribe("first", max_queue=1000)
        await _take(sub, 2)
        sub.close()
        await asyncio.sleep(0.1)
        stream.push(performance(reply_id="past", index=0, seconds=0.4))  # nobody watches
        stream.push(performance(reply_id="now", index=0, seconds=1.2))
        await asyncio.sleep(0.8)
        late = stream.subscribe("late", max_queue=1000)
        ticks = await _take(late, 20)
        late.close()
    assert all(t.reply_id != "past" for t in ticks)
    now = [int(t.rgba[0, 0, 1]) for t in ticks if t.reply_id == "now"]
    # "now" started when "past" would have ended (0.4 s after the push): about 0.4 s of it
    # went by unseen, the late viewer gets the rest from there.
    assert now and 5 <= now[0] <= 20, now[:3]
    assert now == list(range(now[0], now[0] + len(now)))
