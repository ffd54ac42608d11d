"""Train, then evaluate from every checkpoint, then resume: on Box2D, MuJoCo, classic control and an env whose
state is awkward to store. Envs whose state holds objects say so, once, and still load and resume."""

from __future__ import annotations

import pytest

import pacer
from pacer import checkpoint

ENVS = {
    # env id -> is its state all plain data (bit-exact resume)?
    "LunarLander-v3": False,  # Box2D world and bodies
    "HalfCheetah-v5": True,  # MuJoCo's MjData, stored as its integration state
    "Pendulum-v1": True,  # last_u is a NumPy float32
    "awkward:make_awkward": True,
    "awkward:make_awkward_with_lock": False,
}


@pytest.mark.parametrize("env_id", list(ENVS))
def test_train_eval_every_checkpoint_then_resume(env_id: str, quiet: dict, capsys: pytest.CaptureFixture[str]
                                                 ) -> None:
    if env_id.startswith("HalfCheetah"):
        pytest.importorskip("mujoco")
    quiet["env"].update(id=env_id, envs_per_worker=2)
    quiet["algo"].update(epochs=1, minibatches=1)
    quiet["runtime"].update(total_steps=600, final_eval_episodes=1)
    quiet["log"].update(checkpoint_every=200, keep_checkpoints=2)
    first = pacer.train(quiet)
    files = sorted((first.run_dir / "checkpoints").glob("*.pt"))
    assert len(files) == 3 and files[0].name == "final.pt"  # and the 2 newest periodic ones
    for path in files:
        assert len(pacer.evaluate(path, episodes=1, workers=1).returns) == 1
    note = "left out of the checkpoint, so a resume starts fresh episodes (not bit-exact)"
    assert (note in capsys.readouterr().err) is not ENVS[env_id]

    second = pacer.train(resume=first.run_dir, runtime__total_steps=1000)
    assert second.env_steps >= 1000
    resume_note = "this resume is not bit-exact: the checkpoint left out objects of"
    assert (resume_note in capsys.readouterr().err) is not ENVS[env_id]
    assert checkpoint.load(second.checkpoint)["counters"]["env_steps"] == second.env_steps
    assert pacer.evaluate(second.run_dir, episodes=1, workers=1).returns.shape == (1,)
