"""cvae_tutorial: conditional VAEs with a Real NVP flow prior, from the ELBO to FID on CelebA.

The book's chapters import this package; each concept lives in one module:
``data`` (datasets), ``nets`` (encoder, prior encoder, decoder), ``flows`` (Real NVP),
``losses`` (NLLs and KLs), ``cvae`` (the three models), ``train`` (loop and checkpoints),
``editing`` (using a trained model), ``plotting`` (figures).
"""
__version__ = "0.1.0"

from .cvae import CVAE, MODEL_NAMES, CVAEConfig, ConfigError  # noqa: E402
from .data import (AttributeImages, DataError, FACE_ATTRIBUTES, CELEBA_ATTRIBUTES,  # noqa: E402
                   embedded_faces, load_celeba, load_dataset)
from .flows import AffineCoupling, RealNVP  # noqa: E402
from .train import (CheckpointError, NonFiniteLossError, TrainConfig,  # noqa: E402
                    checkpoint_path, load_model, train)
