"""seamless_interaction: find, fetch, verify, load and look at the Seamless Interaction dataset.

Importing the package has no side effects: no log file, no network, no global random seeding.
Logging goes through the standard ``logging`` module under the ``seamless_interaction`` logger.
"""

import logging

from seamless_interaction.errors import SeamlessError

__version__ = "0.1.0"
__all__ = ["SeamlessError", "__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
