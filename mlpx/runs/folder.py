"""A Hydra run folder of its own for every run: ``${mlpx_uid:}`` in ``hydra.run.dir`` and ``hydra.sweep.dir``.

Hydra's default folder name ``${now:%H-%M-%S}`` is shared by runs started in the same second: their
``mlpx.log`` mixed, weights and plots overwritten, both runs' ``mlpx.output_dir`` the same. The
resolver adds a random suffix. It is cached like ``now`` (Hydra copies the cache into every job's
config of a sweep, joblib workers included), so one config always resolves to one folder.
"""

import secrets

from omegaconf import OmegaConf

RESOLVER = "mlpx_uid"


def register_resolvers() -> None:
    """Register ``${mlpx_uid:}`` (call before Hydra composes; a second call does nothing)."""
    if not OmegaConf.has_resolver(RESOLVER):
        OmegaConf.register_new_resolver(RESOLVER, unique_suffix, use_cache=True)


def unique_suffix() -> str:
    """Six random hex digits: two runs in one second share a folder once in 16 million."""
    return secrets.token_hex(3)
