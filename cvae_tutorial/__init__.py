"""cvae_tutorial: conditional VAEs with a Real NVP flow prior, from the ELBO to FID on CelebA.

The book's chapters import this package. Its layers, each importing only from those below it:

1. ``config`` (ConfigError, shared checks, the device), ``files`` (atomic writes, fingerprints,
   leftovers of killed processes), ``signals`` (SIGTERM as Ctrl-C), ``claims`` (a chapter's
   claims about its results: stop, or print and run on)
2. ``data`` (datasets and batches); ``nets``, ``flows``, ``losses``; ``parameters`` (a chapter's
   papermill parameters checked against their annotations)
3. ``cvae`` (the models: the paper's three, the MSE + KL recipe and every other likelihood, prior
   and encoder of the prior ladder), ``checkpoints`` (saving and loading them), ``editing`` (edits
   and interpolation of a trained model: chapter 7)
4. ``training`` (the loop, ``python -m cvae_tutorial.training``), ``evaluation`` (every metric:
   chapter 6, and chapter 7's edits)
5. ``benchmarks`` (``python -m cvae_tutorial.benchmarks``), ``plotting``
"""
from .checkpoints import CheckpointError, checkpoint_path, load_history, load_model
from .config import ConfigError
from .cvae import CVAE, MODEL_NAMES, PAPER_MODEL_NAMES, CVAEConfig
from .data import (CELEBA_ATTRIBUTES, FACE_ATTRIBUTES, AttributeImages, DataError, embedded_faces,
                   load_celeba, load_dataset)
from .flows import AffineCoupling, RealNVP
from .training import NonFiniteLossError, TrainConfig, train
from .version import __version__

__all__ = ["__version__", "AffineCoupling", "AttributeImages", "CELEBA_ATTRIBUTES",
           "checkpoint_path", "CheckpointError", "ConfigError", "CVAE", "CVAEConfig", "DataError",
           "embedded_faces", "FACE_ATTRIBUTES", "load_celeba", "load_dataset", "load_history",
           "load_model", "MODEL_NAMES", "NonFiniteLossError", "PAPER_MODEL_NAMES", "RealNVP",
           "train", "TrainConfig"]
