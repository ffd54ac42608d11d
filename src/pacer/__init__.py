"""pacer: parallel actor-critic reinforcement learning on CPU processes."""

from pacer.agent import Agent, evaluate, load
from pacer.algos import register_algo
from pacer.config import Config
from pacer.errors import PacerError
from pacer.presets import PRESETS
from pacer.train import TrainResult, train

__version__ = "0.1.0"
__all__ = ["PRESETS", "Agent", "Config", "PacerError", "TrainResult", "evaluate", "load", "register_algo", "train"]
