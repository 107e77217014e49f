from __future__ import annotations

import uuid

import pytest
from expscale_core import Episode, ExperienceEngine


def test_langchain_style_uuid_run_ids_work_everywhere_an_id_is_taken(engine: ExperienceEngine) -> None:
    run_id = uuid.uuid4()
    engine.record(Episode(id=str(run_id), input="office wifi password?", output="tulip42"))
    engine.retrieve("office wifi password?", episode_id=run_id)
    engine.feedback(run_id, 1, comment="right")  # was: QueueError "type 'UUID' is not supported"
    engine.run_pending()
    (hit,) = engine.retrieve("office wifi password?")
    assert str(run_id) in hit.experience.provenance.source_episode_ids
    assert engine.restore([uuid.UUID(hit.experience.id)]) == 0  # already active, but accepted
    assert engine.delete(episode_id=run_id)["episodes"] == 1


@pytest.mark.parametrize("bad", [42, None, b"abc", 1.5])
def test_a_wrong_id_type_is_a_type_error_that_says_what_is_accepted(engine: ExperienceEngine, bad: object) -> None:
    with pytest.raises(TypeError, match=r"str or uuid\.UUID"):
        engine.feedback(bad, 1)  # type: ignore[arg-type]


def test_a_single_id_where_a_list_is_expected_is_refused(engine: ExperienceEngine) -> None:
    with pytest.raises(TypeError, match="list of ids"):
        engine.restore("abc")  # type: ignore[arg-type]


def test_retrieve_after_close_is_the_same_clear_error_as_record(engine: ExperienceEngine) -> None:
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.retrieve("anything")
