"""The encoder complexity policy: steps down under load, back up with hysteresis, and every
call's encoder follows it from its next frame."""

from __future__ import annotations

import numpy as np
import pytest

from voxwire.media.complexity import ComplexityPolicy
from voxwire.media.opus import OpusEncoder
from voxwire.media.pipeline import FRAME_SECONDS, MediaConfig, OutboundAudio


def test_steps_down_at_high_and_up_only_below_low() -> None:
    policy = ComplexityPolicy(normal=5, under_load=1, high=0.7, low=0.35)
    trace = [policy.update(busy) for busy in (0.2, 0.69, 0.7, 0.5, 0.36, 0.9, 0.34, 0.6, 0.71)]
    assert trace == [5, 5, 1, 1, 1, 1, 5, 5, 1]
    assert policy.step_downs == 2 and policy.reduced


def test_a_policy_without_a_lower_step_never_moves() -> None:
    policy = ComplexityPolicy(normal=1, under_load=1)
    assert policy.update(1.0) == 1 and policy.step_downs == 0


@pytest.mark.parametrize(
    "kwargs",
    [dict(normal=11), dict(under_load=-1), dict(normal=2, under_load=3), dict(high=0.3, low=0.4), dict(high=1.5)],
)
def test_invalid_policies_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ComplexityPolicy(**kwargs)  # type: ignore[arg-type]


def test_encoder_complexity_changes_between_frames() -> None:
    encoder = OpusEncoder(24_000, 1, complexity=5)
    pcm = (np.sin(np.arange(480) / 5) * 8000).astype(np.int16)
    encoder.encode(pcm)
    encoder.complexity = 1
    assert encoder.complexity == 1
    assert encoder.encode(pcm)  # still a stream: no reset needed


def test_outbound_encoders_follow_the_shared_policy() -> None:
    policy = ComplexityPolicy(normal=5, under_load=0)
    calls = [OutboundAudio(24_000, MediaConfig(), initial_timestamp=0, complexity=policy) for _ in range(2)]
    tone = (np.sin(np.arange(24_000) / 5) * 8000).astype(np.int16)
    for out in calls:
        out.start(0.0)
        out.play(tone, "resp_1")  # a response: paced, one frame per tick
    now = 0.0
    for out in calls:
        assert out.due(now) and out.encoder.complexity == 5
    policy.update(0.95)  # the loop got busy: every call's next frame is encoded at complexity 0
    now += FRAME_SECONDS
    for out in calls:
        assert out.due(now) and out.encoder.complexity == 0
    policy.update(0.1)
    now += FRAME_SECONDS
    for out in calls:
        assert out.due(now) and out.encoder.complexity == 5
