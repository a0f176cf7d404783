"""mlpx doctor: bring your own hand-written NumPy network; mlpx says which arrays get a wrong
gradient, which mistake it is and how to fix it.

``examine(build, forward, objective, ...)`` runs the probes (``mlpx.doctor.probes``) on the
user's own callables and returns a ``Report`` of ``Finding``; ``Network`` holds the same
keywords for a ``register_networks`` plugin. ``KINDS`` is the vocabulary of named mistakes.
"""

from mlpx.doctor.examine import examine
from mlpx.doctor.kinds import KINDS, Kind
from mlpx.doctor.network import Network
from mlpx.doctor.report import CHECKS, Finding, Report
from mlpx.doctor.spec import DoctorError, Objective

__all__ = ["CHECKS", "KINDS", "DoctorError", "Finding", "Kind", "Network", "Objective", "Report", "examine"]
