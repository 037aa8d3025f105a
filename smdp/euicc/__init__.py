"""The virtual eUICC: ES10a/b/c of SGP.22 in software, with persistent state (see euicc.py)."""

from smdp.euicc.errors import EuiccCommandError
from smdp.euicc.euicc import InstalledProfileView, VirtualEuicc
from smdp.euicc.state import StateError

__all__ = ["EuiccCommandError", "InstalledProfileView", "StateError", "VirtualEuicc"]
