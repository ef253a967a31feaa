"""Lean loading of the prebuilt AWS provider bindings (hashicorp/terraform-cdk#3753).

`cdktf_cdktf_provider_aws/__init__.py` imports all ~2,135 resource modules "to ensure
their types are registered with the jsii runtime": about 25 s and 500 MB per Python
process, for a synthesis that uses a dozen resource types. Each resource module needs
nothing from its parent package but the `_jsii` subpackage (the assembly load), which it
imports itself. So `install()` registers the package in `sys.modules` without running its
`__init__`; `from cdktf_cdktf_provider_aws.kms_key import KmsKey` then loads `_jsii` and
that one module, and the jsii runtime registers the types it is handed as before.

This relies on the layout of the pinned release, so it is used only for that release.
With any other version, or once the package has been imported normally, `install()`
does nothing and the normal (eager) import runs. `tests/infra/test_provider_bindings.py`
proves that the synthesized output is byte-identical both ways, for every environment.
"""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["PACKAGE", "PINNED_VERSION", "install"]

PACKAGE = "cdktf_cdktf_provider_aws"
DISTRIBUTION = "cdktf-cdktf-provider-aws"
# The release whose layout was checked: resource modules import only `.._jsii` from the package.
PINNED_VERSION = "20.1.0"


def install(*, pinned_version: str = PINNED_VERSION) -> bool:
    """Register the bindings package without its eager `__init__`. True if installed."""
    if PACKAGE in sys.modules:
        return False  # already imported (normally, or by an earlier install)
    try:
        if metadata.version(DISTRIBUTION) != pinned_version:
            return False
    except metadata.PackageNotFoundError:
        return False
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if spec is None or not any((Path(location) / "_jsii" / "__init__.py").is_file() for location in locations):
        return False
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)  # sets __path__; __init__ never runs
    return True
