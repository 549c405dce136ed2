"""The service a call attains per step: load-invariant work (default) or the paper's wall time."""

import pytest

from autellix_ray.core import ServiceModel


def test_work_counts_decoded_and_prefilled_tokens_not_the_step_time():
    model = ServiceModel()
    assert model.unit == "work"
    # the same work in a 10 ms step (alone) and a 200 ms step (big batch): the same service
    assert model.step_service_s(1, 0.010) == model.step_service_s(1, 0.200) == model.decode_token_s
    assert model.step_service_s(512, 0.5) == pytest.approx(512 * model.prefill_token_s)
    assert model.decode_token_s > 50 * model.prefill_token_s  # a decoded token is the dearer


def test_wall_credits_the_whole_step_to_every_call():
    model = ServiceModel(unit="wall")
    assert model.step_service_s(1, 0.2) == 0.2 and model.step_service_s(512, 0.2) == 0.2


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"unit": "tokens"}, "service unit must be one of"),
        ({"decode_token_s": 0}, "decode_token_s must be a finite number > 0"),
        ({"prefill_token_s": float("inf")}, "prefill_token_s must be a finite number > 0"),
        ({"prefill_token_s": True}, "prefill_token_s must be a finite number > 0"),
    ],
)
def test_bad_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ServiceModel(**kwargs)
