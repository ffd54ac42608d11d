"""Writes examples/notebook.ipynb from the cells below, kept as plain text here so that they are easy to review:

    python scripts/make_example_notebook.py
"""
import nbformat

cells = [
    ("markdown", """# pacer in a notebook

Everything the run needs is defined in the cells below: an environment class and a model class. pacer sends
them to its worker processes by value (cloudpickle), so they need no module file, even under the `spawn` start
method (the only one on Windows and macOS)."""),
    ("code", """import gymnasium as gym
import numpy as np
import torch
from torch import nn

import pacer"""),
    ("markdown", "An environment defined here: walk right along a corridor to the goal; every step costs a little."),
    ("code", """class Corridor(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)
    length = 6

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = 0, 0
        return self._obs(), {}

    def step(self, action):
        self.x = max(0, self.x + (1 if action == 1 else -1))
        self.t += 1
        at_goal = self.x >= self.length
        return self._obs(), (1.0 if at_goal else -0.01), at_goal, self.t >= 50, {}

    def _obs(self):
        return np.array([self.x / self.length, self.t / 50], dtype=np.float32)"""),
    ("markdown", "A model defined here, following pacer's actor-critic interface: `forward(obs) -> (logits, value)`."),
    ("code", """class SmallNet(nn.Module):
    def __init__(self, observation_space, action_space):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(observation_space.shape[0], 32), nn.Tanh())
        self.pi = nn.Linear(32, action_space.n)
        self.v = nn.Linear(32, 1)

    def forward(self, obs):
        h = self.body(obs)
        return self.pi(h), self.v(h).squeeze(-1)"""),
    ("markdown", "Train on 2 worker processes started with `spawn`; the progress bar is a notebook widget."),
    ("code", """import tempfile
from pathlib import Path

run_dir = Path(tempfile.mkdtemp(prefix="pacer-notebook-")) / "corridor"
result = pacer.train({
    "env": {"id": Corridor, "envs_per_worker": 8},
    "model": {"factory": SmallNet},
    "algo": {"lr": 3e-3},
    "runtime": {"workers": 2, "start_method": "spawn", "total_steps": 20_000, "eval_every": 5_000},
    "log": {"run_dir": str(run_dir), "tensorboard": False},
})
print(result.stop_reason, result.env_steps, "env steps; greedy return", result.eval_mean)"""),
    ("markdown", "The learning curve, inline."),
    ("code", """pacer.plot([result.run_dir])  # a matplotlib figure: it shows inline"""),
    ("markdown", """Evaluate: the run's config says its env and model were passed by value (`by-value:__main__:...`), so
they are passed again here."""),
    ("code", """evaluation = pacer.evaluate(result.run_dir, episodes=20, workers=2, env=Corridor, model=SmallNet)
print(f"greedy return over {len(evaluation.returns)} episodes: {evaluation.mean:.2f}")
assert evaluation.mean > 0.5, "the agent should reach the goal"
print((result.run_dir / "config.yaml").read_text().split("model:")[0])"""),
]
nb = nbformat.v4.new_notebook()
nb.cells = [nbformat.v4.new_markdown_cell(t) if k == "markdown" else nbformat.v4.new_code_cell(t) for k, t in cells]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbformat.write(nb, "examples/notebook.ipynb")
